"""Text a person typed (a query, a title, a filter value), made comparable with the corpus."""

from __future__ import annotations

import re
import unicodedata

# Control characters (Unicode category Cc) but tab and line breaks, and lone surrogates:
# JSON's "\ud800" escapes can carry those, UTF-8 cannot encode them, and no paper holds either.
_REFUSED_CHARACTERS = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff]")


def clean_text(text: str) -> str:
    """NFC, the form nearly all text is written in (a decomposed "é" becomes the one
    letter), without surrounding space. Emoji, right-to-left scripts and combining marks
    pass; what cannot be a paper's text is refused with the code point, so a client sees
    which character it sent."""
    refused = _REFUSED_CHARACTERS.search(text)
    if refused:
        code = ord(refused.group())
        kind = "lone surrogate" if 0xD800 <= code <= 0xDFFF else "control character"
        raise ValueError(f"contains a {kind} (U+{code:04X}); send plain Unicode text")
    text = unicodedata.normalize("NFC", text).strip()
    if not text:
        raise ValueError("must contain some non-space text")
    return text


def optional_clean_text(text: str | None) -> str | None:
    return None if text is None else clean_text(text)
