"""Is the model as sure as it is right? Calibration of multiple-choice answers.

A multiple-choice item gives the model one log-likelihood per option; a softmax over them is the
model's probability for each option, and the highest is its **confidence** in its answer. A
calibrated model is right on 70% of the answers it gives with confidence 0.7. The **reliability
diagram** bins the answers by confidence and plots each bin's accuracy against its mean
confidence (the diagonal is perfect calibration); the **expected calibration error** (ECE, Naeini
et al. 2015; Guo et al. 2017) is the gap between the two, weighted by the share of answers in
each bin:

    ECE = sum over bins b of  (n_b / n) * |accuracy_b - confidence_b|

=============================  =================================================================
``option_probabilities``       the softmax of each item's option log-likelihoods
``reliability_table``          per bin: count, mean confidence, accuracy (the diagram's points)
``expected_calibration_error``  the weighted gap, from confidences and outcomes
``calibration``                all of it from :func:`~slmlab.evaluate.multiple_choice`'s result
=============================  =================================================================
"""

from __future__ import annotations

import math
from collections.abc import Sequence


def option_probabilities(loglikelihoods: Sequence[Sequence[float]]) -> list[list[float]]:
    """Each item's option log-likelihoods turned into probabilities (a softmax per item)."""
    out = []
    for i, ll in enumerate(loglikelihoods):
        if len(ll) < 2:
            raise ValueError(f"item {i} has {len(ll)} option(s); calibration needs at least 2")
        top = max(ll)
        e = [math.exp(v - top) for v in ll]
        total = sum(e)
        out.append([v / total for v in e])
    return out


def _check(confidences: Sequence[float], correct: Sequence, n_bins: int) -> None:
    if len(confidences) != len(correct):
        raise ValueError(f"one confidence per outcome: got {len(confidences)} and {len(correct)}")
    if not confidences:
        raise ValueError("no answers: pass the confidences and outcomes of at least one item")
    if n_bins < 1:
        raise ValueError(f"n_bins must be >= 1, got {n_bins}")
    bad = [c for c in confidences if not 0.0 <= c <= 1.0]
    if bad:
        raise ValueError(f"confidences are probabilities in [0, 1], got {bad[:3]}")


def reliability_table(
    confidences: Sequence[float], correct: Sequence, n_bins: int = 10
) -> list[dict]:
    """Equal-width bins over [0, 1] (the last one closed): for each bin that holds answers, its
    range, ``count``, mean ``confidence`` and ``accuracy``."""
    _check(confidences, correct, n_bins)
    bins: list[list[tuple[float, int]]] = [[] for _ in range(n_bins)]
    for c, ok in zip(confidences, correct):
        bins[min(int(c * n_bins), n_bins - 1)].append((c, int(bool(ok))))
    rows = []
    for b, members in enumerate(bins):
        if members:
            rows.append(
                {
                    "low": b / n_bins,
                    "high": (b + 1) / n_bins,
                    "count": len(members),
                    "confidence": sum(c for c, _ in members) / len(members),
                    "accuracy": sum(ok for _, ok in members) / len(members),
                }
            )
    return rows


def expected_calibration_error(
    confidences: Sequence[float], correct: Sequence, n_bins: int = 10
) -> float:
    """ECE: the bins' ``|accuracy - confidence|``, weighted by their share of the answers."""
    rows = reliability_table(confidences, correct, n_bins)
    n = len(confidences)
    return sum(r["count"] / n * abs(r["accuracy"] - r["confidence"]) for r in rows)


def calibration(result: dict, items: Sequence[dict] | None = None, n_bins: int = 10) -> dict:
    """Calibration of a multiple-choice run: ``result`` is what
    :func:`~slmlab.evaluate.multiple_choice` (or a probe built on it) returns, with its
    ``loglikelihoods`` and ``pred``; the labels come from ``items`` (or ``result["items"]``).
    Returns ``ece``, the ``table`` of :func:`reliability_table`, the ``confidences`` and the
    per-item outcomes ``correct``."""
    items = items if items is not None else result.get("items")
    if items is None:
        raise ValueError("pass the items (with their labels) the result was scored on")
    if len(items) != len(result["loglikelihoods"]):
        raise ValueError(
            f"{len(items)} items but {len(result['loglikelihoods'])} scored answers: pass the "
            "items the result was scored on"
        )
    probs = option_probabilities(result["loglikelihoods"])
    confidences = [max(p) for p in probs]
    correct = [p == it["label"] for p, it in zip(result["pred"], items)]
    return {
        "ece": expected_calibration_error(confidences, correct, n_bins),
        "table": reliability_table(confidences, correct, n_bins),
        "confidences": confidences,
        "correct": correct,
    }
