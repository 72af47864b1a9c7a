"""Robust statistics and count tail probabilities, in pure Python.

Rules:
- Baselines are robust means (clear spikes removed first), never plain means over windows that
  may hold earlier spikes (the flaw of mean + 3 standard deviations), nor medians, which are
  biased low on small counts.
- Count surprise is a negative-binomial tail probability: Poisson when the baseline shows no more
  spread than Poisson noise, wider by its dispersion (variance over mean, the top 10% of samples
  trimmed; a MAD overstates the spread of small counts), and never narrower than ``min_cv``
  relative noise
  (seasonal volume of big brands varies by a few tens of percent from day to day).
- Probabilities are returned as ``-log10(p)`` ("score"): 6 means one in a million.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

MAX_SCORE = 300.0  # -log10 of the smallest probability reported


def median(values: Sequence[float]) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    mid = len(ordered) // 2
    if len(ordered) % 2:
        return float(ordered[mid])
    return (ordered[mid - 1] + ordered[mid]) / 2.0


def tail_score(observed: float, mean: float, variance: float) -> float:
    """``-log10 P(X >= observed)`` for a count with this mean and variance (NB or Poisson)."""
    k = math.ceil(observed)
    if k <= 0:
        return 0.0
    mean = max(mean, 1e-9)
    if k <= mean:
        return 0.0
    if variance <= mean * 1.0001:
        log_pmf = k * math.log(mean) - mean - math.lgamma(k + 1)

        def ratio(x: int) -> float:
            return mean / (x + 1)
    else:
        r = mean * mean / (variance - mean)
        p = r / (r + mean)
        log_pmf = (
            math.lgamma(k + r)
            - math.lgamma(r)
            - math.lgamma(k + 1)
            + r * math.log(p)
            + k * math.log1p(-p)
        )
        q = 1.0 - p

        def ratio(x: int) -> float:
            return (x + r) / (x + 1) * q

    # P(X >= k) = pmf(k) * (1 + t1 + t1*t2 + ...): the terms fall from k on (k is above the mode)
    total, term, x = 1.0, 1.0, k
    for _ in range(5000):
        step = ratio(x)
        term *= step
        total += term
        x += 1
        if term < 1e-12 * total:
            break
        if step < 1.0 and x - k > 200:  # geometric bound for the rest
            total += term * step / (1.0 - step)
            break
    log10_p = (log_pmf + math.log(total)) / math.log(10)
    return min(MAX_SCORE, max(0.0, -log10_p))


def probability(score: float) -> float:
    return float(10.0**-score)


def robust_mean(values: Sequence[float]) -> float:
    """Mean of the values without clear spikes (above twice the median and well beyond Poisson
    noise around it). Unlike a median or a trimmed mean it is not biased low on small counts
    (the median of Poisson(1.6) samples is 1), and unlike a mean an earlier crisis cannot
    inflate it."""
    if not values:
        return 0.0
    centre = median(values)
    limit = max(2 * centre, centre + 4 * math.sqrt(max(centre, 1.0)) + 3)
    kept = [v for v in values if v <= limit]
    return sum(kept) / len(kept)


def spread(samples: Sequence[float], expected: float, min_cv: float) -> float:
    """Variance for the tail test: Poisson widened by the samples' dispersion (spikes trimmed),
    and never below ``min_cv`` relative noise."""
    return max(expected * dispersion(samples), expected + (min_cv * expected) ** 2)


def dispersion(counts: Sequence[float], trim: float = 0.1) -> float:
    """Variance over mean of counts without their top ``trim`` share and at least their top one
    (an earlier spike among a week of samples), at least 1 (Poisson). Needs a week of counts;
    below that, 1."""
    if len(counts) < 7:
        return 1.0
    ordered = sorted(counts)[: max(2, len(counts) - max(1, int(len(counts) * trim)))]
    mean = sum(ordered) / len(ordered)
    if mean <= 0:
        return 1.0
    variance = sum((c - mean) ** 2 for c in ordered) / (len(ordered) - 1)
    return max(1.0, variance / mean)
