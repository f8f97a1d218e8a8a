"""Partner organisations (生态机构, 城市合伙人): their contract, staff, invite codes, cohort moves
and notices. A shop's cohort is `shops.organisation_id`."""

from __future__ import annotations

import enum
import uuid
from datetime import date, datetime

from sqlalchemy import BigInteger as _BigInteger
from sqlalchemy import (
    CheckConstraint,
    ForeignKey,
    Index,
    Integer,
    PrimaryKeyConstraint,
    SmallInteger,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from xiaopu.models.base import Base, CreatedAtMixin, IdMixin, TimestampMixin, text_enum


class OrganisationKind(enum.StrEnum):
    government = "government"
    college = "college"
    social = "social"
    company = "company"
    city_partner = "city_partner"
    team = "team"


class OrganisationStatus(enum.StrEnum):
    active = "active"
    suspended = "suspended"


class OrganisationRole(enum.StrEnum):
    admin = "admin"  # adds staff, issues codes, sends notices
    staff = "staff"  # coaches: reads the cohort, issues codes, sends notices


class Organisation(IdMixin, TimestampMixin, Base):
    """An organisation and its contract: an override in basis points of the platform fee on its
    cohort's completed sales in `currency`, at most `monthly_cap_minor` a month, made available
    at month close only if at least `min_active_shops` cohort shops completed a sale that month."""

    __tablename__ = "organisations"
    __table_args__ = (
        CheckConstraint("override_bps BETWEEN 0 AND 10000", name="override_bps_range"),
        CheckConstraint("monthly_cap_minor >= 0", name="cap_not_negative"),
        CheckConstraint("min_active_shops >= 0", name="min_active_not_negative"),
    )

    name: Mapped[str] = mapped_column(String(100))
    kind: Mapped[OrganisationKind] = mapped_column(text_enum(OrganisationKind, "organisation_kind"))
    status: Mapped[OrganisationStatus] = mapped_column(
        text_enum(OrganisationStatus, "organisation_status"), default=OrganisationStatus.active
    )
    override_bps: Mapped[int] = mapped_column(SmallInteger)
    currency: Mapped[str] = mapped_column(String(3))
    monthly_cap_minor: Mapped[int] = mapped_column(_BigInteger)
    min_active_shops: Mapped[int] = mapped_column(Integer)


class OrganisationMember(CreatedAtMixin, Base):
    __tablename__ = "organisation_members"
    __table_args__ = (
        PrimaryKeyConstraint("organisation_id", "account_id"),
        Index(None, "account_id"),
    )

    organisation_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("organisations.id", ondelete="CASCADE")
    )
    account_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"))
    role: Mapped[OrganisationRole] = mapped_column(text_enum(OrganisationRole, "organisation_role"))


class InviteCode(IdMixin, CreatedAtMixin, Base):
    """A code a person opens a shop with (or a shop in no cohort joins with) to join the
    organisation's cohort."""

    __tablename__ = "invite_codes"
    __table_args__ = (
        CheckConstraint("max_uses IS NULL OR max_uses > 0", name="max_uses_positive"),
        CheckConstraint("uses >= 0 AND (max_uses IS NULL OR uses <= max_uses)", name="uses_within"),
        Index(None, "organisation_id", "id"),
    )

    organisation_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("organisations.id", ondelete="CASCADE")
    )
    code: Mapped[str] = mapped_column(String(16), unique=True)
    label: Mapped[str | None] = mapped_column(String(100))
    expires_at: Mapped[datetime | None]
    max_uses: Mapped[int | None] = mapped_column(Integer)
    uses: Mapped[int] = mapped_column(Integer, default=0)
    revoked_at: Mapped[datetime | None]
    created_by: Mapped[uuid.UUID] = mapped_column(ForeignKey("accounts.id"))


class CohortMove(IdMixin, Base):
    """A shop joining a cohort (by code) or moved between cohorts (by an operator): the
    override of a sale follows the cohort the shop is in when the sale completes."""

    __tablename__ = "cohort_moves"
    __table_args__ = (Index(None, "shop_id", "at"),)

    shop_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("shops.id", ondelete="CASCADE"))
    from_organisation_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("organisations.id"))
    to_organisation_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("organisations.id"))
    invite_code_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("invite_codes.id"))
    operator_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("accounts.id"))
    reason: Mapped[str | None] = mapped_column(String(200))
    at: Mapped[datetime]


class NoticeKind(enum.StrEnum):
    task = "task"
    notice = "notice"


class Notice(IdMixin, CreatedAtMixin, Base):
    """A task or notice an organisation sends its cohort (the app delivers it)."""

    __tablename__ = "notices"
    __table_args__ = (
        Index(None, "organisation_id", "id"),
        CheckConstraint("reads BETWEEN 0 AND recipients", name="reads_within"),
    )

    organisation_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("organisations.id", ondelete="CASCADE")
    )
    kind: Mapped[NoticeKind] = mapped_column(text_enum(NoticeKind, "notice_kind"))
    title: Mapped[str] = mapped_column(String(120))
    body: Mapped[str] = mapped_column(Text)
    sent_by: Mapped[uuid.UUID] = mapped_column(ForeignKey("accounts.id"))
    recipients: Mapped[int] = mapped_column(Integer)
    # Recipients who have read it, counted as each first reads it.
    reads: Mapped[int] = mapped_column(Integer, default=0)


class NoticeRecipient(Base):
    """A cohort shop a notice was sent to, and when its keeper read it."""

    __tablename__ = "notice_recipients"
    __table_args__ = (
        PrimaryKeyConstraint("notice_id", "shop_id"),
        Index(None, "shop_id", "notice_id"),
    )

    notice_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("notices.id", ondelete="CASCADE"))
    shop_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("shops.id", ondelete="CASCADE"))
    read_at: Mapped[datetime | None]


class OverrideStatus(enum.StrEnum):
    pending = "pending"  # accrued at completion, until its month closes
    available = "available"  # the month's activity rule held: the organisation's
    returned = "returned"  # the rule was missed: back to the platform's fees


class Override(IdMixin, TimestampMixin, Base):
    """An organisation's override on one completed cohort order line in the contract's currency:
    `rate_bps` (frozen at completion) of the line's platform fee for the units kept then, cut by
    the month's cap. One level only: computed from a shop's sale's platform fee, never from
    another override."""

    __tablename__ = "overrides"
    __table_args__ = (
        UniqueConstraint("supplier_order_id", "order_line_id"),
        Index(None, "organisation_id", "month", "id"),
        CheckConstraint("rate_bps BETWEEN 0 AND 10000", name="rate_bps_range"),
        CheckConstraint("fee_minor >= 0 AND accrued_minor >= 0", name="amounts_not_negative"),
        CheckConstraint(
            "reversed_minor >= 0 AND reversed_minor <= accrued_minor", name="reversed_within"
        ),
        CheckConstraint(
            "clawed_back_minor >= 0 AND clawed_back_minor <= reversed_minor",
            name="clawed_back_within",
        ),
    )

    organisation_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("organisations.id"))
    shop_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("shops.id"))
    order_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("orders.id"))
    supplier_order_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("supplier_orders.id"))
    order_line_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("order_lines.id"))
    # The local month (platform time zone) the sale completed in: its first day.
    month: Mapped[date]
    currency: Mapped[str] = mapped_column(String(3))
    # The line's platform fee for the units kept at completion: what the override is taken from.
    fee_minor: Mapped[int] = mapped_column(_BigInteger)
    rate_bps: Mapped[int] = mapped_column(SmallInteger)
    # (fee × rate + 5000) // 10000, or less where the month's cap cut it.
    accrued_minor: Mapped[int] = mapped_column(_BigInteger)
    reversed_minor: Mapped[int] = mapped_column(_BigInteger, default=0)
    # The part of reversed_minor taken back after the month released it (a clawback).
    clawed_back_minor: Mapped[int] = mapped_column(_BigInteger, default=0)
    status: Mapped[OverrideStatus] = mapped_column(text_enum(OverrideStatus, "override_status"))


class OverrideMonth(IdMixin, TimestampMixin, Base):
    """An organisation's month of overrides in one currency: the counter the monthly cap is
    checked against (accrued less reversed, changed under this row's lock in both directions),
    and, once the month has closed, its activity rule's outcome and where the money went."""

    __tablename__ = "override_months"
    __table_args__ = (
        UniqueConstraint("organisation_id", "month", "currency"),
        CheckConstraint("accrued_minor >= 0", name="accrued_not_negative"),
        CheckConstraint("(closed_at IS NULL) = (rule_met IS NULL)", name="closed_with_outcome"),
    )

    organisation_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("organisations.id"))
    month: Mapped[date]
    currency: Mapped[str] = mapped_column(String(3))
    accrued_minor: Mapped[int] = mapped_column(_BigInteger, default=0)
    closed_at: Mapped[datetime | None]
    active_shops: Mapped[int | None] = mapped_column(Integer)
    required: Mapped[int | None] = mapped_column(Integer)
    rule_met: Mapped[bool | None]
    released_minor: Mapped[int] = mapped_column(_BigInteger, default=0)
    returned_minor: Mapped[int] = mapped_column(_BigInteger, default=0)
    reason: Mapped[str | None] = mapped_column(String(200))
