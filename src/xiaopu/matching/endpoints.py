"""Routes for a shop's recommendations and invitations, and a product's recommended shops."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query, status

from xiaopu.auth.auth import CurrentPerson
from xiaopu.db import DbSession
from xiaopu.deps import AppSettings
from xiaopu.idempotency.service import OptionalIdempotency, RequiredIdempotency
from xiaopu.kit.pagination import Page, Pagination
from xiaopu.matching import service
from xiaopu.matching.auth import Inviter, RecommendationReader
from xiaopu.matching.schemas import (
    InvitationOut,
    RecommendedProduct,
    RecommendedShopOut,
    ShopInvitationOut,
)
from xiaopu.models import InvitationStatus

shop_router = APIRouter(prefix="/v1/shops/mine", tags=["matching"])
supplier_router = APIRouter(
    prefix="/v1/suppliers/{supplier_id}/products/{product_id}/recommended-shops",
    tags=["matching"],
)


@shop_router.get("/recommendations", operation_id="matching-list_recommendations")
async def list_recommendations(
    person: CurrentPerson, session: DbSession, page: Pagination
) -> Page[RecommendedProduct]:
    """Products your shop does not carry yet, ranked for your buyers, each with the reasons
    its score is made of. Computed nightly; what went off sale or out of stock since, or what
    you picked since, is left out."""
    return await service.recommendations(session, person.account_id, page)


@shop_router.get("/invitations", operation_id="matching-list_invitations")
async def list_invitations(
    person: CurrentPerson,
    session: DbSession,
    page: Pagination,
    invitation_status: Annotated[InvitationStatus | None, Query(alias="status")] = None,
) -> Page[ShopInvitationOut]:
    """Suppliers' invitations to carry their products, newest first."""
    return await service.invitations(session, person.account_id, invitation_status, page)


@shop_router.post("/invitations/{invitation_id}/accept", operation_id="matching-accept_invitation")
async def accept_invitation(
    invitation_id: uuid.UUID,
    person: CurrentPerson,
    session: DbSession,
    settings: AppSettings,
    idempotency: OptionalIdempotency,
) -> ShopInvitationOut:
    """Accept: the product joins your shop (no markup; change it like any selection)."""
    return await idempotency.once(
        lambda: service.accept(session, settings, person.account_id, invitation_id)
    )


@shop_router.post(
    "/invitations/{invitation_id}/dismiss", operation_id="matching-dismiss_invitation"
)
async def dismiss_invitation(
    invitation_id: uuid.UUID,
    person: CurrentPerson,
    session: DbSession,
    idempotency: OptionalIdempotency,
) -> ShopInvitationOut:
    """Dismiss: the supplier may not invite you to this product again."""
    return await idempotency.once(
        lambda: service.dismiss(session, person.account_id, invitation_id)
    )


@supplier_router.get("", operation_id="matching-list_recommended_shops")
async def list_recommended_shops(
    supplier_id: uuid.UUID,
    product_id: uuid.UUID,
    caller: RecommendationReader,
    session: DbSession,
    page: Pagination,
) -> Page[RecommendedShopOut]:
    """Shops likely to sell this product (those that carry it already left out), each with its
    capability profile and reasons. Computed nightly."""
    return await service.recommended_shops(session, caller.supplier_id, product_id, page)


@supplier_router.post(
    "/{shop_id}/invitations",
    status_code=status.HTTP_201_CREATED,
    operation_id="matching-invite_shop",
)
async def invite_shop(
    supplier_id: uuid.UUID,
    product_id: uuid.UUID,
    shop_id: uuid.UUID,
    caller: Inviter,
    session: DbSession,
    idempotency: RequiredIdempotency,
) -> InvitationOut:
    """Invite a recommended shop to carry this product. The shop sees it among its
    invitations, and the event `recommendation.invited` (ids only) is recorded for the app."""
    return await idempotency.once(
        lambda: service.invite(session, caller.supplier_id, product_id, shop_id)
    )
