"""Story clustering benchmark: fingerprint + the store's story assignment over synthetic entries.

python bench/stories_bench.py [N] [--seed S]

Generates N entries (default 50,000): a title of about 10 words and a text of about 60 words
drawn from a Zipf-distributed vocabulary (with real English stop words at the top, so texts
share common words as real ones do). About 30% are near-copies of an earlier entry, each with
one or two edits: headline punctuation or case changed, a dateline added, one sentence dropped,
two words replaced, a site's boilerplate header/footer added; every copy has its own URL. Each
entry goes through ``fingerprint`` and then all through ``listener.simhash.assign``, the
assignment storage runs (distance 6, one-bit band probes; a new story is indexed by its first
copy's key, as the store keeps it). Prints entries/s, stories found, the
number of true stories, false merges (an entry put into a story of another true story) and
missed copies (a near-copy that started a story of its own).
"""

from __future__ import annotations

import argparse
import itertools
import random
import time
from dataclasses import dataclass

from listener.matching.stories import fingerprint, story_url
from listener.simhash import BandIndex, assign

_STOPWORDS = (
    "the of and to a in is that for it on was with as he be by at this from his but are have"
    " not they or which an she were her had been their has its would will there who we more"
).split()
_BOILERPLATE = (
    ("Home | News | Sport | Business | Weather", "Subscribe to our newsletter for daily news."),
    ("Skip to content", "Copyright 2024 Example Media. All rights reserved."),
    ("Advertisement", "Read more stories like this on our app. Share this article."),
    ("We use cookies to improve your experience.", "Follow us on social media."),
)


@dataclass(frozen=True, slots=True)
class Entry:
    truth: int  # index of the original entry this one copies (its own index if original)
    url: str
    title: str
    text: str


class _Generator:
    def __init__(self, seed: int, vocabulary: int = 30_000) -> None:
        self.rng = random.Random(seed)
        letters = "abcdefghijklmnopqrstuvwxyz"
        words = {
            "".join(self.rng.choice(letters) for _ in range(self.rng.randint(3, 10)))
            for _ in range(vocabulary)
        }
        self.words = _STOPWORDS + sorted(words)
        self.cum_weights = list(
            itertools.accumulate(1 / (rank + 1) for rank in range(len(self.words)))
        )

    def _words(self, n: int) -> list[str]:
        return self.rng.choices(self.words, cum_weights=self.cum_weights, k=n)

    def original(self, index: int) -> Entry:
        title = " ".join(self._words(self.rng.randint(8, 12))).capitalize()
        sentences = [
            " ".join(self._words(self.rng.randint(9, 15))).capitalize() + "."
            for _ in range(self.rng.randint(4, 6))
        ]
        return Entry(
            index, f"https://site{index % 997}.example/a/{index}", title, " ".join(sentences)
        )

    def copy(self, index: int, of: Entry) -> Entry:
        title, text = of.title, of.text
        for edit in self.rng.sample(range(5), self.rng.randint(1, 2)):
            if edit == 0:
                title = self.rng.choice((title.upper(), title + "!", title.replace(" ", " - ", 1)))
            elif edit == 1:
                text = f"{self.rng.choice(('LONDON', 'BERLIN', 'NEW YORK'))} (Wire) - {text}"
            elif edit == 2:
                sentences = text.split(". ")
                if len(sentences) > 3:
                    del sentences[self.rng.randrange(len(sentences))]
                text = ". ".join(sentences)
            elif edit == 3:
                words = text.split(" ")
                for _ in range(2):
                    words[self.rng.randrange(len(words))] = self._words(1)[0]
                text = " ".join(words)
            else:
                header, footer = self.rng.choice(_BOILERPLATE)
                text = f"{header}\n{text}\n{footer}"
        return Entry(of.truth, f"https://copy{index % 991}.example/s/{index}", title, text)


def generate(count: int, seed: int = 1, copy_share: float = 0.3) -> list[Entry]:
    """``count`` entries, about ``copy_share`` of them near-copies of earlier ones."""
    gen = _Generator(seed)
    entries: list[Entry] = []
    for index in range(count):
        if entries and gen.rng.random() < copy_share:
            # copies cluster in time: mostly of one of the last 2,000 entries
            of = entries[gen.rng.randrange(max(0, len(entries) - 2000), len(entries))]
            entries.append(gen.copy(index, entries[of.truth]))
        else:
            entries.append(gen.original(index))
    return entries


def run(entries: list[Entry]) -> dict[str, float]:
    story_truth: dict[int, int] = {}  # story id -> truth of the entry that started it
    false_merges = missed = 0
    started = time.perf_counter()
    keys = [(story_url(e.url), fingerprint(e.title, e.text)) for e in entries]
    for entry, story in zip(entries, assign(keys, {}, BandIndex()), strict=True):
        if story not in story_truth:
            story_truth[story] = entry.truth
        elif story_truth[story] != entry.truth:
            false_merges += 1
    elapsed = time.perf_counter() - started
    first_story: dict[int, int] = {}
    for story, truth in story_truth.items():
        if truth in first_story:
            missed += 1
        else:
            first_story[truth] = story
    return {
        "entries": len(entries),
        "seconds": elapsed,
        "entries_per_s": len(entries) / elapsed,
        "stories_found": len(story_truth),
        "true_stories": len({e.truth for e in entries}),
        "false_merges": false_merges,
        "missed_copies": missed,
        "copies": sum(1 for i, e in enumerate(entries) if e.truth != i),
    }


def distances(entries: list[Entry]) -> tuple[dict[int, int], dict[int, int]]:
    """All pairs: how many copy pairs and unrelated pairs lie at each Hamming distance (the
    store joins within STORY_MAX_DISTANCE bits; this shows what that threshold costs)."""
    printed = [(e.truth, fingerprint(e.title, e.text)) for e in entries]
    known = [(truth, fp) for truth, fp in printed if fp is not None]
    copies: dict[int, int] = {}
    unrelated: dict[int, int] = {}
    for i, (truth, fp) in enumerate(known):
        for other_truth, other in known[:i]:
            gap = (fp ^ other).bit_count()
            if truth == other_truth:
                copies[gap] = copies.get(gap, 0) + 1
            elif gap <= 16:
                unrelated[gap] = unrelated.get(gap, 0) + 1
    return copies, unrelated


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("count", nargs="?", type=int, default=50_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--pairs",
        type=int,
        default=0,
        metavar="N",
        help="also compare all pairs of the first N entries and print distance histograms",
    )
    args = parser.parse_args()
    entries = generate(args.count, args.seed)
    if args.pairs:
        copies, unrelated = distances(entries[: args.pairs])
        within = sum(n for d, n in copies.items() if d <= 7)
        print(f"copy pairs by distance: {sorted(copies.items())}")
        print(f"unrelated pairs at distance <= 16: {sorted(unrelated.items())}")
        print(
            f"copy pairs within 7 bits: {within / max(1, sum(copies.values())):.1%}; "
            f"within 3 bits: "
            f"{sum(n for d, n in copies.items() if d <= 3) / max(1, sum(copies.values())):.1%}; "
            f"closest unrelated pair: {min(unrelated, default='>16')} bits"
        )
    r = run(entries)
    print(
        f"{r['entries']:,.0f} entries in {r['seconds']:.2f} s: "
        f"{r['entries_per_s']:,.0f} entries/s\n"
        f"stories found {r['stories_found']:,.0f} (true stories {r['true_stories']:,.0f}; "
        f"{r['copies']:,.0f} near-copies)\n"
        f"false merges {r['false_merges']:,.0f}; missed copies (started a story of their own) "
        f"{r['missed_copies']:,.0f}"
    )


if __name__ == "__main__":
    main()
