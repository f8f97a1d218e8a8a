"""Attribution tokens: verified without the database, forgeries refused, expiry reported."""

from __future__ import annotations

import base64
import hmac
import uuid
from datetime import timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from xiaopu.config import Settings
from xiaopu.kit.clock import Clock
from xiaopu.kit.ids import new_id
from xiaopu.links import service, tokens
from xiaopu.links.tokens import InvalidAttributionToken


def _token(settings: Settings, clock: Clock) -> str:
    return tokens.sign(settings.attribution_key, new_id(), new_id(), new_id(), clock.now())


def test_round_trip(settings: Settings, test_clock: Clock) -> None:
    click, link, shop = new_id(), new_id(), new_id()
    token = tokens.sign(settings.attribution_key, click, link, shop, test_clock.now())
    assert len(token) < 100
    attribution, expired = service.check_attribution(settings, token)
    assert (attribution.click_id, attribution.link_id, attribution.shop_id) == (click, link, shop)
    assert expired is False


@pytest.mark.parametrize(
    "damage",
    [
        lambda t: t[:-1],  # truncated
        lambda t: t[:20],
        lambda t: ("A" if t[5] != "A" else "B").join([t[:5], t[6:]]),  # a flipped character
        lambda t: t + "AA",
        lambda t: "",
        lambda t: "not base64 !!",
    ],
)
def test_damaged_tokens_are_refused(settings: Settings, test_clock: Clock, damage: object) -> None:
    token = _token(settings, test_clock)
    with pytest.raises(InvalidAttributionToken):
        service.check_attribution(settings, damage(token))  # type: ignore[operator]


def test_a_token_signed_with_another_key_is_refused(settings: Settings, test_clock: Clock) -> None:
    foreign = tokens.sign(b"someone else's key", new_id(), new_id(), new_id(), test_clock.now())
    with pytest.raises(InvalidAttributionToken) as caught:
        service.check_attribution(settings, foreign)
    assert caught.value.code == "invalid_attribution_token"


def test_expiry_follows_the_attribution_window(settings: Settings, test_clock: Clock) -> None:
    test_clock.freeze()
    token = _token(settings, test_clock)
    test_clock.advance(timedelta(days=settings.attribution_window_days) - timedelta(seconds=1))
    assert service.check_attribution(settings, token)[1] is False
    test_clock.advance(timedelta(seconds=2))
    attribution, expired = service.check_attribution(settings, token)
    assert expired is True
    assert attribution.shop_id  # still authentic: checkout ignores it rather than refusing it


@given(
    key=st.binary(min_size=1, max_size=200),
    ids=st.lists(st.uuids(), min_size=3, max_size=3),
    issued=st.integers(min_value=0, max_value=2**32 - 1),
)
def test_the_redirects_signer_makes_tokens_verify_accepts(
    key: bytes, ids: list[uuid.UUID], issued: int
) -> None:
    click, link, shop = ids
    token = tokens.Signer(key).sign(click.bytes, link.bytes + shop.bytes, issued).decode()
    attribution = tokens.verify(key, token)
    assert (attribution.click_id, attribution.link_id, attribution.shop_id) == (click, link, shop)
    assert int(attribution.issued_at.timestamp()) == issued
    raw = base64.urlsafe_b64decode(token)
    assert raw[-16:] == hmac.digest(key, raw[:-16], "sha256")[:16]


@given(key=st.binary(max_size=200), body=st.binary(max_size=200))
def test_the_signers_mac_is_hmac_sha256(key: bytes, body: bytes) -> None:
    assert tokens.Signer(key).mac(body) == hmac.digest(key, body, "sha256")[:16]
