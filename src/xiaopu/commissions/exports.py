"""Statement exports: a period too long to answer inline is asked for, built by the worker into
CSV chunks (off the API's event loop, a chunk of lines at a time), downloaded when ready and
deleted when their retention ends."""

from __future__ import annotations

import csv
import io
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta

import structlog
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from xiaopu.commissions import repository, statements
from xiaopu.commissions.schemas import StatementExportIn, StatementExportOut
from xiaopu.db import unit_of_work
from xiaopu.errors import AppError, Conflict, NotFound, TooManyRequests
from xiaopu.kit.clock import utcnow
from xiaopu.models.exports import ExportStatus, StatementExport
from xiaopu.queue import enqueue

log = structlog.get_logger(__name__)

EXPORT_JOB = "statements.export"
# Lines per chunk: what the worker holds at once, and what a download sends at a time
# (about 400 bytes a line).
CHUNK_LINES = 1000


class ExportNotFound(NotFound):
    code = "statement_export_not_found"
    title = "Statement export not found"


class ExportNotReady(Conflict):
    code = "statement_export_not_ready"
    title = "The export is not ready yet; its status says when it is"


class ExportExpired(AppError):
    status = 410
    code = "statement_export_expired"
    title = "The export's download window has passed; ask for the period again"


class TooManyExports(TooManyRequests):
    code = "too_many_exports"
    title = "Too many exports are being built for this supplier; wait for one to finish"

    def __init__(self, most: int) -> None:
        # A build takes seconds to a few minutes: a retry a little later is the way on.
        super().__init__(30, f"At most {most} exports may be queued or building at once.")
        self.extra["max_pending"] = most


async def request_export(
    session: AsyncSession, supplier_id: uuid.UUID, body: StatementExportIn, *, most_pending: int
) -> StatementExportOut:
    """Queue an export, unless the supplier already has `most_pending` being built: each holds
    the worker for as long as its period takes, so one tenant cannot queue them without end."""
    statements.check_period(body.since, body.until)
    if await repository.pending_exports(session, supplier_id) >= most_pending:
        raise TooManyExports(most_pending)
    export = StatementExport(
        supplier_id=supplier_id,
        since=body.since,
        until=body.until,
        status=ExportStatus.queued,
        lines=0,
        size_bytes=0,
    )
    await repository.add_export(session, export)
    await enqueue(session, EXPORT_JOB, str(export.id).encode())
    return StatementExportOut.model_validate(export)


async def export_status(
    session: AsyncSession, supplier_id: uuid.UUID, export_id: uuid.UUID
) -> StatementExportOut:
    export = await repository.export_of(session, supplier_id, export_id)
    if export is None:
        raise ExportNotFound()
    return StatementExportOut.model_validate(export)


async def ready_export(
    session: AsyncSession, supplier_id: uuid.UUID, export_id: uuid.UUID
) -> StatementExport:
    export = await repository.export_of(session, supplier_id, export_id)
    if export is None:
        raise ExportNotFound()
    if export.status is ExportStatus.expired:
        raise ExportExpired()
    if export.status is not ExportStatus.ready:
        raise ExportNotReady(extra={"status": export.status.value})
    return export


async def chunks(
    sessionmaker: async_sessionmaker[AsyncSession], export_id: uuid.UUID
) -> AsyncIterator[bytes]:
    """The export's CSV, chunk by chunk, each read in a short transaction of its own: the
    download holds one chunk and no connection between them."""
    seq = 0
    while True:
        async with unit_of_work(sessionmaker) as session:
            data = await repository.export_chunk(session, export_id, seq)
        if data is None:
            return
        yield data
        seq += 1


async def build(
    sessionmaker: async_sessionmaker[AsyncSession], export_id: uuid.UUID, *, retention: timedelta
) -> None:
    """Claim the export and commit, then write its CSV a chunk of lines at a time and mark it
    ready in one transaction (all or nothing); a failure marks it failed."""
    async with unit_of_work(sessionmaker) as session:
        export = await repository.claim_export(session, export_id)
        if export is None:
            return  # finished already (a replayed job), or gone
        supplier_id, since, until = export.supplier_id, export.since, export.until
    try:
        async with unit_of_work(sessionmaker) as session:
            header = io.StringIO()
            csv.writer(header).writerow(statements.csv_header())
            await repository.add_export_chunk(session, export_id, 0, header.getvalue().encode(), 0)
            seq = 1
            async for lines in statements.lines_in_chunks(
                session, supplier_id, since, until, CHUNK_LINES
            ):
                data = statements.csv_rows(lines).encode()
                await repository.add_export_chunk(session, export_id, seq, data, len(lines))
                seq += 1
            done = utcnow()
            await repository.finish_export(
                session, export_id, ExportStatus.ready, done, expires_at=done + retention
            )
    except Exception:
        log.exception("statements.export_failed", export_id=str(export_id))
        async with unit_of_work(sessionmaker) as session:
            await repository.finish_export(session, export_id, ExportStatus.failed, utcnow())
        raise


async def purge_expired(session: AsyncSession) -> int:
    """Delete the CSV of every ready export whose retention ended and mark it expired; the
    export's row stays, so its id answers 410 rather than an unknown 404."""
    return await repository.expire_exports(session, utcnow())
