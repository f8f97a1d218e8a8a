"""Who may read a supplier's campaigns (products:read) and run them (products:write)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends

from xiaopu.auth.auth import SupplierAccess, SupplierCaller
from xiaopu.auth.scopes import Scope

CampaignReader = Annotated[SupplierCaller, Depends(SupplierAccess(Scope.products_read))]
CampaignManager = Annotated[SupplierCaller, Depends(SupplierAccess(Scope.products_write))]
