"""Who may manage a supplier's webhooks: its members, or its API keys with webhooks:manage."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends

from xiaopu.auth.auth import SupplierAccess, SupplierCaller
from xiaopu.auth.scopes import Scope

WebhookManager = Annotated[SupplierCaller, Depends(SupplierAccess(Scope.webhooks_manage))]
