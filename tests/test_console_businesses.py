"""Editing a business in the console: validated by parse_business and the override check `business import`
runs (its error shown, nothing saved), the diff before saving, a version row and an audit row per save,
rollback; the prompt a call would get; the utterance classifier with the business's lexicon."""
from __future__ import annotations

import html
from pathlib import Path

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from gateway.cli.records import business_toml, prompt_show
from storage.audit import list_audit, list_versions
from storage.businesses import BusinessError, get_business, parse_business
from tests.test_console_support import console_settings, page_token, sessions, signed_in, two_businesses

__all__ = ["sessions"]

NEW_GREETING = "ערב טוב, כאן עסק א. מה שלומך?"


async def saved_file(sessions: async_sessionmaker[AsyncSession], business_id: str) -> str:
    view = await get_business(sessions, business_id)
    assert view is not None
    return business_toml(view)


async def test_an_edit_is_saved_with_a_version_and_rolled_back(sessions: async_sessionmaker[AsyncSession],
                                                               tmp_path: Path) -> None:
    await two_businesses(sessions)
    before = await saved_file(sessions, "biz-a")
    edited = before.replace("שלום, במה אפשר לעזור?", NEW_GREETING)
    async with signed_in(console_settings(sessions, tmp_path), "a@example.com") as client:
        token = await page_token(client, "/businesses/biz-a")
        preview = await client.post("/businesses/biz-a/preview", data={"csrf": token, "toml": edited})
        assert f"+greeting = &#34;{NEW_GREETING}&#34;" in preview.text and "-greeting" in preview.text
        assert (await get_business(sessions, "biz-a")).greeting != NEW_GREETING  # type: ignore[union-attr]
        saved = await client.post("/businesses/biz-a/save", data={"csrf": token, "toml": edited, "note": "ערב"})
        assert saved.status_code == 303
        assert (await get_business(sessions, "biz-a")).greeting == NEW_GREETING  # type: ignore[union-attr]
        versions = await list_versions(sessions, "biz-a")
        assert [(v.toml, v.note, v.user_email) for v in versions] == [
            (edited, "ערב", "a@example.com"), (before, "as it was before the first edit in the console", "a@example.com")]
        rolled = await client.post(f"/businesses/biz-a/rollback/{versions[1].id}", data={"csrf": token})
        assert rolled.status_code == 303
    assert await saved_file(sessions, "biz-a") == before
    assert len(await list_versions(sessions, "biz-a")) == 3
    actions = [e.action for e in await list_audit(sessions, "biz-a")]
    assert actions[:3] == ["business_rollback", "business_edit", "business_version_kept"]


async def test_an_invalid_file_shows_the_import_error_and_saves_nothing(sessions: async_sessionmaker[AsyncSession],
                                                                        tmp_path: Path) -> None:
    await two_businesses(sessions)
    before = await saved_file(sessions, "biz-a")
    broken = {"not toml": before.replace('language = "he"', "language = he"),
              "an unknown language": before.replace('language = "he"', 'language = "xx"'),
              "an override the gateway refuses": before + '\n[business.audio]\nno_such_setting = 1\n',
              "another business's id": before.replace('id = "biz-a"', 'id = "biz-b"')}
    async with signed_in(console_settings(sessions, tmp_path), "admin@example.com") as client:
        token = await page_token(client, "/businesses/biz-a")
        shown = {}
        for what, text in broken.items():
            answer = await client.post("/businesses/biz-a/save", data={"csrf": token, "toml": text})
            assert answer.status_code == 422, what
            shown[what] = html.unescape(answer.text.split('<p class="error" role="alert">')[1].split("</p>")[0])
    for what in ("not toml", "an unknown language"):
        try:
            parse_business(broken[what], "business biz-a")
        except BusinessError as exc:
            assert str(exc) in shown[what], what  # exactly parse_business's message
        else:
            raise AssertionError(f"{what}: parse_business accepted it")
    assert "business.audio:" in shown["an override the gateway refuses"]  # check_business's finding
    assert "this page edits 'biz-a'" in shown["another business's id"]
    assert await saved_file(sessions, "biz-a") == before and await saved_file(sessions, "biz-b") != before
    assert await list_versions(sessions, "biz-a") == [] and await list_versions(sessions, "biz-b") == []


async def test_the_prompt_and_the_classifier(sessions: async_sessionmaker[AsyncSession], tmp_path: Path) -> None:
    await two_businesses(sessions)
    async with signed_in(console_settings(sessions, tmp_path), "a@example.com") as client:
        page = await client.get("/businesses/biz-a")
        prompt = await prompt_show(sessions, "biz-a")
        assert prompt is not None and html.escape(prompt.splitlines()[0], quote=False) in page.text
        token = await page_token(client, "/businesses/biz-a")

        async def label(text: str) -> str:
            answer = await client.post("/businesses/biz-a/classify", data={"csrf": token, "text": text})
            return answer.text.split('class="tag ')[1].split('"')[0]
        assert await label("אהממם") == "filler"  # the business's own filler (its lexicon addition)
        assert await label("אני רוצה לקבוע תור") == "turn"
