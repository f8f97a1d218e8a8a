"""Phone normalisation: the fast path for mainland mobiles agrees with the parser everywhere."""

from __future__ import annotations

import random

import phonenumbers
import pytest

from xiaopu.kit.contact import _CN_MOBILE, DEFAULT_PHONE_REGION, normalize_phone


def _parsed(value: str) -> str | None:
    """What the phonenumbers parser alone makes of a number (None: refused)."""
    try:
        number = phonenumbers.parse(value, DEFAULT_PHONE_REGION)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_valid_number(number):
        return None
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def test_every_number_the_fast_path_takes_is_what_the_parser_makes_of_it() -> None:
    rng = random.Random(20261206)
    taken = 0
    # Every four-digit start an 11-digit number can have, with and without +86, and 0086 and
    # 86 before it (left to the parser).
    for start in range(1000, 2000):
        for _ in range(12):
            digits = f"{start}{rng.randrange(10**7):07d}"
            for value in (digits, f"+86{digits}", f"86{digits}", f"0086{digits}"):
                expected = _parsed(value)
                if _CN_MOBILE.fullmatch(value):
                    taken += 1
                    assert expected == "+86" + digits, value
                if expected is None:
                    with pytest.raises(ValueError, match="not a valid phone number"):
                        normalize_phone(value)
                else:
                    assert normalize_phone(value) == expected, value
    assert taken > 10_000  # the fast path does take the common form


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("+86 138 0013 8000", "+8613800138000"),
        ("138-0013-8000", "+8613800138000"),
        ("１３８００１３８０００", "+8613800138000"),  # full-width digits: the parser's way
        ("010 8888 6666", "+861088886666"),
        ("+852 5123 4567", "+85251234567"),
    ],
)
def test_other_forms_go_to_the_parser(value: str, expected: str) -> None:
    assert not _CN_MOBILE.fullmatch(value)
    assert normalize_phone(value) == expected
