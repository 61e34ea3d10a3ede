"""Tenant URLs are untrusted: https only, no internal addresses (at import, before each request, and at
connection time through the resolver), no redirects, capped answers, signed bodies."""
from __future__ import annotations

import hashlib
import hmac
import socket
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import web

from gateway.agent import check_agent
from gateway.cli import main as cli_main
from gateway.cli.demo import DEMO_BUSINESS
from gateway.config import ToolPolicy
from gateway.http_tools import GuardedResolver, TenantHttp, signature, url_problem
from storage.businesses import BusinessError, parse_business

STRICT = ToolPolicy()
LOCAL = ToolPolicy(allow_private_hosts=True, allow_http=True, max_answer_bytes=2048)


@pytest.mark.parametrize("url, problem", [
    ("http://crm.example.com/x", "only https URLs are allowed"),
    ("https://169.254.169.254/latest/meta-data", "is not a public address"),
    ("https://10.0.0.7/hook", "is not a public address"),
    ("https://127.0.0.1:1900/admin", "is not a public address"),
    ("https://[::ffff:127.0.0.1]/x", "is not a public address"),
    ("https://localhost/x", "is an internal name"),
    ("https://metadata.google.internal/x", "is an internal name"),
    ("https://user:pw@crm.example.com/x", "credentials in the URL"),
    ("ftp://crm.example.com/x", "only https URLs are allowed"),
    ("https://8.8.8.8/slots", ""),
    ("https://crm.example.com/slots", ""),
])
def test_url_policy(url: str, problem: str) -> None:
    found = url_problem(url, STRICT)
    assert (problem in found) if problem else found == "", found


def tool_business(url: str, parameters: str = '{ type = "object", properties = { day = { type = "string" } } }') -> str:
    return DEMO_BUSINESS + f'''
[[business.tools]]
name = "check_availability"
description = "Free slots"
url = "{url}"
parameters = {parameters}
'''


def test_import_names_the_field_of_a_bad_url_or_schema() -> None:
    spec = parse_business(tool_business("https://127.0.0.1/slots"))
    assert check_agent(spec, STRICT) == ["business.tools[0].url: 'https://127.0.0.1/slots': 127.0.0.1 is not a public address"]
    assert check_agent(spec, LOCAL) == []  # the operator allows local receivers (tests, the demo)
    with pytest.raises(BusinessError, match=r"business\.tools\[0\]\.parameters: not a valid JSON schema"):
        parse_business(tool_business("https://crm.example.com/x", '{ type = "object", properties = 3 }'))
    with pytest.raises(BusinessError, match=r"business\.tools\[0\]\.name: 'end_call'"):
        parse_business(tool_business("https://crm.example.com/x").replace('"check_availability"', '"end_call"'))
    webhook = parse_business(DEMO_BUSINESS + '\n[business.webhook]\nurl = "http://crm.example.com/hook"\n')
    assert check_agent(webhook, STRICT) == ["business.webhook.url: 'http://crm.example.com/hook': only https URLs are allowed"]


def test_the_cli_refuses_the_import(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("KOLBRIDGE_DATABASE_URL", f"sqlite+aiosqlite:///{tmp_path / 'kb.db'}")
    path = tmp_path / "biz.toml"
    path.write_text(tool_business("https://169.254.169.254/latest"), encoding="utf-8")
    assert cli_main(["business", "import", str(path)]) == 2
    assert "business.tools[0].url" in capsys.readouterr().err


async def test_the_resolver_drops_internal_addresses_at_connection_time() -> None:
    with pytest.raises(OSError, match="non-public"):
        await GuardedResolver(allow_private=False).resolve("localhost", 443, socket.AF_INET)
    assert await GuardedResolver(allow_private=True).resolve("localhost", 443, socket.AF_INET)


@pytest.fixture
async def site() -> AsyncIterator[tuple[str, list[str]]]:
    hits: list[str] = []

    async def handle(request: web.Request) -> web.StreamResponse:
        hits.append(request.path)
        body = await request.read()
        if request.path == "/redirect":
            raise web.HTTPFound("/target")
        if request.path == "/big":
            return web.Response(body=b"x" * 5000, content_type="application/json")
        expected = "sha256=" + hmac.new(b"s3cret", body, hashlib.sha256).hexdigest()
        return web.json_response({"signed": request.headers.get("X-Kolbridge-Signature") == expected})

    app = web.Application()
    app.router.add_post("/{tail:.*}", handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    await web.SockSite(runner, sock).start()
    yield f"http://127.0.0.1:{sock.getsockname()[1]}", hits
    await runner.cleanup()


async def test_requests_are_signed_never_redirected_and_capped(site: tuple[str, list[str]]) -> None:
    base, hits = site
    http = TenantHttp(LOCAL)
    try:
        ok = await http.post(base + "/slots", b'{"a":1}', "s3cret", 2.0)
        assert ok.ok and ok.text == '{"signed": true}'
        assert signature("s3cret", b'{"a":1}') == "sha256=" + hmac.new(b"s3cret", b'{"a":1}', hashlib.sha256).hexdigest()
        moved = await http.post(base + "/redirect", b"{}", "", 2.0)
        assert not moved.ok and moved.error == "HTTP 302" and "/target" not in hits
        big = await http.post(base + "/big", b"{}", "", 2.0)
        assert not big.ok and big.error == "answer larger than 2048 bytes"
    finally:
        await http.close()
    strict = TenantHttp(ToolPolicy(allow_http=True))  # plain http allowed, private hosts not
    try:
        refused = await strict.post(base + "/slots", b"{}", "", 2.0)
        assert not refused.ok and refused.error.startswith("refused:") and hits.count("/slots") == 1
    finally:
        await strict.close()
