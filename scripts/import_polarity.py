"""Write listener's third-party polarity word lists (listener/enrichment/polarity_{en,de}.tsv).

    pip download --no-deps -d /tmp/lex vaderSentiment==3.3.2 textblob-de==0.4.3
    python scripts/import_polarity.py --vader /tmp/lex/vaderSentiment-3.3.2-*.whl \
        --textblob-de /tmp/lex/textblob_de-0.4.3-*.whl

- English: the VADER lexicon (vaderSentiment/vader_lexicon.txt, MIT, (c) 2016 C.J. Hutto):
  single tokens, mean valence / 4 (so in [-1, 1]), rounded to 3 decimals.
- German: the German Polarity Lexicon (Klenner, Clematide, Wiegand, Peters, v1.1, 2010; Apache
  License 2.0) in the form textblob-de 0.4.3 ships it (textblob_de/data/de-sentiment.xml, MIT,
  (c) 2014-2019 Markus Killer): lower-cased single words, mean polarity over their entries,
  words of polarity 0 dropped.

The output is sorted and byte-for-byte reproducible from those two wheels; the model trainer
(scripts/train_sentiment.py) reads the written files like the scorer does. Attributions: NOTICE.
"""

from __future__ import annotations

import argparse
import re
import sys
import zipfile
from pathlib import Path

OUT = Path(__file__).resolve().parents[1] / "listener" / "enrichment"
HEADER = {
    "en": (
        "# English polarity words from the VADER lexicon (vaderSentiment 3.3.2,\n"
        "# vader_lexicon.txt), MIT License, Copyright (c) 2016 C.J. Hutto; see listener/NOTICE.\n"
        "# Value: mean valence / 4.\n"
        "# Written by scripts/import_polarity.py; do not edit by hand. term<TAB>value\n"
    ),
    "de": (
        "# German polarity words from the German Polarity Lexicon (Klenner, Clematide, Wiegand,\n"
        "# Peters, v1.1, 2010; Apache License 2.0) as shipped in textblob-de 0.4.3 (MIT,\n"
        "# Copyright (c) 2014-2019 Markus Killer); see listener/NOTICE.\n"
        "# Value: mean polarity, zeros dropped.\n"
        "# Written by scripts/import_polarity.py; do not edit by hand. term<TAB>value\n"
    ),
}


def read_member(wheel: Path, suffix: str) -> str:
    with zipfile.ZipFile(wheel) as archive:
        (name,) = [n for n in archive.namelist() if n.endswith(suffix)]
        return archive.read(name).decode("utf-8")


def vader(text: str) -> dict[str, float]:
    words: dict[str, float] = {}
    for line in text.splitlines():
        parts = line.split("\t")
        if len(parts) >= 2 and parts[0] and " " not in parts[0]:
            words[parts[0].lower()] = max(-1.0, min(1.0, float(parts[1]) / 4))
    return words


def german(xml: str) -> dict[str, float]:
    values: dict[str, list[float]] = {}
    for attrs in re.findall(r"<word ([^>]*)/>", xml):
        fields = dict(re.findall(r'(\w+)="([^"]*)"', attrs))
        form = fields["form"].lower()
        if "_" not in form and " " not in form:
            values.setdefault(form, []).append(float(fields["polarity"]))
    return {w: sum(v) / len(v) for w, v in values.items()}


def write(path: Path, header: str, words: dict[str, float]) -> int:
    rows = [(w, f"{v:.3f}") for w, v in sorted(words.items())]
    rows = [(w, v) for w, v in rows if v not in ("0.000", "-0.000")]
    path.write_text(header + "".join(f"{w}\t{v}\n" for w, v in rows), encoding="utf-8")
    return len(rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--vader", type=Path, required=True, help="vaderSentiment wheel")
    parser.add_argument("--textblob-de", type=Path, required=True, help="textblob-de wheel")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args(argv)
    en = vader(read_member(args.vader, "vaderSentiment/vader_lexicon.txt"))
    de = german(read_member(args.textblob_de, "textblob_de/data/de-sentiment.xml"))
    for lang, words in (("en", en), ("de", de)):
        n = write(args.out / f"polarity_{lang}.tsv", HEADER[lang], words)
        print(f"{lang}: {n} words", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
