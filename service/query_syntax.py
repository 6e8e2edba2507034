"""The two operators a query may use where exact words matter: "a quoted phrase" must appear,
and -word (or -"a phrase") must not, as in web search engines and Semantic Scholar.

A phrase matches the same analysed terms in the same order, in the title or the abstract: the
ranking's own stemming and stopwords apply, so "recommender systems" also matches
"recommendation system" and "state of the art" matches "state-of-the-art". They bind in the
`lexical` and `hybrid` modes, where words count; the rest of the query ranks as it would.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from indexing.lexical import analyse

# A negated phrase or word (the minus starts a word), a quoted phrase; the quotes people
# type, straight or curly.
_EXCLUDED_PHRASE = re.compile(r'(?:(?<=\s)|^)-["“”]([^"“”]*)["“”]')
# A word, not a number: "-40 degrees" is a negative number, not an exclusion.
_EXCLUDED_WORD = re.compile(r"(?:(?<=\s)|^)-([^\W\d_][\w'-]*)")
_PHRASE = re.compile(r'["“”]([^"“”]*)["“”]')
_QUOTES = re.compile(r'["“”]')
# Marks where a phrase stood while the minus operator is read (a character no query holds).
_HELD = "\x00"


@dataclass(frozen=True)
class QuerySyntax:
    """A query read for its operators."""

    text: str  # the query without them: what is embedded, and what BM25 ranks by
    phrases: tuple[tuple[str, ...], ...]  # analysed terms each paper must hold, in order
    excluded: tuple[tuple[str, ...], ...]  # analysed phrases (or single words) it must not

    @property
    def constrains(self) -> bool:
        return bool(self.phrases or self.excluded)


def parse_query(query: str) -> QuerySyntax:
    """The query's text and operators; a ValueError says what is malformed and how to fix it."""
    phrases: list[tuple[str, ...]] = []
    excluded: list[tuple[str, ...]] = []

    def terms_of(inside: str) -> tuple[str, ...]:
        terms = tuple(analyse(inside))
        if not terms:
            raise ValueError(
                f'the quoted phrase "{inside}" holds no searchable word; drop the quotes or '
                "put words in them"
            )
        return terms

    def take_excluded(match: re.Match[str]) -> str:
        excluded.append(terms_of(match.group(1)))
        return " "

    kept: list[str] = []

    def take_phrase(match: re.Match[str]) -> str:
        phrases.append(terms_of(match.group(1)))
        kept.append(match.group(1))  # its words still rank the papers; put back below,
        return f"{_HELD}{len(kept) - 1}{_HELD}"  # out of reach of the minus operator

    rest = _PHRASE.sub(take_phrase, _EXCLUDED_PHRASE.sub(take_excluded, query))
    if _QUOTES.search(rest):
        raise ValueError('a quote is not closed: close the "phrase", or drop the quote')

    def take_word(match: re.Match[str]) -> str:
        terms = tuple(analyse(match.group(1)))
        if not terms:  # "-k": nothing searchable to exclude; the query keeps it as typed
            return match.group(0)
        excluded.append(terms)
        return " "

    rest = _EXCLUDED_WORD.sub(take_word, rest)
    rest = re.sub(f"{_HELD}(\\d+){_HELD}", lambda m: f" {kept[int(m.group(1))]} ", rest)
    text = " ".join(rest.split())
    if not analyse(text) and excluded:
        raise ValueError("the query only excludes words: add words or a phrase to search for")
    return QuerySyntax(text or query, tuple(phrases), tuple(excluded))


def holds(terms: list[str], phrase: tuple[str, ...]) -> bool:
    """Does the analysed text ``terms`` hold ``phrase``'s terms consecutively?"""
    size = len(phrase)
    first = phrase[0]
    return any(terms[i : i + size] == list(phrase) for i, term in enumerate(terms) if term == first)
