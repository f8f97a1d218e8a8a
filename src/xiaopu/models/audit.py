"""The operators' audit log: append-only, numbered without gaps, and hash-chained."""

from __future__ import annotations

import enum
import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, CheckConstraint, ForeignKey, Index, LargeBinary, String, Text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from xiaopu.models.base import Base, IdMixin, text_enum


class AuditAction(enum.StrEnum):
    """What an operator did. A fixed vocabulary: a new operator action adds its name here."""

    supplier_approve = "supplier.approve"
    supplier_reject = "supplier.reject"
    supplier_suspend = "supplier.suspend"
    return_decide = "return.decide"
    return_overrule = "return.overrule"
    commission_held_release = "commission.held_release"
    commission_held_forfeit = "commission.held_forfeit"
    refund_retry = "refund.retry"
    payout_run = "payout.run"
    settlement_payout_retry = "settlement_payout.retry"
    operator_create = "operator.create"
    operator_enable = "operator.enable"
    operator_disable = "operator.disable"
    application_create = "application.create"
    application_disable = "application.disable"
    application_enable = "application.enable"
    webhook_endpoint_create = "webhook_endpoint.create"
    webhook_endpoint_update = "webhook_endpoint.update"
    webhook_endpoint_delete = "webhook_endpoint.delete"
    webhook_endpoint_rotate = "webhook_endpoint.rotate_secret"
    event_replay = "event.replay"
    organisation_create = "organisation.create"
    organisation_update_contract = "organisation.update_contract"
    organisation_suspend = "organisation.suspend"
    organisation_resume = "organisation.resume"
    shop_move_cohort = "shop.move_cohort"


class AuditRecord(IdMixin, Base):
    """One operator action. `seq` counts from 1 without gaps; `hash` is sha256 over the
    record's canonical form and `prev_hash` (the previous record's `hash`, zeros for the first),
    so an edited, removed or inserted record breaks the chain. A trigger refuses UPDATE, DELETE
    and TRUNCATE. `operator_id` is null for actions taken at the command line (`actor` says
    who: `cli:<os user>`); otherwise `actor` is the operator's login when they acted."""

    __tablename__ = "audit_records"
    __table_args__ = (
        CheckConstraint("seq > 0", name="seq_positive"),
        CheckConstraint("octet_length(hash) = 32 AND octet_length(prev_hash) = 32", name="sha256"),
        Index(None, "operator_id", "seq"),
        Index(None, "object_type", "object_id", "seq"),
        Index(None, "action", "seq"),
        Index(None, "at"),
    )

    seq: Mapped[int] = mapped_column(BigInteger, unique=True)
    at: Mapped[datetime]
    operator_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("accounts.id"))
    actor: Mapped[str] = mapped_column(String(300))
    action: Mapped[AuditAction] = mapped_column(text_enum(AuditAction, "audit_action"))
    object_type: Mapped[str] = mapped_column(String(64))
    object_id: Mapped[str | None] = mapped_column(String(64))
    reason: Mapped[str | None] = mapped_column(Text)
    before: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    after: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    request_id: Mapped[str | None] = mapped_column(String(64))
    prev_hash: Mapped[bytes] = mapped_column(LargeBinary(32))
    hash: Mapped[bytes] = mapped_column(LargeBinary(32), unique=True)
