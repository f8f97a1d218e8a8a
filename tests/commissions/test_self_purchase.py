"""Self-purchase policies: `hold` keeps the shop's earnings for an operator, who releases or
forfeits them; `none` earns the shop nothing."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tests.orders.helpers import Market, checkout, key, market, pay
from xiaopu.app import create_app
from xiaopu.config import Settings
from xiaopu.ledger import service as ledger
from xiaopu.models.ledger import CommissionAction


async def _client(
    settings: Settings, sessionmaker: async_sessionmaker[AsyncSession], policy: str
) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(
        settings.model_copy(update={"self_purchase_policy": policy}), sessionmaker=sessionmaker
    )
    transport = httpx.ASGITransport(app=app, client=("203.0.113.9", 50000))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        yield client


@pytest.fixture
async def holding(
    settings: Settings, sessionmaker: async_sessionmaker[AsyncSession]
) -> AsyncIterator[httpx.AsyncClient]:
    async for client in _client(settings, sessionmaker, "hold"):
        yield client


@pytest.fixture
async def earning_nothing(
    settings: Settings, sessionmaker: async_sessionmaker[AsyncSession]
) -> AsyncIterator[httpx.AsyncClient]:
    async for client in _client(settings, sessionmaker, "none"):
        yield client


async def _balance(session: AsyncSession, owner: str, purpose: str) -> int:
    value = await session.scalar(
        text(
            "SELECT coalesce(sum(e.amount_minor), 0) FROM ledger_entries e JOIN ledger_accounts a "
            "ON a.id = e.account_id WHERE a.owner_id = CAST(:o AS uuid) AND a.purpose = :p"
        ),
        {"o": owner, "p": purpose},
    )
    return -int(value or 0)  # credits: what the platform owes


async def _self_purchase(
    client: httpx.AsyncClient, session: AsyncSession
) -> tuple[Market, dict[str, Any]]:
    m = await market(client, session, price=10_000, commission_bps=1000, markup_bps=1000)
    order = await checkout(client, m.slug, [(m.variant, 1)], headers=m.keeper.headers)
    assert order["self_purchase"] is True
    await pay(client, order)
    return m, order


async def test_held_earnings_wait_for_an_operator_who_may_forfeit_them(
    holding: httpx.AsyncClient, session: AsyncSession
) -> None:
    m, order = await _self_purchase(holding, session)
    shop_id = str(order["shop_id"])
    (wallet,) = (await holding.get("/v1/shops/mine/wallet", headers=m.keeper.headers)).json()
    assert (wallet["held_minor"], wallet["pending_minor"]) == (2_000, 0)
    held = (await holding.get("/v1/operator/commissions/held", headers=m.op.headers)).json()
    assert {c["kind"] for c in held["items"]} == {"commission", "markup"}
    assert {c["rule"] for c in held["items"]} == {"self_purchase_hold"}

    supplier_id = m.suppliers[0].id
    before = await _balance(session, supplier_id, "payable_pending")
    (part,) = order["supplier_orders"]
    refused = await holding.post(
        f"/v1/operator/commissions/held/{part['id']}",
        json={"decision": "forfeit"},
        headers=m.keeper.headers | key(),
    )
    assert refused.status_code == 403
    decided = await holding.post(
        f"/v1/operator/commissions/held/{part['id']}",
        json={"decision": "forfeit"},
        headers=m.op.headers | key(),
    )
    assert decided.status_code == 200, decided.text
    assert {c["status"] for c in decided.json()} == {"forfeited"}
    assert {tuple(h["action"] for h in c["history"]) for c in decided.json()} == {
        ("accrued", "forfeited")
    }
    assert await _balance(session, shop_id, "earnings_held") == 0
    # The commission goes back to the supplier; the markup to the platform.
    assert await _balance(session, supplier_id, "payable_pending") == before + 1_000
    again = await holding.post(
        f"/v1/operator/commissions/held/{part['id']}",
        json={"decision": "release"},
        headers=m.op.headers | key(),
    )
    assert again.status_code == 404
    assert again.json()["code"] == "nothing_held"
    assert await ledger.reconcile(session) == 0


async def test_released_earnings_become_pending(
    holding: httpx.AsyncClient, session: AsyncSession
) -> None:
    m, order = await _self_purchase(holding, session)
    (part,) = order["supplier_orders"]
    decided = await holding.post(
        f"/v1/operator/commissions/held/{part['id']}",
        json={"decision": "release"},
        headers=m.op.headers | key(),
    )
    assert {c["status"] for c in decided.json()} == {"pending"}
    # Not "released": that is completion's word, for pending becoming available.
    assert {tuple(h["action"] for h in c["history"]) for c in decided.json()} == {
        ("accrued", "held_released")
    }
    (wallet,) = (await holding.get("/v1/shops/mine/wallet", headers=m.keeper.headers)).json()
    assert (wallet["held_minor"], wallet["pending_minor"]) == (0, 2_000)
    assert await ledger.reconcile(session) == 0


async def test_policy_none_earns_the_shop_nothing(
    earning_nothing: httpx.AsyncClient, session: AsyncSession
) -> None:
    m, _ = await _self_purchase(earning_nothing, session)
    (wallet,) = (
        await earning_nothing.get("/v1/shops/mine/wallet", headers=m.keeper.headers)
    ).json()
    assert wallet["pending_minor"] == 0
    lines = (
        await earning_nothing.get("/v1/shops/mine/commissions", headers=m.keeper.headers)
    ).json()
    assert {(c["kind"], c["status"], c["rule"]) for c in lines["items"]} == {
        ("commission", "forfeited", "self_purchase_none"),
        ("markup", "forfeited", "self_purchase_none"),
    }
    assert await ledger.reconcile(session) == 0


async def test_history_actions_are_a_fixed_vocabulary(
    holding: httpx.AsyncClient, session: AsyncSession
) -> None:
    _, order = await _self_purchase(holding, session)
    (part,) = order["supplier_orders"]
    # The API documents every action a line's history can show, and no others.
    schema = (await holding.get("/openapi.json")).json()["components"]["schemas"]
    action = schema["CommissionHistoryOut"]["properties"]["action"]
    assert schema[action["$ref"].rsplit("/", 1)[1]]["enum"] == [a.value for a in CommissionAction]
    # The database refuses any other word, from the ORM or from raw SQL alike.
    commission_id = await session.scalar(
        text("SELECT id FROM commissions WHERE supplier_order_id = CAST(:p AS uuid) LIMIT 1"),
        {"p": part["id"]},
    )
    with pytest.raises(IntegrityError, match="ck_commission_events_commission_action"):
        async with session.begin_nested():
            await session.execute(
                text(
                    "INSERT INTO commission_events (id, commission_id, action, status, "
                    "amount_minor, cause, at) VALUES (gen_random_uuid(), :c, 'forfeitd', "
                    "'forfeited', 0, 'test', now())"
                ),
                {"c": commission_id},
            )
