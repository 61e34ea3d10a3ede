"""The console in a real headless Chromium (Debian's chromium + chromium-driver, via selenium) against
`kolbridge console` on loopback: signing in and the lock, the history search, the call page playing its
recording (the audio element's time advances; clicking an utterance seeks to it) with the cut mark, a
business edit with its diff, version and rollback, and a screenshot of every page in Hebrew and English
(into docs/console/ when KOLBRIDGE_CONSOLE_SCREENSHOTS=docs, else the test's temporary directory)."""
from __future__ import annotations

import asyncio
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from storage.businesses import parse_business, upsert_business
from storage.db import create_schema, make_engine, session_factory
from storage.models import UtteranceRecord, utcnow
from storage.users import add_user
from tests.test_console_support import PASSWORD, add_call, add_lead, business_file, write_recording

webdriver = pytest.importorskip("selenium.webdriver")
CHROMIUM, DRIVER = Path("/usr/lib/chromium/chromium"), shutil.which("chromedriver")
pytestmark = [pytest.mark.realtime, pytest.mark.skipif(not CHROMIUM.exists() or DRIVER is None,
                                                       reason="needs Debian's chromium and chromium-driver")]
REPO = Path(__file__).resolve().parent.parent
PAGES = ("login", "live", "history", "calls/CA-DEMO", "leads", "businesses", "businesses/biz-a", "dashboard",
         "retention", "audit")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def seed(sessions: async_sessionmaker[AsyncSession], recordings: Path) -> None:
    await upsert_business(sessions, parse_business(business_file("biz-a", number="+97230000001")))
    await add_user(sessions, "admin@example.com", "admin", None, PASSWORD)
    await add_user(sessions, "victim@example.com", "admin", None, PASSWORD)
    started = utcnow() - timedelta(hours=1)
    await add_call(sessions, "CA-DEMO", "biz-a", started, seconds=8.0, end_reason="agent_hangup",
                   metrics={"barge_in_events": 1, "stt_utterances": 3, "filler_only": 1},
                   prompt_hashes={"core_role": "3f2a9c", "business": "b81d07"})
    async with sessions.begin() as session:
        session.add_all([
            UtteranceRecord(call_sid="CA-DEMO", seq=1, role="caller", text="שלום, יש לי בעיה בבלמים",
                            classification="turn", start_ms=500, end_ms=2000),
            UtteranceRecord(call_sid="CA-DEMO", seq=2, role="assistant", text="אפשר לקבוע לך תור מחר בבוקר או",
                            start_ms=-1, end_ms=-1, interrupted=True, heard_ms=1800),
            UtteranceRecord(call_sid="CA-DEMO", seq=3, role="caller", text="אממ", classification="filler",
                            start_ms=3500, end_ms=3900),
            UtteranceRecord(call_sid="CA-DEMO", seq=4, role="caller", text="מחר בבוקר מתאים", classification="turn",
                            start_ms=4500, end_ms=6000)])
    await add_call(sessions, "CA-OTHER", "biz-a", started - timedelta(hours=1), utterances=(("caller", "רק שאלה על מחירים"),))
    await add_lead(sessions, "CA-DEMO", "biz-a", started + timedelta(seconds=7), name="דנה", phone="0501234567")
    write_recording(recordings, "CA-DEMO", seconds=8.0)


@pytest.fixture
def console_url(tmp_path: Path) -> Iterator[str]:
    """`kolbridge console` on a free loopback port, on a database seeded with one business, two admins and a call."""
    url = f"sqlite+aiosqlite:///{tmp_path / 'kb.db'}"

    async def prepare() -> None:
        engine = make_engine(url)
        await create_schema(engine)
        await seed(session_factory(engine), tmp_path / "recordings")
        await engine.dispose()
    asyncio.run(prepare())
    port = free_port()
    env = {**os.environ, "KOLBRIDGE_DATABASE_URL": url, "KOLBRIDGE_CONSOLE_SECRET": "browser-test"}
    server = subprocess.Popen([sys.executable, "-m", "gateway.cli", "console", "--port", str(port), "--max-failures",
                               "3", "--admin-port", str(free_port())], env=env, cwd=REPO,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                assert server.poll() is None, "kolbridge console exited"
                time.sleep(0.1)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.terminate()
        server.wait(10)


@pytest.fixture
def browser() -> Iterator[Any]:
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for argument in ("--headless=new", "--no-sandbox", "--disable-gpu", "--autoplay-policy=no-user-gesture-required",
                     "--window-size=1280,900", "--mute-audio"):
        options.add_argument(argument)
    driver = webdriver.Chrome(service=Service(DRIVER), options=options)
    try:
        yield driver
    finally:
        driver.quit()


def wait_for(driver: Any, condition: Any, timeout_s: float = 10.0) -> Any:
    from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException
    from selenium.webdriver.support.ui import WebDriverWait
    # a page being replaced (a form posted, a redirect followed) leaves the old page's elements stale for a moment
    return WebDriverWait(driver, timeout_s, poll_frequency=0.05,
                         ignored_exceptions=(NoSuchElementException, StaleElementReferenceException)).until(condition)


def sign_in(driver: Any, base: str, email: str, password: str) -> None:
    from selenium.webdriver.common.by import By
    driver.get(f"{base}/login")
    driver.find_element(By.NAME, "email").send_keys(email)
    driver.find_element(By.NAME, "password").send_keys(password)
    button = driver.find_element(By.CSS_SELECTOR, "form button[type=submit]")
    button.click()
    # the answer is a new page: wait for it, so the next step does not race the POST (3 tries must be 3)
    from selenium.webdriver.support import expected_conditions
    from selenium.webdriver.support.ui import WebDriverWait
    WebDriverWait(driver, 15).until(expected_conditions.staleness_of(button))


def test_the_console_in_a_browser(console_url: str, browser: Any, tmp_path: Path) -> None:
    from selenium.webdriver.common.by import By

    for _ in range(3):
        sign_in(browser, console_url, "victim@example.com", "wrong password")
    assert "יותר מדי ניסיונות" in browser.find_element(By.CSS_SELECTOR, ".error").text  # locked after 3
    sign_in(browser, console_url, "admin@example.com", PASSWORD)
    wait_for(browser, lambda d: d.current_url.endswith("/history"))

    assert browser.find_elements(By.CSS_SELECTOR, "a[href='/calls/CA-OTHER']")
    search = browser.find_element(By.NAME, "q")
    search.send_keys("בבלמים")
    search.submit()
    wait_for(browser, lambda d: not d.find_elements(By.CSS_SELECTOR, "a[href='/calls/CA-OTHER']"))
    assert browser.find_elements(By.CSS_SELECTOR, "a[href='/calls/CA-DEMO']")  # the call the caller said it in

    browser.get(f"{console_url}/calls/CA-DEMO")
    assert browser.find_elements(By.CSS_SELECTOR, ".timeline .cut") and browser.find_elements(By.CSS_SELECTOR, ".utt.filler")
    wait_for(browser, lambda d: d.execute_script("return document.getElementById('player').readyState") >= 1)
    browser.find_element(By.CSS_SELECTOR, "ol.transcript li:nth-child(4) .seek").click()  # said at 4.5 s
    seeked = browser.execute_script("return document.getElementById('player').currentTime")
    assert abs(seeked - 4.5) < 0.2
    wait_for(browser, lambda d: d.execute_script("return document.getElementById('player').currentTime") > seeked + 0.3)
    wait_for(browser, lambda d: d.execute_script(
        "var c = document.getElementById('waveform'); return c.width > 0 && c.getContext('2d')"
        ".getImageData(0, 0, c.width, c.height).data.some(function (v) { return v > 0; })"))  # the waveform is drawn

    browser.get(f"{console_url}/businesses/biz-a")
    area = browser.find_element(By.NAME, "toml")
    original = area.get_property("value")
    browser.execute_script("arguments[0].value = arguments[0].value.replace('במה אפשר לעזור?', 'ערב טוב!')", area)
    browser.find_element(By.XPATH, "//button[@hx-post='/businesses/biz-a/preview']").click()
    wait_for(browser, lambda d: "+greeting" in d.find_element(By.ID, "diff").text)
    browser.find_element(By.CSS_SELECTOR, "form[action='/businesses/biz-a/save'] button[type=submit]").click()
    wait_for(browser, lambda d: d.find_elements(By.CSS_SELECTOR, "p.ok"))  # saved: the page after the redirect
    assert "ערב טוב!" in browser.find_element(By.NAME, "toml").get_property("value")
    kept = browser.find_elements(By.XPATH, "//form[contains(@action, '/rollback/')]//button")
    assert len(kept) == 2  # the edit, and the file as it was
    kept[-1].click()
    wait_for(browser, lambda d: len(d.find_elements(By.XPATH, "//form[contains(@action, '/rollback/')]")) == 3)
    assert browser.find_element(By.NAME, "toml").get_property("value") == original

    shots = REPO / "docs" / "console" if os.environ.get("KOLBRIDGE_CONSOLE_SCREENSHOTS") == "docs" else tmp_path
    shots.mkdir(parents=True, exist_ok=True)
    for lang in ("he", "en"):
        browser.get(f"{console_url}/history?lang={lang}")
        for page in PAGES[1:]:
            browser.get(f"{console_url}/{page}")
            assert browser.find_element(By.TAG_NAME, "html").get_attribute("dir") == ("rtl" if lang == "he" else "ltr")
            browser.save_screenshot(str(shots / f"{page.replace('/', '-')}.{lang}.png"))
    browser.set_window_size(390, 844)  # a phone
    for page in ("history", "calls/CA-DEMO", "live"):
        browser.get(f"{console_url}/{page}?lang=he")
        assert browser.execute_script("return document.documentElement.scrollWidth") <= 390  # no sideways scrolling
        browser.save_screenshot(str(shots / f"{page.replace('/', '-')}.he.phone.png"))
    assert len(list(shots.glob("*.png"))) == 2 * (len(PAGES) - 1) + 3
