"""The live page against the real thing: `kolbridge serve` with its control plane, three emulated calls, and
`kolbridge console` on the same config, in a headless Chromium — the calls appear on the live page, and one
hung up from the console closes its stream, ends as admin_hangup, and leaves an audit row; a greeting edited
in the console is the next call's greeting, and rolled back, the old one is again."""
from __future__ import annotations

import asyncio
import html
import json
import signal
import subprocess
import sys
import threading
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from sim.audio import clip_text, load_clip
from sim.fake_realtime import FakeRealtime
from sim.twilio_emulator import EmulatedCall, Step
from storage.audit import list_audit
from storage.db import make_engine, session_factory
from tests.test_console_browser import CHROMIUM, DRIVER, sign_in, wait_for
from tests.test_console_support import PASSWORD, csrf_of
from tests.test_control_plane import stop_system
from tests.test_serve_process import _until, _until_async, fake, free_port, kill_tree, serve

webdriver = pytest.importorskip("selenium.webdriver")
pytestmark = [pytest.mark.realtime, pytest.mark.skipif(not CHROMIUM.exists() or DRIVER is None,
                                                       reason="needs Debian's chromium and chromium-driver")]
__all__ = ["fake"]
CLI = [sys.executable, "-m", "gateway.cli"]


def start_console(config: Path, env: dict[str, str], port: int) -> subprocess.Popen[bytes]:
    subprocess.run([*CLI, "users", "--config", str(config), "add", "ops@example.com", "--role", "admin",
                    "--password-stdin"], input=f"{PASSWORD}\n".encode(), env=env, check=True, capture_output=True)
    return subprocess.Popen([*CLI, "console", "--config", str(config), "--port", str(port)],
                            env={**env, "KOLBRIDGE_CONSOLE_SECRET": "e2e"}, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)


def open_browser() -> Any:
    from selenium.webdriver.chrome.service import Service
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for argument in ("--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1280,900"):
        options.add_argument(argument)
    return webdriver.Chrome(service=Service(DRIVER), options=options)


def watch_and_hang_up(base: str, sids: list[str], victim: str, ready: threading.Event, greeting: str,
                      said: str) -> tuple[float, float]:
    """In the browser: sign in, open the live page (then `ready`), wait for every call on it (the moment they
    all show), hang up `victim` (confirming), then open another call, wait for its greeting in its transcript
    and then for what its caller says later (the wall-clock moment it shows)."""
    from selenium.webdriver.common.by import By
    browser = open_browser()
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:  # the console starts beside the calls
            try:
                sign_in(browser, base, "ops@example.com", PASSWORD)
                break
            except Exception:  # noqa: BLE001 — not listening yet
                time.sleep(0.2)
        browser.get(f"{base}/live")
        wait_for(browser, lambda d: d.find_elements(By.ID, "live-rows"))
        ready.set()
        for sid in sids:
            wait_for(browser, lambda d, sid=sid: d.find_elements(By.XPATH, f"//a[@href='/live/{sid}']"), 20)
        all_shown = time.monotonic()
        # the rows are swapped every 0.5 s: a button found just before a swap is stale by the click, so find and
        # click again until one click lands
        wait_for(browser, lambda d: d.find_element(By.XPATH, f"//button[@hx-post='/live/{victim}/hangup']").click() or True)
        wait_for(browser, lambda d: d.switch_to.alert).accept()  # the confirmation
        wait_for(browser, lambda d: not d.find_elements(By.XPATH, f"//a[@href='/live/{victim}']"), 20)
        browser.get(f"{base}/live/{sids[1]}")  # another call opened: its transcript as the worker decides it
        wait_for(browser, lambda d: greeting in d.find_element(By.ID, "live-call").text, 20)
        wait_for(browser, lambda d: said in d.find_element(By.ID, "live-call").text, 30)
        return all_shown, time.time()
    finally:
        browser.quit()


async def test_live_calls_and_a_hangup_from_the_console(tmp_path: Path, fake: FakeRealtime) -> None:
    admin_port = free_port()
    served = await serve(tmp_path, fake, admin_port=admin_port)
    config = tmp_path / "config.toml"
    console_port = free_port()
    console = start_console(config, served.env, console_port)
    sids = [f"CA{k:032d}" for k in range(1, 4)]
    try:
        ready = threading.Event()
        watching = asyncio.create_task(asyncio.to_thread(
            watch_and_hang_up, f"http://127.0.0.1:{console_port}", sids, sids[0], ready, clip_text("greeting"),
            clip_text("question")))
        assert await asyncio.to_thread(ready.wait, 60)  # the live page is open
        # the second caller speaks once the console has its page open (the judge's decision is then timed)
        speaks = [Step("pause", 8.0), Step("say", load_clip("question"), "question"), Step("pause", 20.0), Step("hangup")]
        calls = {sid: EmulatedCall(served.stream_url, "demo-garage", sid,
                                   speaks if sid == sids[1] else [Step("pause", 30.0), Step("hangup")],
                                   wait_timeout_s=15) for sid in sids}
        started = time.monotonic()
        tasks = {sid: asyncio.create_task(c.run()) for sid, c in calls.items()}
        assert await _until(lambda: len(fake.connections) == 3, 20)
        connected_after = time.monotonic() - started
        all_shown, said_seen = await watching
        shown_after = all_shown - started
        report = await asyncio.wait_for(tasks[sids[0]], 15)  # its stream closed
        for sid in sids[1:]:
            tasks[sid].cancel()
    finally:
        console.send_signal(signal.SIGTERM)
        console.wait(10)
        kill_tree(served.proc)
        stop_system(config, admin_port)
    assert report.close_code is not None and (await served.record(sids[0])).end_reason == "admin_hangup"
    engine = make_engine(served.env["KOLBRIDGE_DATABASE_URL"])
    try:
        audit = [(e.action, e.target, e.user_email) for e in await list_audit(session_factory(engine), None)]
    finally:
        await engine.dispose()
    assert ("hangup", sids[0], "ops@example.com") in audit
    assert shown_after <= 2.0, f"the calls showed {shown_after:.2f} s after they started"
    decided = decided_at(served.log, sids[1], clip_text("question"))  # the worker's CALLER_SAID (UTC, µs)
    assert said_seen - decided <= 2.0, f"the caller's words showed {said_seen - decided:.2f} s after the judge decided"
    print(f"\nconsole live page: 3 calls connected to Realtime {connected_after:.2f} s and shown {shown_after:.2f} s "
          f"after they started; a decided utterance shown {said_seen - decided:.2f} s after the decision; hang-up → admin_hangup")


def decided_at(log: Path, call_sid: str, text: str) -> float:
    """When the worker's judge decided the caller's `text` (its CALLER_SAID line's ISO timestamp: the worker
    logs JSON to a file), as a wall-clock time."""
    for line in log.read_text(encoding="utf-8").splitlines():
        if '"CALLER_SAID"' in line and call_sid in line:
            event = json.loads(line)
            if event.get("text") == text:
                return datetime.fromisoformat(str(event["timestamp"]).replace("Z", "+00:00")).timestamp()
    raise AssertionError(f"no CALLER_SAID for {call_sid} in the worker's log")


async def greeting_of_next_call(served: Any, fake: FakeRealtime, sid: str) -> str:
    """The greeting instruction the next call's Realtime session was given."""
    before = len(fake.connections)
    await EmulatedCall(served.stream_url, "demo-garage", sid, [Step("pause", 2.0), Step("hangup")], wait_timeout_s=15).run()
    assert await _until(lambda: len(fake.connections) > before and fake.connections[before].responses, 10)
    return str(fake.connections[before].responses[0]["instructions"])


async def test_a_greeting_edited_in_the_console_reaches_the_next_call(tmp_path: Path, fake: FakeRealtime) -> None:
    served = await serve(tmp_path, fake)
    config = tmp_path / "config.toml"
    port = free_port()
    console = start_console(config, served.env, port)
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
            assert await _until_async(lambda: console_answers(client), 30)
            await client.post("/login", data={"email": "ops@example.com", "password": PASSWORD,
                                              "csrf": csrf_of(await client.get("/login"))})
            page = await client.get("/businesses/demo-garage")
            saved_file = html.unescape(page.text.split('spellcheck="false">')[1].split("</textarea>")[0])
            assert "שלום, הגעתם למוסך הדגמה" in await greeting_of_next_call(served, fake, "CA" + "1" * 32)
            edited = saved_file.replace("שלום, הגעתם למוסך הדגמה.", "ערב טוב, כאן מוסך הדגמה.")
            saved = await client.post("/businesses/demo-garage/save", data={"toml": edited, "csrf": csrf_of(page)})
            assert saved.status_code == 303
            assert "ערב טוב, כאן מוסך הדגמה" in await greeting_of_next_call(served, fake, "CA" + "2" * 32)
            page = await client.get("/businesses/demo-garage")
            first = page.text.split('action="/businesses/demo-garage/rollback/')[-1].split('"')[0]  # the oldest
            rolled = await client.post(f"/businesses/demo-garage/rollback/{first}", data={"csrf": csrf_of(page)})
            assert rolled.status_code == 303
            assert "שלום, הגעתם למוסך הדגמה" in await greeting_of_next_call(served, fake, "CA" + "3" * 32)
    finally:
        console.send_signal(signal.SIGTERM)
        console.wait(10)
        kill_tree(served.proc)


async def console_answers(client: httpx.AsyncClient) -> bool:
    try:
        return (await client.get("/login")).status_code == 200
    except httpx.TransportError:
        return False
