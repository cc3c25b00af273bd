"""Main text out of HTML with trafilatura: boilerplate (navigation, footers, cookie banners) removed."""

from __future__ import annotations

import re
from dataclasses import dataclass

import trafilatura

_HTML_MARKERS = re.compile(rb"<\s*(!doctype|html|head|body|div|p|article|section|main|span|h[1-6]|table|ul|ol|br)\b",
                           re.I)


class NotHtmlError(ValueError):
    """The content is binary or plain text, not HTML."""


class NoMainTextError(ValueError):
    """The HTML has no main text worth indexing (e.g. only navigation, or an empty page)."""


@dataclass(frozen=True)
class ExtractedPage:
    text: str
    title: str | None


def extract_main_text(content: bytes | str, *, url: str | None = None, min_words: int = 5) -> ExtractedPage:
    """The page's main text (and title) by trafilatura, or a NotHtmlError / NoMainTextError saying why not.

    :param content: the raw page, bytes in any declared encoding or already-decoded text.
    :param url: where the page came from; helps trafilatura resolve relative links and metadata.
    :param min_words: fewer extracted words than this count as no main text (a menu, a cookie notice).
    """
    raw = content.encode("utf-8", errors="replace") if isinstance(content, str) else content
    head = raw[:4096]
    if b"\x00" in head:
        raise NotHtmlError("binary content (it contains NUL bytes), not HTML")
    if not _HTML_MARKERS.search(raw[:65536]):
        raise NotHtmlError("no HTML tags found in the first 64 KiB")
    extracted = trafilatura.bare_extraction(
        raw, url=url, with_metadata=True, include_comments=False, include_tables=True
    )
    text = (extracted.text or "").strip() if extracted is not None else ""
    if len(text.split()) < min_words:
        raise NoMainTextError(f"no main text found (extracted {len(text.split())} word(s), need {min_words})")
    return ExtractedPage(text=text, title=(extracted.title or None))
