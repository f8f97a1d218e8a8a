"""Demo data, loaded once, so a newcomer can sign in and click through what exists so far."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from xiaopu.auth.passwords import hash_password
from xiaopu.campaigns import service as campaigns
from xiaopu.campaigns.schemas import Brief, BudgetIn, CampaignIn, ItemIn
from xiaopu.catalogue import service as catalogue
from xiaopu.catalogue.schemas import BulkUpsert
from xiaopu.config import get_settings
from xiaopu.kit.clock import utcnow
from xiaopu.models import (
    Account,
    MemberRole,
    Operator,
    OperatorRole,
    ShareLink,
    Supplier,
    SupplierMember,
    SupplierStatus,
)
from xiaopu.shops import service as shops
from xiaopu.shops.schemas import SelectionAdd, ShopCreate

DEMO_PASSWORD = "xiaopu-demo-2026"  # noqa: S105 - published demo credentials
DEMO_LINK_CODES = ("DemoPuer2026", "DemoShop2026")


@dataclass(frozen=True)
class DemoLogin:
    role: str
    login: str


DEMO_LOGINS = (
    DemoLogin("shopkeeper and buyer", "shopkeeper@demo.xiaopu.dev"),
    DemoLogin("supplier owner (Yunnan Tea Co.)", "supplier@demo.xiaopu.dev"),
    DemoLogin("operator", "operator@demo.xiaopu.dev"),
)


# Pictures the storefront serves itself, so the demo looks right offline: made absolute URLs on
# the configured public base URL when seeded (suppliers' image URLs are absolute too).
DEMO_IMAGES = {
    "PUER-357": "puer.svg",
    "DIANHONG-250": "dianhong.svg",
    "FLOWER-CAKE": "flower-cake.svg",
}
DEMO_PRODUCTS: list[dict[str, object]] = [
    {
        "ref": "PUER-357",
        "title": "云南普洱茶饼 357g Pu-erh tea cake",
        "description": "Aged raw pu-erh from Lincang, pressed in 2019.",
        "category_id": "food.tea",
        "brand": "云南茶园",
        "commission_bps": 1500,
        "markup_ceiling_bps": 2000,
        "status": "active",
        "variants": [
            {
                "sku": "PUER-357-2019",
                "options": {"year": "2019"},
                "price_minor": 12800,
                "currency": "CNY",
                "stock": 120,
                "weight_grams": 400,
                "low_stock_threshold": 10,
            },
            {
                "sku": "PUER-357-2015",
                "options": {"year": "2015"},
                "price_minor": 26800,
                "currency": "CNY",
                "stock": 15,
                "weight_grams": 400,
                "commission_bps": 2000,
            },
        ],
    },
    {
        "ref": "DIANHONG-250",
        "title": "滇红金芽红茶 250g Dianhong black tea",
        "category_id": "food.tea",
        "brand": "云南茶园",
        "commission_bps": 1200,
        "markup_ceiling_bps": 1500,
        "status": "active",
        "variants": [
            {"sku": "DH-250", "price_minor": 8800, "currency": "CNY", "stock": 300},
        ],
    },
    {
        "ref": "FLOWER-CAKE",
        "title": "云南鲜花饼 礼盒 Rose flower cakes gift box",
        "category_id": "food.specialty",
        "commission_bps": 1000,
        "markup_ceiling_bps": 1000,
        "status": "active",
        "variants": [
            {
                "sku": "FC-10",
                "options": {"pieces": "10"},
                "price_minor": 4990,
                "currency": "CNY",
                "stock": 500,
            },
            {
                "sku": "FC-20",
                "options": {"pieces": "20"},
                "price_minor": 8990,
                "currency": "CNY",
                "stock": 0,
            },
        ],
    },
]


# What the shopkeeper says about each product, on its storefront page.
DEMO_BLURBS = {
    "PUER-357": "我家每天早上一壶，越陈越香。Our morning pot, every day.",
    "DIANHONG-250": "蜜香甜润，冷泡也好喝。",
}


def demo_share_link(public_base_url: str) -> str:
    """The demo product's share link: it opens the storefront's product page."""
    return f"{public_base_url.rstrip('/')}/s/{DEMO_LINK_CODES[0]}"


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
    settings = get_settings()
    base = settings.public_base_url.rstrip("/")
    products = [
        {**p, "image_urls": [f"{base}/m/_/demo/{DEMO_IMAGES[str(p['ref'])]}"]}
        for p in DEMO_PRODUCTS
    ]
    await catalogue.bulk_upsert(session, supplier.id, BulkUpsert(products=products))
    await shops.open_shop(
        session,
        settings,
        shopkeeper.id,
        ShopCreate(
            slug="xiaolin", blurb="云南的好茶，我自己喝过才上架。Teas from Yunnan I drink myself."
        ),
    )
    for product in await catalogue.sellable_products(
        session, [p.id for p in await catalogue.supplier_product_rows(session, supplier.id)]
    ):
        await shops.add_product(
            session,
            settings,
            shopkeeper.id,
            SelectionAdd(product_id=product.id, markup_bps=500, blurb=DEMO_BLURBS.get(product.ref)),
        )
    shop = await shops.shop_of(session, shopkeeper.id)
    rows = await catalogue.supplier_product_rows(session, supplier.id)
    puer = next(p.id for p in rows if p.ref == "PUER-357")
    # Fixed, readable codes so the README can point at them; real codes are random.
    session.add_all(
        [
            ShareLink(code=DEMO_LINK_CODES[0], shop_id=shop.id, product_id=puer, label="家人群"),
            ShareLink(code=DEMO_LINK_CODES[1], shop_id=shop.id, product_id=None, label="朋友圈"),
        ]
    )
    await session.flush()
    await _demo_campaign(session, supplier.id, shopkeeper.id, puer)
    return True


async def _demo_campaign(
    session: AsyncSession, supplier_id: uuid.UUID, keeper_id: uuid.UUID, product_id: uuid.UUID
) -> None:
    """A brand campaign on the 2019 Pu-erh, warming up now and selling an hour after seeding
    for a week, with the demo shop signed up: the share link shows its price and countdown."""
    settings = get_settings()
    (variant,) = [
        v
        for v in (await catalogue.variants_for(session, [product_id]))[product_id]
        if v.sku == "PUER-357-2019"
    ]
    now = utcnow()
    campaign = await campaigns.create(
        session,
        supplier_id,
        CampaignIn(
            title="云南春茶超级品牌团 Spring tea brand week",
            brief=Brief(
                selling_points=["2019 临沧生茶，七年陈化", "产地直发，假一赔十"],
                share_text="普洱茶饼限时 8 折，群里的朋友先抢！",
            ),
            boost_bps=300,
            budgets=[BudgetIn(currency="CNY", amount_minor=50_000)],
            warm_up_at=now,
            starts_at=now + timedelta(hours=1),
            ends_at=now + timedelta(days=7, hours=1),
            items=[ItemIn(variant_id=variant.id, price_minor=10_240, allocated_units=50)],
        ),
    )
    await campaigns.schedule(session, settings, supplier_id, campaign.id)
    await campaigns.join(session, keeper_id, campaign.id)
