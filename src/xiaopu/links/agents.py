"""Who opened a link: a chat app's preview fetcher, a bot, or a person's browser."""

from __future__ import annotations

import hashlib
import re
from enum import StrEnum
from functools import lru_cache


class AgentClass(StrEnum):
    preview = "preview"
    bot = "bot"
    mobile = "mobile"
    desktop = "desktop"
    unknown = "unknown"


# Fetchers that render link previews in chats and feeds: they get the Open Graph page.
_PREVIEW = re.compile(
    r"facebookexternalhit|facebot|twitterbot|slackbot|slack-imgproxy|discordbot|telegrambot|"
    r"whatsapp|linkedinbot|skypeuripreview|pinterest|redditbot|embedly|vkshare|line-poker|"
    r"iframely|bitlybot|tumblr|xing-contenttabreceiver|viber|snapchat|applebot|"
    r"google-pagerenderer|yahoo! slurp|qqbrowser-preview|wechat-preview|dingtalkbot|bytespider",
    re.IGNORECASE,
)
_BOT = re.compile(
    r"bot\b|bot/|crawler|spider|slurp|curl/|wget/|python-requests|python-httpx|aiohttp|"
    r"go-http-client|java/|okhttp|headlesschrome|phantomjs|lighthouse|monitor|uptime|scrapy|"
    r"httpclient|libwww|feedfetcher|preview",
    re.IGNORECASE,
)
_MOBILE = re.compile(r"mobile|android|iphone|ipad|micromessenger|alipayclient", re.IGNORECASE)


@lru_cache(maxsize=8192)
def classify(user_agent: str) -> AgentClass:
    """Cached: the same few thousand user agents make nearly all traffic."""
    if not user_agent:
        return AgentClass.unknown
    if _PREVIEW.search(user_agent):
        return AgentClass.preview
    if _BOT.search(user_agent):
        return AgentClass.bot
    if _MOBILE.search(user_agent):
        return AgentClass.mobile
    return AgentClass.desktop


@lru_cache(maxsize=8192)
def classify_raw(user_agent: bytes) -> AgentClass:
    """classify() for the header as it arrives (the share redirect's hot path), with a cache
    of its own: classify()'s would only hold the same answers a second time."""
    return classify.__wrapped__(user_agent.decode("latin-1"))


def visitor_hash(key: bytes, client_ip: str, user_agent: bytes) -> str:
    """A keyed hash standing in for a visitor without a cookie; the raw IP is never stored.

    Keyed BLAKE2b is a MAC in its own right and, unlike OpenSSL's HMAC, costs well under a
    microsecond.
    """
    digest = hashlib.blake2b(
        client_ip.encode() + b"\n" + user_agent,
        key=key[:64],
        digest_size=21,
        person=b"xp-visitor",
    ).hexdigest()
    return "h" + digest
