"""Request and response bodies for suppliers."""

from __future__ import annotations

import uuid
from datetime import datetime

from pydantic import Field

from xiaopu.kit.schema import RequestModel, ResponseModel
from xiaopu.models import MemberRole, SupplierStatus


class SupplierCreate(RequestModel):
    name: str = Field(min_length=1, max_length=120, pattern=r"\S", description="Business name.")


class SupplierOut(ResponseModel):
    id: uuid.UUID
    name: str
    status: SupplierStatus
    created_at: datetime


class Membership(ResponseModel):
    supplier: SupplierOut
    role: MemberRole
