"""Supplier statements: for a period, each sale, refund and refused hold line by line (sales,
commissions, platform fees, shipping, net payable) per currency, from the rows the ledger posts."""

from __future__ import annotations

import csv
import io
import uuid
from collections import defaultdict
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from xiaopu.commissions import repository
from xiaopu.commissions.schemas import Statement, StatementLine, StatementTotals
from xiaopu.errors import AppError
from xiaopu.kit.money import major_units
from xiaopu.models.ledger import Beneficiary, CommissionAction, PartKind, PartStatus

# The columns a statement line fills from each part.
_COLUMN = {
    (Beneficiary.supplier, PartKind.supplier_share): "net_payable_minor",
    (Beneficiary.supplier, PartKind.shipping): "shipping_minor",
    (Beneficiary.shop, PartKind.commission): "commission_minor",
    (Beneficiary.platform, PartKind.platform_fee): "platform_fee_minor",
}
MAX_PERIOD_DAYS = 93
_KIND = {
    CommissionAction.accrued: "sale",
    CommissionAction.reversed: "refund",
    CommissionAction.forfeited: "forfeit",
}


class InvalidPeriod(AppError):
    status = 422
    code = "invalid_period"
    title = "The statement period must end after it starts and span at most 93 days"


async def statement(
    session: AsyncSession, supplier_id: uuid.UUID, since: datetime, until: datetime
) -> Statement:
    if until <= since or (until - since).days > MAX_PERIOD_DAYS:
        raise InvalidPeriod()
    rows = await repository.supplier_movements(session, supplier_id, since, until)
    lines: dict[tuple[str, uuid.UUID, uuid.UUID | None], dict[str, object]] = {}
    for event, commission, sku in rows:
        kind = _KIND[event.action]
        sign = -1 if kind == "refund" else 1
        column = _COLUMN.get((commission.beneficiary, commission.kind))
        if column is None or (kind == "forfeit" and not event.amount_minor):
            # The shop's markup is the buyer's money for the shop (or, refused, the
            # platform's), never the supplier's; a refusal of nothing moves nothing.
            continue
        key = (event.cause, commission.supplier_order_id, commission.order_line_id)
        line = lines.setdefault(
            key,
            {
                "at": event.at,
                "kind": kind,
                "cause": event.cause,
                "order_id": commission.order_id,
                "supplier_order_id": commission.supplier_order_id,
                "order_line_id": commission.order_line_id,
                "sku": sku,
                "currency": commission.currency,
                "sales_minor": 0,
                "commission_minor": 0,
                "platform_fee_minor": 0,
                "shipping_minor": 0,
                "net_payable_minor": 0,
            },
        )
        amount = sign * event.amount_minor
        if column == "commission_minor" and event.status is PartStatus.forfeited:
            # A refused hold's commission is the supplier's again: the refusal pays it back
            # (the commission it gave up goes down as much), and a refund after it takes it
            # from the supplier's payable like the rest of its share.
            if kind == "forfeit":
                line[column] = int(str(line[column])) - amount
            column = "net_payable_minor"
        line[column] = int(str(line[column])) + amount
    out = [StatementLine.model_validate(v) for v in lines.values()]
    for item in out:
        # The base the supplier sold at: what it is owed plus what it gave up from the base.
        item.sales_minor = item.net_payable_minor + item.commission_minor + item.platform_fee_minor
        if item.order_line_id is None:
            item.sales_minor = 0  # a shipping-only line
    out.sort(key=lambda i: (i.at, str(i.supplier_order_id), str(i.order_line_id)))
    totals: dict[str, StatementTotals] = defaultdict(lambda: StatementTotals(currency=""))
    for item in out:
        t = totals[item.currency]
        t.currency = item.currency
        if item.kind == "sale":
            t.sales_minor += item.sales_minor
        elif item.kind == "refund":
            t.refunds_minor += -item.sales_minor
        t.commission_minor += item.commission_minor
        t.platform_fee_minor += item.platform_fee_minor
        t.shipping_minor += item.shipping_minor
        t.net_payable_minor += item.net_payable_minor + item.shipping_minor
    return Statement(
        supplier_id=supplier_id,
        since=since,
        until=until,
        totals=sorted(totals.values(), key=lambda t: t.currency),
        lines=out,
    )


def as_csv(result: Statement) -> str:
    """Each line's fields, then its amounts again in major units (`sales` beside
    `sales_minor`): a spreadsheet reader sees 12.34 CNY, 1234 JPY and 1.234 KWD as they are,
    by the currency's ISO 4217 exponent, while the minor units stay exact for machines."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    columns = list(StatementLine.model_fields)
    amounts = [c for c in columns if c.endswith("_minor")]
    writer.writerow(columns + [c.removesuffix("_minor") for c in amounts])
    for line in result.lines:
        data = line.model_dump(mode="json")
        writer.writerow(
            ["" if data[c] is None else data[c] for c in columns]
            + [major_units(int(data[c]), line.currency) for c in amounts]
        )
    return buffer.getvalue()
