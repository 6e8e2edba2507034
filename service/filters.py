"""Which papers a search may return: the filters, declared once.

``SearchFilters`` is the one definition. The HTTP request inherits its fields, the engine
evaluates it (``mask``), the CLI's options, the assistant tools' parameters and the page's
filter form (``filter_fields``, served by ``GET /config``) are derived from it. Adding a
filter is one field here, with its label, plus one condition in ``mask`` (and, where no
filter column holds what it tests yet, that column in ``PaperColumns``, indexing/columns.py).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

import numpy as np
from pydantic import BaseModel, Field, field_validator, model_validator
from pydantic.fields import FieldInfo

from service.typed_text import optional_clean_text

if TYPE_CHECKING:  # the CLI builds its options from these fields without loading an index
    from indexing.reader import PaperIndex

MIN_YEAR = 1000
MAX_YEAR = 9999

# Hints for the page's form, kept on the field they describe (OpenAPI allows `x-` keys):
# a placeholder, the /facets field a control offers (a list of values for a select, a
# year for a number's placeholder), and the words for a yes/no choice.
PLACEHOLDER = "x-placeholder"
FACET = "x-facet"
CHOICES = "x-choices"
YES_NO = {"": "Any", "true": "Yes", "false": "No"}  # a yes/no filter's words, unless it has its own


class SearchFilters(BaseModel):
    """Conditions a paper must all meet; ``None`` means "any".

    ``category`` matches any of a paper's categories case-insensitively, and also the part
    after the dot, so ``IR`` finds the site pages' ``IR`` and arXiv's ``cs.IR``, cross-listed
    papers included. ``author`` is a case-insensitive
    substring of any one author's name. A paper with no known date fails any year condition.
    """

    year_from: int | None = Field(
        None,
        ge=MIN_YEAR,
        le=MAX_YEAR,
        title="Published from",
        description="Published in or after.",
        json_schema_extra={FACET: "year_min", PLACEHOLDER: "year"},
    )
    year_to: int | None = Field(
        None,
        ge=MIN_YEAR,
        le=MAX_YEAR,
        title="Published to",
        description="Published in or before.",
        json_schema_extra={FACET: "year_max", PLACEHOLDER: "year"},
    )
    category: str | None = Field(
        None,
        min_length=1,
        max_length=50,
        title="Category",
        description="Category, any case; `IR` also matches arXiv's `cs.IR`, and a cross-listed "
        "paper matches each of its categories.",
        json_schema_extra={FACET: "categories", PLACEHOLDER: "Any category"},
    )
    author: str | None = Field(
        None,
        min_length=2,
        max_length=200,
        title="Author",
        description="Part of an author's name, any case.",
        json_schema_extra={PLACEHOLDER: "part of a name"},
    )
    source: str | None = Field(
        None,
        min_length=1,
        max_length=500,
        title="Source file",
        description="File name the paper was indexed from.",
        json_schema_extra={PLACEHOLDER: "file name"},
    )
    has_code: bool | None = Field(
        None,
        title="Code",
        description="Only papers with code (true) or without (false).",
        json_schema_extra={
            CHOICES: {"": "With or without", "true": "With code", "false": "Without code"}
        },
    )

    _text_clean = field_validator("category", "author", "source")(optional_clean_text)

    @model_validator(mode="after")
    def _years_in_order(self) -> SearchFilters:
        if self.year_from and self.year_to and self.year_from > self.year_to:
            raise ValueError(f"year_from {self.year_from} is after year_to {self.year_to}")
        return self

    def filter_values(self) -> dict[str, Any]:
        """The filters that are set, by name (a request carries more than its filters)."""
        return {
            name: value
            for name in SearchFilters.model_fields
            if (value := getattr(self, name)) is not None
        }

    def mask(self, index: PaperIndex) -> np.ndarray | None:
        """One boolean per row: does the paper pass every condition; ``None`` when no filter
        is set, so an unfiltered search neither reads the index's filter columns nor
        allocates anything proportional to the corpus."""
        if not self.filter_values():
            return None
        columns = index.columns
        keep = np.ones(len(columns.year), dtype=bool)
        if self.year_from is not None:
            keep &= columns.year >= self.year_from
        if self.year_to is not None:
            keep &= (columns.year <= self.year_to) & (columns.year > 0)
        if self.category is not None:
            wanted = self.category.lower()
            keep &= columns.with_category(
                code
                for code, name in enumerate(columns.category_names)
                if name == wanted or name.rpartition(".")[2] == wanted
            )
        if self.author is not None:
            keep &= columns.with_author_text(self.author.lower())
        if self.source is not None:
            known = [code for code, name in enumerate(columns.source_names) if name == self.source]
            keep &= np.isin(columns.source, known)
        if self.has_code is not None:
            keep &= columns.has_code == self.has_code
        return keep


NO_FILTERS = SearchFilters()


class Choice(BaseModel):
    value: str = Field(description="What the API takes; empty for any.")
    label: str


class FilterField(BaseModel):
    """One filter as a form shows it, derived from its ``SearchFilters`` field."""

    name: str = Field(description="The search parameter.")
    label: str
    description: str
    type: Literal["integer", "string", "boolean"]
    minimum: int | None = None
    maximum: int | None = None
    min_length: int | None = None
    max_length: int | None = None
    placeholder: str | None = None
    facet: str | None = Field(
        None,
        description="The `GET /facets` field this filter draws on: the values a text filter "
        "takes, or the bound a number filter's placeholder shows.",
    )
    choices: list[Choice] | None = Field(None, description="The values to choose among.")


_KINDS: dict[type, Literal["integer", "string", "boolean"]] = {
    bool: "boolean",
    int: "integer",
    str: "string",
}


def filter_fields() -> list[FilterField]:
    """Every filter, in declaration order, as the page's form builds it."""
    return [_form_field(name, info) for name, info in SearchFilters.model_fields.items()]


def bounds_of(info: FieldInfo) -> dict[str, int]:
    """A field's limits (``minimum``, ``maximum``, ``min_length``, ``max_length``) as its
    ``Field(...)`` declares them, for clients that check input before sending it."""
    bounds: dict[str, int] = {}
    for rule in info.metadata:
        for key, attribute in (
            ("minimum", "ge"),
            ("maximum", "le"),
            ("min_length", "min_length"),
            ("max_length", "max_length"),
        ):
            if getattr(rule, attribute, None) is not None:
                bounds[key] = getattr(rule, attribute)
    return bounds


def _form_field(name: str, info: FieldInfo) -> FilterField:
    hints: dict[str, Any] = (
        dict(info.json_schema_extra) if isinstance(info.json_schema_extra, dict) else {}
    )
    kind = _KINDS[next(t for t in _KINDS if t in _types_of(info.annotation))]
    choices: dict[str, str] = hints.get(CHOICES) or (YES_NO if kind == "boolean" else {})
    return FilterField(
        name=name,
        label=info.title or name,
        description=info.description or "",
        type=kind,
        placeholder=hints.get(PLACEHOLDER),
        facet=hints.get(FACET),
        choices=[Choice(value=v, label=label) for v, label in choices.items()] or None,
        **bounds_of(info),
    )


def _types_of(annotation: Any) -> tuple[Any, ...]:
    return getattr(annotation, "__args__", (annotation,))
