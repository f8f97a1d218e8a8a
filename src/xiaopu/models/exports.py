"""Supplier statement exports: a long period's CSV built in the background, stored in chunks."""

from __future__ import annotations

import enum
import uuid
from datetime import datetime

from sqlalchemy import BigInteger, CheckConstraint, ForeignKey, Index, Integer, LargeBinary
from sqlalchemy.orm import Mapped, mapped_column

from xiaopu.models.base import Base, CreatedAtMixin, IdMixin, text_enum


class ExportStatus(enum.StrEnum):
    queued = "queued"
    building = "building"
    ready = "ready"
    failed = "failed"
    expired = "expired"


class StatementExport(IdMixin, CreatedAtMixin, Base):
    """A supplier's statement for [since, until) as CSV, asked for and built by the worker."""

    __tablename__ = "statement_exports"
    __table_args__ = (
        CheckConstraint("until > since", name="period_ordered"),
        Index(None, "supplier_id", "id"),
        # What the purge looks for: ready exports whose download window closed.
        Index("ix_statement_exports_expiring", "expires_at", postgresql_where="status = 'ready'"),
    )

    supplier_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("suppliers.id", ondelete="CASCADE"))
    since: Mapped[datetime]
    until: Mapped[datetime]
    status: Mapped[ExportStatus] = mapped_column(
        text_enum(ExportStatus, "statement_export_status"), default=ExportStatus.queued
    )
    lines: Mapped[int] = mapped_column(Integer, default=0)
    size_bytes: Mapped[int] = mapped_column(BigInteger, default=0)
    finished_at: Mapped[datetime | None]
    # Until when a ready export can be downloaded; then its chunks are deleted and it is expired.
    expires_at: Mapped[datetime | None]


class StatementExportChunk(Base):
    """One piece of an export's CSV (the first holds the header), in order of `seq`: the
    download streams them one by one, so neither side holds the whole file."""

    __tablename__ = "statement_export_chunks"

    export_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("statement_exports.id", ondelete="CASCADE"), primary_key=True
    )
    seq: Mapped[int] = mapped_column(Integer, primary_key=True)
    data: Mapped[bytes] = mapped_column(LargeBinary)
