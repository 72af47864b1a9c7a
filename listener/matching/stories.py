"""Stories: copies of one article across sites, recognised by URL or by a near-duplicate text.

Owns ``story_url`` and ``fingerprint``. Pure values only: no I/O, no clock. Distances, bands and
the band index that groups near copies are ``listener.simhash`` (shared with storage, which
assigns stories with it). Rules:

- ``story_url`` is ``canonical_url`` with the variants of one article folded together: the
  scheme becomes https; the host loses ``www.``, ``m.``, ``mobile.``, ``mobil.`` and ``amp.``
  prefixes (while at least two labels remain); ``/amp`` path segments at the start or the end
  and the ``.amp.html`` suffix go; ``amp``, ``amp=1`` (any value) and ``outputType=amp``
  parameters go; a trailing slash goes (except on the root path); Google AMP cache URLs
  (``https://<x>.cdn.ampproject.org/c/s/<host>/<path>``, also ``/v/`` and without ``s/`` for
  http) and ``https://www.google.com/amp/s/<host>/<path>`` become the publisher's URL. Idempotent.
- ``fingerprint`` is a 64-bit SimHash of the normalised title and text, or None when the text is
  too short to tell stories apart (fewer than ``MIN_BODY_WORDS`` words left after boilerplate is
  stripped); such entries group by URL only. Before hashing, site boilerplate is stripped:
  lines of fewer than four words (menus, "Advertisement", "Skip to content"), navigation lines
  (three or more separators such as ``|`` or ``·``) and sentences naming the usual page furniture
  (cookies, newsletters, subscriptions, copyright, "all rights reserved", sharing, "read more",
  "the post ... appeared first on", and their German counterparts). The features are the words
  (not stop words) of title and text, each weighing its length in characters up to 8 (a rough
  stand-in for rarity, no corpus needed); the title's words weigh ``TITLE_WEIGHT`` (8) times
  more, so a shared headline holds copies together, boilerplate that survives stripping cannot
  dominate, and different headlines keep templated articles apart. Only the first
  ``MAX_WORDS`` words of the text count. Word order is ignored on purpose: measured on the
  fixtures and the benchmark, 3-word shingles and word pairs move 10-20 bits for a dropped
  sentence, single words 1-3.
- Two entries are the same story when their ``story_url`` is equal, else when their fingerprints
  are within ``listener.simhash.MAX_DISTANCE`` (6) bits (storage applies this).
"""

from __future__ import annotations

import hashlib
import re
import struct
from collections import Counter
from urllib.parse import urlsplit, urlunsplit

import ahocorasick_rs

from listener.matching.dedup import canonical_url
from listener.matching.normalize import normalize

__all__ = ["MAX_WORDS", "MIN_BODY_WORDS", "TITLE_WEIGHT", "fingerprint", "story_url"]

# --- story_url -----------------------------------------------------------------------------

_HOST_PREFIXES: tuple[str, ...] = ("www.", "m.", "mobile.", "mobil.", "amp.")
_AMP_CACHE_SUFFIX = ".cdn.ampproject.org"
_AMP_CACHE_PREFIXES: tuple[str, ...] = ("/c/", "/v/")
_GOOGLE_AMP_HOSTS: frozenset[str] = frozenset({"google.com", "www.google.com"})


def _fold_host(netloc: str) -> str:
    userinfo, at, hostport = netloc.rpartition("@")
    if hostport.startswith("["):  # IPv6 literal
        return netloc
    host, colon, port = hostport.partition(":")
    changed = True
    while changed:
        changed = False
        for prefix in _HOST_PREFIXES:
            rest = host.removeprefix(prefix)
            if rest != host and "." in rest:
                host, changed = rest, True
    return f"{userinfo}{at}{host}{colon}{port}"


def _fold_path(path: str) -> str:
    while True:
        before = path
        if path in ("/amp", "/amp/"):
            path = "/"
        elif path.startswith("/amp/"):
            path = path[4:]
        elif path.endswith("/amp"):
            path = path[:-4] or "/"
        elif path.endswith("/amp/"):
            path = path[:-5] or "/"
        elif path.endswith(".amp.html"):
            path = path[: -len(".amp.html")] + ".html"
        elif path.endswith(".amp"):
            path = path[:-4]
        if len(path) > 1 and path.endswith("/"):
            path = path.rstrip("/") or "/"
        if path == before:
            return path


def _is_amp_param(param: str) -> bool:
    name, _, value = param.partition("=")
    name = name.lower()
    return name in ("amp", "_amp") or (name == "outputtype" and value.lower() == "amp")


def _unwrap_amp_cache(host: str, path: str, query: str) -> str | None:
    """The publisher's URL inside an AMP cache URL, or None when ``host`` is no AMP cache."""
    if host.endswith(_AMP_CACHE_SUFFIX):
        for prefix in _AMP_CACHE_PREFIXES:
            if path.startswith(prefix):
                inner = path[len(prefix) :]
                break
        else:
            return None
    elif host in _GOOGLE_AMP_HOSTS and path.startswith("/amp/"):
        inner = path[len("/amp/") :]
    else:
        return None
    inner_scheme = "http"
    if inner == "s" or inner.startswith("s/"):  # the https marker, with or without its slash
        inner_scheme, inner = "https", inner[2:]
    if not inner or inner.startswith("/"):
        return None
    return f"{inner_scheme}://{inner}" + (f"?{query}" if query else "")


def story_url(url: str) -> str:
    """Return ``canonical_url(url)`` with AMP, mobile and www variants of an article folded."""
    canonical = canonical_url(url)
    try:
        parts = urlsplit(canonical)
    except ValueError:  # canonical_url keeps what it cannot split; so do we
        return canonical
    if not parts.netloc or parts.scheme not in ("http", "https"):
        return canonical
    inner = _unwrap_amp_cache(parts.hostname or "", parts.path, parts.query)
    if inner is not None:
        return story_url(inner)
    query = "&".join(p for p in parts.query.split("&") if not _is_amp_param(p))
    path = _fold_path(parts.path)
    # folding can uncover an AMP cache path (``/amp/c/...`` on a cache host): unwrap that too,
    # so that story_url(story_url(u)) == story_url(u); every round removes a prefix or a host
    if path != parts.path and _unwrap_amp_cache(parts.hostname or "", path, query) is not None:
        return story_url(urlunsplit((parts.scheme, parts.netloc, path, query, "")))
    return urlunsplit(("https", _fold_host(parts.netloc), path, query, ""))


# --- fingerprint ---------------------------------------------------------------------------

MIN_BODY_WORDS = 30
"""Fewer words than this in the text (after boilerplate is stripped) give no fingerprint."""
TITLE_WEIGHT = 8
"""How much more a word of the title weighs than the same word of the text."""
MAX_WORDS = 50_000
"""Only the first words of a text count (and the SimHash counters cannot overflow)."""

_SHORT_LINE_WORDS = 4
_WORD = re.compile(r"\w+")
_SENTENCES = re.compile(r"(?<=[.!?…])\s+")
_NAV_SEPARATORS = re.compile(r"(?:^|\s)[|·•»›/>]\s|\s[|·•»›/>](?:\s|$)")
_BOILERPLATE = re.compile(
    r"cookie|newsletter|subscri(?:be|ption)|sign[ -]?up|all rights reserved|copyright|©"
    r"|privacy policy|terms of (?:use|service)|follow us|share (?:this|on)|read more"
    r"|click here|appeared first on|advertisement|^related\b"
    r"|abonn|datenschutz|impressum|alle rechte vorbehalten|folgen sie uns|weiterlesen"
    r"|lesen sie auch|mehr zum thema|anzeige|werbung"
)
# Every alternative of the two patterns above contains one of these: a line without any of them
# (most lines) needs no regular expression (str.__contains__ is many times faster than re's
# alternation); _has_any(...) and the regex together decide exactly as the regex alone.
_NAV_CHARS = tuple("|·•»›/>")
_BOILERPLATE_WORDS = (
    *"cookie newsletter subscri sign copyright © follow share click appeared advertisement".split(),
    *"related abonn datenschutz impressum folgen weiterlesen lesen anzeige werbung".split(),
    "all rights reserved",
    "privacy policy",
    "terms of ",
    "read more",
    "alle rechte vorbehalten",
    "mehr zum thema",
)


def _has_any(line: str, needles: tuple[str, ...]) -> bool:
    return any(needle in line for needle in needles)


# all the boilerplate literals in one pass over a line (24 substring searches took longer)
_BOILERPLATE_SCAN = ahocorasick_rs.AhoCorasick(
    _BOILERPLATE_WORDS, implementation=ahocorasick_rs.Implementation.DFA
)


def _has_boilerplate_word(line: str) -> bool:
    return bool(_BOILERPLATE_SCAN.find_matches_as_indexes(line))


def _lines(text: str) -> list[str]:
    """The lines of ``text`` split at CR and LF (the empty strings between separators have no
    words, so they drop out as short lines, as a split at runs of separators would leave them)."""
    return (text.replace("\r", "\n") if "\r" in text else text).split("\n")


_STOPWORDS: frozenset[str] = frozenset(
    (
        "a an and are as at be but by for from has have he her his i in is it its of on or our"
        " she that the their they this to was we were will with you your"
        " after about also been more not said says than there which who would could can"
        " der die das den dem des ein eine einen einem einer und oder aber in im ist sind war"
        " mit von zu zum zur auf aus bei nach für fuer über ueber sich sie er es wir ihr nicht"
        " auch als am an so dass wie noch nur wird werden hat haben sei seien"
    ).split()
)
_MAX_WORD_WEIGHT = 8  # a word weighs its length in characters, up to this
_FIELD_BITS = 32  # room for a total weight of 2**32: texts of up to ~500 million characters
_FIELD_BYTES = 64 * _FIELD_BITS // 8
_FIELDS = struct.Struct(f"<64{'I' if _FIELD_BITS == 32 else 'Q'}")  # all 64 fields in one call
# word -> _weighted_spread(word); the hash of a word never changes, so the cache only saves time
_SPREAD_CACHE: dict[str, tuple[int, int]] = {}
_SPREAD_CACHE_SIZE = 200_000
_BIT_CHARS = bytes.maketrans(b"\x00\x01", b"01")


def _spread_table() -> tuple[tuple[int, ...], ...]:
    """``table[i][b]``: the 8 bits of byte ``b`` at digest position ``i``, one field each."""
    return tuple(
        tuple(
            sum(1 << ((i * 8 + bit) * _FIELD_BITS) for bit in range(8) if byte >> bit & 1)
            for byte in range(256)
        )
        for i in range(8)
    )


_SPREAD = _spread_table()


# Latin-1 word characters (those of _WORD) kept, every other byte a space: no word character is
# whitespace, so the translated text split at whitespace gives _WORD.findall's words, in C.
_LATIN1_WORDS = bytes(code if _WORD.match(chr(code)) else 0x20 for code in range(256))


def _words(text: str) -> list[str]:
    """``_WORD.findall(text)``, three times faster for Latin-1 text (most of it)."""
    try:
        data = text.encode("latin-1")
    except UnicodeEncodeError:
        return _WORD.findall(text)
    return data.translate(_LATIN1_WORDS).decode("latin-1").split()


def _content_words(text: str) -> list[str]:
    """The normalised words of ``text`` outside page furniture (see the module rules)."""
    words: list[str] = []
    normalized = normalize(text)
    if not _has_any(normalized, _NAV_CHARS) and not _has_boilerplate_word(normalized):
        # no line is navigation or names page furniture (no literal spans a line break)
        for line in _lines(normalized):
            line_words = _words(line)
            if len(line_words) >= _SHORT_LINE_WORDS:
                words += line_words
        return words
    for line in _lines(normalized):
        line_words = _words(line)
        if len(line_words) < _SHORT_LINE_WORDS or (
            _has_any(line, _NAV_CHARS) and len(_NAV_SEPARATORS.findall(line)) >= 3
        ):
            continue
        if not _has_boilerplate_word(line) or not _BOILERPLATE.search(line):
            words += line_words
            continue
        for sentence in _SENTENCES.split(line):
            if not _BOILERPLATE.search(sentence):
                words += _words(sentence)
    return words


def _weighted_spread(word: str) -> tuple[int, int]:
    """``word``'s weight and its 64 hash bits as fields times that weight (memoised)."""
    cached = _SPREAD_CACHE.get(word)
    if cached is None:
        if len(_SPREAD_CACHE) >= _SPREAD_CACHE_SIZE:
            _SPREAD_CACHE.clear()
        d = hashlib.blake2b(word.encode("utf-8", "surrogatepass"), digest_size=8).digest()
        table = _SPREAD
        spread = (
            table[0][d[0]]
            | table[1][d[1]]
            | table[2][d[2]]
            | table[3][d[3]]
            | table[4][d[4]]
            | table[5][d[5]]
            | table[6][d[6]]
            | table[7][d[7]]
        )
        weight = min(len(word), _MAX_WORD_WEIGHT)
        cached = _SPREAD_CACHE[word] = (weight, weight * spread)
    return cached


def fingerprint(title: str, text: str) -> int | None:
    """Return the 64-bit SimHash of an entry, or None when its text is too short to compare."""
    words = _content_words(text)[:MAX_WORDS]
    if len(words) < MIN_BODY_WORDS:
        return None
    counts = Counter(words)  # counted in C; the sums below do not depend on the order
    for word in _words(normalize(title))[:MAX_WORDS]:
        counts[word] += TITLE_WEIGHT
    acc = once = total = 0
    cached, stopwords = _SPREAD_CACHE.get, _STOPWORDS
    for word, count in counts.items():
        if word not in stopwords:
            weight, spread = cached(word) or _weighted_spread(word)
            if count == 1:  # most words: an addition instead of a 2,048-bit multiplication
                once += spread
                total += weight
            else:
                acc += count * spread
                total += count * weight
    fields = _FIELDS.unpack((acc + once).to_bytes(_FIELD_BYTES, "little"))
    # bit i is set when 2 * fields[i] > total, i.e. fields[i] > total // 2: one byte per
    # field (0 or 1) made "0"/"1" characters, most significant first, read as base 2 in C
    return int(bytes(map((total // 2).__lt__, fields)).translate(_BIT_CHARS)[::-1], 2)
