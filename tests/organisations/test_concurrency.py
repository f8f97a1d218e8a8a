"""An invite code's use limit holds when many redeem it at once, committing for real."""

from __future__ import annotations

import asyncio

from sqlalchemy import text

from tests.catalogue.helpers import new_actor
from tests.factories import make_operator
from tests.orders.conftest import Live
from tests.organisations.helpers import create_organisation, new_code

RACERS = 8
MAX_USES = 3


async def test_exactly_max_uses_of_racing_redemptions_succeed(live: Live) -> None:
    client = live.client
    op, admin = await new_actor(client), await new_actor(client)
    async with live.sessionmaker() as session:
        await make_operator(session, op.account_id)
    org = await create_organisation(client, op.headers, admin)
    code = await new_code(client, org["id"], admin.headers, max_uses=MAX_USES)
    people = [await new_actor(client) for _ in range(RACERS)]

    # Each with a slug of its own: shops opened at once under one made-up slug would collide.
    answers = await asyncio.gather(
        *(
            client.post(
                "/v1/shops",
                json={"invite_code": code["code"], "slug": f"racer-{n}"},
                headers=p.headers,
            )
            for n, p in enumerate(people)
        )
    )

    statuses = sorted(a.status_code for a in answers)
    assert statuses == [201] * MAX_USES + [409] * (RACERS - MAX_USES)
    assert {a.json()["code"] for a in answers if a.status_code == 409} == {"invite_code_used_up"}
    async with live.sessionmaker() as session:
        uses = await session.scalar(
            text("SELECT uses FROM invite_codes WHERE id = :id"), {"id": code["id"]}
        )
        shops = await session.scalar(
            text("SELECT count(*) FROM shops WHERE organisation_id = :o"), {"o": org["id"]}
        )
        opened = await session.scalar(text("SELECT count(*) FROM shops"))
    assert (uses, shops, opened) == (MAX_USES, MAX_USES, MAX_USES)
