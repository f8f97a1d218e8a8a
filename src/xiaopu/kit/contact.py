"""Email and phone validation and normalisation, for logins and contact details."""

from __future__ import annotations

import re

import phonenumbers
from email_validator import EmailNotValidError, validate_email

# Numbers written without a country code are read as mainland China numbers.
DEFAULT_PHONE_REGION = "CN"


def _mobile_pattern(region: str) -> str:
    metadata = phonenumbers.PhoneMetadata.metadata_for_region(region)
    mobile = metadata.mobile if metadata is not None else None
    if mobile is None or mobile.national_number_pattern is None:
        raise RuntimeError(f"phonenumbers has no mobile numbers for {region}")
    return str(mobile.national_number_pattern)


# Most numbers we see are mainland mobiles written as 11 ASCII digits (13800138000, or +86
# before them). Those are read straight off the library's own metadata for mobiles: none of
# them begins with a national or carrier prefix its parser would strip (0, 11, 12, 179), so the
# number is its digits, and valid. Parsing costs tens of microseconds on every order; this,
# about one. Anything else goes to the parser.
_CN_MOBILE = re.compile(rf"(?:\+86)?({_mobile_pattern(DEFAULT_PHONE_REGION)})", re.ASCII)


def normalize_email(value: str) -> str:
    try:
        result = validate_email(value, check_deliverability=False)
    except EmailNotValidError as exc:
        raise ValueError(f"not a valid email address: {exc}") from exc
    # Mailbox names are case-insensitive in practice; one spelling per person.
    return result.normalized.lower()


def normalize_phone(value: str) -> str:
    """E.164 form (+8613800138000) of a valid mobile or fixed number."""
    mobile = _CN_MOBILE.fullmatch(value)
    if mobile is not None:
        return "+86" + mobile.group(1)
    try:
        number = phonenumbers.parse(value, DEFAULT_PHONE_REGION)
    except phonenumbers.NumberParseException as exc:
        raise ValueError("not a valid phone number") from exc
    if not phonenumbers.is_valid_number(number):
        raise ValueError("not a valid phone number")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
