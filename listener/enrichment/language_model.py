"""listener's light language model: byte n-gram naive Bayes scores for a few languages.

Owns reading ``language_model.tsv.gz`` (shipped in the package, ~0.6 MB; built by
scripts/build_language_model.py from the model packaged in py3langid 0.4.0, BSD 3-Clause, see
listener/NOTICE) and scoring a text with it the way py3langid does:

- the text is lower-cased if it is all upper case, NFC-normalised and encoded as UTF-8;
- at every byte, the longest feature (a byte string of 2 to 5 bytes here, py3langid has a few
  of 6) ending there is counted (what py3langid's DFA finds, here by dictionary lookups of the
  5, 4, 3 and 2 bytes before it);
- the score of a language is its prior plus the sum over features of log(1 + count) times
  log P(feature | language).

The file keeps 30,000 of py3langid's 100,053 features (those that weigh most among the twelve
languages); a text's scores differ from py3langid's restricted ones only through the features
left out (dev set: the same accuracy within 0.1 point, see language.py).

Scoring is pure Python and fast because each feature's twelve log-probabilities are packed into
one integer, in fixed point, one 64-bit field per language: a text's scores are one sum of
integers (``sum`` runs in C) unpacked once. Each feature's values are stored relative to its
largest (so every field is >= 0, and the fields never borrow from each other); that shifts every
language's score of a text by the same amount, which changes no ranking and no difference
between scores. A field holds up to 2**64 / 2**32 log units: far beyond what the at most a few
hundred bytes that language.py passes can add up to.
"""

from __future__ import annotations

import functools
import gzip
import math
import struct
from collections import Counter
from dataclasses import dataclass, field
from importlib.resources import files
from operator import itemgetter
from unicodedata import normalize

_FIELD = 64  # bits per language in a packed feature value (struct "Q")
_WEIGHT_SCALE = 1 << 20  # fixed point of log-probabilities (float16 in the source model)
_COUNT_SCALE = 1 << 12  # fixed point of log(1 + count)
_FILE = "language_model.tsv.gz"
_SHORTEST, _LONGEST = 2, 5  # bytes of a feature (the scan in _features is unrolled for these)
_PAD = b"\0" * (_LONGEST - _SHORTEST)


@dataclass(frozen=True)
class Model:
    """The languages, their priors, and each feature's packed log-probabilities."""

    classes: tuple[str, ...]
    prior: tuple[float, ...]
    features: dict[bytes, int] = field(repr=False)

    @property
    def layout(self) -> str:
        """The struct format of a packed value: one little-endian 64-bit field per language."""
        return f"<{len(self.classes)}Q"


def load() -> Model:
    """The model from the packaged file."""
    classes: tuple[str, ...] = ()
    prior: tuple[float, ...] = ()
    features: dict[bytes, int] = {}
    # line by line: the whole text, held while the features were made, left 3 MB of holes
    # among them (memory a parser worker kept to its end)
    with (
        files(__package__).joinpath(_FILE).open("rb") as raw,
        gzip.open(raw, "rt", encoding="ascii", newline="\n") as text,
    ):
        for line in (raw_line.rstrip("\r\n") for raw_line in text):
            if not line or line.startswith("#"):
                continue
            key, _, rest = line.partition("\t")
            values = rest.split("\t")
            if key == "classes":
                classes = tuple(values)
            elif key == "prior":
                prior = tuple(map(float, values))
            else:
                logs = list(map(float, values))
                top = max(logs)
                packed = 0
                for k, value in enumerate(logs):
                    packed |= round((top - value) * _WEIGHT_SCALE) << (_FIELD * k)
                gram = bytes.fromhex(key)
                if not _SHORTEST <= len(gram) <= _LONGEST or 0 in gram:
                    raise ValueError(f"{_FILE}: feature {key!r} is not 2-5 bytes without NUL")
                features[gram] = packed
    if not classes or len(prior) != len(classes) or not features:
        raise ValueError(f"{_FILE}: no classes, priors or features")
    return Model(classes, prior, features)


@functools.cache
def _count_weight(count: int) -> int:
    return round(math.log1p(count) * _COUNT_SCALE)


def _features(model: Model, text: str) -> Counter[bytes]:
    """How often each feature is the longest one ending at a byte of ``text``."""
    if text.isupper():
        text = text.lower()
    # NUL bytes in front (no feature holds one) let every window below be 5 bytes long
    data = _PAD + normalize("NFC", text).encode("utf-8", "surrogatepass")
    table = model.features
    return Counter(
        [
            gram
            for end in range(_LONGEST, len(data) + 1)
            if (gram := data[end - _LONGEST : end]) in table
            or (gram := gram[1:]) in table
            or (gram := gram[1:]) in table
            or (gram := gram[1:]) in table
        ]
    )


def rank(model: Model, text: str) -> list[tuple[str, float]]:
    """Every language with its score (log units, up to a per-text constant), best first.
    A text without any known feature scores 0 for every language (in file order)."""
    counts = _features(model, text)
    if not counts:
        return [(code, 0.0) for code in model.classes]
    table = model.features
    once = _count_weight(1)
    # log(1 + count) is log 2 for most features: one multiplication for them all
    total = sum(map(table.__getitem__, counts)) * once
    for gram, count in counts.items():
        if count > 1:
            total += table[gram] * (_count_weight(count) - once)
    fields = struct.unpack(model.layout, total.to_bytes(struct.calcsize(model.layout), "little"))
    scale = _WEIGHT_SCALE * _COUNT_SCALE
    scores = [
        (code, prior - field / scale)
        for code, prior, field in zip(model.classes, model.prior, fields, strict=True)
    ]
    return sorted(scores, key=itemgetter(1), reverse=True)
