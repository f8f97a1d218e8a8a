"""Who may read settlements (members, and API keys with orders:read) and retry payouts (owners)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends

from xiaopu.auth.auth import SupplierAccess, SupplierCaller
from xiaopu.auth.scopes import Scope

# The same admission as the supplier's statements: money read alongside its orders.
SettlementsReader = Annotated[SupplierCaller, Depends(SupplierAccess(Scope.orders_read))]
# Sending money again is for the supplier's owners, by their own login.
SettlementsOwner = Annotated[
    SupplierCaller, Depends(SupplierAccess(Scope.orders_write, owner_only=True))
]
