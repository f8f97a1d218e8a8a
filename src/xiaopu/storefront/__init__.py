"""The buyer's mobile web storefront: shop, product, cart, checkout, payment and order pages."""
