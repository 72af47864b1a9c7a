"""Deduplication keys: when two fetched entries are the same item, and when its content changed.

Owns ``canonical_url``, ``dedup_key`` and ``content_hash``. Rules:

- ``canonical_url`` lowercases scheme and host, drops the default port (80 for http, 443 for
  https), the fragment, empty query parameters and tracking parameters (``utm_*`` and the click
  ids listed in ``TRACKING_PARAMS``, compared case-insensitively); other parameters keep their
  order and their exact spelling, percent-encoding included. An empty path becomes "/". It is
  idempotent. A string ``urllib.parse`` cannot split comes back unchanged.
- ``dedup_key`` prefers the canonical URL (the same article reached through different feeds or
  campaign links is one item), then the GUID scoped to its source (GUIDs are only unique per
  feed), then the normalised title scoped to its source, then (an RSS item may have only a
  description) the normalised text scoped to its source. Keys are "u:", "g:", "t:" or "c:"
  followed by the first 40 hex digits of a SHA-256. An entry with a guid whose link has a
  fragment keeps the fragment in its key: the comments of a comment feed link to one post as
  ``post#comment-1``, ``post#comment-2``, ... and are distinct mentions, one per commenter
  (``entry_anchor``; the pipeline gives them distinct story URLs too, so the detectors' caps per
  story do not fold a comment thread into one voice).
  (One guid stays one mention whatever its link: storage ingest keeps a guid's row.)
- ``content_hash`` changes whenever title, text or author changes; it tells an update from a
  repeat of an item already stored under the same key.
"""

from __future__ import annotations

import functools
import hashlib
from urllib.parse import urlsplit, urlunsplit

from listener.matching.normalize import normalize

__all__ = ["TRACKING_PARAMS", "canonical_url", "content_hash", "dedup_key", "entry_anchor"]

TRACKING_PARAMS: frozenset[str] = frozenset(
    {
        "fbclid",
        "gclid",
        "dclid",
        "gbraid",
        "wbraid",
        "msclkid",
        "mc_cid",
        "mc_eid",
        "igshid",
        "yclid",
        "_hsenc",
        "_hsmi",
        "mkt_tok",
        "ref_src",
        "spm",
        "at_medium",
        "at_campaign",
    }
)
_TRACKING_PREFIXES: tuple[str, ...] = ("utm_",)
_DEFAULT_PORTS: dict[str, str] = {"http": "80", "https": "443"}
_KEY_DIGITS = 40


def _is_tracking(param: str) -> bool:
    name = param.partition("=")[0].lower()
    return name in TRACKING_PARAMS or name.startswith(_TRACKING_PREFIXES)


def _canonical_netloc(scheme: str, netloc: str) -> str:
    userinfo, at, hostport = netloc.rpartition("@")
    if hostport.startswith("["):  # IPv6 literal: the port follows the closing bracket
        host, bracket, port_part = hostport.partition("]")
        host += bracket
        colon, port = port_part[:1], port_part[1:]
    else:
        host, colon, port = hostport.rpartition(":")
        if not colon:
            host, port = hostport, ""
    if colon and port.isdigit() and port.isascii():
        port = str(int(port))
        if port == _DEFAULT_PORTS.get(scheme):
            colon = port = ""
    elif colon and not port:
        colon = ""
    return f"{userinfo}{at}{host.lower()}{colon}{port}"


@functools.lru_cache(maxsize=4096)  # one item asks three times: dedup key, stored URL, story
def canonical_url(url: str) -> str:
    """Return the canonical form of ``url`` used to recognise the same item across feeds."""
    try:
        parts = urlsplit(url)
    except ValueError:  # e.g. an unclosed IPv6 bracket; keep the string as its own key
        return url
    scheme = parts.scheme.lower()
    netloc = _canonical_netloc(scheme, parts.netloc) if parts.netloc else ""
    path = parts.path or ("/" if netloc else "")
    query = "&".join(p for p in parts.query.split("&") if p and not _is_tracking(p))
    return urlunsplit((scheme, netloc, path, query, ""))


def _digest(text: str, length: int) -> str:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:length]


def dedup_key(
    *, source: str, guid: str | None, url: str | None, title: str = "", text: str = ""
) -> str:
    """Return the key under which an entry of ``source`` is stored once.

    Uses the canonical URL when ``url`` is non-empty (with its fragment when the entry has a
    guid), else the GUID, else the normalised title, else the normalised text; the latter three
    are scoped to ``source``.
    """
    if url and url.strip():
        canonical = canonical_url(url.strip())
        fragment = entry_anchor(url, guid)
        return "u:" + _digest(f"{canonical}#{fragment}" if fragment else canonical, _KEY_DIGITS)
    if guid and guid.strip():
        return "g:" + _digest(f"{source}\0{guid.strip()}", _KEY_DIGITS)
    normal_title = normalize(title).strip()
    if normal_title or not text.strip():
        return "t:" + _digest(f"{source}\0{normal_title}", _KEY_DIGITS)
    return "c:" + _digest(f"{source}\0{' '.join(normalize(text).split())}", _KEY_DIGITS)


def entry_anchor(url: str, guid: str | None) -> str:
    """The fragment of an entry's ``url`` when the entry has a guid of its own: the anchor of
    one comment on a page of many (``post#comment-2``); "" otherwise."""
    if "#" not in url or not (guid and guid.strip()):
        return ""
    try:
        return urlsplit(url.strip()).fragment
    except ValueError:
        return ""


def content_hash(title: str, text: str, author: str | None) -> str:
    """Return 32 hex digits that change whenever title, text or author changes.

    A missing author and an empty one hash alike.
    """
    return _digest(f"{title}\0{text}\0{author or ''}", 32)
