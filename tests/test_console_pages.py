"""Every page renders in Hebrew and in English (the templates use only keys both tables have), the assets are
vendored with their licences and installed as package data, and nothing refers to a CDN."""
from __future__ import annotations

import fnmatch
import re
import tomllib
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from console.i18n import END_REASONS, STRINGS, end_reason
from tests.test_console_support import add_call, add_lead, console_settings, sessions, signed_in, two_businesses

__all__ = ["sessions"]
REPO = Path(__file__).resolve().parent.parent
CONSOLE = REPO / "console"
PAGES = ("/live", "/history", "/calls/CA1", "/leads", "/businesses", "/businesses/biz-a", "/dashboard", "/retention",
         "/audit", "/no-such-page")


@pytest.mark.parametrize("lang", ["he", "en"])
async def test_every_page_in_both_languages(sessions: async_sessionmaker[AsyncSession], tmp_path: Path,
                                            lang: str) -> None:
    await two_businesses(sessions)
    await add_call(sessions, "CA1", "biz-a", utterances=(("caller", "שלום"), ("assistant", "היי")))
    await add_lead(sessions, "CA1", "biz-a", name="דנה")
    async with signed_in(console_settings(sessions, tmp_path), "admin@example.com") as client:
        await client.get(f"/history?lang={lang}")
        for url in PAGES:
            page = await client.get(url)
            assert page.status_code == (404 if url == "/no-such-page" else 200), url
            direction = "rtl" if lang == "he" else "ltr"
            assert f'<html dir="{direction}" lang="{lang}">' in page.text, url
            assert '<meta name="viewport"' in page.text


def test_the_templates_use_only_keys_of_the_table() -> None:
    used = {key for path in (CONSOLE / "templates").glob("*.html")
            for key in re.findall(r"\bt\.(\w+)\b(?!\()", path.read_text(encoding="utf-8"))}  # not t.get(...)
    assert used and used <= set(STRINGS["he"]) == set(STRINGS["en"])


def test_the_assets_are_vendored_installed_and_local() -> None:
    vendor = CONSOLE / "static" / "vendor"
    readme = (vendor / "README.md").read_text(encoding="utf-8")
    for asset, licence, version in (("htmx.min.js", "LICENSE.htmx", "2.0.11"), ("uPlot.iife.min.js", "LICENSE.uplot", "1.6.32")):
        assert (vendor / asset).stat().st_size > 10_000 and (vendor / licence).is_file() and version in readme
    patterns = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["setuptools"]["package-data"]["console"]
    for path in (CONSOLE / "templates").rglob("*"):
        relative = str(path.relative_to(CONSOLE))
        assert any(fnmatch.fnmatch(relative, p) for p in patterns), relative
    for path in (CONSOLE / "static").rglob("*"):
        assert path.is_dir() or any(fnmatch.fnmatch(str(path.relative_to(CONSOLE)), p) for p in patterns), path
    for path in (CONSOLE / "templates").glob("*.html"):
        assert not re.search(r'(src|href)="(https?:)?//', path.read_text(encoding="utf-8")), path.name


def test_end_reasons_are_shown_in_both_languages() -> None:
    assert set(END_REASONS["he"]) == set(END_REASONS["en"])
    assert end_reason("he", "admin_hangup") == "נותקה מהמסוף" and end_reason("en", "shed_capacity") == "shed_capacity"
