"""What every HTML page gridwatch writes shares: verbatim markup, and the check that it opens offline."""

from __future__ import annotations

import re
from typing import Any

from branca.element import Element

# What would make a browser fetch something: a page must open from a USB stick or a phone with no signal.
_EXTERNAL_REFERENCE = re.compile(
    r"<(?:script|img|iframe|embed|source|audio|video)\b[^>]*\bsrc\s*=|<link\b[^>]*\bhref\s*=|@import\b",
    re.IGNORECASE,
)


class RawHtml(Element):
    """Markup put into a branca page verbatim.

    branca compiles an ``Element``'s text as a Jinja template, which would mangle
    minified JavaScript containing ``{{``; this one is never templated.
    """

    def __init__(self, text: str) -> None:
        super().__init__()
        self._text = text

    def render(self, **kwargs: Any) -> str:
        return self._text


def check_self_contained(page: str, what: str = "page") -> None:
    """Raise ``ValueError`` if ``page`` would fetch scripts, styles or media (it would break offline)."""
    found = _EXTERNAL_REFERENCE.findall(page)
    if found:
        raise ValueError(f"{what} references external resources: {sorted(set(found))}")
