"""The flusher's COPY BINARY stream stores exactly what asyncpg's own encoder would."""

from __future__ import annotations

import uuid
from dataclasses import replace
from datetime import UTC, datetime

import uuid_utils
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy.ext.asyncio import AsyncSession

from xiaopu.db import raw_connection
from xiaopu.links.agents import AgentClass
from xiaopu.links.clicks import COLUMNS, Pending, encode, referrer_host, target_ids
from xiaopu.links.repository import LinkTarget


def _target(product: bool, prepared: bool) -> LinkTarget:
    target = LinkTarget(
        link_id=uuid.uuid4(),
        shop_id=uuid.uuid4(),
        product_id=uuid.uuid4() if product else None,
        disabled=False,
        shop_name="小铺",
        shop_slug="shop",
        title="茶",
        image_url=None,
    )
    if prepared:  # as the redirect's cache keeps it; unprepared targets are encoded on the fly
        target = replace(target, copy_ids=target_ids(target))
    return target


clicks = st.tuples(
    st.floats(min_value=946_684_800.0, max_value=4_102_444_800.0),  # 2000 .. 2100
    st.booleans(),
    st.booleans(),
    st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789", min_size=16, max_size=44),
    st.one_of(
        st.none(),
        st.just(b"https://chat.example.com/room?x=1"),
        st.just("https://例子.测试/页".encode()),
        st.just(b"http://[::1"),  # broken: no host kept
        st.binary(max_size=40),
    ),
    st.sampled_from([a.value for a in AgentClass]),
    st.booleans(),
)


@settings(max_examples=60, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(batch=st.lists(clicks, min_size=1, max_size=30))
async def test_binary_rows_match_asyncpg_records(
    session: AsyncSession,
    batch: list[tuple[float, bool, bool, str, bytes | None, str, bool]],
) -> None:
    pending: list[Pending] = [
        (uuid_utils.uuid7(), at, _target(product, prepared), visitor, referer, agent, repeat)
        for at, product, prepared, visitor, referer, agent, repeat in batch
    ]
    raw = await raw_connection(session)
    await raw.execute("CREATE TEMP TABLE IF NOT EXISTS ours (LIKE clicks) ON COMMIT DROP")
    await raw.execute("CREATE TEMP TABLE IF NOT EXISTS theirs (LIKE clicks) ON COMMIT DROP")
    await raw.execute("TRUNCATE ours, theirs")
    await raw.copy_to_table("ours", source=memoryview(encode(pending)), format="binary")
    records = [
        (
            click_id,
            datetime.fromtimestamp(at, UTC),
            target.link_id,
            target.shop_id,
            target.product_id,
            visitor,
            referrer_host(referer),
            agent,
            repeat,
        )
        for click_id, at, target, visitor, referer, agent, repeat in pending
    ]
    await raw.copy_records_to_table("theirs", records=records, columns=COLUMNS)
    query = "SELECT * FROM {} ORDER BY id"
    ours = await raw.fetch(query.format("ours"))
    theirs = await raw.fetch(query.format("theirs"))
    assert [tuple(r) for r in ours] == [tuple(r) for r in theirs]
    assert len(ours) == len(pending)
