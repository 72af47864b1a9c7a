"""The sentiment model's weights held compactly: ``Weights``, and ``read_model`` to fill it.

Owns feature -> complex(negative logit, positive logit) lookups and sums for
``listener.enrichment.sentiment``. Rules: a lookup gives the very numbers the model file holds
(doubles as parsed, signed zeros kept), a feature written twice counts with its last weights
(as in a dict), a feature the model lacks weighs 0j, and ``total`` adds in the order given, as
``sum`` does, so a score is bit for bit the one of plain dicts; no dict of the features is ever
built (they made the scorer 22 MB in every parser worker, 7 MB now).
"""

from __future__ import annotations

from array import array
from collections.abc import Iterator, Sequence
from pathlib import Path

FEATURE_MEMO_MAX = 4_096  # features found in a table that it remembers


class Weights:
    """feature -> complex(negative logit, positive logit), like a dict but in flat arrays: the
    ASCII features' text in one str (``starts`` marks where each begins; the few others, emoji
    and umlauts, in a small dict of their rows), each logit as the number of its value in
    ``values`` (a model has a few thousand distinct values: two bytes a logit instead of a
    float object or eight bytes), and an open-addressing table of row numbers by the features'
    ``hash``, at most 1/``spread`` full: most features looked up are not in the model (the
    bigrams of a new text: their table is a quarter full), and most of those find an empty slot
    at once. The features found are remembered
    in ``memo`` (at most ``FEATURE_MEMO_MAX``, cleared when full).
    Picklable: the table is rebuilt where it is unpickled (``hash`` of a str differs between
    interpreters)."""

    __slots__ = (
        "_mask",
        "_neg",
        "_pos",
        "_slots",
        "_spread",
        "_starts",
        "_text",
        "_values",
        "_wide",
        "memo",
    )

    def __init__(
        self,
        text: str,
        starts: array[int],
        wide: dict[str, int],
        values: array[float],
        neg: array[int],
        pos: array[int],
        spread: int = 2,
    ) -> None:
        self._text, self._starts, self._wide, self._values = text, starts, wide, values
        self._neg, self._pos, self._spread = neg, pos, spread
        count = len(neg)
        size = 8
        while size < spread * count:
            size *= 2
        self._mask = mask = size - 1
        self._slots = slots = array("i", [-1]) * size
        names = {row: feature for feature, row in wide.items()}
        for row in range(count):
            feature = names.get(row)
            if feature is None:
                feature = text[starts[row] : starts[row + 1]]
            slot = hash(feature) & mask
            while (other := slots[slot]) >= 0:
                if (names.get(other) or text[starts[other] : starts[other + 1]]) == feature:
                    break  # a feature written twice: the last row counts, as in a dict
                slot = (slot + 1) & mask
            slots[slot] = row
        self.memo: dict[str, complex] = {}

    def __len__(self) -> int:
        return len(self._neg)

    def __reduce__(self) -> tuple[type[Weights], tuple[object, ...]]:
        state = (self._text, self._starts, self._wide, self._values, self._neg, self._pos)
        return Weights, (*state, self._spread)

    def items(self) -> Iterator[tuple[str, complex]]:
        text, starts = self._text, self._starts
        names = {row: feature for feature, row in self._wide.items()}
        for row in range(len(self._neg)):
            yield names.get(row) or text[starts[row] : starts[row + 1]], self._weight(row)

    def _weight(self, row: int) -> complex:
        return complex(self._values[self._neg[row]], self._values[self._pos[row]])

    def get(self, feature: str) -> complex:
        """The weights of ``feature``, 0j when the model has none."""
        if self._slots[hash(feature) & self._mask] < 0:
            return 0j
        return self._lookup(feature)

    def total(self, features: Sequence[str], start: complex | int = 0) -> complex:
        """``sum([self.get(f) for f in features], start)``: the same additions in the same
        order (0j for a feature the model has none of)."""
        remembered, slots, mask, lookup = self.memo.get, self._slots, self._mask, self._lookup
        total = start
        for feature in features:
            value = remembered(feature)
            if value is None:
                value = lookup(feature) if slots[hash(feature) & mask] >= 0 else 0j
            total += value
        return total

    def _lookup(self, feature: str) -> complex:
        """The weights of a feature whose slot is occupied; one the model has is remembered in
        ``memo`` (the others are mostly one-off bigrams)."""
        row = self._row(feature)
        if row < 0:
            return 0j
        memo = self.memo
        if len(memo) >= FEATURE_MEMO_MAX:
            memo.clear()
        value = memo[feature] = self._weight(row)
        return value

    def _row(self, feature: str) -> int:
        """The row of ``feature``, -1 when the model has none."""
        if not feature.isascii() or not feature:
            return self._wide.get(feature, -1)
        size = len(feature)
        text, starts, slots, mask = self._text, self._starts, self._slots, self._mask
        slot = hash(feature) & mask
        while (row := slots[slot]) >= 0:
            start = starts[row]
            if starts[row + 1] - start == size and text.startswith(feature, start):
                return row
            slot = (slot + 1) & mask
        return -1


class _Rows:
    """Rows of a weights file being read into a `Weights`."""

    def __init__(self) -> None:
        self.text = bytearray()  # ASCII
        self.starts = array("I", [0])
        self.wide: dict[str, int] = {}
        self.numbers: dict[str, int] = {}  # a value as written -> its number (-0.0 is not 0.0)
        self.neg = array("I")
        self.pos = array("I")

    def add(self, feature: str, neg: str, pos: str) -> None:
        numbers = self.numbers
        if feature.isascii() and feature:
            self.text += feature.encode("ascii")
        else:
            self.wide[feature] = len(self.neg)
        self.starts.append(len(self.text))
        self.neg.append(numbers.setdefault(neg, len(numbers)))
        self.pos.append(numbers.setdefault(pos, len(numbers)))

    def weights(self, spread: int) -> Weights:
        values = array("d", map(float, self.numbers))
        code = "H" if len(values) <= 1 << 16 else "I"
        neg, pos = array(code, self.neg), array(code, self.pos)
        text = self.text.decode("ascii")
        return Weights(text, self.starts, self.wide, values, neg, pos, spread)


def read_model(path: Path) -> tuple[Weights, Weights, complex]:
    """The weights of a model file as `read_weights` reads them, split into (everything but
    bigrams, bigrams, the "@bias" weight), without a dict of them ever built."""
    words, pairs = _Rows(), _Rows()
    bias = 0j
    with path.open(encoding="utf-8") as lines:
        for line in lines:
            feature, neg, pos = line.rstrip("\n").split("\t")
            if feature == "@bias":
                bias = complex(float(neg), float(pos))
            else:
                (pairs if " " in feature else words).add(feature, neg, pos)
    # a word's weights are summed once (the unit memo): its table may be fuller than the
    # bigrams', looked up for every text (2.5 us a text faster, 1 MB more, than half full)
    return words.weights(2), pairs.weights(4), bias
