"""Shops: one-click opening, levels, and the products a shopkeeper has picked."""
