"""Demo data, loaded once, so a newcomer can sign in and click through what exists so far."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from xiaopu.auth.passwords import hash_password
from xiaopu.models import (
    Account,
    MemberRole,
    Operator,
    OperatorRole,
    Supplier,
    SupplierMember,
    SupplierStatus,
)

DEMO_PASSWORD = "xiaopu-demo-2026"  # noqa: S105 - published demo credentials


@dataclass(frozen=True)
class DemoLogin:
    role: str
    login: str


DEMO_LOGINS = (
    DemoLogin("shopkeeper and buyer", "shopkeeper@demo.xiaopu.dev"),
    DemoLogin("supplier owner (Yunnan Tea Co.)", "supplier@demo.xiaopu.dev"),
    DemoLogin("operator", "operator@demo.xiaopu.dev"),
)


async def seed_demo(session: AsyncSession) -> bool:
    """Insert the demo data unless it is there already. Returns whether it inserted."""
    first = DEMO_LOGINS[0].login
    if await session.scalar(select(Account.id).where(Account.email == first)) is not None:
        return False
    password_hash = hash_password(DEMO_PASSWORD)
    shopkeeper, supplier_owner, operator = (
        Account(email=d.login, password_hash=password_hash, display_name=name)
        for d, name in zip(DEMO_LOGINS, ("小林", "云南茶园", "Ops"), strict=True)
    )
    session.add_all([shopkeeper, supplier_owner, operator])
    await session.flush()
    supplier = Supplier(name="云南茶园 Yunnan Tea Co.", status=SupplierStatus.active)
    session.add(supplier)
    await session.flush()
    session.add_all(
        [
            SupplierMember(
                supplier_id=supplier.id, account_id=supplier_owner.id, role=MemberRole.owner
            ),
            Operator(account_id=operator.id, role=OperatorRole.admin),
        ]
    )
    await session.flush()
    return True
