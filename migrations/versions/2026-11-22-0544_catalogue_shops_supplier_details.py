"""catalogue shops supplier details

Revision ID: ab72fbe8a393
Revises: 5b1f0c2a9e77
Create Date: 2026-11-22 05:44:44.193663+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

# Frozen copy of the tree at the time of this migration; later changes get migrations of their own.
CATEGORIES = (
    ("food", None, "食品生鲜", "Food & Fresh"),
    ("food.tea", "food", "茶叶", "Tea"),
    ("food.snacks", "food", "休闲零食", "Snacks"),
    ("food.fruit", "food", "新鲜水果", "Fresh Fruit"),
    ("food.grain-oil", "food", "粮油调味", "Grain, Oil & Seasoning"),
    ("food.specialty", "food", "地方特产", "Regional Specialties"),
    ("beauty", None, "美妆个护", "Beauty & Personal Care"),
    ("beauty.skincare", "beauty", "护肤", "Skincare"),
    ("beauty.makeup", "beauty", "彩妆", "Makeup"),
    ("beauty.hair", "beauty", "洗护发", "Hair Care"),
    ("apparel", None, "服饰鞋包", "Apparel, Shoes & Bags"),
    ("apparel.women", "apparel", "女装", "Women's Clothing"),
    ("apparel.men", "apparel", "男装", "Men's Clothing"),
    ("apparel.shoes", "apparel", "鞋靴", "Shoes"),
    ("apparel.bags", "apparel", "箱包", "Bags & Luggage"),
    ("baby", None, "母婴", "Mother & Baby"),
    ("baby.formula", "baby", "奶粉辅食", "Formula & Baby Food"),
    ("baby.diapers", "baby", "尿裤湿巾", "Diapers & Wipes"),
    ("baby.toys", "baby", "玩具", "Toys"),
    ("home", None, "家居生活", "Home & Living"),
    ("home.kitchen", "home", "厨房用品", "Kitchen"),
    ("home.cleaning", "home", "清洁用品", "Cleaning"),
    ("home.textiles", "home", "家纺", "Home Textiles"),
    ("digital", None, "数码家电", "Electronics & Appliances"),
    ("digital.phone-accessories", "digital", "手机配件", "Phone Accessories"),
    ("digital.small-appliances", "digital", "生活电器", "Small Appliances"),
    ("health", None, "医药保健", "Health"),
    ("health.supplements", "health", "营养保健", "Supplements"),
    ("agri", None, "农资园艺", "Farm & Garden"),
    ("agri.seeds", "agri", "种子种苗", "Seeds & Seedlings"),
)

revision: str = "ab72fbe8a393"
down_revision: str | None = "5b1f0c2a9e77"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "categories",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("parent_id", sa.String(length=64), nullable=True),
        sa.Column("name_zh", sa.String(length=64), nullable=False),
        sa.Column("name_en", sa.String(length=64), nullable=False),
        sa.ForeignKeyConstraint(
            ["parent_id"], ["categories.id"], name=op.f("fk_categories_parent_id_categories")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_categories")),
    )
    op.create_table(
        "products",
        sa.Column("supplier_id", sa.Uuid(), nullable=False),
        sa.Column("ref", sa.String(length=64), nullable=False),
        sa.Column("title", sa.String(length=200), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("image_urls", postgresql.ARRAY(sa.String(length=2048)), nullable=False),
        sa.Column("category_id", sa.String(length=64), nullable=False),
        sa.Column("brand", sa.String(length=80), nullable=True),
        sa.Column("return_window_days", sa.SmallInteger(), nullable=False),
        sa.Column("commission_bps", sa.SmallInteger(), nullable=False),
        sa.Column("markup_ceiling_bps", sa.SmallInteger(), nullable=False),
        sa.Column(
            "status",
            sa.Enum(
                "draft",
                "active",
                "archived",
                name="product_status",
                native_enum=False,
                create_constraint=True,
                length=32,
            ),
            nullable=False,
        ),
        sa.Column("search_terms", sa.Text(), nullable=False),
        sa.Column(
            "search",
            postgresql.TSVECTOR(),
            sa.Computed("to_tsvector('simple', search_terms)", persisted=True),
            nullable=False,
        ),
        sa.Column("max_commission_bps", sa.SmallInteger(), nullable=False),
        sa.Column("min_price_minor", sa.BigInteger(), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "commission_bps BETWEEN 0 AND 10000", name=op.f("ck_products_commission_bps_range")
        ),
        sa.CheckConstraint(
            "markup_ceiling_bps BETWEEN 0 AND 10000", name=op.f("ck_products_markup_ceiling_range")
        ),
        sa.CheckConstraint(
            "return_window_days BETWEEN 0 AND 90", name=op.f("ck_products_return_window_range")
        ),
        sa.ForeignKeyConstraint(
            ["category_id"], ["categories.id"], name=op.f("fk_products_category_id_categories")
        ),
        sa.ForeignKeyConstraint(
            ["supplier_id"],
            ["suppliers.id"],
            name=op.f("fk_products_supplier_id_suppliers"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_products")),
        sa.UniqueConstraint("supplier_id", "ref", name=op.f("uq_products_supplier_id_ref")),
    )
    op.create_index(
        "ix_products_search", "products", ["search"], unique=False, postgresql_using="gin"
    )
    op.create_index(op.f("ix_products_status"), "products", ["status", "category_id"], unique=False)
    op.create_table(
        "shops",
        sa.Column("owner_account_id", sa.Uuid(), nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("slug", sa.String(length=64), nullable=False),
        sa.Column(
            "level",
            sa.Enum(
                "trial",
                "standard",
                name="shop_level",
                native_enum=False,
                create_constraint=True,
                length=32,
            ),
            nullable=False,
        ),
        sa.Column("completed_sales", sa.Integer(), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("completed_sales >= 0", name=op.f("ck_shops_completed_sales_range")),
        sa.ForeignKeyConstraint(
            ["owner_account_id"],
            ["accounts.id"],
            name=op.f("fk_shops_owner_account_id_accounts"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_shops")),
        sa.UniqueConstraint("owner_account_id", name=op.f("uq_shops_owner_account_id")),
        sa.UniqueConstraint("slug", name=op.f("uq_shops_slug")),
    )
    op.create_table(
        "shop_products",
        sa.Column("shop_id", sa.Uuid(), nullable=False),
        sa.Column("product_id", sa.Uuid(), nullable=False),
        sa.Column("blurb", sa.Text(), nullable=True),
        sa.Column("markup_bps", sa.SmallInteger(), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "markup_bps BETWEEN 0 AND 10000", name=op.f("ck_shop_products_markup_bps_range")
        ),
        sa.ForeignKeyConstraint(
            ["product_id"],
            ["products.id"],
            name=op.f("fk_shop_products_product_id_products"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["shop_id"],
            ["shops.id"],
            name=op.f("fk_shop_products_shop_id_shops"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_shop_products")),
        sa.UniqueConstraint(
            "shop_id", "product_id", name=op.f("uq_shop_products_shop_id_product_id")
        ),
    )
    op.create_index(
        op.f("ix_shop_products_product_id"), "shop_products", ["product_id"], unique=False
    )
    op.create_table(
        "variants",
        sa.Column("product_id", sa.Uuid(), nullable=False),
        sa.Column("supplier_id", sa.Uuid(), nullable=False),
        sa.Column("sku", sa.String(length=64), nullable=False),
        sa.Column("options", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("price_minor", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("stock", sa.Integer(), nullable=False),
        sa.Column("weight_grams", sa.Integer(), nullable=True),
        sa.Column("commission_bps", sa.SmallInteger(), nullable=True),
        sa.Column("low_stock_threshold", sa.Integer(), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("currency ~ '^[A-Z]{3}$'", name=op.f("ck_variants_currency_code")),
        sa.CheckConstraint(
            "commission_bps IS NULL OR commission_bps BETWEEN 0 AND 10000",
            name=op.f("ck_variants_commission_bps_range"),
        ),
        sa.CheckConstraint("price_minor >= 0", name=op.f("ck_variants_price_not_negative")),
        sa.CheckConstraint("stock >= 0", name=op.f("ck_variants_stock_not_negative")),
        sa.ForeignKeyConstraint(
            ["product_id"],
            ["products.id"],
            name=op.f("fk_variants_product_id_products"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["supplier_id"],
            ["suppliers.id"],
            name=op.f("fk_variants_supplier_id_suppliers"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_variants")),
        sa.UniqueConstraint("supplier_id", "sku", name=op.f("uq_variants_supplier_id_sku")),
    )
    op.create_index(op.f("ix_variants_product_id"), "variants", ["product_id"], unique=False)
    op.add_column("suppliers", sa.Column("contact_name", sa.String(length=80), nullable=True))
    op.add_column("suppliers", sa.Column("contact_email", sa.String(length=254), nullable=True))
    op.add_column("suppliers", sa.Column("contact_phone", sa.String(length=20), nullable=True))
    op.add_column(
        "suppliers",
        sa.Column(
            "payout_method",
            sa.Enum(
                "bank_transfer",
                "alipay",
                "wechat_pay",
                name="payout_method",
                native_enum=False,
                create_constraint=True,
                length=32,
            ),
            nullable=True,
        ),
    )
    op.add_column(
        "suppliers", sa.Column("payout_account_name", sa.String(length=120), nullable=True)
    )
    op.add_column(
        "suppliers", sa.Column("payout_account_number", sa.String(length=64), nullable=True)
    )
    op.add_column("suppliers", sa.Column("status_reason", sa.String(length=500), nullable=True))

    op.bulk_insert(
        sa.table(
            "categories",
            sa.column("id", sa.String),
            sa.column("parent_id", sa.String),
            sa.column("name_zh", sa.String),
            sa.column("name_en", sa.String),
        ),
        [
            {"id": id_, "parent_id": parent, "name_zh": zh, "name_en": en}
            for id_, parent, zh, en in CATEGORIES
        ],
    )


def downgrade() -> None:
    op.drop_column("suppliers", "status_reason")
    op.drop_column("suppliers", "payout_account_number")
    op.drop_column("suppliers", "payout_account_name")
    op.drop_column("suppliers", "payout_method")
    op.drop_column("suppliers", "contact_phone")
    op.drop_column("suppliers", "contact_email")
    op.drop_column("suppliers", "contact_name")
    op.drop_index(op.f("ix_variants_product_id"), table_name="variants")
    op.drop_table("variants")
    op.drop_index(op.f("ix_shop_products_product_id"), table_name="shop_products")
    op.drop_table("shop_products")
    op.drop_table("shops")
    op.drop_index(op.f("ix_products_status"), table_name="products")
    op.drop_index("ix_products_search", table_name="products", postgresql_using="gin")
    op.drop_table("products")
    op.drop_table("categories")
