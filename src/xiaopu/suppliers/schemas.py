"""Request and response bodies for suppliers, their members and operators' decisions."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated

from pydantic import AfterValidator, Field

from xiaopu.kit.contact import normalize_email, normalize_phone
from xiaopu.kit.money import CurrencyCode, MinorAmount
from xiaopu.kit.schema import RequestModel, ResponseModel
from xiaopu.kit.text import DisplayName
from xiaopu.models import MemberRole, PayoutMethod, SupplierStatus

Text = Annotated[str, Field(min_length=1, pattern=r"\S")]


class PayoutDetails(RequestModel):
    method: PayoutMethod
    account_name: DisplayName = Field(min_length=1, max_length=120, pattern=r"\S")
    account_number: str = Field(min_length=4, max_length=64, pattern=r"^[0-9A-Za-z@._+-]+$")


class SupplierCreate(RequestModel):
    name: DisplayName = Field(
        min_length=1, max_length=120, pattern=r"\S", description="Business name."
    )
    contact_name: DisplayName | None = Field(
        default=None, min_length=1, max_length=80, pattern=r"\S"
    )
    contact_email: Annotated[str, Field(max_length=254), AfterValidator(normalize_email)] | None = (
        None
    )
    contact_phone: Annotated[str, Field(max_length=32), AfterValidator(normalize_phone)] | None = (
        None
    )
    payout: PayoutDetails | None = None


class ShippingRate(RequestModel):
    """A flat shipping charge per supplier order; orders in another currency are refused
    unless the charge is 0."""

    amount_minor: MinorAmount
    currency: CurrencyCode


class SupplierOut(ResponseModel):
    id: uuid.UUID
    name: str
    status: SupplierStatus
    status_reason: str | None = None
    contact_name: str | None = None
    contact_email: str | None = None
    contact_phone: str | None = None
    payout_method: PayoutMethod | None = None
    payout_account_name: str | None = None
    payout_account_hint: str | None = Field(
        default=None, description="Last four characters of the payout account."
    )
    shipping_fee_minor: int = 0
    shipping_currency: str = "CNY"
    created_at: datetime


class Membership(ResponseModel):
    supplier: SupplierOut
    role: MemberRole


class MemberAdd(RequestModel):
    login: str = Field(
        min_length=3, max_length=254, description="Email or phone of an existing account."
    )
    role: MemberRole = MemberRole.staff


class MemberOut(ResponseModel):
    id: uuid.UUID
    account_id: uuid.UUID
    role: MemberRole
    email: str | None = Field(
        description="Shown to the supplier's owners only: null for staff and API keys."
    )
    phone: str | None = Field(
        description="Shown to the supplier's owners only: null for staff and API keys."
    )
    display_name: str | None
    created_at: datetime


class Decision(RequestModel):
    reason: str = Field(min_length=1, max_length=500, pattern=r"\S")
