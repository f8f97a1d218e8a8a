"""Queries for accounts, refresh tokens, operators, memberships and API keys."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import Select, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from xiaopu.kit.pagination import PageParams, newest_first
from xiaopu.models import Account, ApiKey, Operator, RefreshToken, SupplierMember


async def account_by_login(
    session: AsyncSession, *, email: str | None, phone: str | None
) -> Account | None:
    stmt = select(Account)
    stmt = stmt.where(Account.email == email) if email else stmt.where(Account.phone == phone)
    return await session.scalar(stmt)


async def login_taken(session: AsyncSession, *, email: str | None, phone: str | None) -> bool:
    conditions = []
    if email:
        conditions.append(Account.email == email)
    if phone:
        conditions.append(Account.phone == phone)
    found = await session.scalar(select(Account.id).where(or_(*conditions)).limit(1))
    return found is not None


async def refresh_token_for_update(session: AsyncSession, token_hash: bytes) -> RefreshToken | None:
    stmt = select(RefreshToken).where(RefreshToken.token_hash == token_hash).with_for_update()
    return await session.scalar(stmt)


async def revoke_family(session: AsyncSession, family_id: uuid.UUID, at: datetime) -> None:
    await session.execute(
        update(RefreshToken)
        .where(RefreshToken.family_id == family_id, RefreshToken.revoked_at.is_(None))
        .values(revoked_at=at)
    )


async def families_revoked_since(
    session: AsyncSession, since: datetime
) -> Sequence[tuple[uuid.UUID, datetime]]:
    """Each token family revoked after `since`, with its latest revocation time (read through
    the partial index on revoked_at)."""
    stmt = (
        select(RefreshToken.family_id, func.max(RefreshToken.revoked_at))
        .where(RefreshToken.revoked_at > since)
        .group_by(RefreshToken.family_id)
    )
    rows = (await session.execute(stmt)).all()
    return [(family_id, at) for family_id, at in rows if at is not None]


async def is_operator(session: AsyncSession, account_id: uuid.UUID) -> bool:
    found = await session.scalar(
        select(Operator.account_id).where(
            Operator.account_id == account_id, Operator.disabled_at.is_(None)
        )
    )
    return found is not None


async def operator(
    session: AsyncSession, account_id: uuid.UUID, *, lock: bool = False
) -> Operator | None:
    stmt = select(Operator).where(Operator.account_id == account_id)
    return await session.scalar(stmt.with_for_update() if lock else stmt)


async def operators_with_accounts(session: AsyncSession) -> list[tuple[Operator, Account]]:
    """Every operator, disabled ones too, oldest first (a staff list: tens of rows)."""
    rows = await session.execute(
        select(Operator, Account)
        .join(Account, Account.id == Operator.account_id)
        .order_by(Operator.created_at, Operator.account_id)
    )
    return [(o, a) for o, a in rows]


async def membership(
    session: AsyncSession, supplier_id: uuid.UUID, account_id: uuid.UUID
) -> SupplierMember | None:
    stmt = select(SupplierMember).where(
        SupplierMember.supplier_id == supplier_id, SupplierMember.account_id == account_id
    )
    return await session.scalar(stmt)


async def api_key_by_hash(session: AsyncSession, key_hash: bytes) -> ApiKey | None:
    return await session.scalar(select(ApiKey).where(ApiKey.key_hash == key_hash))


async def touch_api_key(session: AsyncSession, key_id: uuid.UUID, at: datetime) -> None:
    await session.execute(update(ApiKey).where(ApiKey.id == key_id).values(last_used_at=at))


def _supplier_keys(supplier_id: uuid.UUID) -> Select[ApiKey]:
    return select(ApiKey).where(ApiKey.supplier_id == supplier_id)


async def supplier_api_keys(
    session: AsyncSession, supplier_id: uuid.UUID, page: PageParams
) -> Sequence[ApiKey]:
    stmt = newest_first(_supplier_keys(supplier_id), ApiKey.id, page)
    return (await session.scalars(stmt)).all()


async def supplier_api_key(
    session: AsyncSession, supplier_id: uuid.UUID, key_id: uuid.UUID
) -> ApiKey | None:
    return await session.scalar(_supplier_keys(supplier_id).where(ApiKey.id == key_id))
