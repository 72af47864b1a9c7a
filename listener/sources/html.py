"""HTML fragments from feeds reduced to plain text.

Owns :func:`html_to_text` and its cheap stand-in for screening, :func:`text_pieces`. It is
regex based on purpose: it runs on every title and body of every polled entry (tens of
thousands per cycle), so it must be fast, and it must never raise on malformed markup. It is
not a sanitiser for rendering: its output is plain text, and whoever renders it must escape it.

Rules, in order:

1. ``<script>``, ``<style>``, ``<template>``, ``<noscript>`` elements and comments are dropped
   with their contents (an unterminated one runs to the end of the input).
2. Block-level tags, table cells and ``<br>`` become line breaks; every other tag is removed, so
   ``Mc<b>Donald</b>`` stays one word. A tag is an HTML element name (HTML, SVG and MathML
   names, any case), a namespaced one (``<o:p>``) or a custom element (``<my-card>``); anything
   else in angle brackets is a word and stays (``Vector<int>``, ``<Kryptonite>``), unless its
   end tag follows (``<spacer></spacer>``); a ``<`` that does not start a tag stays too.
3. Character references are decoded with :func:`html.unescape`, once: text that is plain
   already (an Atom ``type="text"`` construct, whose references the XML parser decoded) goes
   through ``feed_fields.plain_text``, which escapes it first, so ``AT&amp;T`` stays that.
4. Terminal escape sequences (ESC ``[31m``, OSC strings, ...) are removed whole by
   :func:`listener.untrusted.without_escapes`; one between two letters or digits leaves a space,
   so ``Evil\x1b[31mKryptonite`` is two words, and matching still finds "Kryptonite".
5. Whitespace runs become one space and the ends are stripped. With ``lines=True`` (bodies),
   each paragraph stays a line of its own, so that later stages can tell a site's boilerplate
   lines ("Menu", "Subscribe ...") from the article; otherwise (titles, names) the text is one
   line. C0 control characters and DEL are removed; C1 controls (U+0080-U+009F, what
   ``&#146;`` means in XML) become the Windows-1252 characters they stand for, as HTML5 reads
   them (``don&#146;t`` is "don’t").

:func:`text_pieces` is for screening entries before they are built (see
``matching.Matcher.screen``): a text holding every run of word characters ``html_to_text``
could give, made in a few C-speed passes, or None when it cannot promise that. It drops what
rule 1 drops, removes every tag-shaped ``<...>`` (gluing at least what rule 2 glues) and adds the
tags' own text after the rest (for ``<Kryptonite>`` kept as a word), decodes complete character
references one by one (as rule 3 would: each ``&`` must start one), and gives None where rules 4
and 5 would delete characters between two others (C0 controls, C1 controls, ESC references).
"""

from __future__ import annotations

import html
import re

from listener.untrusted import without_escapes

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
_INLINE_NAMES = [
    *("a", "abbr", "acronym", "applet", "area", "audio", "b", "base", "basefont", "bdi", "bdo"),
    *("big", "blink", "body", "button", "canvas", "caption", "center", "cite", "code", "col"),
    *("colgroup", "data", "datalist", "del", "details", "dfn", "dialog", "dir", "em", "embed"),
    *("fieldset", "font", "form", "frame", "frameset", "head", "hgroup", "html", "i", "iframe"),
    *("img", "image", "input", "ins", "kbd", "label", "legend", "link", "map", "mark", "marquee"),
    *("math", "menu", "meta", "meter", "nobr", "noembed", "noframes", "object", "optgroup"),
    *("option", "output", "param", "picture", "progress", "q", "rb", "rp", "rt", "rtc", "ruby"),
    *("s", "samp", "search", "select", "slot", "small", "source", "span", "strike", "strong"),
    *("sub", "summary", "sup", "svg", "tbody", "textarea", "tfoot", "thead", "time", "title"),
    *("track", "tt", "u", "var", "video", "wbr", "xmp", "path", "g", "circle", "rect", "line"),
    *("polyline", "polygon", "ellipse", "use", "defs", "symbol", "text", "tspan", "stop"),
    *("lineargradient", "radialgradient", "clippath", "mask", "pattern", "filter", "desc"),
    *("mi", "mn", "mo", "ms", "mrow", "msup", "msub", "mfrac", "msqrt", "mtext", "semantics"),
]
_KNOWN_NAMES = frozenset(_BLOCK_NAMES + _INLINE_NAMES)
# Anything shaped like a tag (group 1: its name), a comment-like or processing-instruction-like
# construct. Whether a tag is markup or words is decided by its name (see the docstring).
_ANY_TAG = re.compile(r"</?([a-zA-Z][\w.:-]*)[^<>]*>|<![^<>]*>|<\?[^<>]*>")
_TAG_NAME = re.compile(r"<(/?)([a-zA-Z][\w.:-]*)")
# What str.split() leaves of C0 (it splits on \t \n \v \f \r and \x1c-\x1f), and DEL.
_CONTROL = re.compile(r"[\x00-\x08\x0e-\x1b\x7f]")
_ESC_REFERENCE = re.compile(r"&#(?:0*27|[xX]0*1[bB]);?")
_LONE_ESC = re.compile(r"\x1b(?=\s|\Z)")  # introduces nothing: "esc\x1b del" keeps "del"
# C1 controls as HTML5 reads them: the Windows-1252 character, or nothing where it has none.
_C1 = {code: bytes([code]).decode("cp1252", "ignore") or None for code in range(0x80, 0xA0)}


def html_to_text(html_text: str, *, lines: bool = False) -> str:
    """Return ``html_text`` as plain text: no markup, entities decoded, whitespace collapsed to
    single spaces; one line, or with ``lines`` one line per paragraph."""
    text = html_text
    if "<" in text:
        text = _DROPPED.sub("", text)
        text = _BLOCK_TAG.sub("\n", text)
        text = _strip_tags(text)
    if "&" in text:
        if "&#" in text:  # html.unescape drops a reference to ESC, gluing what it introduced
            text = _ESC_REFERENCE.sub("\x1b", text)
        text = html.unescape(text)
    if "\x1b" in text:  # C1 first, as below: U+009B is "›" here, not an escape introducer
        text = drop_escapes(text.translate(_C1))
    if lines and "\n" in text:
        text = "\n".join(
            line for line in (" ".join(part.split()) for part in text.split("\n")) if line
        )
    else:
        text = " ".join(text.split())
    if not text.isprintable():  # a cheap test that is also false for some Unicode letters
        text = _CONTROL.sub("", text).translate(_C1)
    return text


_TAG_SHAPED = re.compile(r"(<[^<>]*>)")  # every match of _ANY_TAG and _BLOCK_TAG is one of these
_REFERENCE = re.compile(r"&(?:#[0-9]{1,7}|#[xX][0-9a-fA-F]{1,6}|[A-Za-z][A-Za-z0-9]{0,31});")
# What html_to_text deletes or replaces between two characters (rules 4 and 5).
_GLUING = re.compile(r"[\x00-\x08\x0e-\x1b\x7f-\x9f]")
_DECODED: dict[str, str] = {}  # reference -> its text, for the references seen most
_DECODED_KEPT = 4096


def text_pieces(html_text: str) -> str | None:
    """A text holding every run of word characters of ``html_to_text(html_text)`` (and more),
    or None when it cannot be promised cheaply (see the module docstring)."""
    text = html_text
    if not text.isprintable() and _GLUING.search(text):
        return None
    if "<" in text:
        text = _DROPPED.sub("", text)
    if "&" in text:
        # Every "&" starts a complete reference before tags go (none holds "<" or ">"): then
        # removing tags neither makes nor breaks one, whichever tags html_to_text keeps.
        references = _REFERENCE.findall(text)
        if len(references) != text.count("&") or ("&#" in text and _ESC_REFERENCE.search(text)):
            return None  # a bare "&", or an ESC reference (rule 4 would cut what follows)
    if "<" in text:
        parts = _TAG_SHAPED.split(text)
        # the text with every tag removed (glued), then the tags (words in angle brackets)
        text = "".join(parts[0::2]) + "\n" + "\n".join(parts[1::2])
    if "&" in text:
        text = _REFERENCE.sub(_decode, text)
        if "\x00" in text:
            return None  # a reference to a character rule 5 deletes
    return text


def _decode(found: re.Match[str]) -> str:
    """One complete character reference decoded as ``html.unescape`` decodes it in context."""
    reference = found.group()
    decoded = _DECODED.get(reference)
    if decoded is None:
        decoded = html.unescape(reference)
        if _GLUING.search(decoded):
            decoded = "\x00"  # "&#129;": html_to_text deletes it, gluing its neighbours
        if len(_DECODED) < _DECODED_KEPT:
            _DECODED[reference] = decoded
    return decoded


def drop_escapes(text: str) -> str:
    """``text`` without terminal escape sequences (see the module docstring); an ESC before
    whitespace or at the end introduces nothing and goes alone."""
    return without_escapes(_LONE_ESC.sub("", text))


def _strip_tags(text: str) -> str:
    """``text`` without its tags: those of HTML/SVG/MathML elements, namespaced and custom
    elements, and of unknown elements that are closed (``<spacer></spacer>``: an end tag is
    never a word, nor is a start tag whose end tag is there). Other ``<word>`` stays."""
    names = _TAG_NAME.findall(text)
    unknown = {
        name.lower()
        for _, name in names
        if ":" not in name and "-" not in name and name.lower() not in _KNOWN_NAMES
    }
    if not unknown:  # the common case: one substitution without a Python callback
        return _ANY_TAG.sub("", text)
    closed = {name.lower() for slash, name in names if slash}
    words = unknown - closed

    def keep_words(tag: re.Match[str]) -> str:
        name = tag.group(1)
        return tag.group() if name is not None and name.lower() in words else ""

    return _ANY_TAG.sub(keep_words, text)
