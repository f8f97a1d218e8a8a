"""The scale bench's database: built at a tiny scale, it keeps every constraint, trigger and the
ledger's books, has the shape the bench promises, and the API reads it."""

from __future__ import annotations

import uuid

import asyncpg
import httpx
from bench.scale_build import (
    BIG_SHOP,
    BIG_SUPPLIER,
    K_ACCOUNT,
    K_CAMPAIGN,
    K_SHOP,
    K_SUPPLIER,
    PAST_CAMPAIGNS,
    Volumes,
    build,
    compute_matching,
    is_complete,
    link_code,
    roll_up,
    xid,
)
from sqlalchemy import text

from tests.conftest import make_settings
from xiaopu.app import create_app
from xiaopu.auth.tokens import issue_access_token
from xiaopu.db import create_engine, create_sessionmaker
from xiaopu.ledger import service as ledger

SCALE = 0.0005


async def _checks(conn: asyncpg.Connection, v: Volumes) -> None:
    foreign_keys = await conn.fetchval(
        "SELECT count(*) FROM pg_constraint c JOIN pg_namespace n ON n.oid = c.connamespace "
        "WHERE n.nspname = 'public' AND c.contype = 'f'"
    )
    assert foreign_keys > 50  # dropped for the load and added back
    not_valid = await conn.fetch("SELECT conname FROM pg_constraint WHERE NOT convalidated")
    assert not_valid == []
    triggers = await conn.fetch(
        "SELECT tgname, tgenabled::text AS tgenabled FROM pg_trigger WHERE NOT tgisinternal "
        "AND tgrelid::regclass::text IN ('ledger_entries', 'ledger_transactions')"
    )
    assert {t["tgname"] for t in triggers} >= {
        "ledger_entries_balanced",
        "ledger_entries_append_only",
        "ledger_transactions_append_only",
    }
    assert {t["tgenabled"] for t in triggers} == {"O"}  # enabled, as origin

    counts = {
        table: await conn.fetchval(f"SELECT count(*) FROM {table}")  # noqa: S608
        for table in ("orders", "supplier_orders", "commissions", "clicks", "ledger_entries")
    }
    assert counts["orders"] == v.orders
    assert counts["clicks"] == v.clicks
    assert 1.15 <= counts["supplier_orders"] / counts["orders"] <= 1.25
    assert 6.0 <= counts["commissions"] / counts["orders"] <= 7.0
    assert 6.0 <= counts["ledger_entries"] / counts["orders"] <= 7.5
    big_orders = await conn.fetchval(
        "SELECT avg((shop_id = $1)::int) FROM orders", uuid.UUID(xid(K_SHOP, BIG_SHOP))
    )
    assert 0.045 <= big_orders <= 0.055
    big_parts = await conn.fetchval(
        "SELECT avg((supplier_id = $1)::int) FROM supplier_orders",
        uuid.UUID(xid(K_SUPPLIER, BIG_SUPPLIER)),
    )
    assert 0.08 <= big_parts <= 0.12
    big_clicks = await conn.fetchval(
        "SELECT count(*) FROM clicks c JOIN share_links l ON l.id = c.link_id WHERE l.code = $1",
        link_code(BIG_SHOP),
    )
    assert big_clicks == v.clicks // 20
    await _campaign_checks(conn, v)
    assert await is_complete(conn, SCALE)


async def _campaign_checks(conn: asyncpg.Connection, v: Volumes) -> None:
    """The campaigns are as scheduling, sign-ups, checkout and the clock's refresh leave them:
    allocation and budget conservation, boost parts = results, lines only in signed-up shops."""
    live = uuid.UUID(xid(K_CAMPAIGN, 1))
    statuses = await conn.fetch("SELECT status, count(*) AS n FROM campaigns GROUP BY 1")
    assert {r["status"]: r["n"] for r in statuses} == {"live": 2, "settled": PAST_CAMPAIGNS}
    lines = await conn.fetchval("SELECT count(*) FROM order_lines WHERE campaign_id = $1", live)
    assert lines > 0
    # Allocation: the shards hold what the lines did not take, per variant.
    short = await conn.fetch(
        "SELECT i.variant_id FROM campaign_items i JOIN campaigns c ON c.id = i.campaign_id "
        "WHERE c.status = 'live' AND i.allocated_units <> "
        "(SELECT sum(units_left) FROM campaign_unit_shards s WHERE s.campaign_id = i.campaign_id "
        "AND s.variant_id = i.variant_id) + (SELECT coalesce(sum(quantity), 0) FROM order_lines l "
        "WHERE l.campaign_id = i.campaign_id AND l.variant_id = i.variant_id)"
    )
    assert short == []
    # Budget: spent = the boost parts = the lines' boost; the results say the same.
    spent, boost, results, line_boost = await conn.fetchrow(
        "SELECT (SELECT sum(budget_minor) FROM campaign_budgets WHERE campaign_id = $1) "
        "- (SELECT sum(left_minor) FROM campaign_budget_shards WHERE campaign_id = $1), "
        "(SELECT sum(c.accrued_minor - c.reversed_minor) FROM commissions c "
        "JOIN order_lines l ON l.id = c.order_line_id WHERE l.campaign_id = $1 "
        "AND c.kind = 'boost'), "
        "(SELECT sum(boost_minor) FROM campaign_results WHERE campaign_id = $1), "
        "(SELECT sum((base_minor * boost_bps + 5000) / 10000) FROM order_lines "
        "WHERE campaign_id = $1)",
        live,
    )
    assert spent == boost == results == line_boost > 0
    outside = await conn.fetchval(
        "SELECT count(*) FROM order_lines l JOIN orders o ON o.id = l.order_id "
        "LEFT JOIN campaign_shops s ON s.campaign_id = l.campaign_id AND s.shop_id = o.shop_id "
        "WHERE l.campaign_id IS NOT NULL AND s.joined_at IS NULL"
    )
    assert outside == 0
    # The items' campaign prices are the lines' prices, under the regular ones.
    mispriced = await conn.fetchval(
        "SELECT count(*) FROM order_lines l JOIN campaign_items i "
        "ON i.campaign_id = l.campaign_id AND i.variant_id = l.variant_id "
        "WHERE l.unit_price_minor <> i.price_minor OR i.price_minor > i.regular_price_minor"
    )
    assert mispriced == 0


async def test_scale_build_keeps_constraints_and_books_and_serves_reads(fresh_db_url: str) -> None:
    v = Volumes.at(SCALE)
    conn = await asyncpg.connect(fresh_db_url)
    try:
        await build(conn, v, "not-a-password-hash", log=False)
        await _checks(conn, v)
    finally:
        await conn.close()

    settings = make_settings(fresh_db_url)
    engine = create_engine(settings)
    sessionmaker = create_sessionmaker(engine)
    try:
        async with sessionmaker() as session:
            assert await ledger.reconcile(session) == 0  # counters equal entries, all balance
            paid = await session.scalar(
                text("SELECT count(*) FROM orders WHERE paid_at IS NOT NULL")
            )
        assert await roll_up(sessionmaker) == paid
        # The dashboards' rollups say what the orders say.
        async with sessionmaker() as session:
            rolled = await session.scalar(text("SELECT sum(orders) FROM shop_daily"))
            assert rolled == paid
        matched = await compute_matching(settings)
        assert matched.shops > 0
        assert matched.recommendations > 0
        assert matched.recommended_shops > 0
        app = create_app(settings, sessionmaker=sessionmaker)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
            shop_owner, _ = issue_access_token(
                settings, uuid.UUID(xid(K_ACCOUNT, BIG_SHOP)), uuid.uuid4()
            )
            wallet = await c.get(
                "/v1/shops/mine/wallet", headers={"Authorization": f"Bearer {shop_owner}"}
            )
            assert wallet.status_code == 200, wallet.text
            supplier_owner, _ = issue_access_token(
                settings, uuid.UUID(xid(K_ACCOUNT, v.shops + BIG_SUPPLIER)), uuid.uuid4()
            )
            orders = await c.get(
                f"/v1/suppliers/{xid(K_SUPPLIER, BIG_SUPPLIER)}/orders",
                headers={"Authorization": f"Bearer {supplier_owner}"},
            )
            assert orders.status_code == 200, orders.text
            assert len(orders.json()["items"]) > 0
            recommended = await c.get(
                "/v1/shops/mine/recommendations",
                headers={"Authorization": f"Bearer {shop_owner}"},
            )
            assert recommended.status_code == 200, recommended.text
            assert len(recommended.json()["items"]) > 0
            products = await c.get(f"/v1/shops/shop-{BIG_SHOP}/products")
            assert products.status_code == 200, products.text
            assert len(products.json()["items"]) == v.big_shop_selections
            # The campaigns' reads, as the supplier and a signed-up shop see them.
            supplier = {"Authorization": f"Bearer {supplier_owner}"}
            shop = {"Authorization": f"Bearer {shop_owner}"}
            base = f"/v1/suppliers/{xid(K_SUPPLIER, BIG_SUPPLIER)}/campaigns"
            live = xid(K_CAMPAIGN, 1)
            listed = await c.get(base, headers=supplier)
            assert listed.status_code == 200, listed.text
            assert len(listed.json()["items"]) == 1 + PAST_CAMPAIGNS
            one = await c.get(f"{base}/{live}", headers=supplier)
            assert one.status_code == 200, one.text
            (budget,) = one.json()["budgets"]
            results = await c.get(f"{base}/{live}/results", headers=supplier)
            assert results.status_code == 200, results.text
            paid = sum(r["boost_minor"] for r in results.json()["by_product"])
            assert budget["budget_minor"] - budget["left_minor"] == paid > 0
            for path, headers in (
                (f"{base}/{live}/leaderboard", supplier),
                (f"/v1/shops/mine/campaigns/{live}/leaderboard", shop),
            ):
                board = await c.get(path, headers=headers)
                assert board.status_code == 200, board.text
                assert board.json()["items"][0]["rank"] == 1
            mine = await c.get("/v1/shops/mine/campaigns", headers=shop)
            assert mine.status_code == 200, mine.text
            assert {x["id"] for x in mine.json()["items"]} >= {live}
            seen = await c.get(f"/v1/shops/mine/campaigns/{live}", headers=shop)
            assert seen.status_code == 200, seen.text
            assert seen.json()["joined_at"] is not None
    finally:
        await engine.dispose()
