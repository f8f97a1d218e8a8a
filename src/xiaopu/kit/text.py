"""Display names and texts people write: normalised to NFC, refusing invisible characters."""

from __future__ import annotations

import unicodedata
from typing import Annotated

from pydantic import AfterValidator

# Control, format (bidi overrides, zero-width characters), unassigned, private-use and surrogate
# code points, and line and paragraph separators: they let a name look like another's in a chat
# preview, or hide text, and no honest name needs them.
REFUSED_CATEGORIES = frozenset({"Cc", "Cf", "Cn", "Co", "Cs", "Zl", "Zp"})
# Multi-line texts (descriptions, blurbs) keep their line breaks and tabs.
MULTILINE_ALLOWED = frozenset("\n\t")


_UNNAMED = {"Cc": "control", "Cn": "unassigned", "Co": "private use", "Cs": "surrogate"}


def _describe(char: str) -> str:
    name = unicodedata.name(char, "") or _UNNAMED.get(unicodedata.category(char), "unnamed")
    return f"U+{ord(char):04X} ({name})"


def _normalised(value: str, *, allowed: frozenset[str], what: str) -> str:
    text = unicodedata.normalize("NFC", value).strip()
    for char in text:
        if unicodedata.category(char) in REFUSED_CATEGORIES and char not in allowed:
            raise ValueError(
                f"{_describe(char)} is not allowed in {what}: control, format (invisible or "
                "direction-changing), private-use and unassigned characters are refused"
            )
    # A few characters (composition exclusions) become two under NFC: refused rather than let
    # the stored text outgrow the length limit the request was checked against.
    if len(text) > len(value.strip()):
        grows = [c for c in value if len(unicodedata.normalize("NFC", c)) > 1]
        culprit = _describe(grows[0]) if grows else "a character"
        raise ValueError(f"{culprit} becomes two characters in NFC: send its decomposed form")
    return text


def _display_name(value: str) -> str:
    return _normalised(value, allowed=frozenset(), what="a name")


def _multiline_text(value: str) -> str:
    value = value.replace("\r\n", "\n").replace("\r", "\n")
    return _normalised(value, allowed=MULTILINE_ALLOWED, what="this text")


DisplayName = Annotated[str, AfterValidator(_display_name)]
"""A one-line name or title people see (shops, suppliers, products, people, variants): NFC,
surrounding whitespace stripped, no invisible or unassigned characters. Length limits are the
field's own."""

MultilineText = Annotated[str, AfterValidator(_multiline_text)]
"""A description or blurb: as DisplayName, but line breaks (CRLF and CR become LF) and tabs
are kept."""
