"""Businesses: view a business file, edit its TOML (validated by exactly what `kolbridge business import` runs:
`parse_business` and the setting-override check), see the diff before saving, save (upsert, a version row,
an audit row), roll back to any version; the prompt a call would get; classify a typed utterance with the
business's lexicon as `kolbridge turn-check` does. A business outside the viewer's scope is a 404."""
from __future__ import annotations

import difflib

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from console.web import Viewer, console_of, not_found, render
from gateway.cli.records import business_toml, prompt_show
from prompts.classifier import Lexicon, classify, load_lexicon
from storage.audit import get_version, list_versions, save_version
from storage.businesses import BusinessError, BusinessSpec, BusinessView, parse_business, upsert_business
from storage.console_queries import scoped_business, scoped_businesses

FIRST_VERSION_NOTE = "as it was before the first edit in the console"


async def _business(request: Request, viewer: Viewer) -> BusinessView:
    view = await scoped_business(console_of(request).sessions, viewer.scope, request.path_params["business_id"])
    if view is None:
        raise not_found()
    return view


def validated(request: Request, business_id: str, text: str) -> tuple[BusinessSpec | None, str]:
    """The spec, or the error `kolbridge business import` would print for this text."""
    try:
        spec = parse_business(text, f"business {business_id}")
    except BusinessError as exc:
        return None, str(exc)
    problems = console_of(request).business_check(spec)
    if spec.id != business_id:
        problems.append(f"business.id: {spec.id!r} — this page edits {business_id!r}")
    return (None, f"business {business_id}: " + "; ".join(problems)) if problems else (spec, "")


def lexicon_of(view: BusinessView, language: str) -> Lexicon:
    """The lexicon a call's judge uses for `language`: the language's own plus the business's additions."""
    if language == view.language:
        return load_lexicon(language).extended(view.fillers, view.short_words, view.backchannels)
    words = view.lexicons.get(language, {})
    return load_lexicon(language).extended(words.get("fillers", []), words.get("short_words", []),
                                           words.get("backchannels", []))


async def businesses_page(request: Request, viewer: Viewer) -> Response:
    businesses = await scoped_businesses(console_of(request).sessions, viewer.scope)
    return render(request, viewer, "businesses.html", businesses=businesses)


async def business_page(request: Request, viewer: Viewer, text: str | None = None, error: str = "",
                        status_code: int = 200) -> Response:
    view = await _business(request, viewer)
    sessions = console_of(request).sessions
    return render(request, viewer, "business.html", status_code=status_code, business=view,
                  toml=text if text is not None else business_toml(view), error=error,
                  versions=await list_versions(sessions, view.id), prompt=await prompt_show(sessions, view.id) or "",
                  saved=request.query_params.get("saved", ""))


async def business_view(request: Request, viewer: Viewer) -> Response:
    return await business_page(request, viewer)


async def business_preview(request: Request, viewer: Viewer) -> Response:
    """The diff from the saved file to the edited text (or why the text cannot be saved), before saving."""
    view = await _business(request, viewer)
    text = str((await request.form()).get("toml", ""))
    _, error = validated(request, view.id, text)
    diff = "".join(difflib.unified_diff(business_toml(view).splitlines(keepends=True), text.splitlines(keepends=True),
                                        "saved", "edited"))
    return render(request, viewer, "business_diff.html", business=view, toml=text, diff=diff, error=error)


async def store(request: Request, viewer: Viewer, view: BusinessView, text: str, note: str, action: str) -> str:
    """Validate and save `text` as `view`'s business file: "" when saved, else the error (nothing saved)."""
    spec, error = validated(request, view.id, text)
    if spec is None:
        return error
    sessions = console_of(request).sessions
    try:
        await upsert_business(sessions, spec)
    except BusinessError as exc:
        return str(exc)
    if not await list_versions(sessions, view.id):
        await save_version(sessions, view.id, viewer.user.email, business_toml(view), FIRST_VERSION_NOTE,
                           "business_version_kept")
    await save_version(sessions, view.id, viewer.user.email, text, note, action)
    return ""


async def business_save(request: Request, viewer: Viewer) -> Response:
    view = await _business(request, viewer)
    form = await request.form()
    text, note = str(form.get("toml", "")), str(form.get("note", ""))[:500]
    error = await store(request, viewer, view, text, note, "business_edit")
    if error:
        return await business_page(request, viewer, text, error, status_code=422)
    return RedirectResponse(f"/businesses/{view.id}?saved=1", status_code=303)


async def business_rollback(request: Request, viewer: Viewer) -> Response:
    view = await _business(request, viewer)
    wanted = int(request.path_params["version_id"])
    version = await get_version(console_of(request).sessions, view.id, wanted)
    if version is None:
        raise not_found()
    error = await store(request, viewer, view, version.toml, f"rollback to version {wanted}", "business_rollback")
    if error:
        return await business_page(request, viewer, version.toml, error, status_code=422)
    return RedirectResponse(f"/businesses/{view.id}?saved=1", status_code=303)


async def business_classify(request: Request, viewer: Viewer) -> Response:
    view = await _business(request, viewer)
    form = await request.form()
    language = str(form.get("language", view.language))
    language = language if language in view.languages else view.language
    text = str(form.get("text", ""))[:500]
    label = classify(text, lexicon_of(view, language)).value if text.strip() else ""
    return render(request, viewer, "classify_result.html", text=text, label=label, language=language)
