"""HTML fragments from feeds reduced to plain text.

Owns one function, :func:`html_to_text`. It is regex based on purpose: it runs on every title
and body of every polled entry (tens of thousands per cycle), so it must be fast, and it must
never raise on malformed markup. It is not a sanitiser for rendering: its output is plain text,
and whoever renders it must escape it.

Rules, in order:

1. ``<script>``, ``<style>``, ``<template>``, ``<noscript>`` elements and comments are dropped
   with their contents (an unterminated one runs to the end of the input).
2. Block-level tags, table cells and ``<br>`` become line breaks; every other tag is removed, so
   ``Mc<b>Donald</b>`` stays one word. A ``<`` that does not start a tag is kept as text.
3. Character references are decoded with :func:`html.unescape`.
4. Whitespace runs become one space and the ends are stripped. With ``lines=True`` (bodies),
   each paragraph stays a line of its own, so that later stages can tell a site's boilerplate
   lines ("Menu", "Subscribe ...") from the article; otherwise (titles, names) the text is one
   line. C0 control characters and DEL are removed.
"""

from __future__ import annotations

import html
import re

_DROPPED = re.compile(
    r"<(script|style|template|noscript)\b[^>]*>.*?(?:</\1\s*>|\Z)|<!--.*?(?:-->|\Z)",
    re.IGNORECASE | re.DOTALL,
)
_BLOCK_NAMES = [
    *("address", "article", "aside", "blockquote", "br", "dd", "div", "dl", "dt", "figcaption"),
    *("figure", "footer", "h1", "h2", "h3", "h4", "h5", "h6", "header", "hr", "li", "main"),
    *("nav", "ol", "p", "pre", "section", "table", "td", "th", "tr", "ul"),
]
# Lower- and upper-case names, matched case-sensitively: twice as fast as re.IGNORECASE here.
# A mixed-case block tag (<Br>) is removed like an inline one.
_BLOCK_TAG = re.compile(
    r"</?(?:" + "|".join(_BLOCK_NAMES + [name.upper() for name in _BLOCK_NAMES]) + r")\b[^<>]*>"
)
_ANY_TAG = re.compile(r"</?[a-zA-Z][^<>]*>|<![^<>]*>|<\?[^<>]*>")
# What str.split() leaves of C0 (it splits on \t \n \v \f \r and \x1c-\x1f), and DEL.
_CONTROL = re.compile(r"[\x00-\x08\x0e-\x1b\x7f]")


def html_to_text(html_text: str, *, lines: bool = False) -> str:
    """Return ``html_text`` as plain text: no markup, entities decoded, whitespace collapsed to
    single spaces; one line, or with ``lines`` one line per paragraph."""
    text = html_text
    if "<" in text:
        text = _DROPPED.sub("", text)
        text = _BLOCK_TAG.sub("\n", text)
        text = _ANY_TAG.sub("", text)
    if "&" in text:
        text = html.unescape(text)
    if lines and "\n" in text:
        text = "\n".join(
            line for line in (" ".join(part.split()) for part in text.split("\n")) if line
        )
    else:
        text = " ".join(text.split())
    if not text.isprintable():  # a cheap test that is also false for some Unicode letters
        text = _CONTROL.sub("", text)
    return text
