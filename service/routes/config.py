"""What a client needs to know of this service before it asks: limits, choices, filters."""

from __future__ import annotations

from fastapi import APIRouter

from service.deps import SettingsDep
from service.export import format_choices
from service.schemas import SearchForm

router = APIRouter(tags=["search"])


@router.get("/config", response_model=SearchForm, summary="Limits, choices and filters of search")
async def search_form(settings: SettingsDep) -> SearchForm:
    """Everything the search page builds its form from, as this service is configured: the
    query length, page depth and title bounds, the modes and orders with their labels, and
    each filter with its type and bounds. Derived from the same definitions that validate
    requests, so a form built from it accepts what the API accepts."""
    return SearchForm.of(
        settings.max_query_chars, settings.max_text_chars, settings.search_mode, format_choices()
    )
