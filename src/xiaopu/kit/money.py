"""Money: ISO 4217 currency codes, integer minor units, and the one rounding rule."""

from __future__ import annotations

from decimal import Decimal
from functools import lru_cache
from typing import Annotated

import pycountry
from iso4217 import Currency
from pydantic import AfterValidator, Field


def check_currency(code: str) -> str:
    if len(code) != 3 or pycountry.currencies.get(alpha_3=code) is None:
        raise ValueError(f"{code!r} is not an ISO 4217 currency code")
    return code


CurrencyCode = Annotated[
    str,
    Field(min_length=3, max_length=3, pattern=r"^[A-Z]{3}$", examples=["CNY"]),
    AfterValidator(check_currency),
]
MinorAmount = Annotated[int, Field(ge=0, le=10**12, description="Amount in minor units (分).")]
BasisPoints = Annotated[int, Field(ge=0, le=10_000, description="Basis points: 100 = 1%.")]


def apply_bps(amount: int, bps: int) -> int:
    """`amount × bps / 10000`, rounded half-up on minor units (the platform's one rounding)."""
    return (amount * bps + 5000) // 10000


def shop_price(price_minor: int, markup_bps: int, ceiling_bps: int) -> int:
    """What a buyer pays per unit in a shop: the supplier's price plus the shop's markup, capped
    by the supplier's current ceiling (it may have been lowered after the shop picked one)."""
    return price_minor + apply_bps(price_minor, min(markup_bps, ceiling_bps))


@lru_cache(maxsize=512)
def exponent(currency: str) -> int:
    """The currency's ISO 4217 minor-unit exponent: 2 for CNY, 0 for JPY, 3 for KWD. Codes
    without minor units (gold, test codes) count as 0."""
    return Currency(currency).exponent or 0


def major_units(amount_minor: int, currency: str) -> str:
    """An amount for people to read, exact to its minor unit: 1234 CNY is "12.34", 1234 JPY is
    "1234", 1234 KWD is "1.234". Never through a float."""
    places = exponent(currency)
    value = Decimal(amount_minor).scaleb(-places)
    return f"{value:.{places}f}"


def display(amount_minor: int, currency: str) -> str:
    """`major_units` with the currency: "¥12.34" for CNY (what a buyer in China reads), else
    "12.34 USD"."""
    if currency == "CNY":
        return f"¥{major_units(amount_minor, currency)}"
    return f"{major_units(amount_minor, currency)} {currency}"
