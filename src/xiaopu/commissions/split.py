"""The one rule that splits what a buyer paid for a line into its parts (pure, no database)."""

from __future__ import annotations

from xiaopu.kit.money import apply_bps
from xiaopu.models.ledger import Beneficiary, PartKind, Rule

Part = tuple[Beneficiary, PartKind]
SHOP_COMMISSION: Part = (Beneficiary.shop, PartKind.commission)
SHOP_MARKUP: Part = (Beneficiary.shop, PartKind.markup)
SHOP_BOOST: Part = (Beneficiary.shop, PartKind.boost)
PLATFORM_FEE: Part = (Beneficiary.platform, PartKind.platform_fee)
PLATFORM_MARKUP: Part = (Beneficiary.platform, PartKind.markup)
SUPPLIER_SHARE: Part = (Beneficiary.supplier, PartKind.supplier_share)


def split_line(
    base: int, markup: int, commission_bps: int, fee_bps: int, rule: Rule, boost_bps: int = 0
) -> dict[Part, int]:
    """The parts of `base + markup`, which they always add up to exactly.

    commission = (base × commission_bps + 5000) // 10000, and likewise a campaign's boost and
    the platform fee (half-up on minor units); the shop earns commission + boost + markup; the
    supplier is owed the rest of the base. Under the self-purchase policy `none` the shop earns
    nothing: the commission and the boost stay with the supplier and the markup goes to the
    platform.
    """
    commission = apply_bps(base, commission_bps)
    # A campaign checks that commission + boost fit in the base; should they not, the boost
    # gives way, and so does the fee after both, so the supplier's share is never negative.
    boost = min(apply_bps(base, boost_bps), base - commission)
    fee = min(apply_bps(base, fee_bps), base - commission - boost)
    if rule is Rule.self_purchase_none:
        return {
            SHOP_COMMISSION: 0,
            SHOP_BOOST: 0,
            SHOP_MARKUP: 0,
            PLATFORM_FEE: fee,
            PLATFORM_MARKUP: markup,
            SUPPLIER_SHARE: base - fee,
        }
    return {
        SHOP_COMMISSION: commission,
        SHOP_BOOST: boost,
        SHOP_MARKUP: markup,
        PLATFORM_FEE: fee,
        PLATFORM_MARKUP: 0,
        SUPPLIER_SHARE: base - commission - boost - fee,
    }


def boost_of(base: int, commission_bps: int, boost_bps: int) -> int:
    """A line's boost as split_line computes it: what the line reserves of a campaign's budget
    (whoever ends up earning it, the money leaves the supplier's share the same way)."""
    commission = apply_bps(base, commission_bps)
    return min(apply_bps(base, boost_bps), base - commission)


def reversal(
    unit_price: int,
    unit_markup: int,
    units_before: int,
    units_after: int,
    commission_bps: int,
    fee_bps: int,
    rule: Rule,
    boost_bps: int = 0,
) -> dict[Part, int]:
    """What a refund takes back from each part when a line goes from `units_before` kept units
    to `units_after`: f(old base) − f(new base) per part. Summed over any sequence of partial
    refunds down to zero units this telescopes to the accrual exactly, so reversals never
    exceed what was accrued."""
    before = split_line(
        unit_price * units_before,
        unit_markup * units_before,
        commission_bps,
        fee_bps,
        rule,
        boost_bps,
    )
    after = split_line(
        unit_price * units_after,
        unit_markup * units_after,
        commission_bps,
        fee_bps,
        rule,
        boost_bps,
    )
    return {part: before[part] - after[part] for part in before}


def rounding_note(base: int, bps: int) -> str:
    """How a rate was applied, for the commission line's explanation."""
    exact = base * bps / 10000
    return f"half-up: ({base} × {bps} + 5000) // 10000 = {apply_bps(base, bps)} (exact {exact:g})"
