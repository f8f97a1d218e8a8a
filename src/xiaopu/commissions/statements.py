"""Supplier statements: for a period, each sale, refund and refused hold line by line (sales,
commissions, platform fees, shipping, net payable) per currency, from the rows the ledger posts."""

from __future__ import annotations

import csv
import io
import uuid
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from xiaopu.commissions import repository
from xiaopu.commissions.schemas import Statement, StatementLine, StatementTotals
from xiaopu.errors import AppError, InvalidCursor
from xiaopu.kit.money import major_units
from xiaopu.kit.pagination import decode_cursor, encode_cursor

MAX_PERIOD_DAYS = 93


class InvalidPeriod(AppError):
    status = 422
    code = "invalid_period"
    title = "The statement period must end after it starts and span at most 93 days"


class StatementTooLarge(AppError):
    status = 413
    code = "statement_too_large"
    title = "The period has more statement lines than are answered inline; request an export"


def check_period(since: datetime, until: datetime) -> None:
    if until <= since or (until - since).days > MAX_PERIOD_DAYS:
        raise InvalidPeriod()


async def _refuse_beyond(
    session: AsyncSession, supplier_id: uuid.UUID, since: datetime, until: datetime, most: int
) -> list[StatementTotals]:
    """The period's totals, or StatementTooLarge when it has more than `most` lines. A period
    with far more events than that is refused from a bounded count, before anything is summed."""
    cap = most * repository.EVENTS_PER_LINE + 1
    if await repository.statement_events(session, supplier_id, since, until, cap) >= cap:
        raise StatementTooLarge(_too_large(most), extra={"max_lines": most})
    rows = await repository.statement_totals(session, supplier_id, since, until)
    if sum(int(r.lines) for r in rows) > most:
        raise StatementTooLarge(_too_large(most), extra={"max_lines": most})
    return [_totals(r) for r in rows]


def _too_large(most: int) -> str:
    return (
        f"The period has more than {most} lines: request it as an export "
        "(POST .../statements/exports) and download it when it is ready, or ask for a shorter "
        "period."
    )


def _totals(row: Any) -> StatementTotals:
    return StatementTotals(
        currency=row.currency,
        sales_minor=int(row.sales_minor),
        refunds_minor=int(row.refunds_minor),
        commission_minor=int(row.commission_minor),
        platform_fee_minor=int(row.platform_fee_minor),
        shipping_minor=int(row.shipping_minor),
        net_payable_minor=int(row.net_payable_minor),
    )


def _line(row: Any) -> StatementLine:
    return StatementLine(
        at=row.at,
        kind=row.kind,
        cause=row.cause,
        order_id=row.order_id,
        supplier_order_id=row.supplier_order_id,
        order_line_id=row.order_line_id,
        sku=row.sku,
        currency=row.currency,
        sales_minor=int(row.sales_minor),
        commission_minor=int(row.commission_minor),
        platform_fee_minor=int(row.platform_fee_minor),
        shipping_minor=int(row.shipping_minor),
        net_payable_minor=int(row.net_payable_minor),
    )


def _cursor(row: Any) -> str:
    return encode_cursor(
        [row.at.isoformat(), str(row.supplier_order_id), str(row.line_key), row.cause]
    )


def _after(cursor: str | None) -> repository.LineKey | None:
    if cursor is None:
        return None
    values = decode_cursor(cursor)
    try:
        at, supplier_order_id, line_key, cause = values
        return repository.LineKey(
            datetime.fromisoformat(str(at)),
            uuid.UUID(str(supplier_order_id)),
            uuid.UUID(str(line_key)),
            str(cause),
        )
    except ValueError as exc:
        raise InvalidCursor() from exc


async def page(
    session: AsyncSession,
    supplier_id: uuid.UUID,
    since: datetime,
    until: datetime,
    *,
    cursor: str | None,
    limit: int,
    most: int,
) -> Statement:
    """One page of a period's lines (keyset: the cursor names the last line shown), with the
    whole period's totals from one aggregate; a period of more than `most` lines is refused."""
    check_period(since, until)
    after = _after(cursor)
    totals = await _refuse_beyond(session, supplier_id, since, until, most)
    rows = await repository.statement_lines(session, supplier_id, since, until, after, limit + 1)
    next_cursor = _cursor(rows[limit - 1]) if len(rows) > limit else None
    return Statement(
        supplier_id=supplier_id,
        since=since,
        until=until,
        totals=totals,
        lines=[_line(r) for r in rows[:limit]],
        next_cursor=next_cursor,
    )


async def lines_in_chunks(
    session: AsyncSession, supplier_id: uuid.UUID, since: datetime, until: datetime, chunk: int
) -> AsyncIterator[list[StatementLine]]:
    """Every line of the period, `chunk` at a time (an export's way through a long period)."""
    async for rows in repository.stream_statement_lines(session, supplier_id, since, until, chunk):
        yield [_line(r) for r in rows]


async def statement(
    session: AsyncSession, supplier_id: uuid.UUID, since: datetime, until: datetime
) -> Statement:
    """A whole period at once, for checks and small periods: its lines read in chunks and its
    totals from the aggregate. Requests use page(), which refuses periods too long to answer."""
    check_period(since, until)
    lines: list[StatementLine] = []
    async for chunk in lines_in_chunks(session, supplier_id, since, until, 1000):
        lines.extend(chunk)
    rows = await repository.statement_totals(session, supplier_id, since, until)
    return Statement(
        supplier_id=supplier_id,
        since=since,
        until=until,
        totals=[_totals(r) for r in rows],
        lines=lines,
        next_cursor=None,
    )


async def inline_csv(
    session: AsyncSession,
    supplier_id: uuid.UUID,
    since: datetime,
    until: datetime,
    *,
    most: int,
) -> str:
    """The whole period as CSV, when it has at most `most` lines (else StatementTooLarge)."""
    check_period(since, until)
    await _refuse_beyond(session, supplier_id, since, until, most)
    buffer = io.StringIO()
    csv.writer(buffer).writerow(csv_header())
    async for chunk in lines_in_chunks(session, supplier_id, since, until, 1000):
        buffer.write(csv_rows(chunk))
    return buffer.getvalue()


def csv_header() -> list[str]:
    columns = list(StatementLine.model_fields)
    return columns + [c.removesuffix("_minor") for c in columns if c.endswith("_minor")]


def csv_rows(lines: list[StatementLine]) -> str:
    """These lines as CSV rows (no header): see as_csv."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    columns = list(StatementLine.model_fields)
    amounts = [c for c in columns if c.endswith("_minor")]
    for line in lines:
        data = line.model_dump(mode="json")
        writer.writerow(
            ["" if data[c] is None else data[c] for c in columns]
            + [major_units(int(data[c]), line.currency) for c in amounts]
        )
    return buffer.getvalue()


def as_csv(result: Statement) -> str:
    """Each line's fields, then its amounts again in major units (`sales` beside
    `sales_minor`): a spreadsheet reader sees 12.34 CNY, 1234 JPY and 1.234 KWD as they are,
    by the currency's ISO 4217 exponent, while the minor units stay exact for machines."""
    buffer = io.StringIO()
    csv.writer(buffer).writerow(csv_header())
    return buffer.getvalue() + csv_rows(result.lines)
