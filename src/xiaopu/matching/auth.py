"""Who may read a product's recommended shops (products:read) and invite them (products:write)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends

from xiaopu.auth.auth import SupplierAccess, SupplierCaller
from xiaopu.auth.scopes import Scope

RecommendationReader = Annotated[SupplierCaller, Depends(SupplierAccess(Scope.products_read))]
Inviter = Annotated[SupplierCaller, Depends(SupplierAccess(Scope.products_write))]
