"""Who may read a supplier's statements: its members, or its API keys with orders:read."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends

from xiaopu.auth.auth import SupplierAccess, SupplierCaller
from xiaopu.auth.scopes import Scope

# A statement is money read alongside the supplier's orders: the same admission as reading them.
StatementsReader = Annotated[SupplierCaller, Depends(SupplierAccess(Scope.orders_read))]
