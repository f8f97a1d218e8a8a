"""The scopes a supplier API key can carry."""

from __future__ import annotations

import enum


class Scope(enum.StrEnum):
    supplier_read = "supplier:read"
    products_read = "products:read"
    products_write = "products:write"
    orders_read = "orders:read"
    orders_write = "orders:write"
    webhooks_manage = "webhooks:manage"
