"""Email and phone validation and normalisation, for logins and contact details."""

from __future__ import annotations

import phonenumbers
from email_validator import EmailNotValidError, validate_email

# Numbers written without a country code are read as mainland China numbers.
DEFAULT_PHONE_REGION = "CN"


def normalize_email(value: str) -> str:
    try:
        result = validate_email(value, check_deliverability=False)
    except EmailNotValidError as exc:
        raise ValueError(f"not a valid email address: {exc}") from exc
    # Mailbox names are case-insensitive in practice; one spelling per person.
    return result.normalized.lower()


def normalize_phone(value: str) -> str:
    """E.164 form (+8613800138000) of a valid mobile or fixed number."""
    try:
        number = phonenumbers.parse(value, DEFAULT_PHONE_REGION)
    except phonenumbers.NumberParseException as exc:
        raise ValueError("not a valid phone number") from exc
    if not phonenumbers.is_valid_number(number):
        raise ValueError("not a valid phone number")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
