"""Tokens: how folded text splits into the words queries are matched against.

Owns ``tokenize``, ``is_word_char`` and ``WORD``. Rules:

- A word character is a letter, a digit or "_" (Python's ``\\w``). A token is a maximal run of
  word characters. Combining marks are not word characters, but ``fold`` removes the ones NFKC
  cannot compose, so folded words stay whole.
- "#" or "@" directly before a token makes it a hashtag or handle ("#kryptonitelock",
  "@kryptonite"), unless a word character precedes the sign: in "mail@example.com" and "C#5"
  the sign is punctuation. The sign is kept as the token's *sigil*.
- Everything else (spaces, punctuation, emoji) separates tokens and is not searchable, except
  through ``raw:``.
"""

from __future__ import annotations

import re

__all__ = ["WORD", "is_word_char", "tokenize"]


WORD = r"\w"
"""The body of a regex character class matching one word character."""

_WORD_CHAR = re.compile(f"[{WORD}]")
_TOKEN = re.compile(f"(?<![{WORD}])[#@][{WORD}]+|[{WORD}]+")


def is_word_char(char: str) -> bool:
    """Whether ``char`` (one character) is part of words."""
    return _WORD_CHAR.match(char) is not None


def tokenize(folded: str) -> tuple[list[str], list[str] | None]:
    """Split already folded text into (words, sigils).

    ``words`` are the tokens without their sigil; ``sigils[i]`` is "#", "@" or "" for
    ``words[i]``, or ``sigils`` is None when no token has one.
    """
    tokens: list[str] = _TOKEN.findall(folded)
    if "#" not in folded and "@" not in folded:
        return tokens, None
    words: list[str] = []
    sigils: list[str] = []
    for token in tokens:
        if token[0] in "#@":
            words.append(token[1:])
            sigils.append(token[0])
        else:
            words.append(token)
            sigils.append("")
    return words, sigils
