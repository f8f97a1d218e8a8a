"""Who may read a supplier's dashboard: its members, or its API keys with orders:read."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends

from xiaopu.auth.auth import SupplierAccess, SupplierCaller
from xiaopu.auth.scopes import Scope

# Sales figures are the supplier's orders, summed: the same admission as reading them.
DashboardReader = Annotated[SupplierCaller, Depends(SupplierAccess(Scope.orders_read))]
