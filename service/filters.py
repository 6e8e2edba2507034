"""Which papers a search may return: filters over the columns every index row carries."""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np

from indexing.store import PaperColumns


@dataclass(frozen=True)
class PaperFilter:
    """Conditions a paper must all meet; ``None`` means "any".

    ``category`` matches the category case-insensitively, and also the part after the dot, so
    ``IR`` finds the site pages' ``IR`` and arXiv's ``cs.IR``. ``author`` is a case-insensitive
    substring of any one author's name. A paper with no known date fails any year condition.
    """

    year_from: int | None = None
    year_to: int | None = None
    category: str | None = None
    author: str | None = None
    source: str | None = None
    has_code: bool | None = None

    def is_empty(self) -> bool:
        return all(getattr(self, f.name) is None for f in fields(self))

    def mask(self, columns: PaperColumns) -> np.ndarray:
        """One boolean per row: does the paper pass every condition."""
        keep = np.ones(len(columns.year), dtype=bool)
        if self.year_from is not None:
            keep &= columns.year >= self.year_from
        if self.year_to is not None:
            keep &= (columns.year <= self.year_to) & (columns.year > 0)
        if self.category is not None:
            wanted = self.category.strip().lower()
            keep &= np.fromiter(
                (c == wanted or c.rpartition(".")[2] == wanted for c in columns.category),
                dtype=bool,
                count=len(columns.category),
            )
        if self.author is not None:
            needle = self.author.strip().lower()
            keep &= np.fromiter(
                (needle in names for names in columns.authors),
                dtype=bool,
                count=len(columns.authors),
            )
        if self.source is not None:
            keep &= columns.source == self.source
        if self.has_code is not None:
            keep &= columns.has_code == self.has_code
        return keep
