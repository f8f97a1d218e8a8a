"""The language a reader's browser asks for: Chinese (the default) or English. The storefront's
pages and the share link's preview (links/redirect.py) pick their words by it."""

from __future__ import annotations

from typing import Literal

Lang = Literal["zh", "en"]
DEFAULT: Lang = "zh"


def negotiate(accept_language: str | None) -> Lang:
    """English when the browser ranks some English above every Chinese; else Chinese."""
    if not accept_language:
        return DEFAULT
    best: dict[Lang, float] = {"zh": 0.0, "en": 0.0}
    for part in accept_language.split(",")[:20]:
        tag, _, params = part.strip().partition(";")
        quality = 1.0
        params = params.strip()
        if params.startswith("q="):
            try:
                quality = float(params[2:])
            except ValueError:
                quality = 0.0
        primary = tag.strip().lower().split("-")[0]
        if primary in best:
            lang: Lang = "zh" if primary == "zh" else "en"
            best[lang] = max(best[lang], quality)
    return "en" if best["en"] > best["zh"] else DEFAULT
