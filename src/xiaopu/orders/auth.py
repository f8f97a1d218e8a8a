"""Who may act on orders: buyers (signed in or holding a guest token), suppliers, operators."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Header

from xiaopu.auth.auth import SupplierAccess, SupplierCaller
from xiaopu.auth.scopes import Scope

OrdersReader = Annotated[SupplierCaller, Depends(SupplierAccess(Scope.orders_read))]
OrdersWriter = Annotated[SupplierCaller, Depends(SupplierAccess(Scope.orders_write))]

GuestToken = Annotated[
    str | None,
    Header(
        alias="X-Order-Token",
        max_length=64,
        description="A guest's order token (from checkout); signed-in buyers send their bearer.",
    ),
]
