"""Campaign tests that race for real use the orders' `live` fixture: the app on a fresh
database with a real pool."""

from tests.orders.conftest import live

__all__ = ["live"]
