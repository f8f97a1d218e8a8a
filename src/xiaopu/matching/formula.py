"""The matching formula's constants and price bands (pure; README's "Matching" section states it).

Every factor of a score is a whole number of basis points shown to the reader as a reason, and
the score is their product, so anyone can recompute it from the answer:

    product for a shop:  score = category × band × conversion × (10000 − return rate)
                                 × (10000 + commission) × (10000 + similar shops) div 10^16
    shop for a product:  score = activity × category × band × (10000 − return rate) div 10^8
"""

from __future__ import annotations

# A shop's activity in a category or price band: an ordered unit counts as ten opened links.
ORDER_WEIGHT = 10
# A shop's shares are smoothed towards the platform's, as if it had this much more activity
# spread like everyone's: a shop with little history is not ruled by one click.
PRIOR_ACTIVITY = 20
# A product's conversion and return rate are smoothed towards the platform's, as if it had this
# many more visitors and units sold at the platform's rates: three visitors and one order is not
# a 33% product.
PRIOR_VISITORS = 100
PRIOR_UNITS = 20

WINDOW_DAYS = 30  # local days of XIAOPU_TIME_ZONE, ending with yesterday
RECENT_DAYS = 7
PER_SHOP = 50  # products kept per shop
SHOPS_PER_CELL = 100  # shops kept per (category, price band)
# Candidates a shop's products are ranked among: the best products by quality of each of its
# top categories × top price bands, and those most sold by shops like it.
CANDIDATE_CATEGORIES = 4
CANDIDATE_BANDS = 3
CANDIDATES_PER_CELL = 20
PEER_CANDIDATES = 40

# Upper bounds (exclusive) of the price bands, on a product's lowest variant price in minor
# units: under 30, 30–100, 100–300, 300–1,000 and 1,000 or more (yuan, for CNY).
BAND_UPPER_MINOR = (3_000, 10_000, 30_000, 100_000)
BANDS = len(BAND_UPPER_MINOR) + 1


def band_of(price_minor: int) -> int:
    for band, upper in enumerate(BAND_UPPER_MINOR):
        if price_minor < upper:
            return band
    return len(BAND_UPPER_MINOR)


def band_bounds(band: int) -> tuple[int, int | None]:
    """(lowest price, first price above) of a band, in minor units; None: no upper bound."""
    low = 0 if band == 0 else BAND_UPPER_MINOR[band - 1]
    high = BAND_UPPER_MINOR[band] if band < len(BAND_UPPER_MINOR) else None
    return low, high


def band_sql(column: str) -> str:
    """band_of() as SQL over a price column."""
    arms = " ".join(f"WHEN {column} < {upper} THEN {b}" for b, upper in enumerate(BAND_UPPER_MINOR))
    return f"(CASE {arms} ELSE {len(BAND_UPPER_MINOR)} END)"


def product_score(
    category_bps: int,
    band_bps: int,
    conversion_bps: int,
    return_rate_bps: int,
    commission_bps: int,
    peer_bps: int,
) -> int:
    """The score of a product for a shop, as the job computes it in SQL."""
    product = (
        category_bps
        * band_bps
        * conversion_bps
        * (10_000 - return_rate_bps)
        * (10_000 + commission_bps)
        * (10_000 + peer_bps)
    )
    return product // 10**16


def shop_score(activity: int, category_bps: int, band_bps: int, return_rate_bps: int) -> int:
    """The score of a shop for a product's category and price band, as the job computes it."""
    return activity * category_bps * band_bps * (10_000 - return_rate_bps) // 10**8
