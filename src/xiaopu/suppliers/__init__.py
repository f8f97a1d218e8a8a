"""Suppliers: the businesses that list products and fulfil orders."""
