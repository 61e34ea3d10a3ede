"""Outbound HTTP to tenant URLs (business tools, webhooks): signed, bounded, and refused where it could
reach inside our network.

Tenants configure these URLs, so they are untrusted. `url_problem` checks a URL at import and again
before every request (scheme https unless the operator allows http; an IP literal must be public);
the connector's resolver (`GuardedResolver`) drops every private, loopback, link-local, multicast or
reserved address a hostname resolves to *at connection time*, so a name that changes its answer
(DNS rebinding) cannot reach the metadata service or our own admin port either. Redirects are never
followed; an answer larger than `max_answer_bytes` is refused; every request has a total timeout.
The body is signed: `X-Kolbridge-Signature: sha256=<hex HMAC-SHA256(secret, body)>`; the secret never
reaches the model or the logs.
"""
from __future__ import annotations

import asyncio
import hashlib
import hmac
import ipaddress
import json
import socket
import time
from typing import Any, Protocol
from urllib.parse import urlsplit

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import ThreadedResolver

from gateway.config import ToolPolicy


def address_refused(address: str) -> bool:
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return True
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return bool(ip.is_private or ip.is_loopback or ip.is_link_local or ip.is_multicast or ip.is_reserved
                or ip.is_unspecified or not ip.is_global)


def url_problem(url: str, policy: ToolPolicy, resolve: bool = False) -> str:
    """Why `url` may not be called, or "" (resolve=True also resolves the host now: import time)."""
    parts = urlsplit(url)
    allowed = ("https", "http") if policy.allow_http else ("https",)
    if parts.scheme not in allowed:
        return f"{url!r}: only {' or '.join(allowed)} URLs are allowed"
    host = parts.hostname or ""
    if not host:
        return f"{url!r}: no host"
    if parts.username or parts.password:
        return f"{url!r}: credentials in the URL are not allowed (use the webhook secret)"
    if policy.allow_private_hosts:
        return ""
    problem = host_problem(host, parts.port or 443, resolve)
    return f"{url!r}: {problem}" if problem else ""


def host_problem(host: str, port: int, resolve: bool) -> str:
    """Why `host` is not a public address or name, or ""."""
    try:
        ipaddress.ip_address(host)
        literal = True
    except ValueError:
        literal = False
    if literal:
        return f"{host} is not a public address" if address_refused(host) else ""
    if host == "localhost" or host.endswith(".localhost") or host.endswith(".internal"):
        return f"{host} is an internal name"
    if resolve:
        try:
            infos = socket.getaddrinfo(host, port, proto=socket.IPPROTO_TCP)
        except OSError:
            return ""  # not resolvable from here now: checked again, address by address, at call time
        refused = sorted({str(info[4][0]) for info in infos if address_refused(str(info[4][0]))})
        if refused:
            return f"{host} resolves to non-public address(es) {', '.join(refused)}"
    return ""


class GuardedResolver(AbstractResolver):
    """Resolves like aiohttp's default and drops every non-public address (unless the policy allows them)."""

    def __init__(self, allow_private: bool) -> None:
        self.inner = ThreadedResolver()
        self.allow_private = allow_private
        self.refused = 0

    async def resolve(self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET) -> list[ResolveResult]:
        results = await self.inner.resolve(host, port, family)
        if self.allow_private:
            return results
        kept = [r for r in results if not address_refused(str(r["host"]))]
        if not kept:
            self.refused += 1
            raise OSError(f"{host} resolves only to non-public addresses")
        return kept

    async def close(self) -> None:
        await self.inner.close()


def signature(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


class HttpOutcome:
    __slots__ = ("ok", "status", "text", "error", "elapsed_ms")

    def __init__(self, ok: bool, status: int, text: str, error: str, elapsed_ms: int) -> None:
        self.ok, self.status, self.text, self.error, self.elapsed_ms = ok, status, text, error, elapsed_ms


class Poster(Protocol):
    """What the agent's tools and the webhook deliverer need of the tenant HTTP client."""

    async def post(self, url: str, payload: bytes, secret: str, timeout_s: float,
                   headers: dict[str, str] | None = None) -> HttpOutcome: ...


class TenantHttp:
    """One aiohttp session per worker for every tenant URL, behind the guarded resolver."""

    def __init__(self, policy: ToolPolicy) -> None:
        self.policy = policy
        self.resolver = GuardedResolver(policy.allow_private_hosts)
        self._session: aiohttp.ClientSession | None = None

    def session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            connector = aiohttp.TCPConnector(resolver=self.resolver, limit=200, limit_per_host=20, ttl_dns_cache=None,
                                             use_dns_cache=False)
            self._session = aiohttp.ClientSession(connector=connector, trust_env=False)
        return self._session

    async def post(self, url: str, payload: bytes, secret: str, timeout_s: float,
                   headers: dict[str, str] | None = None) -> HttpOutcome:
        started = time.monotonic()

        def took() -> int:
            return int((time.monotonic() - started) * 1000)
        problem = url_problem(url, self.policy)
        if problem:
            return HttpOutcome(False, 0, "", f"refused: {problem}", took())
        sent = {"Content-Type": "application/json", "User-Agent": "kolbridge", **(headers or {})}
        if secret:
            sent["X-Kolbridge-Signature"] = signature(secret, payload)
        limit = self.policy.max_answer_bytes
        try:
            async with asyncio.timeout(timeout_s):
                async with self.session().post(url, data=payload, headers=sent, allow_redirects=False) as response:
                    body = await response.content.read(limit + 1)
                    if len(body) > limit:
                        return HttpOutcome(False, response.status, "", f"answer larger than {limit} bytes", took())
                    text = body.decode("utf-8", errors="replace")
                    if response.status >= 300:
                        return HttpOutcome(False, response.status, text[:500], f"HTTP {response.status}", took())
                    return HttpOutcome(True, response.status, text, "", took())
        except TimeoutError:
            return HttpOutcome(False, 0, "", f"timed out after {timeout_s:g} s", took())
        except (aiohttp.ClientError, OSError) as exc:
            return HttpOutcome(False, 0, "", f"{type(exc).__name__}: {str(exc)[:200]}", took())

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()


def json_text(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))
