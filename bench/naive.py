"""The naive pipeline the bench compares against: one feed at a time, httpx.get + feedparser.

python bench/naive.py BASE_URL N
"""

from __future__ import annotations

import sys

import feedparser
import httpx


def main() -> None:
    base, count = sys.argv[1], int(sys.argv[2])
    entries = 0
    with httpx.Client(timeout=30) as client:
        for i in range(count):
            response = client.get(f"{base}/feeds/{i}.xml")
            entries += len(feedparser.parse(response.content).entries)
    print(entries)


if __name__ == "__main__":
    main()
