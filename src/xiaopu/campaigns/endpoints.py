"""Routes for suppliers' campaigns (make, schedule, end, invite, results) and shops' side of them
(browse, sign up, leaderboard)."""

from __future__ import annotations

import uuid

from fastapi import APIRouter, status

from xiaopu.auth.auth import CurrentPerson
from xiaopu.campaigns import service
from xiaopu.campaigns.auth import CampaignManager, CampaignReader
from xiaopu.campaigns.schemas import (
    CampaignIn,
    CampaignOut,
    InvitationsIn,
    InvitationsOut,
    LeaderboardOut,
    ResultsOut,
    ShopCampaignOut,
)
from xiaopu.db import DbSession
from xiaopu.deps import AppSettings
from xiaopu.idempotency.service import OptionalIdempotency
from xiaopu.kit.pagination import Page, Pagination
from xiaopu.matching import service as matching

supplier_router = APIRouter(prefix="/v1/suppliers/{supplier_id}/campaigns", tags=["campaigns"])
shop_router = APIRouter(prefix="/v1/shops/mine/campaigns", tags=["campaigns"])


@supplier_router.post(
    "", status_code=status.HTTP_201_CREATED, operation_id="campaigns-create_campaign"
)
async def create_campaign(
    supplier_id: uuid.UUID,
    data: CampaignIn,
    caller: CampaignManager,
    session: DbSession,
    idempotency: OptionalIdempotency,
) -> CampaignOut:
    """A draft campaign: its products' variants at campaign prices (not above the regular
    ones) with units allocated at that price, a boost in basis points on top of each product's
    commission, a boost budget per currency, and its warm-up, start and end (at most 14 days
    of sale). Nothing is set aside until it is scheduled."""
    return await idempotency.once(lambda: service.create(session, caller.supplier_id, data))


@supplier_router.get("", operation_id="campaigns-list_campaigns")
async def list_campaigns(
    supplier_id: uuid.UUID, caller: CampaignReader, session: DbSession, page: Pagination
) -> Page[CampaignOut]:
    """Your campaigns, newest first."""
    return await service.list_for_supplier(session, caller.supplier_id, page)


@supplier_router.get("/{campaign_id}", operation_id="campaigns-get_campaign")
async def get_campaign(
    supplier_id: uuid.UUID, campaign_id: uuid.UUID, caller: CampaignReader, session: DbSession
) -> CampaignOut:
    return await service.get(session, caller.supplier_id, campaign_id)


@supplier_router.post("/{campaign_id}/schedule", operation_id="campaigns-schedule_campaign")
async def schedule_campaign(
    supplier_id: uuid.UUID,
    campaign_id: uuid.UUID,
    caller: CampaignManager,
    session: DbSession,
    settings: AppSettings,
    idempotency: OptionalIdempotency,
) -> CampaignOut:
    """Schedule a draft: shops may sign up from now until the start, and the allocated units
    leave the variants' stock (409 `allocation_exceeds_stock` if a variant lacks them). The
    clock moves it on: warm-up, live at the start, ended at the end. Its terms are fixed."""
    return await idempotency.once(
        lambda: service.schedule(session, settings, caller.supplier_id, campaign_id)
    )


@supplier_router.post("/{campaign_id}/end", operation_id="campaigns-end_campaign")
async def end_campaign(
    supplier_id: uuid.UUID,
    campaign_id: uuid.UUID,
    caller: CampaignManager,
    session: DbSession,
    idempotency: OptionalIdempotency,
) -> CampaignOut:
    """End a campaign now (a scheduled one is called off): sales at campaign terms stop and
    the units not sold go back to stock. A campaign cannot be extended or repriced."""
    return await idempotency.once(lambda: service.end(session, caller.supplier_id, campaign_id))


@supplier_router.post("/{campaign_id}/invitations", operation_id="campaigns-invite_shops")
async def invite_shops(
    supplier_id: uuid.UUID,
    campaign_id: uuid.UUID,
    data: InvitationsIn,
    caller: CampaignManager,
    session: DbSession,
    idempotency: OptionalIdempotency,
) -> InvitationsOut:
    """Invite shops by id, and optionally the best-ranked recommended shops of each of the
    campaign's products (matching, computed nightly). Invited shops see the campaign and may
    sign up until the start."""

    async def invite() -> InvitationsOut:
        campaign = await service.get(session, caller.supplier_id, campaign_id)
        recommended = []
        if data.from_recommendations:
            recommended = await matching.top_shop_ids(
                session,
                caller.supplier_id,
                service.product_ids(campaign),
                data.from_recommendations,
            )
        return await service.invite(
            session, caller.supplier_id, campaign_id, data.shop_ids, recommended
        )

    return await idempotency.once(invite)


@supplier_router.get("/{campaign_id}/leaderboard", operation_id="campaigns-supplier_leaderboard")
async def supplier_leaderboard(
    supplier_id: uuid.UUID,
    campaign_id: uuid.UUID,
    caller: CampaignReader,
    session: DbSession,
    page: Pagination,
) -> LeaderboardOut:
    """Shops by campaign GMV, refreshed every few seconds while the campaign is live."""
    return await service.leaderboard(session, campaign_id, page, supplier_id=caller.supplier_id)


@supplier_router.get("/{campaign_id}/results", operation_id="campaigns-get_results")
async def get_results(
    supplier_id: uuid.UUID, campaign_id: uuid.UUID, caller: CampaignReader, session: DbSession
) -> ResultsOut:
    """Per shop and per product: orders, units, GMV, refunds and boost paid (as the ledger
    has it), and each budget's use; final once the campaign settles."""
    return await service.results(session, caller.supplier_id, campaign_id)


@shop_router.get("", operation_id="campaigns-list_for_shop")
async def list_for_shop(
    person: CurrentPerson, session: DbSession, page: Pagination
) -> Page[ShopCampaignOut]:
    """Campaigns your shop can join or has joined: open ones and those you are invited to,
    from their scheduling to their end, newest first."""
    return await service.list_for_shop(session, person.account_id, page)


@shop_router.get("/{campaign_id}", operation_id="campaigns-get_for_shop")
async def get_for_shop(
    campaign_id: uuid.UUID, person: CurrentPerson, session: DbSession
) -> ShopCampaignOut:
    return await service.get_for_shop(session, person.account_id, campaign_id)


@shop_router.post("/{campaign_id}/signup", operation_id="campaigns-sign_up")
async def sign_up(
    campaign_id: uuid.UUID,
    person: CurrentPerson,
    session: DbSession,
    idempotency: OptionalIdempotency,
) -> ShopCampaignOut:
    """Sign your shop up (until the start): from the start, orders in your shop of the
    campaign's variants sell at its price, and you earn its boost on top of the commission
    while its budget lasts. Add the products to your shop to sell them."""
    return await idempotency.once(lambda: service.join(session, person.account_id, campaign_id))


@shop_router.get("/{campaign_id}/leaderboard", operation_id="campaigns-shop_leaderboard")
async def shop_leaderboard(
    campaign_id: uuid.UUID, person: CurrentPerson, session: DbSession, page: Pagination
) -> LeaderboardOut:
    """The signed-up shops by campaign GMV (for a campaign your shop joined)."""
    return await service.leaderboard(session, campaign_id, page, account_id=person.account_id)
