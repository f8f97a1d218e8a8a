"""Identifiers: time-ordered UUIDv7 keys, so new rows land at the right edge of indexes."""

from __future__ import annotations

import uuid

from uuid_utils import compat


def new_id() -> uuid.UUID:
    return compat.uuid7()
