"""Reading the pages' query strings: dates, yes/no/any, page numbers — a malformed value reads as "any"."""
from __future__ import annotations

from datetime import date

from starlette.datastructures import QueryParams

from storage.console_queries import CallFilter


def day(value: str | None) -> date | None:
    try:
        return date.fromisoformat(value) if value else None
    except ValueError:
        return None


def yes_no(value: str | None) -> bool | None:
    return {"yes": True, "no": False}.get(value or "")


def page_number(value: str | None) -> int:
    return int(value) if value and value.isdigit() and int(value) > 0 else 1


def call_filter(query: QueryParams) -> CallFilter:
    return CallFilter(business_id=query.get("business", ""), date_from=day(query.get("from")),
                      date_to=day(query.get("to")), end_reason=query.get("end_reason", ""),
                      transferred=yes_no(query.get("transferred")), lead_saved=yes_no(query.get("lead_saved")),
                      fallback=yes_no(query.get("fallback")), word=query.get("q", "")[:100],
                      page=page_number(query.get("page")))


def mask_number(e164: str) -> str:
    """A caller number for a business user: the country code and the last three digits."""
    if len(e164) <= 6:
        return "•" * len(e164)
    return e164[:4] + "•" * (len(e164) - 7) + e164[-3:]
