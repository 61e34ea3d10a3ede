"""A scripted viewer of the operator console's live page, for `bench.calls --systems kolbridge-console`.

    python -m bench.console_viewer --url http://127.0.0.1:8090 --email E --password P --seconds 35 --out viewer.json

It signs in as a browser does (the login form's CSRF token, the session cookie), then does what the live
page's htmx does: fetches the live table's rows (`/live` with HX-Request, every `--rows-every` s) and, once
a call is listed, that call's live transcript (`/live/CALL_SID`, as often). Bytes are counted as they
cross the wire (compressed, if the console compresses) plus the response headers, so the figure is a
viewer's traffic per second. Writes {seconds, requests, bytes, bytes_per_s, errors, rows_seen_max}.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import re
import time
from pathlib import Path

import aiohttp

CSRF = re.compile(r'name="csrf" value="([^"]+)"')
ROW_SID = re.compile(r'/live/(CA[0-9A-Za-z]+)')


class Traffic:
    def __init__(self) -> None:
        self.requests = 0
        self.bytes = 0
        self.errors = 0
        self.statuses: dict[str, int] = {}  # the failed ones, by status ("404": the opened call had just ended)
        self.rows_seen_max = 0

    async def get(self, session: aiohttp.ClientSession, url: str, headers: dict[str, str]) -> str:
        async with session.get(url, headers=headers, auto_decompress=False) as response:
            raw = await response.read()
            self.requests += 1
            self.bytes += len(raw) + sum(len(k) + len(v) + 4 for k, v in response.raw_headers)
            if response.status != 200:
                self.errors += 1
                self.statuses[str(response.status)] = self.statuses.get(str(response.status), 0) + 1
                return ""
            encoding = response.headers.get("Content-Encoding", "")
            if encoding == "gzip":
                import gzip
                return gzip.decompress(raw).decode("utf-8", "replace")
            return raw.decode("utf-8", "replace")


async def sign_in(session: aiohttp.ClientSession, base: str, email: str, password: str) -> None:
    async with session.get(f"{base}/login") as response:
        token = CSRF.search(await response.text())
    if token is None:
        raise RuntimeError("no CSRF token on the login page")
    form = {"csrf": token.group(1), "email": email, "password": password}
    async with session.post(f"{base}/login", data=form, allow_redirects=False) as response:
        if response.status not in (302, 303):
            raise RuntimeError(f"login refused: {response.status}")


async def watch(base: str, email: str, password: str, seconds: float, rows_every: float) -> dict[str, object]:
    traffic = Traffic()
    partial = {"HX-Request": "true", "Accept-Encoding": "gzip"}
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as session:
        await sign_in(session, base, email, password)
        start = time.monotonic()
        opened, next_rows, next_call = "", start, start
        while (now := time.monotonic()) - start < seconds:
            if now >= next_rows:
                rows = await traffic.get(session, f"{base}/live", partial)
                sids = ROW_SID.findall(rows)
                traffic.rows_seen_max = max(traffic.rows_seen_max, len(set(sids)))
                opened = opened if opened in sids else (sids[0] if sids else "")
                next_rows += rows_every
            if opened and now >= next_call:
                await traffic.get(session, f"{base}/live/{opened}", partial)
                next_call += rows_every  # the live call page polls as often as the rows
            await asyncio.sleep(max(0.0, min(next_rows, next_call if opened else next_rows) - time.monotonic()))
        elapsed = time.monotonic() - start
    return {"seconds": round(elapsed, 1), "requests": traffic.requests, "bytes": traffic.bytes,
            "bytes_per_s": round(traffic.bytes / elapsed), "errors": traffic.errors, "statuses": traffic.statuses,
            "rows_seen_max": traffic.rows_seen_max}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--url", required=True)
    parser.add_argument("--email", required=True)
    parser.add_argument("--password", required=True)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--rows-every", type=float, default=0.5, help="as the live page's htmx polls its rows")
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    result = asyncio.run(watch(args.url.rstrip("/"), args.email, args.password, args.seconds, args.rows_every))
    Path(args.out).write_text(json.dumps(result), encoding="utf-8")


if __name__ == "__main__":
    main()
