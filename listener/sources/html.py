"""HTML fragments from feeds reduced to plain text.

Owns one function, :func:`html_to_text`. It is regex based on purpose: it runs on every title
and body of every polled entry (tens of thousands per cycle), so it must be fast, and it must
never raise on malformed markup. It is not a sanitiser for rendering: its output is plain text,
and whoever renders it must escape it.

Rules, in order:

1. ``<script>``, ``<style>``, ``<template>``, ``<noscript>`` elements and comments are dropped
   with their contents (an unterminated one runs to the end of the input).
2. Block-level tags, table cells and ``<br>`` become line breaks; every other tag is
   removed. A ``<`` that does not start a tag is kept as text.
3. Character references are decoded with :func:`html.unescape`.
4. C0 control characters other than tab, newline and carriage return are removed; runs of
   whitespace become one space, or one newline when the run held a line break; then strip.
"""

from __future__ import annotations

import html
import re

_DROPPED = re.compile(
    r"<(script|style|template|noscript)\b[^>]*>.*?(?:</\1\s*>|\Z)|<!--.*?(?:-->|\Z)",
    re.IGNORECASE | re.DOTALL,
)
_BLOCK_NAMES = (
    "address article aside blockquote br dd div dl dt figcaption figure footer h1 h2 h3 h4 h5 h6"
    " header hr li main nav ol p pre section table td th tr ul"
).split()
# Lower- and upper-case names, matched case-sensitively: twice as fast as re.IGNORECASE here.
# A mixed-case block tag (<Br>) is removed like an inline one.
_BLOCK_TAG = re.compile(
    r"</?(?:%s)\b[^<>]*>" % "|".join(_BLOCK_NAMES + [name.upper() for name in _BLOCK_NAMES])
)
_ANY_TAG = re.compile(r"</?[a-zA-Z][^<>]*>|<![^<>]*>|<\?[^<>]*>")
# What str.split() leaves of C0 (it splits on \t \n \v \f \r and \x1c-\x1f), plus DEL.
_CONTROL = re.compile(r"[\x00-\x08\x0e-\x1b\x7f]")


def html_to_text(html_text: str) -> str:
    """Return ``html_text`` as plain text: no markup, entities decoded, whitespace collapsed."""
    text = html_text
    if "<" in text:
        text = _DROPPED.sub("", text)
        text = _BLOCK_TAG.sub("\n", text)
        text = _ANY_TAG.sub("", text)
    if "&" in text:
        text = html.unescape(text)
    if "\n" in text:
        lines = [" ".join(line.split()) for line in text.split("\n")]
        text = "\n".join([line for line in lines if line])
    else:
        text = " ".join(text.split())
    if not text.isprintable():  # cheap test; also true for newlines and some Unicode spaces
        text = _CONTROL.sub("", text)
    return text
