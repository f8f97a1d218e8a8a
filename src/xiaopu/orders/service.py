"""Checkout (prices frozen, stock reserved, split per supplier), order views, and expiry."""

from __future__ import annotations

import hashlib
import secrets
import uuid
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, TypeVar

from sqlalchemy.ext.asyncio import AsyncSession

from xiaopu.campaigns import service as campaigns
from xiaopu.catalogue import service as catalogue
from xiaopu.config import Settings
from xiaopu.db import read_together
from xiaopu.errors import AppError, Conflict, NotFound
from xiaopu.kit.clock import utcnow
from xiaopu.kit.ids import new_id
from xiaopu.kit.money import shop_price
from xiaopu.kit.pagination import Page, PageParams, id_page
from xiaopu.links import service as links
from xiaopu.models import (
    Attribution,
    Order,
    OrderLine,
    Payment,
    SupplierOrder,
)
from xiaopu.models.base import draft
from xiaopu.orders import repository
from xiaopu.orders.events import order_event
from xiaopu.orders.providers import merchant_ref, provider_for
from xiaopu.orders.schemas import (
    CheckoutIn,
    CheckoutItem,
    CheckoutOut,
    LineOut,
    OrderOut,
    PaymentOut,
    ShopLineOut,
    ShopOrderOut,
    SupplierOrderSummary,
)
from xiaopu.shops import service as shops
from xiaopu.webhooks import service as webhooks
from xiaopu.webhooks.catalogue import EventType

ACCESS_TOKEN_PREFIX = "xpo_"  # noqa: S105 - a prefix, not a secret
# Orders a run of the expiry job expires in one transaction (it runs again while they fill it).
EXPIRY_BATCH = 5000
OrderT = TypeVar("OrderT", bound=OrderOut)
SUMMARY_FIELDS = [name for name in SupplierOrderSummary.model_fields if name != "lines"]


class OrderNotFound(NotFound):
    code = "order_not_found"
    title = "Order not found"


class LineProblem(AppError):
    """A checkout refusal about one line; `line` is its index in `items`."""

    def __init__(self, line: int, detail: str, **extra: Any) -> None:
        super().__init__(detail, extra={"line": line, **extra})


class TooManyLines(AppError):
    status = 422
    code = "too_many_lines"
    title = "The order has too many lines"


class DuplicateLine(LineProblem):
    status = 422
    code = "duplicate_line"
    title = "A variant appears on two lines"


class QuantityTooLarge(LineProblem):
    status = 422
    code = "quantity_too_large"
    title = "A line asks for more units than one order may"


class NotInShop(LineProblem):
    status = 422
    code = "not_in_shop"
    title = "A line's product is not sold in this shop"


class ProductUnavailable(LineProblem):
    status = 409
    code = "product_unavailable"
    title = "A line's product is not on sale now"


class OutOfStock(LineProblem):
    status = 409
    code = "out_of_stock"
    title = "A line asks for more units than are in stock"


class CampaignUnitsShort(LineProblem):
    status = 409
    code = "campaign_units_short"
    title = "A line asks for more units than the campaign has left at its price"


class MixedCurrencies(AppError):
    status = 422
    code = "mixed_currencies"
    title = "One order has one currency"


class ShippingUnavailable(Conflict):
    code = "shipping_unavailable"
    title = "A supplier does not ship in the order's currency"


class ShopUnavailable(NotFound):
    code = "shop_not_found"
    title = "Shop not found"


def hash_access_token(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


# Checkout ----------------------------------------------------------------------------------


def _check_lines(settings: Settings, items: Sequence[CheckoutItem]) -> None:
    if len(items) > settings.max_order_lines:
        raise TooManyLines(
            f"An order has at most {settings.max_order_lines} lines.",
            extra={"max_order_lines": settings.max_order_lines},
        )
    seen: set[uuid.UUID] = set()
    for index, item in enumerate(items):
        if item.variant_id in seen:
            raise DuplicateLine(index, "Put all units of a variant on one line.")
        seen.add(item.variant_id)
        if item.quantity > settings.max_line_quantity:
            raise QuantityTooLarge(
                index,
                f"Line {index} asks for {item.quantity} units; the most is "
                f"{settings.max_line_quantity}.",
                max_quantity=settings.max_line_quantity,
            )


def _attribution(settings: Settings, token: str | None, shop_id: uuid.UUID) -> dict[str, Any]:
    if token is None:
        return {"attribution": Attribution.none}
    found, expired = links.check_attribution(settings, token)  # raises on a forged token
    if expired:
        return {"attribution": Attribution.expired}
    if found.shop_id != shop_id:
        return {"attribution": Attribution.shop_mismatch, "token_shop_id": found.shop_id}
    return {"attribution": Attribution.link, "link_id": found.link_id, "click_id": found.click_id}


@dataclass(frozen=True, slots=True)
class PricedLine:
    """One line as the shop sells it now: the variant's terms, units and the shop's markup."""

    sale: catalogue.ForSale
    quantity: int
    unit_markup_minor: int
    # Sold at a campaign's terms (the shop signed up, the sale is on, the allocation has the
    # units): the campaign price instead of the variant's.
    campaign: campaigns.Terms | None = None

    @property
    def price_minor(self) -> int:
        """The supplier's price per unit: the campaign's, or the variant's."""
        return self.campaign.price_minor if self.campaign else self.sale.price_minor

    @property
    def unit_price_minor(self) -> int:
        """What the buyer pays per unit (markup included)."""
        return self.price_minor + self.unit_markup_minor

    @property
    def total_minor(self) -> int:
        return self.unit_price_minor * self.quantity


@dataclass(frozen=True, slots=True)
class PricedPart:
    """What one supplier will send: its lines and its shipping charge."""

    supplier_id: uuid.UUID
    supplier_name: str
    shipping_minor: int
    lines: list[PricedLine]

    @property
    def items_minor(self) -> int:
        return sum(line.total_minor for line in self.lines)

    @property
    def total_minor(self) -> int:
        return self.items_minor + self.shipping_minor


@dataclass(frozen=True, slots=True)
class Quote:
    """An order as checkout would place it now, split per supplier: what the storefront shows
    before the buyer places it, and what checkout writes."""

    shop: shops.CheckoutShop
    currency: str
    parts: list[PricedPart]

    @property
    def items_minor(self) -> int:
        return sum(part.items_minor for part in self.parts)

    @property
    def shipping_minor(self) -> int:
        return sum(part.shipping_minor for part in self.parts)

    @property
    def total_minor(self) -> int:
        return self.items_minor + self.shipping_minor


def _price(
    items: Sequence[CheckoutItem],
    sales: dict[uuid.UUID, catalogue.ForSale],
    shop: shops.CheckoutShop | None,
    terms: dict[uuid.UUID, campaigns.Terms],
) -> Quote:
    """Checkout's rules for the lines read: in the shop, on sale, in stock, of one currency,
    shipping per supplier in that currency. Raises the refusal a checkout would get.

    A variant the shop sells at a campaign's terms takes its units from the campaign's
    allocation, not the stock: at the campaign price while the allocation has them all, at the
    regular price once it has none (sold out at campaign terms), and refused in between, so a
    buyer never pays a price they were not shown for part of a line."""
    if shop is None:
        raise ShopUnavailable()
    markups = shop.markups
    currencies = {sale.currency for sale in sales.values()}
    for index, item in enumerate(items):
        sale = sales.get(item.variant_id)
        if sale is None or sale.product_id not in markups:
            raise NotInShop(index, f"Line {index}'s variant is not sold in this shop.")
        if not catalogue.on_sale(sale):
            raise ProductUnavailable(index, f"Line {index}'s product is not on sale now.")
    if len(currencies) > 1:
        raise MixedCurrencies(
            "Order items of one currency at a time.", extra={"currencies": sorted(currencies)}
        )
    at_campaign: dict[uuid.UUID, campaigns.Terms] = {}
    for index, item in enumerate(items):
        offer = terms.get(item.variant_id)
        if offer is not None and offer.currency == sales[item.variant_id].currency:
            left = offer.units_left
            if left >= item.quantity:
                at_campaign[item.variant_id] = offer
                continue
            if left > 0:
                raise CampaignUnitsShort(
                    index,
                    f"Line {index} asks for {item.quantity} units; the campaign has {left} left "
                    "at its price.",
                    available=left,
                )
        stock = sales[item.variant_id].stock
        if stock < item.quantity:
            raise OutOfStock(
                index,
                f"Line {index} asks for {item.quantity} units; {stock} in stock.",
                available=stock,
            )
    (currency,) = currencies

    by_supplier: dict[uuid.UUID, list[PricedLine]] = defaultdict(list)
    for item in items:
        sale = sales[item.variant_id]
        offer = at_campaign.get(item.variant_id)
        price = offer.price_minor if offer else sale.price_minor
        unit_markup = shop_price(price, markups[sale.product_id], sale.markup_ceiling_bps) - price
        by_supplier[sale.supplier_id].append(PricedLine(sale, item.quantity, unit_markup, offer))
    parts = []
    for supplier_id, lines in by_supplier.items():
        first = lines[0].sale
        fee = first.shipping_fee_minor
        if fee and first.shipping_currency != currency:
            raise ShippingUnavailable(
                f"{first.supplier_name} charges shipping in {first.shipping_currency} only.",
                extra={"supplier_id": str(supplier_id)},
            )
        parts.append(PricedPart(supplier_id, first.supplier_name, fee, lines))
    return Quote(shop, currency, parts)


async def quote(
    session: AsyncSession, settings: Settings, shop_slug: str, items: Sequence[CheckoutItem]
) -> Quote:
    """The order these items would make in this shop now, refused as checkout would refuse
    it: the storefront's order summary, priced by checkout's own rules."""
    _check_lines(settings, items)
    variant_ids = [item.variant_id for item in items]
    sales, shop, terms = await read_together(
        session,
        catalogue.for_sale(variant_ids),
        shops.checkout_shop(shop_slug, variant_ids),
        campaigns.terms_for(shop_slug, variant_ids, utcnow()),
    )
    return _price(items, sales, shop, terms)


async def checkout(
    session: AsyncSession, settings: Settings, buyer_account_id: uuid.UUID | None, data: CheckoutIn
) -> CheckoutOut:
    _check_lines(settings, data.items)
    # Read without locks: the order commits as one statement (db.send_deferred), which takes
    # the stock only if it still has every line's units, or writes nothing and is run again.
    variant_ids = [item.variant_id for item in data.items]
    # One clock reading: what the order is priced at is what it is stamped with.
    now = utcnow()
    sales, shop, terms = await read_together(
        session,
        catalogue.for_sale(variant_ids),
        shops.checkout_shop(data.shop_slug, variant_ids),
        campaigns.terms_for(data.shop_slug, variant_ids, now),
    )
    if shop is None:
        raise ShopUnavailable()
    attribution = _attribution(settings, data.attribution_token, shop.id)
    priced = _price(data.items, sales, shop, terms)
    currency = priced.currency
    at_campaign = [line for part in priced.parts for line in part.lines if line.campaign]
    plan = campaigns.plan(
        [
            (line.campaign, line.quantity, catalogue.sale_commission(line.sale))
            for line in at_campaign
            if line.campaign is not None
        ]
    )

    access_token = None
    if buyer_account_id is None:
        access_token = ACCESS_TOKEN_PREFIX + secrets.token_urlsafe(24)
    order = draft(
        Order,
        id=new_id(),
        shop_id=shop.id,
        buyer_account_id=buyer_account_id,
        access_token_hash=hash_access_token(access_token) if access_token else None,
        buyer_phone=data.address.phone,
        address=data.address.model_dump(mode="json", exclude_none=True),
        note=data.note,
        currency=currency,
        items_minor=0,
        shipping_minor=0,
        total_minor=0,
        refunded_minor=0,
        # The checkout carries a phone (the address's) and no email of the buyer's.
        self_purchase=shops.bought_by_owner(shop, buyer_account_id, data.address.phone),
        expires_at=now + timedelta(minutes=settings.order_expiry_minutes),
        created_at=now,
        **attribution,
    )
    lines: list[OrderLine] = []
    parts: list[SupplierOrder] = []
    for part in priced.parts:
        supplier_order = draft(
            SupplierOrder,
            id=new_id(),
            order_id=order.id,
            supplier_id=part.supplier_id,
            shop_id=shop.id,
            currency=currency,
            shipping_minor=part.shipping_minor,
            refunded_minor=0,
            created_at=now,
        )
        items_minor = 0
        for priced_line in part.lines:
            sale, quantity = priced_line.sale, priced_line.quantity
            price = priced_line.price_minor
            unit_markup = priced_line.unit_markup_minor
            offer = priced_line.campaign
            reserved = plan.lines.get(sale.variant_id) if offer else None
            line = draft(
                OrderLine,
                order_id=order.id,
                supplier_order_id=supplier_order.id,
                product_id=sale.product_id,
                variant_id=sale.variant_id,
                sku=sale.sku,
                title=sale.title,
                options=sale.options,
                quantity=quantity,
                currency=currency,
                unit_price_minor=price,
                unit_markup_minor=unit_markup,
                base_minor=price * quantity,
                markup_minor=unit_markup * quantity,
                commission_bps=catalogue.sale_commission(sale),
                platform_fee_bps=settings.platform_fee_bps,
                return_window_days=sale.return_window_days,
                returned_quantity=0,
                campaign_id=offer.campaign_id if offer else None,
                boost_bps=reserved.boost_bps if reserved else 0,
                boost_withheld=reserved.boost_withheld if reserved else False,
                created_at=now,
            )
            items_minor += line.base_minor + line.markup_minor
            lines.append(line)
        supplier_order.items_minor = items_minor
        supplier_order.total_minor = items_minor + supplier_order.shipping_minor
        order.items_minor += items_minor
        order.shipping_minor += supplier_order.shipping_minor
        parts.append(supplier_order)
    order.total_minor = order.items_minor + order.shipping_minor
    # The provider is not asked here: this work may run again (db.run_unit_of_work) and its
    # writes may be dropped, but a call to a provider cannot be taken back. The payment is filed
    # under our own reference, and opened when the buyer asks to pay (payments.open_payment).
    payment = draft(
        Payment,
        id=new_id(),
        order_id=order.id,
        provider=provider_for(settings).name,
        provider_ref=merchant_ref(order.id),
        amount_minor=order.total_minor,
        currency=currency,
        created_at=now,
        updated_at=now,
    )
    # A campaign's shards before the variants' stock, in the order's one statement, as expiry,
    # cancels and a campaign's end lock them: crossed orders then queue instead of deadlocking.
    if at_campaign:
        await campaigns.reserve(session, plan)
    from_stock = [
        (line.sale, line.quantity)
        for part in priced.parts
        for line in part.lines
        if line.campaign is None
    ]
    if from_stock:
        await catalogue.take_stock(session, from_stock)
    await repository.insert_placed(session, order, parts, lines, payment)
    await webhooks.emit(session, EventType.order_placed, shop.id, order_event(order), later=True)
    (out,) = _assemble(
        [order], parts, lines, [payment], model=CheckoutOut, access_token=access_token
    )
    return out


# Reading -----------------------------------------------------------------------------------


def line_out(line: OrderLine) -> LineOut:
    return LineOut(
        id=line.id,
        product_id=line.product_id,
        variant_id=line.variant_id,
        sku=line.sku,
        title=line.title,
        options=line.options,
        quantity=line.quantity,
        returned_quantity=line.returned_quantity,
        currency=line.currency,
        unit_price_minor=line.unit_price_minor + line.unit_markup_minor,
        total_minor=line.base_minor + line.markup_minor,
        campaign_id=line.campaign_id,
    )


def shop_line_out(line: OrderLine) -> ShopLineOut:
    return ShopLineOut(
        **line_out(line).model_dump(),
        boost_bps=line.boost_bps,
        boost_withheld=line.boost_withheld,
    )


def payment_out(payment: Payment) -> PaymentOut:
    return PaymentOut(
        provider=payment.provider,
        provider_ref=payment.provider_ref,
        status=payment.status,
        amount_minor=payment.amount_minor,
        currency=payment.currency,
        paid_at=payment.paid_at,
        pay_url=payment.pay_url,
    )


def _assemble(
    orders: Sequence[Order],
    parts: Sequence[SupplierOrder],
    lines: Sequence[OrderLine],
    payments: Sequence[Payment],
    *,
    model: type[OrderT] = OrderOut,  # type: ignore[assignment]
    **extra: Any,
) -> list[OrderT]:
    by_part: dict[uuid.UUID, list[LineOut]] = defaultdict(list)
    for line in lines:
        by_part[line.supplier_order_id].append(line_out(line))
    by_order: dict[uuid.UUID, list[SupplierOrderSummary]] = defaultdict(list)
    for so in parts:
        fields = {name: getattr(so, name) for name in SUMMARY_FIELDS}
        by_order[so.order_id].append(SupplierOrderSummary(**fields, lines=by_part[so.id]))
    payment_of = {p.order_id: p for p in payments}
    out = []
    for order in orders:
        payment = payment_of.get(order.id)
        out.append(
            model(
                id=order.id,
                shop_id=order.shop_id,
                status=order.status,
                currency=order.currency,
                items_minor=order.items_minor,
                shipping_minor=order.shipping_minor,
                total_minor=order.total_minor,
                refunded_minor=order.refunded_minor,
                address=order.address,
                note=order.note,
                attribution=order.attribution,
                self_purchase=order.self_purchase,
                expires_at=order.expires_at,
                paid_at=order.paid_at,
                created_at=order.created_at,
                supplier_orders=by_order[order.id],
                payment=payment_out(payment) if payment is not None else None,
                **extra,
            )
        )
    return out


async def orders_out(session: AsyncSession, orders: Sequence[Order]) -> list[OrderOut]:
    ids = [o.id for o in orders]
    if not ids:
        return []
    return _assemble(
        orders,
        await repository.supplier_orders_of(session, ids),
        await repository.lines_of_orders(session, ids),
        await repository.payments_of(session, ids),
    )


async def buyer_order(
    session: AsyncSession,
    order_id: uuid.UUID,
    account_id: uuid.UUID | None,
    access_token: str | None,
    *,
    lock: bool = False,
) -> Order:
    """The order, if the caller is its buyer (signed in, or holding the guest token)."""
    order = None
    if access_token is not None:
        stmt = repository.guest_order(hash_access_token(access_token))
        order = await repository.one(session, stmt, order_id, lock=lock)
    if order is None and account_id is not None:
        order = await repository.one(
            session, repository.buyer_orders(account_id), order_id, lock=lock
        )
    if order is None:
        raise OrderNotFound()
    return order


async def get_for_buyer(
    session: AsyncSession,
    order_id: uuid.UUID,
    account_id: uuid.UUID | None,
    access_token: str | None,
) -> OrderOut:
    order = await buyer_order(session, order_id, account_id, access_token)
    (out,) = await orders_out(session, [order])
    return out


async def list_for_buyer(
    session: AsyncSession, account_id: uuid.UUID, page: PageParams
) -> Page[OrderOut]:
    rows = await repository.page_of_orders(session, repository.buyer_orders(account_id), page)
    items, cursor = id_page(rows, page, lambda o: o.id)
    return Page[OrderOut](items=await orders_out(session, items), next_cursor=cursor)


async def list_for_shop(
    session: AsyncSession, account_id: uuid.UUID, page: PageParams
) -> Page[ShopOrderOut]:
    shop = await shops.shop_of(session, account_id)
    rows = await repository.page_of_orders(session, repository.shop_orders(shop.id), page)
    items, cursor = id_page(rows, page, lambda o: o.id)
    lines: dict[uuid.UUID, list[ShopLineOut]] = defaultdict(list)
    for line in await repository.lines_of_orders(session, [o.id for o in items]):
        lines[line.order_id].append(shop_line_out(line))
    return Page[ShopOrderOut](
        items=[
            ShopOrderOut(
                id=o.id,
                status=o.status,
                currency=o.currency,
                items_minor=o.items_minor,
                total_minor=o.total_minor,
                refunded_minor=o.refunded_minor,
                attribution=o.attribution,
                link_id=o.link_id,
                self_purchase=o.self_purchase,
                created_at=o.created_at,
                paid_at=o.paid_at,
                lines=lines[o.id],
            )
            for o in items
        ],
        next_cursor=cursor,
    )


# Giving back ----------------------------------------------------------------------------------


async def give_back(session: AsyncSession, refunded: Sequence[tuple[OrderLine, int, bool]]) -> None:
    """After a refund of units of lines (each line counting them as returned already, the
    units, and whether they go back on sale): a campaign line's boost goes back to its budget,
    f(old) − f(new) as its boost part is reversed, and its units to the campaign's allocation
    while it holds one; other units back to stock. Campaigns first, as expiry does."""
    back: list[campaigns.GiveBack] = []
    stock: dict[uuid.UUID, int] = defaultdict(int)
    for line, units, restock in refunded:
        if line.campaign_id is None:
            if restock and units:
                stock[line.variant_id] += units
            continue
        kept = line.quantity - line.returned_quantity
        boost = campaigns.line_boost(
            line.unit_price_minor, kept + units, line.commission_bps, line.boost_bps
        ) - campaigns.line_boost(line.unit_price_minor, kept, line.commission_bps, line.boost_bps)
        back.append(
            campaigns.GiveBack(
                line.campaign_id, line.variant_id, line.currency, units if restock else 0, boost
            )
        )
    if back:
        for variant_id, units in (await campaigns.give_back(session, back)).items():
            stock[variant_id] += units
    await catalogue.give_back_stock(session, dict(stock))


# Expiry ------------------------------------------------------------------------------------


async def expire_due(session: AsyncSession) -> int:
    """Expire one batch of unpaid orders whose time is up: their supplier orders with them,
    their units back in stock, one order.expired each. Returns how many; a full batch means
    more may be due (the job runs again). A handful of statements whatever the batch size."""
    orders = await repository.expire_due(session, utcnow(), EXPIRY_BATCH)
    if not orders:
        return 0
    ids = [o.id for o in orders]
    # Campaign lines first (their campaign's row, then its shards, then stock), as a campaign's
    # end locks them: the two never wait on each other crosswise.
    returned = await campaigns.give_back_orders(session, ids)
    for variant_id, units in (await repository.units_of_orders(session, ids)).items():
        returned[variant_id] = returned.get(variant_id, 0) + units
    await catalogue.give_back_stock(session, returned)
    await webhooks.emit_many(
        session, EventType.order_expired, [(o.shop_id, order_event(o)) for o in orders]
    )
    return len(orders)
