"""Code redemptions race for real on a fresh database with the orders tests' `live` app."""

from tests.orders.conftest import live

__all__ = ["live"]
