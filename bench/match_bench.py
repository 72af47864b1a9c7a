"""Matching benchmark: many brand queries against many synthetic entries, on one core.

python bench/match_bench.py [--queries 500] [--entries 50000] [--seed 1] [--check 2000]

Builds QUERIES brand queries of mixed shapes (words, phrases, OR lists, NOT, NEAR, wildcards,
field scopes) and ENTRIES entries (a title of ~10 words and a text of ~40, half English, half
German with umlauts, ~5% mentioning a brand), then prints the build time, entries per second,
the number of (entry, query) evaluations the prefilter let through, and matches. ``--check N``
also matches the first N entries without the prefilter and fails if any answer differs.
"""

from __future__ import annotations

import argparse
import random
import sys
import time

from listener.matching import Document, Matcher, parse_query

ENGLISH = (
    "the a of and to in is it that for on with as was at by this be from or have an they which "
    "one you were her all she there would their we him been has when who will more no if out so "
    "said what up its about into than them can only other new some could time these two may then "
    "do first any my now such like our over man me even most made after also did many before must "
    "through back years where much your way well down should because each just those people train "
    "delay station price market report company customer service phone lock bike city police"
).split()
GERMAN = (
    "der die das und in den von zu mit sich des auf für ist im dem nicht ein eine als auch es an "
    "werden aus er hat dass sie nach wird bei einer um am sind noch wie einem über einen so zum "
    "war haben nur oder aber vor zur bis mehr durch man sein wurde sei hatte kann gegen vom können "
    "schon wenn habe seine ihre dann unter wir soll ich eines jahr zwei jahren diese dieser wieder "
    "keine müssen straße grün schön bahnhof zugausfall verspätung fahrgäste preis kunden größte "
    "bahnchaos übernahme mitarbeiter geschäftsführer österreich münchen köln düsseldorf"
).split()
SYLLABLES = "ka lo ri ne tu vex zor mil dra qua fen bro sti gal nox pre tri vel xan yor".split()
SITES = ("heise.de", "spiegel.de", "example.com", "news.example.org", "bbc.co.uk")


def brand_name(rng: random.Random) -> str:
    return "".join(rng.choice(SYLLABLES) for _ in range(rng.randint(2, 4)))


def make_query(rng: random.Random, names: list[str]) -> str:
    """One query around ``names[0]`` (the brand) and a few other invented names."""
    name, other, third = names[0], names[1], names[2]
    shape = rng.randrange(10)
    if shape == 0:
        return name
    if shape == 1:
        return f'"{name} {other}"'
    if shape == 2:
        return f'{name} OR "{other} group" OR #{name}'
    if shape == 3:
        return f"{name} NOT ({rng.choice(ENGLISH)} OR {rng.choice(GERMAN)})"
    if shape == 4:
        return f"{name} NEAR/3 {rng.choice(['price', 'preis', 'delay', 'kunden'])}"
    if shape == 5:
        return f"{name[:5]}* OR *{other[-5:]}"
    if shape == 6:
        return f"*{name[1:6]}* -{third}"
    if shape == 7:
        return f"title:{name} OR site:{rng.choice(SITES)} {other}"
    if shape == 8:
        return f'({name} OR {other}) lang:{rng.choice(["de", "en"])} -author:"{third}"'
    return f"{name} ONEAR/2 {other} OR @{name}"


def make_entries(rng: random.Random, count: int, names: list[str]) -> list[Document]:
    docs = []
    for i in range(count):
        german = i % 2 == 1
        words = GERMAN if german else ENGLISH
        title = [rng.choice(words) for _ in range(rng.randint(8, 12))]
        text = [rng.choice(words) for _ in range(rng.randint(35, 45))]
        if rng.random() < 0.05:  # a mention: a brand name, sometimes capitalised or a hashtag
            name = rng.choice(names)
            form = rng.choice([name, name.capitalize(), name.upper(), "#" + name])
            text.insert(rng.randrange(len(text)), form)
            if rng.random() < 0.3:
                title.insert(rng.randrange(len(title)), name.capitalize())
        docs.append(
            Document(
                title=" ".join(title).capitalize(),
                text=". ".join(" ".join(text[j : j + 8]) for j in range(0, len(text), 8)) + ".",
                author=rng.choice([None, "Anna Müller", "@newsbot", "John Smith"]),
                url=f"https://www.{rng.choice(SITES)}/news/{i}",
                language="de" if german else "en",
                source=rng.choice(("heise", "reddit", "google_news")),
            )
        )
    return docs


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--queries", type=int, default=500)
    parser.add_argument("--entries", type=int, default=50_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--check", type=int, default=2000)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    names = [brand_name(rng) for _ in range(args.queries * 3)]
    brands = [
        (f"brand{i}", parse_query(make_query(rng, names[3 * i : 3 * i + 3])), (), ())
        for i in range(args.queries)
    ]
    docs = make_entries(rng, args.entries, names[::3])

    started = time.perf_counter()
    matcher = Matcher(brands)
    build = time.perf_counter() - started

    started = time.process_time()
    matched = sum(1 for doc in docs if matcher.match(doc))
    cpu = time.process_time() - started

    print(f"queries        {len(brands)} ({matcher.anchor_count} anchors)")
    print(f"entries        {len(docs)}")
    print(f"build          {build * 1000:.1f} ms")
    print(f"match          {cpu:.2f} s CPU, {len(docs) / cpu:,.0f} entries/s")
    per_entry = matcher.evaluated / len(docs)
    print(f"evaluated      {matcher.evaluated} (entry, query) pairs, {per_entry:.3f} per entry")
    print(f"matched        {matched} entries ({matched / len(docs):.1%})")

    if args.check:
        slow = Matcher(brands, prefilter=False)
        for doc in docs[: args.check]:
            if slow.match(doc) != matcher.match(doc):
                sys.exit(f"prefilter changed the answer for {doc}")
        print(f"check          prefilter agrees with full evaluation on {args.check} entries")


if __name__ == "__main__":
    main()
