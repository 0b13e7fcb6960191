"""How sure is a score? Confidence intervals for an accuracy, and the paired comparison of two
models on the same items.

An accuracy over ``n`` items is a binomial proportion. Its 95% interval here is **Wilson's score
interval**: unlike the textbook ``p +- 1.96 sqrt(p(1-p)/n)`` (the Wald interval) it stays inside
[0, 1] and does not collapse to a point at 0 or 1 correct answers.

Two models scored on the *same* items are not two independent samples: most items are answered
alike by both, and only the items where they disagree carry evidence. **McNemar's exact test**
counts those discordant items (``b``: only the first model right; ``c``: only the second) and asks
how likely a split at least as uneven as ``b`` vs ``c`` is if either model were equally likely to
win each one (a two-sided binomial test with p = 1/2). The **paired bootstrap** resamples the
items, keeping each item's pair of outcomes together, for an interval on the difference.

=======================  ================================================================
``wilson_interval``      the 95% interval of an accuracy: ``(low, high)``
``mcnemar``              exact two-sided p-value from the discordant counts
``paired_bootstrap``     interval on the difference of two paired accuracies
``paired_comparison``    all of it for two vectors of per-item outcomes, with a verdict
=======================  ================================================================
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence

Z95 = 1.959963984540054  # the 97.5% quantile of the standard normal distribution


def _z(confidence: float) -> float:
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be between 0 and 1, got {confidence}")
    if abs(confidence - 0.95) < 1e-12:
        return Z95
    # the inverse normal CDF by bisection on erf: any confidence, no scipy needed
    lo, hi, target = 0.0, 10.0, (1 + confidence) / 2
    for _ in range(100):
        mid = (lo + hi) / 2
        if 0.5 * (1 + math.erf(mid / math.sqrt(2))) < target:
            lo = mid
        else:
            hi = mid
    return (lo + hi) / 2


def wilson_interval(successes: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson's score interval for ``successes`` out of ``n``:
    ``(p + z^2/2n -+ z sqrt(p(1-p)/n + z^2/4n^2)) / (1 + z^2/n)`` with ``p = successes / n``."""
    if n < 1:
        raise ValueError(f"an interval needs at least one item, got n={n}")
    if not 0 <= successes <= n:
        raise ValueError(f"successes must be between 0 and n={n}, got {successes}")
    z = _z(confidence)
    p = successes / n
    centre = p + z * z / (2 * n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    scale = 1 + z * z / n
    low = 0.0 if successes == 0 else (centre - half) / scale  # exactly 0 and 1 at the edges
    high = 1.0 if successes == n else (centre + half) / scale
    return low, high


def mcnemar(only_a: int, only_b: int) -> float:
    """McNemar's exact test: the two-sided p-value of ``only_a`` items won by the first model
    and ``only_b`` by the second, if each discordant item were a fair coin flip. 1.0 when the
    models never disagree."""
    if only_a < 0 or only_b < 0:
        raise ValueError(f"counts must be >= 0, got {only_a} and {only_b}")
    n, k = only_a + only_b, min(only_a, only_b)
    if n == 0:
        return 1.0
    tail = sum(math.comb(n, i) for i in range(k + 1)) / 2**n  # P(X <= k), X ~ Bin(n, 1/2)
    return min(1.0, 2 * tail)


def _outcomes(values: Sequence, name: str) -> list[int]:
    out = []
    for v in values:
        if v not in (0, 1, True, False):
            raise ValueError(f"{name} must hold per-item outcomes 0/1 or True/False, got {v!r}")
        out.append(int(v))
    return out


def _paired(a: Sequence, b: Sequence) -> tuple[list[int], list[int]]:
    """Two models' per-item outcomes as 0/1 lists, checked to pair up."""
    a, b = _outcomes(a, "a"), _outcomes(b, "b")
    if len(a) != len(b):
        raise ValueError(
            f"paired outcomes need the same items in the same order: got {len(a)} and {len(b)}"
        )
    if not a:
        raise ValueError("no items to compare: pass the per-item outcomes of both models")
    return a, b


def paired_bootstrap(
    a: Sequence,
    b: Sequence,
    n_resamples: int = 2000,
    confidence: float = 0.95,
    seed: int = 0,
) -> tuple[float, float]:
    """Percentile interval of ``mean(b) - mean(a)`` from ``n_resamples`` resamples of the items
    (with replacement, each item's two outcomes kept together)."""
    a, b = _paired(a, b)
    rng = random.Random(f"paired_bootstrap/{seed}")
    diff = [y - x for x, y in zip(a, b)]
    n = len(diff)
    stats = sorted(sum(diff[rng.randrange(n)] for _ in range(n)) / n for _ in range(n_resamples))
    tail = (1 - confidence) / 2
    lo = stats[int(math.floor(tail * (n_resamples - 1)))]
    hi = stats[int(math.ceil((1 - tail) * (n_resamples - 1)))]
    return lo, hi


def paired_comparison(
    a: Sequence,
    b: Sequence,
    alpha: float = 0.05,
    n_resamples: int = 2000,
    seed: int = 0,
) -> dict:
    """Compare two models' per-item outcomes on the same items (``a``: the reference, e.g. the
    base model; ``b``: the changed one, e.g. quantized). Returns the accuracies, the difference
    ``b - a`` with its paired-bootstrap interval, the discordant counts, McNemar's p-value and a
    ``verdict``: ``"lost"`` (b worse, p < alpha), ``"gained"`` (b better, p < alpha) or
    ``"no evidence"`` of a difference."""
    a, b = _paired(a, b)
    only_a = sum(x and not y for x, y in zip(a, b))
    only_b = sum(y and not x for x, y in zip(a, b))
    p = mcnemar(only_a, only_b)
    lo, hi = paired_bootstrap(a, b, n_resamples=n_resamples, seed=seed)
    acc_a, acc_b = sum(a) / len(a), sum(b) / len(b)
    verdict = "no evidence"
    if p < alpha:
        verdict = "lost" if acc_b < acc_a else "gained"
    return {
        "acc_a": acc_a,
        "acc_b": acc_b,
        "difference": acc_b - acc_a,
        "ci_low": lo,
        "ci_high": hi,
        "only_a": only_a,
        "only_b": only_b,
        "n": len(a),
        "p_value": p,
        "verdict": verdict,
    }


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm's step-down adjustment of ``p_values`` for testing them all at once: the ``i``-th
    smallest of ``m`` is multiplied by ``m - i`` (``i`` from 0), then made non-decreasing in that
    order and capped at 1. Rejecting where the adjusted value is below ``alpha`` keeps the chance
    of *any* false "lost" or "gained" among the ``m`` comparisons below ``alpha``."""
    p = [float(x) for x in p_values]
    if any(not 0 <= x <= 1 for x in p):
        raise ValueError(f"p-values must lie in [0, 1], got {p}")
    m = len(p)
    out = [0.0] * m
    running = 0.0
    for rank, i in enumerate(sorted(range(m), key=p.__getitem__)):
        running = max(running, min(1.0, (m - rank) * p[i]))
        out[i] = running
    return out
