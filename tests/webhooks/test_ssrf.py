"""Deliveries never reach internal addresses: the SSRF guard, unit and end to end."""

from __future__ import annotations

import ipaddress
import socket
import uuid
from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from tests.factories import supplier
from tests.webhooks.helpers import (
    attempt,
    attempts,
    deliveries,
    emit,
    new_endpoint,
    queued_jobs,
    the_delivery,
)
from tests.webhooks.receiver import Receiver
from xiaopu.models import DeliveryStatus, WebhookEndpoint, WebhookOwnerKind
from xiaopu.webhooks.ssrf import BlockedDestination, is_forbidden, resolve_allowed

LOOPBACK = ["127.0.0.1", "127.8.9.10", "::1", "::ffff:127.0.0.1"]
INTERNAL = [
    "10.0.0.1",
    "172.16.5.4",
    "192.168.1.1",
    "169.254.169.254",  # AWS, GCP and Azure metadata
    "100.100.100.200",  # Alibaba Cloud metadata
    "100.64.0.1",  # shared address space (carrier-grade NAT)
    "0.0.0.0",  # noqa: S104 - an address under test, not a bind
    "224.0.0.1",
    "240.0.0.1",
    "255.255.255.255",
    "fc00::1",
    "fd00:ec2::254",  # AWS metadata over IPv6
    "fe80::1",
    "ff02::1",
    "::",
    "::ffff:10.0.0.1",
    "::ffff:169.254.169.254",
    "2002:a00:1::",  # 6to4 wrapping 10.0.0.1
]
PUBLIC = ["8.8.8.8", "1.1.1.1", "203.0.114.1", "2001:4860:4860::8888"]


@pytest.mark.parametrize("address", LOOPBACK + INTERNAL)
def test_internal_addresses_are_forbidden(address: str) -> None:
    assert is_forbidden(ipaddress.ip_address(address), allow_loopback=False)


@pytest.mark.parametrize("address", INTERNAL)
def test_allowing_loopback_does_not_allow_other_internal_addresses(address: str) -> None:
    assert is_forbidden(ipaddress.ip_address(address), allow_loopback=True)


@pytest.mark.parametrize("address", LOOPBACK)
def test_loopback_is_allowed_only_when_asked(address: str) -> None:
    assert not is_forbidden(ipaddress.ip_address(address), allow_loopback=True)


@pytest.mark.parametrize("address", PUBLIC)
def test_public_addresses_are_allowed(address: str) -> None:
    assert not is_forbidden(ipaddress.ip_address(address), allow_loopback=False)


@pytest.fixture
def no_dns(monkeypatch: pytest.MonkeyPatch) -> None:
    """Literal IPs must not need a lookup: any lookup fails the test."""

    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError(f"unexpected DNS lookup of {args[0]!r}")

    monkeypatch.setattr(socket, "getaddrinfo", refuse)


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8080/hook",
        "http://10.0.0.1/hook",
        "http://169.254.169.254/latest/meta-data/",
        "http://[::1]:8080/hook",
        "http://[::ffff:127.0.0.1]:8080/hook",
        "https://[fd00:ec2::254]/",
    ],
)
async def test_resolve_refuses_internal_literals(no_dns: None, url: str) -> None:
    with pytest.raises(BlockedDestination):
        await resolve_allowed(url, allow_loopback=False)


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://8.8.8.8/hook", ["8.8.8.8"]),
        ("https://8.8.8.8:8443/hook", ["8.8.8.8"]),
        ("https://[2001:4860:4860::8888]/hook", ["2001:4860:4860::8888"]),
    ],
)
async def test_resolve_allows_public_literals_without_dns(
    no_dns: None, url: str, expected: list[str]
) -> None:
    assert await resolve_allowed(url, allow_loopback=False) == expected


async def test_resolve_allows_loopback_only_when_asked(no_dns: None) -> None:
    assert await resolve_allowed("http://127.0.0.1:9/h", allow_loopback=True) == ["127.0.0.1"]
    with pytest.raises(BlockedDestination):
        await resolve_allowed("http://127.0.0.1:9/h", allow_loopback=False)


def fake_dns(monkeypatch: pytest.MonkeyPatch, answers: list[str]) -> list[tuple[str, int]]:
    asked: list[tuple[str, int]] = []

    def lookup(host: str, port: int, *args: Any, **kwargs: Any) -> list[Any]:
        asked.append((host, port))
        return [
            (
                socket.AF_INET6 if ":" in a else socket.AF_INET,
                socket.SOCK_STREAM,
                6,
                "",
                (a, port, 0, 0) if ":" in a else (a, port),
            )
            for a in answers
        ]

    monkeypatch.setattr(socket, "getaddrinfo", lookup)
    return asked


async def test_a_name_resolving_only_to_public_addresses_is_allowed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    asked = fake_dns(monkeypatch, ["93.184.215.14", "2606:2800:21f:cb07:6820:80da:af6b:8b2c"])
    addresses = await resolve_allowed("https://hooks.example.com/x", allow_loopback=False)
    assert addresses == ["93.184.215.14", "2606:2800:21f:cb07:6820:80da:af6b:8b2c"]
    assert asked == [("hooks.example.com", 443)]


@pytest.mark.parametrize("internal", ["10.1.2.3", "127.0.0.1", "::ffff:169.254.169.254"])
async def test_a_name_with_any_internal_address_is_refused(
    monkeypatch: pytest.MonkeyPatch, internal: str
) -> None:
    fake_dns(monkeypatch, ["93.184.215.14", internal])
    with pytest.raises(BlockedDestination):
        await resolve_allowed("http://rebind.example.com/x", allow_loopback=False)


async def test_a_name_that_does_not_resolve_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    def fail(*args: Any, **kwargs: Any) -> Any:
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    monkeypatch.setattr(socket, "getaddrinfo", fail)
    with pytest.raises(BlockedDestination):
        await resolve_allowed("https://nowhere.invalid/x", allow_loopback=False)


@pytest.mark.parametrize("url", ["ftp://8.8.8.8/x", "file:///etc/passwd", "https:///nohost"])
async def test_only_http_urls_with_a_host(no_dns: None, url: str) -> None:
    with pytest.raises(BlockedDestination):
        await resolve_allowed(url, allow_loopback=False)


# End to end: an attempt to an internal address never connects and is recorded as blocked.


INTERNAL_HOSTS = ["127.0.0.1", "10.0.0.1", "169.254.169.254", "[::1]", "[::ffff:127.0.0.1]"]


async def test_attempts_to_internal_addresses_never_connect(
    client: httpx.AsyncClient, session: AsyncSession, http: httpx.AsyncClient, hook: Receiver
) -> None:
    port = httpx.URL(hook.url).port
    supplier_id, owner = await supplier(client)
    for host in [*INTERNAL_HOSTS, "localhost"]:
        endpoint = await new_endpoint(client, supplier_id, owner, url=f"http://{host}:{port}/hook")
        await emit(session, supplier_id)
        (delivery,) = await deliveries(session, endpoint_id=endpoint["id"])

        record = await attempt(session, http, delivery.id, 1, allow_loopback=False)

        assert record is not None, host
        assert record.status_code is None, host
        assert not record.succeeded
        assert record.error is not None
        assert record.error.startswith("blocked"), (host, record.error)
        assert len(await attempts(session, delivery.id)) == 1
        # A blocked attempt is a failure like any other: it is retried on the schedule.
        (delivery,) = await deliveries(session, endpoint_id=endpoint["id"])
        assert delivery.status is DeliveryStatus.pending
        assert [j.attempt for j in await queued_jobs(session, delivery.id)] == [1, 2]
        # Leave the next event to the next endpoint only.
        await client.patch(
            f"/v1/suppliers/{supplier_id}/webhook-endpoints/{endpoint['id']}",
            json={"enabled": False},
            headers=owner,
        )
    assert hook.requests == []


async def test_the_same_receiver_is_reached_when_loopback_is_allowed(
    client: httpx.AsyncClient, session: AsyncSession, http: httpx.AsyncClient, hook: Receiver
) -> None:
    """The control for the test above: the receiver does answer, when allowed."""
    supplier_id, owner = await supplier(client)
    endpoint = await new_endpoint(client, supplier_id, owner, url=hook.url)
    await emit(session, supplier_id)
    record = await attempt(
        session, http, (await the_delivery(session, endpoint["id"])).id, 1, allow_loopback=True
    )
    assert record is not None
    assert record.status_code == 204
    assert len(hook.requests) == 1


# A host name the IDNA codec cannot encode (a label over 63 characters, or an empty one) passes
# URL validation, but the lookup raises UnicodeError, which is not an OSError.
UNENCODABLE = ["https://" + "a" * 64 + ".example.com/hook", "https://a..b.example.com/hook"]


@pytest.mark.parametrize("url", UNENCODABLE)
async def test_a_host_that_cannot_be_encoded_is_refused(url: str) -> None:
    with pytest.raises(BlockedDestination):
        await resolve_allowed(url, allow_loopback=False)


async def test_an_attempt_to_an_unencodable_host_is_recorded_and_retried(
    client: httpx.AsyncClient, session: AsyncSession, http: httpx.AsyncClient
) -> None:
    supplier_id, owner = await supplier(client)
    # The API accepts the URL today; a fix may refuse it there, so the row is written directly.
    accepted = await client.post(
        f"/v1/suppliers/{supplier_id}/webhook-endpoints",
        json={"url": UNENCODABLE[0], "event_types": ["api_key.created"]},
        headers=owner,
    )
    assert accepted.status_code in (201, 422), accepted.text
    endpoint = WebhookEndpoint(
        owner_kind=WebhookOwnerKind.supplier,
        owner_id=uuid.UUID(supplier_id),
        url=UNENCODABLE[0],
        event_types=["api_key.created"],
        secret="whsec_" + "A" * 43 + "=",
    )
    session.add(endpoint)
    await session.flush()
    await emit(session, supplier_id)
    delivery = await the_delivery(session, endpoint.id)

    record = await attempt(session, http, delivery.id, 1, allow_loopback=False)

    assert record is not None
    assert record.status_code is None
    assert record.error is not None
    assert record.error.startswith("blocked")
    assert [j.attempt for j in await queued_jobs(session, delivery.id)] == [1, 2]


async def test_a_blocked_attempt_to_a_long_host_name_is_recorded(
    client: httpx.AsyncClient,
    session: AsyncSession,
    http: httpx.AsyncClient,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    host = ".".join(["a" * 60] * 9) + ".example.com"  # 560 characters, each label legal
    supplier_id, owner = await supplier(client)
    endpoint = await new_endpoint(client, supplier_id, owner, url=f"https://{host}/hook")
    await emit(session, supplier_id)
    delivery = await the_delivery(session, endpoint["id"])

    def fail(*args: Any, **kwargs: Any) -> Any:
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    monkeypatch.setattr(socket, "getaddrinfo", fail)
    record = await attempt(session, http, delivery.id, 1, allow_loopback=False)

    assert record is not None
    assert record.error is not None
    assert record.error.startswith("blocked")
    assert len(await attempts(session, delivery.id)) == 1
