"""What the benchmarks share: where PostgreSQL is, free ports, serving, waiting, and wrk."""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from xiaopu import devdb

JWT = "bench-jwt-secret-0123456789abcdef0123456789"
ATTRIBUTION = "bench-attribution-secret-0123456789abcdef"


def server_url() -> str:
    configured = os.environ.get("XIAOPU_BENCH_DATABASE_URL")
    if configured:
        return configured
    if devdb.server_answers(devdb.LOCAL_SERVER_URL):
        return devdb.LOCAL_SERVER_URL
    return devdb.embedded_server_url(ROOT / ".data" / "pg-bench")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_ready(port: int, path: str) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            httpx.get(f"http://127.0.0.1:{port}{path}", timeout=1)
            return
        except httpx.HTTPError:
            time.sleep(0.2)
    raise RuntimeError("server did not start")


def wrk(
    port: int, seconds: int, connections: int, script: Path | None, path: str
) -> dict[str, float]:
    args = ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--latency"]
    if script is not None:
        args += ["-s", str(script)]
    out = subprocess.run(
        [*args, f"http://127.0.0.1:{port}{path}"], capture_output=True, text=True, check=True
    ).stdout  # XIAOPU_BENCH_CODES reaches the Lua script through our environment
    return parse_wrk(out)


def parse_wrk(out: str) -> dict[str, float]:
    """wrk's printout (with --latency): requests, req/s, p50 and p99 in ms, non-2xx answers
    and whether it saw socket errors."""

    def latency(label: str) -> float:
        match = re.search(rf"{label}\s+([\d.]+)(us|ms|s)", out)
        if match is None:
            return float("nan")
        value, unit = float(match.group(1)), match.group(2)
        return value / 1000 if unit == "us" else value * 1000 if unit == "s" else value

    requests = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    errors = re.search(r"Socket errors: (.*)", out)
    return {
        "requests": requests,
        "rps": rps,
        "p50": latency("50%"),
        "p99": latency("99%"),
        "bad": int(non2xx.group(1)) if non2xx else 0,
        "socket_errors": 1 if errors else 0,
    }


def cpu_seconds(pid: int) -> float:
    """User plus system CPU a process has used so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def serve(command: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def need(tool: str, package: str) -> None:
    """Install a Debian package for a missing tool where we can (root), else stop."""
    if shutil.which(tool) is None and os.geteuid() == 0:
        subprocess.run(["apt-get", "install", "-y", "-qq", package], check=False)
    if shutil.which(tool) is None:
        sys.exit(f"{tool} is needed: apt-get install {package}")
