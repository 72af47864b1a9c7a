"""Language of a mention: "en", "de" or "other", offline, fast and deterministic.

Owns one decision per text. The classifier is py3langid's byte n-gram naive Bayes (the
maintained fork of langid.py), restricted to the twelve Latin-script languages in
``_CANDIDATES`` so that short English or German is not pulled to an exotic language while
French, Dutch, Polish... still come out as "other". listener ships a light copy of its model
(``language_model``: 30,000 of its 100,053 features, 0.6 MB, made by
scripts/build_language_model.py; nothing is ever downloaded) instead of py3langid's 39 MB
transition table and numpy. Rules, in order:

1. URLs and @handles are removed, and the ``#`` of hashtags (the tag word stays: on the dev
   set dropping whole tags cost 0.35 points of German accuracy, they are often German words).
2. Fewer than ``_MIN_LETTERS`` letters left (empty, emoji only, "ok"): the hint's primary
   subtag if it is en/de ("de-DE" -> "de"), else "other".
3. Mostly non-Latin letters (Cyrillic, CJK, Arabic...) in the first ``_SCAN`` characters:
   "other", whatever the hint says.
4. Otherwise the first ``_MAX_CHARS`` characters are classified; a hint adds ``_HINT_PRIOR``
   (log units) to its language's score, which flips only short or ambiguous texts.

Measured by ``bench/language_bench.py`` on shared/data/sentiment/dev.jsonl (8,628 short social
texts, 7,477 en / 1,151 de; the "de" part has label noise: English tweets by German users), one
core (CPU time, on a shared machine), accuracy en / de on full texts and on their first 40
characters, texts/s on the dev texts (82 characters on average) and on 200-character texts,
import + model load time, peak RSS of a fresh interpreter, installed size:

    candidate              en    de    en@40 de@40  texts/s   @200  load   RSS   installed
    py3langid, 97 langs    .971  .958  .956  .903    17,400   5,600  1.3 s 133 MiB  4.4 MiB +numpy
    py3langid, 12 langs    .988  .976  .981  .938    22,400  11,300  1.1 s 133 MiB  4.4 MiB +numpy
    lingua 2.1, 12 langs   .977  .969  .973  .924     1,800   2,900  3.4 s 346 MiB   95 MiB
    langdetect 1.0.9       .946  .955  .922  .864       450     400  0.3 s  80 MiB  2.3 MiB
    pycld2 0.42            .992  .913  .990  .825    97,900  50,100 0.06 s  19 MiB   13 MiB
    cld3-py 3.1            .886  .843  .799  .705    13,100   6,500 0.05 s  19 MiB  1.4 MiB
    fastText lid.176.ftz   .983  .942  .968  .868    30,800  19,100 0.14 s  36 MiB  1.0 MiB
    this module, py3langid .988  .971  .980  .924    24,700  16,400  0.6 s 133 MiB
    this module, light     .987  .971  .980  .924    17,100  11,700  0.2 s  31 MiB  0.6 MiB

Back to back on the same busy machine (issue 16): the py3langid-based module 19,800 / 13,200
texts/s, the light one 17,100-18,800 / 11,600-11,700; bench/ingest_stages.py's language stage
56-57 us a mention before, 74-75 us after; a fresh interpreter that loads it 88 -> 28 MiB.

All seven say "other" for the ten French/Spanish/Dutch/Italian/Portuguese/Polish sentences of the
bench. py3langid restricted is the most accurate on German, where pycld2 and fastText (whose
model is CC BY-SA besides) fail on short texts; lingua is no better here, ten times slower and
95 MiB. A correct hint lifts German at 40 characters from .924 to .96; a wrong one costs
under .01 on full texts (``_HINT_PRIOR`` = 5, chosen on dev.jsonl between those two).
"""

from __future__ import annotations

import functools
import re

from listener.enrichment.language_model import Model, load, rank

LANGUAGES = ("en", "de")
OTHER = "other"

# Latin-script languages the classifier may answer; everything but en/de is reported as "other".
_CANDIDATES = ("en", "de", "fr", "es", "it", "nl", "pt", "pl", "sv", "da", "no", "tr")
_MIN_LETTERS = 4  # below this many letters a text says nothing about its language
_MAX_CHARS = 100  # the language is settled well before this; longer texts cost time only
# Characters cleaned and checked for their script: a long text is cut at a space before this
# (a URL or handle ends at a space, so the cleaned head is the start of the cleaned whole);
# cleaning whole texts was a third of the time of a 600-character mention
_SCAN = 2 * _MAX_CHARS
_HINT_PRIOR = 5.0  # log-score bonus for the language the feed declared

# names the model (language_model.tsv.gz, derived from py3langid 0.4.0) and these rules
VERSION = "py3langid-0.4.0/light30k/en-de-12latin-hint5-100-v2"

_NOISE = re.compile(r"https?://\S+|www\.\S+|(?<![\w@])@\w[\w.]*|#(?=\w)")
_SUBTAG = re.compile(r"[-_]")
_NON_LETTERS = re.compile(r"[\W\d_]+")
_LATIN_LETTERS = re.compile(r"[A-Za-zªºÀ-ÖØ-öø-ɏḀ-ỿ]+")


@functools.cache
def _model() -> Model:
    """Load the packaged model once (about 0.2 s, 5 MB), on first use: a process that never
    detects a language (the daemon's main process when workers parse) never holds it."""
    model = load()
    if set(model.classes) != set(_CANDIDATES):
        raise ValueError(f"language model classes {model.classes} are not {_CANDIDATES}")
    return model


def preload() -> None:
    """Load the model now rather than on the first text (worker processes do, at start)."""
    _model()


def _primary(hint: str | None) -> str | None:
    """The primary subtag of a language tag: "de-DE" -> "de", "EN_us" -> "en"; None if empty."""
    if not hint:
        return None
    return _SUBTAG.split(hint.strip(), maxsplit=1)[0].lower() or None


def clean(text: str) -> str:
    """The text the classifier sees: URLs and @handles removed, hashtag signs dropped."""
    return _NOISE.sub(" ", text)


def detect(text: str, hint: str | None = None) -> str:
    """Return "en", "de" or "other" for ``text``; ``hint`` is a declared language tag, a prior."""
    prior = _primary(hint)
    head = text
    if len(text) > _SCAN:
        cut = text.rfind(" ", _MAX_CHARS, _SCAN)
        head = text[: cut if cut > 0 else _SCAN]
    body = clean(head)
    letters = _NON_LETTERS.sub("", body)
    if head is not text and (len(letters) < _MIN_LETTERS or len(body) < _MAX_CHARS):
        body = clean(text)  # the head was mostly URLs and handles: look at the whole
        letters = _NON_LETTERS.sub("", body)
    if len(letters) < _MIN_LETTERS:
        return prior if prior in LANGUAGES else OTHER
    if not letters.isascii() and len(_LATIN_LETTERS.sub("", letters)) * 2 > len(letters):
        return OTHER  # mostly Cyrillic, Greek, CJK, Arabic... letters
    body = body[:_MAX_CHARS]
    ranked = rank(_model(), body)
    if prior not in _CANDIDATES:
        found = ranked[0][0]
    else:
        found = max(ranked, key=lambda pair: pair[1] + (_HINT_PRIOR if pair[0] == prior else 0))[0]
    return found if found in LANGUAGES else OTHER
