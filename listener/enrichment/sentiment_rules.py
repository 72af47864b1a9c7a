"""Linguistic rules of the built-in sentiment scorer: tokens, negation scope, contrast,
intensifiers, emoji/emoticons, exclamation, elongation, German compound heads and the complaint
lexicon.

`analyse()` turns a text into the model's sparse features plus the rule evidence; the trainer
(scripts/train_sentiment.py) and the scorer both call it, so a model is always trained on exactly
the features it is scored on. Rules applied:

- negation: a negator ("not", "nicht", "kein", "never", "don't", ...) marks the next three words
  as negated ("!gut") until punctuation or a contrast word; a clause-final German negator
  ("Das gefällt mir nicht.") marks the three words before it. Negated polarity words are
  counted apart (@not-neg for "not bad", @not-pos for "nicht gut"); the scorer's prior moves
  "not bad" away from negative and "nicht gut" towards it.
- contrast: after the last "but"/"aber"/"jedoch"/"however"/... the clause dominates: the
  features before it count half.
- intensifiers ("sehr", "extrem", "so", "really") multiply the next polarity word; "!" (up to
  three) and elongated words ("soooo") amplify the polarity masses.
- compounds: a German word of 8+ letters that is not in the lexicon is looked up by its longest
  negative/complaint head of 4+ letters ("totalausfall" -> "ausfall"); hyphenated words are split
  and their last part is the head ("kundenservice-katastrophe" -> "katastrophe").
- remedies: what a customer wants after a problem (refund, reply, Antwort, Ersatz). Under a
  negation they count as complaint ("still no refund", "keine Rückmeldung"), where a negated
  complaint word moves away from negative ("no delays").
- complaint words and two-word phrases (refund, delayed, Rückruf, Datenleck, "never again",
  "nie wieder") and emoji are counted separately: the training data has few of them, so the
  scorer adds a fixed, hand-set prior for them on top of what the model learned.
- third-party polarity lists (VADER's lexicon for English, the German Polarity Lexicon for
  German, polarity_*.tsv) give a word a mass on one of four features the model weighs: @x- and
  @x+ for plain words, @xn- and @xn+ for negated ones (`polarity()`); German words are also
  looked up without an inflection ending ("enttäuschende" -> "enttäuschend"). They carry
  polarity to words the training data lacks.
- sub-words (English): a word also counts by its character 3- to 5-grams ("#<ref", "#und>"), so
  unseen spellings and derivations ("refundless", "scammy") get weight from their parts.

A word's features are given as one *unit* (the word, or "!word" when negated); `expand()` turns
a unit into its features (the word, its German stem, its character n-grams) and `polarity()`
into its polarity-list mass, so the scorer can add a word's weights up once and memoise the sum.

Lexicons are the lexicon_*.txt files beside this module (hand-written for listener) and the
polarity_*.tsv lists (imported by scripts/import_polarity.py; attributions in listener/NOTICE).

Size: over 400 lines on purpose: one rule set that the trainer and the scorer must share
exactly; split, the halves would drift apart between a model and what it scores.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from itertools import compress
from operator import itemgetter
from pathlib import Path

HERE = Path(__file__).parent
LEXICON_FILES = (
    "lexicon_en.txt",
    "lexicon_de.txt",
    "lexicon_emoji.txt",
    "polarity_en.tsv",
    "polarity_de.tsv",
)

_TOKEN = re.compile(  # words first: faster, and no other alternative can start with \w
    r"\w+(?:['-]\w+)*"  # words, "don't", "kundenservice-katastrophe"
    r"|[:;=][-'^]?[()\[\]dp|*]"  # emoticons (text is lower-cased first)
    r"|:-?/(?!/)"  # ":/" but not "://"
    r"|<3"
    r"|[!?]+"
    r"|[.,;:]"
    r"|[\U0001F300-\U0001FAFF\u2600-\u27BF\u2B50]"
)
_ELONGATED = re.compile(r"(\w)\1{2,}")
_BREAKS = frozenset({".", ",", ";", ":", "?", "!"})
NEGATION_SCOPE = 3
CONTRAST_BEFORE = 0.5  # weight of the features before a contrast word
COMPOUND_MIN = 8
HEAD_MIN = 4
STEM, STEM_MIN = 5, 7  # German: long words also count by their first letters ("~enttä")
GRAM_MIN, GRAM_MAX = 3, 5  # English: character n-grams of "<word>"
INFLECTIONS = ("en", "em", "er", "es", "e", "n", "s")  # German endings tried for polarity_de

# Per-token facts memoised by `_token`: (kind, exclamation count or emoji value, token (also its
# unit), its unit when negated, matched head term, head polarity, head is complaint, intensifier
# boost, first word of a complaint phrase, the token and a space (a bigram's start), whether the
# second loop of `_analyse` must look at it, remedy strength).
_Tok = tuple[int, float, str, str, str, float, bool, float, bool, str, bool, float]
_TEXT, _PAIR_START, _ATTENTION = (itemgetter(i) for i in (2, 9, 10))
_WORD, _NEGATOR, _CONTRAST, _EMOJI, _BREAK = range(5)
# Added to the kind of a token that may be part of an elongation ("soooo", or ":d" + "dd"): every
# \w character is inside a token, so a text without such a token has nothing to shorten.
_ELONGATION = 8
_TRIPLE = re.compile(r"(.)\1\1")
_MEMO_MAX = 200_000


@dataclass(frozen=True, slots=True)
class Lexicon:
    """The word lists of one language (emoji are shared)."""

    polarity: dict[str, float]  # < 0 negative, > 0 positive
    complaint: dict[str, float]  # words and "two word" phrases, all negative
    remedies: dict[str, float]  # wanted after a problem: their absence is a complaint
    negators: frozenset[str]
    final_negators: frozenset[str]  # negators that may close a clause (German "nicht")
    intensifiers: dict[str, float]
    contrast: frozenset[str]
    emoji: dict[str, float]
    external: dict[str, float] = field(default_factory=dict)  # polarity_*.tsv
    subwords: bool = False  # expand words into character n-grams
    stems: bool = False  # expand long words into their first letters (German)
    heads: dict[str, tuple[str, float, bool]] = field(default_factory=dict)  # compound cache
    tokens: dict[bool, dict[str, _Tok]] = field(  # per-token cache of `analyse`, by `compounds`
        default_factory=lambda: {False: {}, True: {}}
    )


def _read(path: Path) -> list[tuple[str, str, float]]:
    rows = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if line and not line.startswith("#"):
            kind, term, value = line.split("\t")
            rows.append((kind, term, float(value)))
    return rows


def load_lexicon(lang: str, directory: Path = HERE) -> Lexicon:
    """Lexicon for "en" or "de" from the lexicon_*.txt files."""
    polarity: dict[str, float] = {}
    complaint: dict[str, float] = {}
    remedies: dict[str, float] = {}
    negators: set[str] = set()
    intensifiers: dict[str, float] = {}
    contrast: set[str] = set()
    for kind, term, value in _read(directory / f"lexicon_{lang}.txt"):
        if kind == "pos":
            polarity[term] = value
        elif kind == "neg":
            polarity[term] = -value
        elif kind == "cmp":
            complaint[term] = value
        elif kind == "remedy":
            remedies[term] = value
        elif kind == "negator":
            negators.add(term)
        elif kind == "intens":
            intensifiers[term] = value
        elif kind == "contrast":
            contrast.add(term)
    emoji = {t: (v if k == "pos" else -v) for k, t, v in _read(directory / "lexicon_emoji.txt")}
    final = (
        frozenset({"nicht", "nie", "niemals", "kaum"} & negators) if lang == "de" else frozenset()
    )
    external = {}
    for line in (directory / f"polarity_{lang}.tsv").read_text(encoding="utf-8").splitlines():
        if line and not line.startswith("#"):
            word, mass = line.split("\t")
            external[word] = float(mass)
    return Lexicon(
        polarity,
        complaint,
        remedies,
        frozenset(negators),
        final,
        intensifiers,
        frozenset(contrast),
        emoji,
        external,
        subwords=lang == "en",
        stems=lang == "de",
    )


def expand(unit: str, lex: Lexicon) -> tuple[str, ...]:
    """The features of a word unit ("word" or "!word"): itself, its German stem, its character
    n-grams (marked "!" too when the word is negated)."""
    negated = unit[:1] == "!"
    word = unit[1:] if negated else unit
    feats = [unit]
    if lex.stems and len(word) >= STEM_MIN:
        feats.append("~" + word[:STEM])
    if lex.subwords and word[:1].isalpha():
        mark = "!#" if negated else "#"
        padded = "<" + word + ">"
        n = len(padded)
        grams = dict.fromkeys(
            padded[i : i + k]
            for k in range(GRAM_MIN, GRAM_MAX + 1)
            for i in range(n - k + 1)
            if k < n
        )
        feats += [mark + g for g in grams]
    return tuple(feats)


def polarity(unit: str, lex: Lexicon) -> tuple[str, float] | None:
    """The polarity-list feature of a word unit and its mass (> 0), or None."""
    negated = unit[:1] == "!"
    word = unit[1:] if negated else unit
    if word in lex.negators or word in lex.contrast or word in lex.emoji:
        return None
    value = _external(word, lex)
    if not value:
        return None
    return ("@xn" if negated else "@x") + ("-" if value < 0 else "+"), abs(value)


def _external(word: str, lex: Lexicon) -> float:
    value = lex.external.get(word)
    if value is None and lex.stems:
        for ending in INFLECTIONS:
            if word.endswith(ending) and (value := lex.external.get(word[: -len(ending)])):
                break
    return value or 0.0


@dataclass(slots=True)
class Analysis:
    """Features and rule evidence of one text."""

    before: list[str]  # word units before the last contrast word (weight CONTRAST_BEFORE)
    after: list[str]  # word units after it (or of the whole text: weight 1)
    pairs_before: list[str]  # bigrams ("word word") ending before the contrast word
    pairs_after: list[str]  # the other bigrams
    dense: dict[str, float]  # lexicon masses: @neg @pos @cmp @emo- @emo+ @not-neg @not-pos
    reasons: list[str]
    contrast: bool


def _head(word: str, lex: Lexicon, compounds: bool) -> tuple[str, float, bool]:
    """(matched term, polarity, is_complaint) of a word via the lexicon or its compound head."""
    hit = lex.heads.get(word)
    if hit is not None:
        return hit
    result = ("", 0.0, False)
    if word in lex.complaint:
        result = (word, -lex.complaint[word], True)
    elif word in lex.polarity:
        result = (word, lex.polarity[word], False)
    elif "-" in word:
        last = word.rsplit("-", 1)[1]
        term, value, cmp = _head(last, lex, compounds)
        if value < 0:
            result = (term, value, cmp)
    elif compounds and len(word) >= COMPOUND_MIN and word.isalpha():
        for i in range(1, len(word) - HEAD_MIN + 1):
            tail = word[i:]
            if tail in lex.complaint:
                result = (tail, -lex.complaint[tail], True)
                break
            if lex.polarity.get(tail, 0.0) < 0:
                result = (tail, lex.polarity[tail], False)
                break
    if len(lex.heads) < 200_000:
        lex.heads[word] = result
    return result


def _token(tok: str, lex: Lexicon, compounds: bool) -> _Tok:
    """What `analyse` needs to know about one token (pure: depends on the lexicon only)."""
    if tok in _BREAKS or tok[0] in "!?":
        return (
            _BREAK,
            float(len(tok)) if tok[0] == "!" else 0.0,
            tok,
            "",
            "",
            0.0,
            False,
            1.0,
            False,
            "",
            False,
            0.0,
        )
    extra = 0.0
    kind = _WORD
    if tok in lex.emoji:
        kind, extra = _EMOJI, lex.emoji[tok]
    elif tok in lex.contrast:
        kind = _CONTRAST
    elif tok in lex.negators:
        kind = _NEGATOR
    if _TRIPLE.search(tok) or (tok[0] in ":;=<" and tok[-1] in "dp3"):
        kind += _ELONGATION
    term, value, is_cmp = _head(tok, lex, compounds)
    boost = lex.intensifiers.get(tok, 1.0)
    phrase = any(k.startswith(tok + " ") for k in lex.complaint)
    remedy = lex.remedies.get(tok, 0.0)
    attention = bool(value or phrase or remedy)
    return (
        kind,
        extra,
        tok,
        "!" + tok,
        term,
        value,
        is_cmp,
        boost,
        phrase,
        tok + " ",
        attention,
        remedy,
    )


def _remember(memo: dict[str, _Tok], tok: str, lex: Lexicon, compounds: bool) -> _Tok:
    info = _token(tok, lex, compounds)
    if len(memo) < _MEMO_MAX:
        memo[tok] = info
    return info


def analyse(text: str, lex: Lexicon, compounds: bool) -> Analysis:
    """Features and rule evidence; `compounds` enables German compound heads."""
    low = text.lower().replace("’", "'")
    analysis = _analyse(low, 0, lex, compounds)
    if analysis is None:  # elongated words are shortened first ("soooo" -> "soo")
        low, elongated = _ELONGATED.subn(r"\1\1", low)
        analysis = _analyse(low, elongated, lex, compounds)
    assert analysis is not None
    return analysis


def _analyse(low: str, elongated: int, lex: Lexicon, compounds: bool) -> Analysis | None:
    """`analyse` of a lower-cased text; None when it may hold an elongation not yet shortened
    (`elongated` 0: not checked yet)."""
    check = not elongated
    memo = lex.tokens[compounds]
    memo_get = memo.get
    infos: list[_Tok] = []  # the words (every token but punctuation)
    negated: dict[int, str] = {}  # word index -> the negator whose scope covers the word
    add_info = infos.append
    split = 0  # index in words where the dominant clause starts
    scope = 0
    negator = ""
    clause = 0
    exclaim = 0
    emo_pos = emo_neg = 0.0
    reasons: list[str] = []
    final_negators = lex.final_negators
    for tok in _TOKEN.findall(low):
        info = memo_get(tok) or _remember(memo, tok, lex, compounds)
        kind = info[0]
        if kind == _WORD:
            if scope:
                negated[len(infos)] = negator
                scope -= 1
            add_info(info)
            continue
        if kind >= _ELONGATION:
            if check and _ELONGATED.search(low):
                return None
            check = False
            kind -= _ELONGATION
        if kind == _WORD:
            if scope:
                negated[len(infos)] = negator
                scope -= 1
            add_info(info)
        elif kind == _BREAK:
            exclaim += int(info[1])
            if scope == NEGATION_SCOPE and infos[-1][2] in final_negators:
                last = len(infos) - 1
                for j in range(max(clause, last - NEGATION_SCOPE), last):
                    negated[j] = infos[-1][2]
            scope = 0
            clause = len(infos)
        elif kind == _NEGATOR:
            if scope:
                negated[len(infos)] = negator
            add_info(info)
            scope = NEGATION_SCOPE
            negator = tok
        elif kind == _EMOJI:
            emo = info[1]
            if emo > 0:
                emo_pos += emo
            else:
                emo_neg -= emo
            reasons.append(f"emoji: {tok}")
            add_info(info)
        else:  # _CONTRAST
            split = clause = len(infos) + 1
            scope = 0
            add_info(info)
    if scope == NEGATION_SCOPE and infos[-1][2] in final_negators:
        last = len(infos) - 1
        for j in range(max(clause, last - NEGATION_SCOPE), last):
            negated[j] = infos[-1][2]
    if split:
        reasons.append(f"contrast: {infos[split - 1][2]}")

    neg = pos = cmp = not_neg = not_pos = 0.0
    n = len(infos)
    if negated:
        units = [info[3] if i in negated else info[2] for i, info in enumerate(infos)]
    else:
        units = list(map(_TEXT, infos))
    # pairs[i]: words i and i + 1 as written
    pairs = list(map(str.__add__, map(_PAIR_START, infos[:-1]), map(_TEXT, infos[1:])))
    complaint = lex.complaint
    for i in compress(range(n), map(_ATTENTION, infos)):
        _, _, w, _, term, value, is_cmp, _, starts, _, _, remedy = infos[i]
        by = negated.get(i, "") if negated else ""
        contrast = 1.0 if i >= split else CONTRAST_BEFORE
        if starts and i + 1 < n and (bigram := pairs[i]) in complaint:
            cmp += complaint[bigram] * (1.0 if i + 1 >= split else CONTRAST_BEFORE)
            reasons.append(f"complaint: {bigram}")
        if remedy and by:  # "no refund": the remedy is missing
            cmp += remedy * contrast
            reasons.append(f"complaint: {by} {w}")
            continue
        if value:
            boost = infos[i - 1][7] if i else 1.0
            weight = contrast * boost
            if term != w:
                reasons.append(f"compound: {w}")
            if by:
                if value < 0:
                    not_neg -= value * weight
                else:
                    not_pos += value * weight
                reasons.append(f"negation: {by} {w}")
            elif is_cmp:
                cmp -= value * weight
                reasons.append(f"complaint: {term}")
            elif value < 0:
                neg -= value * weight
                reasons.append(f"lexicon: {w}")
            else:
                pos += value * weight
                reasons.append(f"lexicon: {w}")
            if boost != 1.0:
                reasons.append(f"intensifier: {infos[i - 1][2]} {w}")
    amp = 1.0 + 0.15 * min(exclaim, 3) + 0.1 * min(elongated, 2)
    if exclaim:
        reasons.append("exclamation")
    dense = {
        "@neg": neg * amp,
        "@pos": pos * amp,
        "@cmp": cmp * amp,
        "@emo-": emo_neg,
        "@emo+": emo_pos,
        "@not-neg": not_neg,
        "@not-pos": not_pos,
    }
    cut = max(split - 1, 0)  # the bigram of words split - 1 and split belongs after
    return Analysis(
        units[:split], units[split:], pairs[:cut], pairs[cut:], dense, reasons, bool(split)
    )
