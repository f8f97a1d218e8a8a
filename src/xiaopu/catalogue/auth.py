"""Who may read and write a supplier's catalogue: its members, or API keys with the scope."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends

from xiaopu.auth.auth import SupplierAccess, SupplierCaller
from xiaopu.auth.scopes import Scope

ProductReader = Annotated[SupplierCaller, Depends(SupplierAccess(Scope.products_read))]
ProductWriter = Annotated[SupplierCaller, Depends(SupplierAccess(Scope.products_write))]
