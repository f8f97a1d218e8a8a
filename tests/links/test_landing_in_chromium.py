"""The share link's landing (Open Graph) page renders in a real headless Chromium."""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from tests.links.helpers import product_link_code

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (make test installs it)")
async def test_landing_page_renders(
    client: httpx.AsyncClient, session: AsyncSession, tmp_path: Path
) -> None:
    code = await product_link_code(client, session)
    page = await client.get(f"/s/{code}", headers={"user-agent": "TelegramBot (like TwitterBot)"})
    assert page.status_code == 200
    landing = tmp_path / "landing.html"
    landing.write_bytes(page.content)

    assert CHROMIUM is not None
    process = await asyncio.create_subprocess_exec(
        CHROMIUM,
        *FLAGS,
        f"--user-data-dir={tmp_path / 'profile'}",
        f"--screenshot={tmp_path / 'shot.png'}",
        "--window-size=420,800",
        "--dump-dom",
        landing.as_uri(),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
    )
    dom, _ = await asyncio.wait_for(process.communicate(), timeout=60)
    assert process.returncode == 0
    rendered = dom.decode()
    assert "<h1>云南普洱茶饼 357g</h1>" in rendered
    assert "¥140.80" in rendered
    shot = tmp_path / "shot.png"
    assert shot.exists()
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
