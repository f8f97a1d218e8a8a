"""The catalogue: categories, suppliers' products and variants, stock."""
