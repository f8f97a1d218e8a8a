"""Routes for the shopkeeper's wallet and commission lines."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Query

from xiaopu.auth.auth import CurrentPerson
from xiaopu.commissions import service
from xiaopu.commissions.schemas import CommissionOut, WalletBalance
from xiaopu.db import DbSession
from xiaopu.kit.pagination import Page, Pagination
from xiaopu.models.ledger import PartStatus
from xiaopu.shops import service as shops

router = APIRouter(prefix="/v1/shops/mine", tags=["wallet"])


@router.get("/wallet")
async def get_wallet(person: CurrentPerson, session: DbSession) -> list[WalletBalance]:
    """Earnings per currency: pending, held, available, paid out, and any negative carry."""
    shop = await shops.shop_of(session, person.account_id)
    return await service.wallet(session, shop.id)


@router.get("/commissions")
async def list_commissions(
    person: CurrentPerson,
    session: DbSession,
    page: Pagination,
    commission_status: Annotated[PartStatus | None, Query(alias="status")] = None,
    since: Annotated[datetime | None, Query(description="Created at or after (UTC).")] = None,
    until: Annotated[datetime | None, Query(description="Created before (UTC).")] = None,
) -> Page[CommissionOut]:
    """Every commission and markup line, newest first, with how it was computed and each change."""
    shop = await shops.shop_of(session, person.account_id)
    return await service.list_for_shop(session, shop.id, commission_status, since, until, page)
