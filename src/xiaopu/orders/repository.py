"""Queries for orders, supplier orders, lines, payments, refunds and returns, scoped per tenant."""

from __future__ import annotations

import functools
import json
import uuid
from collections.abc import Collection, Sequence
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Enum as SAEnum
from sqlalchemy import Select, Table, func, select, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession

from xiaopu.db import Deferred, defer
from xiaopu.kit.ids import new_id
from xiaopu.kit.pagination import PageParams, newest_first
from xiaopu.models import (
    Attribution,
    Base,
    Order,
    OrderLine,
    OrderStatus,
    Payment,
    PaymentCallback,
    Refund,
    RefundLine,
    RefundStatus,
    Return,
    ReturnStatus,
    SupplierOrder,
    SupplierOrderStatus,
)
from xiaopu.models.base import draft

# Checkout's writes: one deferred write, which the unit of work sends with the order's outbox
# event and idempotency record. Checkout is the busiest write; through the ORM its five inserts
# cost two flushes and most of its CPU.


def _row_values(model: type[Base], row: Base) -> tuple[tuple[str, ...], list[Any]]:
    """The draft's columns to insert and their values as asyncpg takes them: those it set or
    that have a Python-side default. A column it left unset is NULL without a parameter (each
    costs encoding and decoding on every order); it reads None on the draft afterwards, as an
    ORM object's would, and defaults are filled in on it too (the response is built from it)."""
    state = row.__dict__  # the values set so far, read without the attribute machinery
    names = []
    values = []
    for key, name, default, kind in _columns(model):
        value = state.get(key)
        if value is None and default is not None:
            value = default.arg(None) if default.is_callable else default.arg
            setattr(row, key, value)
        elif key not in state:
            setattr(row, key, None)
            continue
        if kind is _ENUM:
            value = value.value if value is not None else None
        elif kind is _JSON:
            value = json.dumps(value, separators=(",", ":"), ensure_ascii=False)
        names.append(name)
        values.append(value)
    return tuple(names), values


_ENUM, _JSON = object(), object()


@functools.cache
def _columns(model: type[Base]) -> list[tuple[str, str, Any, object | None]]:
    """Per column: its attribute, its name, its Python-side default, and whether it needs
    converting."""
    columns = []
    for column in cast(Table, model.__table__).columns:
        kind = None
        if isinstance(column.type, JSONB):
            kind = _JSON
        elif isinstance(column.type, SAEnum) and column.type.enum_class is not None:
            kind = _ENUM
        columns.append((column.key, column.name, column.default, kind))
    return columns


@functools.lru_cache(maxsize=512)
def _placed_sql(shapes: tuple[tuple[str, tuple[str, ...], int], ...]) -> tuple[str, ...]:
    """One INSERT per table, of its rows by VALUES of scalar parameters, numbered in turn: per
    table its name, its columns, and its number of rows. Checkout's shapes are few (a few
    column sets, as many rows as max_order_lines allows)."""
    statements = []
    position = 0
    for table, names, rows in shapes:
        tuples = []
        for _ in range(rows):
            tuples.append(", ".join(f"${position + i + 1}" for i in range(len(names))))
            position += len(names)
        values = ", ".join(f"({t})" for t in tuples)
        # Names from our own table metadata; every value is a bind parameter.
        statements.append(f"INSERT INTO {table} ({', '.join(names)}) VALUES {values}")  # noqa: S608
    return tuple(statements)


async def insert_placed(
    session: AsyncSession,
    order: Order,
    parts: Sequence[SupplierOrder],
    lines: Sequence[OrderLine],
    payment: Payment,
) -> None:
    """Insert an order's drafts (see draft) with the unit of work's next statement: in one
    statement, foreign keys are checked at its end, when every row is in."""
    shapes: list[tuple[str, tuple[str, ...], int]] = []
    params: list[Any] = []
    for model, rows in (
        (Order, [order]),
        (SupplierOrder, parts),
        (OrderLine, lines),
        (Payment, [payment]),
    ):
        table = cast(Table, model.__table__).name
        for row in rows:
            names, values = _row_values(model, row)
            if shapes and shapes[-1][0] == table and shapes[-1][1] == names:
                shapes[-1] = (table, names, shapes[-1][2] + 1)
            else:
                shapes.append((table, names, 1))
            params += values
    await defer(session, Deferred(_placed_sql(tuple(shapes)), tuple(params)))


# Tenant scopes: every tenant-facing read starts from one of these.


def buyer_orders(account_id: uuid.UUID) -> Select[Order]:
    return select(Order).where(Order.buyer_account_id == account_id)


def guest_order(token_hash: bytes) -> Select[Order]:
    return select(Order).where(Order.access_token_hash == token_hash)


def shop_orders(shop_id: uuid.UUID) -> Select[Order]:
    return select(Order).where(Order.shop_id == shop_id)


def supplier_orders(supplier_id: uuid.UUID) -> Select[SupplierOrder]:
    return select(SupplierOrder).where(SupplierOrder.supplier_id == supplier_id)


def supplier_orders_any() -> Select[SupplierOrder]:
    """Unscoped: for a buyer's request on their own order, already checked."""
    return select(SupplierOrder)


def supplier_returns(supplier_id: uuid.UUID) -> Select[Return]:
    return select(Return).where(Return.supplier_id == supplier_id)


def any_orders() -> Select[Order]:
    """Unscoped: for callbacks and jobs, which act for the platform, never for a tenant."""
    return select(Order)


def all_returns() -> Select[Return]:
    """Operators see every return."""
    return select(Return)


async def one(
    session: AsyncSession, stmt: Select[Order], order_id: uuid.UUID, *, lock: bool = False
) -> Order | None:
    stmt = stmt.where(Order.id == order_id)
    if lock:
        stmt = stmt.with_for_update().execution_options(populate_existing=True)
    return (await session.scalars(stmt)).one_or_none()


async def orders_by_id(session: AsyncSession, order_ids: Collection[uuid.UUID]) -> Sequence[Order]:
    """Orders of supplier orders the caller already holds (scoped through those)."""
    return (await session.scalars(select(Order).where(Order.id.in_(order_ids)))).all()


async def page_of_orders(
    session: AsyncSession, stmt: Select[Order], page: PageParams
) -> Sequence[Order]:
    return (await session.scalars(newest_first(stmt, Order.id, page))).all()


async def one_supplier_order(
    session: AsyncSession,
    stmt: Select[SupplierOrder],
    supplier_order_id: uuid.UUID,
    *,
    lock: bool = False,
) -> SupplierOrder | None:
    stmt = stmt.where(SupplierOrder.id == supplier_order_id)
    if lock:
        stmt = stmt.with_for_update().execution_options(populate_existing=True)
    return (await session.scalars(stmt)).one_or_none()


async def page_of_supplier_orders(
    session: AsyncSession,
    stmt: Select[SupplierOrder],
    page: PageParams,
    status: SupplierOrderStatus | None,
) -> Sequence[SupplierOrder]:
    if status is not None:
        stmt = stmt.where(SupplierOrder.status == status)
    return (await session.scalars(newest_first(stmt, SupplierOrder.id, page))).all()


async def one_return(
    session: AsyncSession, stmt: Select[Return], return_id: uuid.UUID, *, lock: bool = False
) -> Return | None:
    stmt = stmt.where(Return.id == return_id)
    if lock:
        stmt = stmt.with_for_update().execution_options(populate_existing=True)
    return (await session.scalars(stmt)).one_or_none()


async def page_of_returns(
    session: AsyncSession,
    stmt: Select[Return],
    page: PageParams,
    status: ReturnStatus | None,
) -> Sequence[Return]:
    if status is not None:
        stmt = stmt.where(Return.status == status)
    return (await session.scalars(newest_first(stmt, Return.id, page))).all()


# Children of orders already scoped above.


async def supplier_orders_of(
    session: AsyncSession, order_ids: Collection[uuid.UUID], *, lock: bool = False
) -> Sequence[SupplierOrder]:
    stmt = (
        select(SupplierOrder)
        .where(SupplierOrder.order_id.in_(order_ids))
        .order_by(SupplierOrder.id)
    )
    if lock:
        stmt = stmt.with_for_update().execution_options(populate_existing=True)
    return (await session.scalars(stmt)).all()


async def lines_of_orders(
    session: AsyncSession, order_ids: Collection[uuid.UUID]
) -> Sequence[OrderLine]:
    stmt = select(OrderLine).where(OrderLine.order_id.in_(order_ids)).order_by(OrderLine.id)
    return (await session.scalars(stmt)).all()


async def lines_of_supplier_orders(
    session: AsyncSession, supplier_order_ids: Collection[uuid.UUID], *, lock: bool = False
) -> Sequence[OrderLine]:
    stmt = (
        select(OrderLine)
        .where(OrderLine.supplier_order_id.in_(supplier_order_ids))
        .order_by(OrderLine.id)
    )
    if lock:
        stmt = stmt.with_for_update().execution_options(populate_existing=True)
    return (await session.scalars(stmt)).all()


async def line(
    session: AsyncSession, line_id: uuid.UUID, *, lock: bool = False
) -> OrderLine | None:
    stmt = select(OrderLine).where(OrderLine.id == line_id)
    if lock:
        stmt = stmt.with_for_update().execution_options(populate_existing=True)
    return (await session.scalars(stmt)).one_or_none()


async def payments_of(session: AsyncSession, order_ids: Collection[uuid.UUID]) -> Sequence[Payment]:
    return (await session.scalars(select(Payment).where(Payment.order_id.in_(order_ids)))).all()


async def payment_by_ref(session: AsyncSession, provider: str, provider_ref: str) -> Payment | None:
    stmt = select(Payment).where(Payment.provider == provider, Payment.provider_ref == provider_ref)
    return (await session.scalars(stmt)).one_or_none()


async def payment_of(session: AsyncSession, order_id: uuid.UUID) -> Payment | None:
    stmt = (
        select(Payment)
        .where(Payment.order_id == order_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    return (await session.scalars(stmt)).one_or_none()


async def open_return_units(session: AsyncSession, line_id: uuid.UUID) -> int:
    """Units of a line in returns that are requested but not yet decided."""
    stmt = select(func.coalesce(func.sum(Return.quantity), 0)).where(
        Return.order_line_id == line_id, Return.status == ReturnStatus.requested
    )
    return int(await session.scalar(stmt) or 0)


async def returns_of_order(session: AsyncSession, order_id: uuid.UUID) -> Sequence[Return]:
    stmt = select(Return).where(Return.order_id == order_id).order_by(Return.id.desc())
    return (await session.scalars(stmt)).all()


async def refunds(session: AsyncSession, refund_ids: Collection[uuid.UUID]) -> Sequence[Refund]:
    if not refund_ids:
        return []
    return (await session.scalars(select(Refund).where(Refund.id.in_(refund_ids)))).all()


async def refund(
    session: AsyncSession, refund_id: uuid.UUID, *, lock: bool = False
) -> Refund | None:
    stmt = select(Refund).where(Refund.id == refund_id)
    if lock:
        stmt = stmt.with_for_update().execution_options(populate_existing=True)
    return (await session.scalars(stmt)).one_or_none()


async def refund_by_ref(
    session: AsyncSession, order_id: uuid.UUID, provider_ref: str
) -> Refund | None:
    """One of an order's refunds by the provider's reference (refunds are indexed by order)."""
    stmt = (
        select(Refund)
        .where(Refund.order_id == order_id, Refund.provider_ref == provider_ref)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    return (await session.scalars(stmt)).one_or_none()


async def refund_line_rows(session: AsyncSession, refund_id: uuid.UUID) -> Sequence[RefundLine]:
    return (
        await session.scalars(select(RefundLine).where(RefundLine.refund_id == refund_id))
    ).all()


async def returns_of_refund(session: AsyncSession, refund_id: uuid.UUID) -> Sequence[Return]:
    stmt = select(Return).where(Return.refund_id == refund_id).with_for_update()
    return (await session.scalars(stmt)).all()


async def supplier_orders_by_tracking(
    session: AsyncSession, carrier: str, tracking_number: str
) -> Sequence[SupplierOrder]:
    stmt = (
        select(SupplierOrder)
        .where(
            SupplierOrder.carrier == carrier,
            SupplierOrder.tracking_number == tracking_number,
        )
        .with_for_update()
    )
    return (await session.scalars(stmt)).all()


async def record_callback(
    session: AsyncSession, provider: str, event_id: str, kind: str, received_at: datetime
) -> uuid.UUID | None:
    """Claim a provider event id; None when it was applied before (or is being applied now:
    the insert waits for that transaction and then finds the conflict)."""
    stmt = (
        pg_insert(PaymentCallback)
        .values(
            id=new_id(),
            provider=provider,
            event_id=event_id,
            kind=kind,
            outcome="received",
            received_at=received_at,
        )
        .on_conflict_do_nothing(index_elements=["provider", "event_id"])
        .returning(PaymentCallback.id)
    )
    return (await session.execute(stmt)).scalar_one_or_none()


async def set_callback_outcome(
    session: AsyncSession, callback_id: uuid.UUID, payment_id: uuid.UUID | None, outcome: str
) -> None:
    row = await session.get(PaymentCallback, callback_id)
    if row is not None:
        row.payment_id = payment_id
        row.outcome = outcome
        await session.flush()


# The scheduled jobs: set-based, a handful of statements per batch whatever its size. A batch
# claims its rows with SKIP LOCKED (two workers never take the same ones) and changes them only
# from the status it found (a row that moved on meanwhile is left alone). Rows are found by
# `= ANY(ARRAY(...))` of the batch's ids, probing the indexes: joined to the batch instead, the
# planner hashes every due order or scans every supplier order, once per batch.

_EXPIRE = """
WITH due AS (
    SELECT id FROM orders
    WHERE status = 'pending_payment' AND expires_at <= :now
    ORDER BY expires_at
    LIMIT :limit
    FOR UPDATE SKIP LOCKED
), expired AS (
    UPDATE orders SET status = 'expired', expired_at = :now, updated_at = :now
    WHERE id = ANY(ARRAY(SELECT id FROM due)) AND status = 'pending_payment'
    RETURNING id, shop_id, buyer_account_id, currency, total_minor, attribution, self_purchase,
        expired_at
), parts AS (
    UPDATE supplier_orders SET status = 'expired', updated_at = :now
    WHERE order_id = ANY(ARRAY(SELECT id FROM expired))
)
SELECT * FROM expired
"""


async def expire_due(session: AsyncSession, now: datetime, limit: int) -> list[Order]:
    """Expire up to `limit` unpaid orders due by `now` and their supplier orders, in one
    statement; returns the orders (drafts with what order.expired carries). A payment that
    committed first leaves its order paid: the lock re-reads the row and finds it so."""
    rows = await session.execute(text(_EXPIRE), {"now": now, "limit": limit})
    return [
        draft(
            Order,
            id=r.id,
            shop_id=r.shop_id,
            buyer_account_id=r.buyer_account_id,
            status=OrderStatus.expired,
            currency=r.currency,
            total_minor=r.total_minor,
            attribution=Attribution(r.attribution),
            self_purchase=r.self_purchase,
            expired_at=r.expired_at,
        )
        for r in rows
    ]


async def units_of_orders(
    session: AsyncSession, order_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, int]:
    """Units per variant on these orders' lines sold from stock (not at a campaign's terms)."""
    rows = await session.execute(
        text(
            "SELECT variant_id, sum(quantity)::int FROM order_lines "
            "WHERE order_id = ANY(CAST(:ids AS uuid[])) AND campaign_id IS NULL "
            "GROUP BY variant_id"
        ),
        {"ids": list(order_ids)},
    )
    return {row[0]: row[1] for row in rows}


# The supplier orders and their orders are both locked, skipping either if someone holds it
# (a return, a refund, an overrule): completion writes the order too (its counted sale), and
# waiting for an order while holding ledger accounts could deadlock with those, which lock the
# order first and the accounts after.
_CLAIM_COMPLETION = """
SELECT supplier_orders.id FROM supplier_orders
JOIN orders ON orders.id = supplier_orders.order_id
WHERE supplier_orders.status = 'delivered' AND supplier_orders.return_closes_at <= :now
    AND NOT EXISTS (
        SELECT 1 FROM returns AS r
        WHERE r.supplier_order_id = supplier_orders.id AND r.status IN ('requested', 'approved')
    )
ORDER BY supplier_orders.return_closes_at
LIMIT :limit
FOR UPDATE OF supplier_orders, orders SKIP LOCKED
"""
# A second statement, so a second snapshot: one taken once the claim holds its locks sees every
# return asked before them (asking one locks the supplier order first), which the claim's own
# snapshot, taken before it waited for nothing, might not.
_COMPLETE = """
UPDATE supplier_orders SET status = 'completed', completed_at = :now, updated_at = :now
WHERE id = ANY(CAST(:ids AS uuid[])) AND status = 'delivered' AND NOT EXISTS (
    SELECT 1 FROM returns AS r
    WHERE r.supplier_order_id = supplier_orders.id AND r.status IN ('requested', 'approved')
)
RETURNING id, order_id, supplier_id, shop_id, currency, items_minor, shipping_minor,
    total_minor, refunded_minor, carrier, tracking_number, completed_at
"""


async def complete_due(session: AsyncSession, now: datetime, limit: int) -> list[SupplierOrder]:
    """Complete up to `limit` delivered supplier orders whose return window closed by `now`
    with no open return; returns them (drafts with what supplier_order.completed carries)."""
    claimed = (await session.scalars(text(_CLAIM_COMPLETION), {"now": now, "limit": limit})).all()
    if not claimed:
        return []
    rows = await session.execute(text(_COMPLETE), {"ids": list(claimed), "now": now})
    return [draft(SupplierOrder, **r._asdict(), status=SupplierOrderStatus.completed) for r in rows]


async def event_lines(
    session: AsyncSession, supplier_order_ids: Sequence[uuid.UUID]
) -> list[OrderLine]:
    """These supplier orders' lines, with what their events carry (drafts, in id order)."""
    rows = await session.execute(
        text(
            "SELECT id, supplier_order_id, sku, quantity, returned_quantity, unit_price_minor, "
            "unit_markup_minor, commission_bps, platform_fee_bps FROM order_lines "
            "WHERE supplier_order_id = ANY(CAST(:ids AS uuid[])) ORDER BY id"
        ),
        {"ids": list(supplier_order_ids)},
    )
    return [draft(OrderLine, **r._asdict()) for r in rows]


async def count_sales(
    session: AsyncSession, order_ids: Sequence[uuid.UUID], now: datetime
) -> dict[uuid.UUID, int]:
    """Mark these orders counted as completed sales, those not counted already; returns how
    many were newly counted per shop. The status test in the UPDATE makes each count once,
    whoever else counts the same order at the same time."""
    rows = await session.execute(
        text(
            """
            WITH counted AS (
                UPDATE orders SET sale_counted_at = :now
                WHERE id = ANY(CAST(:ids AS uuid[])) AND sale_counted_at IS NULL
                RETURNING shop_id
            )
            SELECT shop_id, count(*)::int FROM counted GROUP BY shop_id
            """
        ),
        {"ids": list(order_ids), "now": now},
    )
    return {row[0]: row[1] for row in rows}


async def uncount_sale(session: AsyncSession, order_id: uuid.UUID) -> uuid.UUID | None:
    """Stop counting the order as a completed sale if none of its completed supplier orders
    keeps a unit any longer; returns its shop when it stopped counting."""
    return (
        await session.execute(
            text(
                """
                UPDATE orders SET sale_counted_at = NULL
                WHERE id = :id AND sale_counted_at IS NOT NULL AND NOT EXISTS (
                    SELECT 1 FROM supplier_orders AS so
                    JOIN order_lines AS l ON l.supplier_order_id = so.id
                    WHERE so.order_id = :id AND so.status = 'completed'
                        AND l.returned_quantity < l.quantity
                )
                RETURNING shop_id
                """
            ),
            {"id": order_id},
        )
    ).scalar_one_or_none()


async def page_of_refunds(
    session: AsyncSession, status: RefundStatus | None, page: PageParams
) -> Sequence[Refund]:
    stmt = select(Refund)
    if status is not None:
        stmt = stmt.where(Refund.status == status)
    return (await session.scalars(newest_first(stmt, Refund.id, page))).all()
