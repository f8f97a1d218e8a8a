"""Request and response bodies for organisations, members, invite codes, cohorts and notices."""

from __future__ import annotations

import enum
import uuid
from datetime import date, datetime

from pydantic import AwareDatetime, Field, model_validator

from xiaopu.kit.money import BasisPoints, CurrencyCode
from xiaopu.kit.schema import RequestModel, ResponseModel
from xiaopu.kit.text import DisplayName, MultilineText
from xiaopu.models import (
    NoticeKind,
    OrganisationKind,
    OrganisationRole,
    OrganisationStatus,
    OverrideStatus,
)

# What a person types or scans: letters and digits, any case (stored upper case).
INVITE_CODE_PATTERN = r"^[0-9A-Za-z]{6,16}$"


class Contract(RequestModel):
    """The organisation's reward: `override_bps` of the platform fee on its cohort's completed
    sales in `currency` (paid by the platform), at most `monthly_cap_minor` a month, made
    available at month close only if at least `min_active_shops` cohort shops completed a sale
    in the month. One level only: no override on an override."""

    override_bps: BasisPoints
    currency: CurrencyCode
    monthly_cap_minor: int = Field(ge=0, le=10**12)
    min_active_shops: int = Field(ge=0, le=1_000_000)


class ContractOut(ResponseModel):
    override_bps: int
    currency: str
    monthly_cap_minor: int
    min_active_shops: int


class PersonRef(RequestModel):
    """A person by account id or by login email (exactly one)."""

    account_id: uuid.UUID | None = None
    email: str | None = Field(default=None, min_length=3, max_length=254)

    @model_validator(mode="after")
    def _exactly_one(self) -> PersonRef:
        if (self.account_id is None) == (self.email is None):
            raise ValueError("give either account_id or email")
        return self


class OrganisationCreate(RequestModel):
    name: DisplayName = Field(min_length=1, max_length=100)
    kind: OrganisationKind
    contract: Contract
    admin: PersonRef = Field(description="The first admin: an existing account.")


class ContractUpdate(Contract):
    reason: str | None = Field(default=None, max_length=200)


class StatusChange(RequestModel):
    reason: str = Field(min_length=1, max_length=200)


class OrganisationOut(ResponseModel):
    id: uuid.UUID
    name: str
    kind: OrganisationKind
    status: OrganisationStatus
    contract: ContractOut
    cohort_shops: int = Field(description="Shops in the cohort now.")
    created_at: datetime
    updated_at: datetime


class MyOrganisationOut(ResponseModel):
    id: uuid.UUID
    name: str
    kind: OrganisationKind
    status: OrganisationStatus
    role: OrganisationRole


class CohortMoveIn(RequestModel):
    organisation_id: uuid.UUID | None = Field(
        description="The cohort the shop moves to; null takes it out of any."
    )
    reason: str = Field(min_length=1, max_length=200)


class CohortMoveOut(ResponseModel):
    id: uuid.UUID
    shop_id: uuid.UUID
    from_organisation_id: uuid.UUID | None
    to_organisation_id: uuid.UUID | None
    reason: str | None
    at: datetime


class OrganisationMemberAdd(PersonRef):
    role: OrganisationRole = OrganisationRole.staff


class OrganisationMemberOut(ResponseModel):
    account_id: uuid.UUID
    display_name: str | None
    email: str | None
    role: OrganisationRole
    created_at: datetime


class InviteCodeCreate(RequestModel):
    label: DisplayName | None = Field(default=None, min_length=1, max_length=100)
    expires_at: AwareDatetime | None = None
    max_uses: int | None = Field(default=None, ge=1, le=1_000_000)


class InviteCodeState(enum.StrEnum):
    active = "active"
    expired = "expired"
    revoked = "revoked"
    used_up = "used_up"


class InviteCodeOut(ResponseModel):
    id: uuid.UUID
    code: str
    label: str | None
    expires_at: datetime | None
    max_uses: int | None
    uses: int
    revoked_at: datetime | None
    state: InviteCodeState
    share_url: str = Field(description="Opens shop sign-up with the code filled in.")
    qr_svg_url: str = Field(description="The share URL as a QR code (members only).")
    created_at: datetime


class JoinIn(RequestModel):
    invite_code: str = Field(pattern=INVITE_CODE_PATTERN)


class ShopCohortOut(ResponseModel):
    organisation_id: uuid.UUID
    organisation_name: str
    cohort_joined_at: datetime


class Activation(ResponseModel):
    first_product_at: datetime | None = Field(
        description="When the oldest product the shop carries now was picked."
    )
    first_link_at: datetime | None
    first_sale_at: datetime | None = Field(description="When its first order was paid.")


class CohortMoney(ResponseModel):
    currency: str
    gmv_minor: int
    refunds_minor: int
    earnings_minor: int = Field(description="Earnings that stand: not forfeited or taken back.")


class CohortShop(ResponseModel):
    shop_id: uuid.UUID
    name: str
    slug: str
    opened_at: datetime
    cohort_joined_at: datetime
    activation: Activation
    last_active_on: date | None = Field(
        description="The last local day with a click, a paid order, a product picked or a "
        "share link made."
    )
    clicks: int
    unique_visitors: int
    orders: int
    completed_orders: int
    money: list[CohortMoney]


class CohortPage(ResponseModel):
    since: date
    until: date
    time_zone: str
    items: list[CohortShop]
    next_cursor: str | None


class CohortDay(ResponseModel):
    day: date
    shops_with_orders: int
    clicks: int
    unique_visitors: int
    orders: int
    completed_orders: int
    money: list[CohortMoney]


class CohortDays(ResponseModel):
    since: date
    until: date
    time_zone: str
    cohort_shops: int = Field(description="The shops in the cohort now, whose days are summed.")
    days: list[CohortDay]


class NoticeIn(RequestModel):
    kind: NoticeKind = NoticeKind.notice
    title: DisplayName = Field(min_length=1, max_length=120)
    body: MultilineText = Field(min_length=1, max_length=4000)


class NoticeOut(ResponseModel):
    id: uuid.UUID
    kind: NoticeKind
    title: str
    body: str
    sent_by: uuid.UUID
    recipients: int
    reads: int
    created_at: datetime


class NoticeRecipientOut(ResponseModel):
    shop_id: uuid.UUID
    name: str
    slug: str
    read_at: datetime | None


class ShopNoticeOut(ResponseModel):
    id: uuid.UUID
    organisation_id: uuid.UUID
    organisation_name: str
    kind: NoticeKind
    title: str
    body: str
    created_at: datetime
    read_at: datetime | None


# Overrides -----------------------------------------------------------------------------------

MONTH_PATTERN = r"^\d{4}-(0[1-9]|1[0-2])$"


class OverrideOut(ResponseModel):
    """The override on one completed cohort order line: `rate_bps` of the line's platform fee
    for the units kept at completion, half-up, cut by the month's cap where it bound."""

    id: uuid.UUID
    shop_id: uuid.UUID
    order_id: uuid.UUID
    supplier_order_id: uuid.UUID
    order_line_id: uuid.UUID
    month: str = Field(description="Local month (platform time zone) the sale completed in.")
    currency: str
    fee_minor: int
    rate_bps: int
    accrued_minor: int
    reversed_minor: int
    clawed_back_minor: int = Field(description="Reversed after the month released it.")
    net_minor: int
    status: OverrideStatus
    created_at: datetime


class OverrideMonthOutcome(ResponseModel):
    closed_at: datetime
    active_shops: int
    required: int
    rule_met: bool
    reason: str | None


class OverrideTotals(ResponseModel):
    currency: str
    lines: int
    accrued_minor: int
    reversed_minor: int
    clawed_back_minor: int
    released_minor: int
    returned_minor: int
    cap_used_minor: int = Field(description="Accrued less reversed: what the cap is checked on.")
    outcome: OverrideMonthOutcome | None = Field(description="None until the month closes.")


class OverrideStatement(ResponseModel):
    organisation_id: uuid.UUID
    month: str
    totals: list[OverrideTotals]


class OverrideWalletBalance(ResponseModel):
    currency: str
    pending_minor: int = Field(description="Accrued this month or an open one: not yet closed.")
    available_minor: int = Field(description="Released at month close: withdrawable.")
    withdrawing_minor: int = Field(description="Asked for, not yet paid out.")
    paid_minor: int = Field(description="Paid out to the organisation so far.")


class OverrideWallet(ResponseModel):
    organisation_id: uuid.UUID
    balances: list[OverrideWalletBalance]
