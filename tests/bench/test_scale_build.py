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
    K_SHOP,
    K_SUPPLIER,
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
    assert await is_complete(conn, SCALE)


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
    finally:
        await engine.dispose()
