"""Stories for money tests: a keeper buys in their own shop, then deliveries, returns,
refunds, completion and operators' decisions on held earnings happen in a chosen order."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import httpx
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tests.factories import PASSWORD, bearer
from tests.orders.helpers import (
    Market,
    checkout,
    key,
    market,
    pay,
    run_queued,
    run_schedule,
    supplier_act,
)
from xiaopu.app import create_app
from xiaopu.config import Settings
from xiaopu.kit.clock import Clock
from xiaopu.models.ledger import PLATFORM_ID

# Per unit: base 10,000; commission 10% = 1,000; the platform's 5% = 500; markup 10% = 1,000.
UNITS = 2
SHIPPING = 800
COMMISSION = 1_000
MARKUP = 1_000


@dataclass
class Story:
    client: httpx.AsyncClient
    session: AsyncSession
    settings: Settings
    clock: Clock
    m: Market
    order: dict[str, Any]
    part_id: str
    line_id: str
    supplier_id: str
    shop_id: str
    before: dict[tuple[str, str], int]
    start: datetime  # the clock when the story began (it stands still until a step moves it)
    returns: list[str] = field(default_factory=list)

    async def headers(self, email: str) -> dict[str, str]:
        """A fresh login: access tokens lapse when the clock moves a week on."""
        response = await self.client.post(
            "/v1/auth/login", json={"login": email, "password": PASSWORD}
        )
        assert response.status_code == 200, response.text
        return bearer(response.json()["access_token"])

    async def balance(self, owner: str, purpose: str) -> int:
        """What the platform owes `owner` in `purpose` now, net of where it started."""
        now = await balances(self.session, [owner])
        return -(now.get((owner, purpose), 0) - self.before.get((owner, purpose), 0))


async def balances(session: AsyncSession, owners: list[str]) -> dict[tuple[str, str], int]:
    rows = await session.execute(
        text(
            "SELECT CAST(a.owner_id AS text), a.purpose, coalesce(sum(e.amount_minor), 0) "
            "FROM ledger_accounts a LEFT JOIN ledger_entries e ON e.account_id = a.id "
            "WHERE CAST(a.owner_id AS text) = ANY(:owners) GROUP BY 1, 2"
        ),
        {"owners": owners},
    )
    return {(str(o), str(p)): int(b) for o, p, b in rows}


async def app_client(
    settings: Settings, sessionmaker: async_sessionmaker[AsyncSession], policy: str
) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(
        settings.model_copy(update={"self_purchase_policy": policy}), sessionmaker=sessionmaker
    )
    transport = httpx.ASGITransport(app=app, client=("203.0.113.10", 50000))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        yield client


async def story(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings, clock: Clock
) -> Story:
    """The keeper buys UNITS units in their own shop, with shipping, and pays."""
    start = clock.freeze(clock.now())
    m = await market(client, session, price=10_000, commission_bps=1000, markup_bps=1000)
    supply = m.suppliers[0]
    rate = await client.put(
        f"/v1/suppliers/{supply.id}/shipping",
        json={"amount_minor": SHIPPING, "currency": "CNY"},
        headers=supply.owner.headers,
    )
    assert rate.status_code == 200, rate.text
    before = await balances(session, [supply.id, str(PLATFORM_ID)])
    order = await checkout(client, m.slug, [(m.variant, UNITS)], headers=m.keeper.headers)
    assert order["self_purchase"] is True
    await pay(client, order)
    (part,) = order["supplier_orders"]
    return Story(
        client=client,
        session=session,
        settings=settings,
        clock=clock,
        m=m,
        order=order,
        part_id=part["id"],
        line_id=part["lines"][0]["id"],
        supplier_id=supply.id,
        shop_id=str(order["shop_id"]),
        before=before,
        start=start,
    )


Step = Callable[[Story], Awaitable[None]]


async def _decide(s: Story, decision: str) -> None:
    decided = await s.client.post(
        f"/v1/operator/commissions/held/{s.part_id}",
        json={"decision": decision},
        headers=await s.headers(s.m.op.email) | key(),
    )
    assert decided.status_code == 200, decided.text


async def forfeit(s: Story) -> None:
    await _decide(s, "forfeit")


async def release(s: Story) -> None:
    await _decide(s, "release")


async def cancel(s: Story) -> None:
    """The supplier cancels before shipping: everything is refunded, shipping included."""
    cancelled = await supplier_act(
        s.client, s.m.suppliers[0], s.part_id, "cancel", {"reason": "out of tea"}
    )
    assert cancelled.status_code == 200, cancelled.text


async def deliver(s: Story) -> None:
    supply = s.m.suppliers[0]
    shipped = await supplier_act(
        s.client, supply, s.part_id, "ship", {"carrier": "SF", "tracking_number": "SF7001"}
    )
    assert shipped.status_code == 200, shipped.text
    delivered = await supplier_act(s.client, supply, s.part_id, "deliver")
    assert delivered.status_code == 200, delivered.text


async def _ask(s: Story, units: int) -> str:
    asked = await s.client.post(
        f"/v1/orders/{s.order['id']}/returns",
        json={"line_id": s.line_id, "quantity": units, "reason": "changed my mind"},
        headers=await s.headers(s.m.keeper.email) | key(),
    )
    assert asked.status_code == 201, asked.text
    return str(asked.json()["id"])


async def _supplier_decides(s: Story, return_id: str, verdict: str) -> None:
    supply = s.m.suppliers[0]
    decided = await s.client.post(
        f"/v1/suppliers/{supply.id}/returns/{return_id}/{verdict}",
        json={},
        headers=supply.headers | key(),
    )
    assert decided.status_code == 200, decided.text
    await run_queued(s.session, s.settings)  # the provider refunds; the return is closed


async def return_one(s: Story) -> None:
    await _supplier_decides(s, await _ask(s, 1), "approve")


async def refuse_the_rest(s: Story) -> None:
    """The buyer asks to return the units left; the supplier says no (an operator may overrule
    it after completion: a refund after completion)."""
    returned = sum(
        line["returned_quantity"]
        for line in (
            await s.client.get(
                f"/v1/orders/{s.order['id']}", headers=await s.headers(s.m.keeper.email)
            )
        ).json()["supplier_orders"][0]["lines"]
    )
    return_id = await _ask(s, UNITS - returned)
    await _supplier_decides(s, return_id, "reject")
    s.returns.append(return_id)


async def return_the_rest(s: Story) -> None:
    await _supplier_decides(s, await _ask(s, UNITS - 1), "approve")


async def complete(s: Story) -> None:
    s.clock.advance(timedelta(days=7, seconds=1))
    await run_schedule(s.session, s.settings, "orders.complete")
    part = await s.client.get(
        f"/v1/suppliers/{s.supplier_id}/orders/{s.part_id}", headers=s.m.suppliers[0].headers
    )
    assert part.json()["status"] == "completed", part.text
    # Completion leaves nothing of this order waiting: whatever a decision sent the supplier
    # or the platform before it became payable with the rest.
    assert await s.balance(s.supplier_id, "payable_pending") == 0
    assert await s.balance(s.shop_id, "earnings_pending") == 0


async def overrule(s: Story) -> None:
    """An operator overrules the supplier's refusal after completion: a clawback."""
    decided = await s.client.post(
        f"/v1/operator/returns/{s.returns.pop()}/decide",
        json={"decision": "approve"},
        headers=await s.headers(s.m.op.email) | key(),
    )
    assert decided.status_code == 200, decided.text
