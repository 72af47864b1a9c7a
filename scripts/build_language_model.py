"""Build listener's light language model from py3langid's packaged model (run by a developer).

    python scripts/build_language_model.py [--features 30000] [--out PATH]

py3langid (a dev dependency) ships a byte n-gram naive Bayes model: 100,053 features (byte
strings of 2 to 6 bytes), log P(feature | language) for 142 languages (float16) and the class
priors, plus a DFA (its 39 MB transition table) that finds, at every byte of a text, the longest
feature ending there. This script reads the model, recovers each feature's byte string by a
breadth-first walk of the DFA from state 0 (the shortest path to a state is its string; a state
outputs the longest feature that is a suffix of it, checked here for every state), and keeps:

- the columns of listener's candidate languages (``_CANDIDATES`` of language.py),
- the ``--features`` features that weigh most among them: by exp(max log-probability) (how often
  the feature occurs in its most frequent candidate) times the spread of its log-probabilities
  over the candidates (how much it tells them apart). The selection uses the model only, no
  corpus.

It writes a gzip'd TSV: ``#`` header lines (source, licence, how it was made), a ``classes``
line, a ``prior`` line, then one line per feature: the feature's bytes in hex and its
log-probabilities per class. No download: the input is the installed py3langid wheel.
"""

from __future__ import annotations

import argparse
import gzip
import importlib.metadata
from collections import deque
from pathlib import Path

import numpy as np
from py3langid.langid import MODEL_DIR, MODEL_FILE  # type: ignore[import-untyped]
from py3langid.modelio import load_model  # type: ignore[import-untyped]

from listener.enrichment.language import _CANDIDATES

OUT = Path(__file__).resolve().parents[1] / "listener" / "enrichment" / "language_model.tsv.gz"
HEADER = """\
# listener's light language model: derived from the model packaged in py3langid {version}
# (py3langid/data/model.npz.xz), https://github.com/adbar/py3langid
# py3langid: BSD 3-Clause License. Modifications (fork): Copyright (c) 2021, Adrien Barbaresi.
# Original code (langid.py): Copyright (c) 2011 Marco Lui <saffsd@gmail.com>. Based on research
# by Marco Lui and Tim Baldwin. All rights reserved. Licence text: listener/NOTICE.
# Changes: only the classes {classes} are kept,
# and the {kept} of {total} byte n-gram features that weigh most among them
# (exp(max log P) x spread of log P); made by scripts/build_language_model.py.
# Columns: feature bytes (hex), log P(feature | class).
"""


def features(nextmove: object, rows: object, out: list[int]) -> dict[int, bytes]:
    """Each feature index -> its byte string, from a breadth-first walk of the DFA."""
    rowbase = [r << 8 for r in rows]  # type: ignore[attr-defined]
    paths = {0: b""}
    queue = deque([0])
    while queue:
        state = queue.popleft()
        for byte in range(256):
            target = nextmove[rowbase[state] + byte]  # type: ignore[index]
            if target not in paths:
                paths[target] = paths[state] + bytes([byte])
                queue.append(target)
    found: dict[int, bytes] = {}
    for state, path in paths.items():  # a feature's own state has the shortest path of those
        f = out[state]  # that output it (the others have it as a suffix)
        if f >= 0 and (f not in found or len(path) < len(found[f])):
            found[f] = path
    strings = {v: k for k, v in found.items()}
    for state, path in paths.items():  # the rule language.py relies on: longest suffix wins
        suffixes = (path[-n:] for n in range(len(path), 0, -1))
        longest = next((strings[s] for s in suffixes if s in strings), -1)
        if longest != out[state]:
            raise SystemExit(f"state {state}: the DFA does not output the longest suffix feature")
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--features", type=int, default=30000)
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    ptc, pc, classes, nextmove, rows, out = load_model(MODEL_DIR / MODEL_FILE)
    strings = features(nextmove, rows, out)
    if len(strings) != ptc.shape[0]:
        raise SystemExit(f"{len(strings)} feature strings for {ptc.shape[0]} features")
    keep = [i for i, code in enumerate(classes) if code in _CANDIDATES]
    table = ptc[:, keep].astype(np.float64)
    weight = np.exp(table.max(axis=1)) * (table.max(axis=1) - table.min(axis=1))
    # language_model.py scans 2 to 5 bytes; py3langid 0.4.0's 198 features of 6 bytes are rare
    weight[[len(strings[f]) > 5 for f in range(len(weight))]] = -1
    chosen = sorted(np.argsort(-weight, kind="stable")[: args.features].tolist())
    names = [classes[i] for i in keep]
    header = HEADER.format(
        version=importlib.metadata.version("py3langid"),
        classes=", ".join(names),
        kept=len(chosen),
        total=len(strings),
    )
    lines = [header.rstrip("\n"), "classes\t" + "\t".join(names)]
    lines.append("prior\t" + "\t".join(f"{float(v):.9g}" for v in pc[keep]))
    for f in chosen:  # float16 values: 5 significant digits give them back exactly
        lines.append(strings[f].hex() + "\t" + "\t".join(f"{float(v):.5g}" for v in ptc[f, keep]))
    data = ("\n".join(lines) + "\n").encode()
    args.out.write_bytes(gzip.compress(data, compresslevel=9, mtime=0))
    size = args.out.stat().st_size
    print(f"{args.out}: {len(chosen)} features, {len(data):,} bytes, {size:,} gzip'd")


if __name__ == "__main__":
    main()
