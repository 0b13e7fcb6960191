"""The suite: every probe on one model as one tidy table, with 95% intervals; and the paired
comparison of two models on the same items."""

from __future__ import annotations

import math
from collections.abc import Sequence

from .efficiency import COLUMNS as EFFICIENCY_COLUMNS
from .efficiency import efficiency
from .items import DIFFICULTIES
from .perplexity import perplexity
from .probes import TASKS, arithmetic, commonsense, in_context, programs
from .scoring import LM
from .stats import holm, paired_comparison, wilson_interval

COLUMNS = (
    "task",
    "difficulty",
    "metric",
    "score",
    "ci_low",
    "ci_high",
    "chance",
    "n",
    "above_chance",
)
ICL_KINDS = {"icl": "pattern", "icl_lookup": "code"}  # suite task -> in_context(kind=...)


def _check_tasks(tasks: Sequence[str]) -> None:
    if isinstance(tasks, str):
        raise TypeError(f"tasks must be a list of task names, e.g. [{tasks!r}]")
    unknown = set(tasks) - set(TASKS)
    if unknown:
        raise ValueError(f"unknown task(s) {sorted(unknown)}; tasks are {list(TASKS)}")
    if not tasks:
        raise ValueError(f"no tasks given; tasks are {list(TASKS)}")


def _check_difficulties(by_difficulty) -> tuple[str, ...]:
    if by_difficulty is True:
        return DIFFICULTIES
    if by_difficulty is False or by_difficulty is None:
        return ()
    if isinstance(by_difficulty, str):
        raise TypeError(f"by_difficulty must be True or a list of grades, e.g. [{by_difficulty!r}]")
    unknown = [d for d in by_difficulty if d not in DIFFICULTIES]
    if unknown or not by_difficulty:
        raise ValueError(
            f"unknown difficulty {unknown or 'list []'}; pass True or some of {list(DIFFICULTIES)}"
        )
    return tuple(by_difficulty)


def suite(
    model,
    tokenizer,
    n_per_task: int = 100,
    seed: int = 0,
    tasks: Sequence[str] = TASKS,
    shots: Sequence[int] = (1, 3, 5, 10),
    include_perplexity: bool = False,
    include_efficiency: bool = False,
    by_difficulty: bool | Sequence[str] = False,
    batch_size: int = 32,
    return_details: bool = False,
):
    """Run the capability probes and return one tidy ``pandas.DataFrame``, a row per task,
    difficulty and metric: ``task``, ``difficulty`` (``"all"``; for the in-context tasks the
    number of shots, ``"1-shot"``), ``metric``, ``score``, ``ci_low`` and ``ci_high`` (Wilson's
    95% interval, :func:`~slmlab.evaluate.stats.wilson_interval`), ``chance``, ``n`` and
    ``above_chance`` (the whole interval lies above chance).

    ``n_per_task`` items per task (commonsense gets twice as many: they are cheap); the two
    in-context tasks (``icl``: pattern lessons, task recognition; ``icl_lookup``: secret codes,
    lookup; see :func:`in_context`) at each number of ``shots``: a row per number of shots and
    an ``"all"`` row over every lesson with at least one example (a lesson without one is at
    chance by construction). ``by_difficulty`` adds a row per difficulty of commonsense, math
    and code (``True``: ``easy``, ``medium`` and ``hard``, see :mod:`slmlab.evaluate.items`; or
    a list of some of them). ``include_perplexity`` adds perplexity and bits per byte on the
    validation split (lower is better, no interval; "chance" is the uniform model: the vocabulary
    size, and log2(vocabulary) bits per token over the bytes per token). ``include_efficiency``
    adds what the model costs (:func:`~slmlab.evaluate.efficiency.efficiency` with its default
    settings): rows of task ``"efficiency"`` whose metric is ``MB``, ``prefill_ms``,
    ``decode_ms_per_token`` or ``peak_MB`` (no interval, no chance). ``return_details``
    returns ``(table, details)`` with every item, prediction and per-item outcome (``correct``),
    what :func:`compare` pairs."""
    import pandas as pd

    _check_tasks(tasks)
    if n_per_task < 1:
        raise ValueError(f"n_per_task must be >= 1, got {n_per_task}")
    shots = [shots] if isinstance(shots, int) else list(shots)
    if not shots or any(not isinstance(k, int) or k < 0 for k in shots):
        raise ValueError(f"shots must be whole numbers >= 0, got {shots}")
    levels = _check_difficulties(by_difficulty)
    lm = LM(model, tokenizer)
    rows, details = [], {}

    def add(task, difficulty, metric, correct, chance):
        n, hits = len(correct), int(sum(correct))
        lo, hi = wilson_interval(hits, n)
        rows.append((task, difficulty, metric, hits / n, lo, hi, chance, n, bool(lo > chance)))

    def add_graded(task, metric, items, correct, chance):
        add(task, "all", metric, correct, chance)
        if levels:
            for level in levels:
                sel = [c for c, it in zip(correct, items) if it["difficulty"] == level]
                if sel:
                    add(task, level, metric, sel, chance)

    if "commonsense" in tasks:
        r = commonsense(
            model, tokenizer, n=2 * n_per_task, seed=seed, batch_size=batch_size, _lm=lm
        )
        add_graded("commonsense", "acc", r["items"], r["correct"], r["chance"])
        add_graded("commonsense", "acc_norm", r["items"], r["correct_norm"], r["chance"])
        details["commonsense"] = r
    for task, kind in ICL_KINDS.items():
        if task in tasks:
            r = in_context(
                model,
                tokenizer,
                n=n_per_task,
                shots=shots,
                seed=seed,
                kind=kind,
                batch_size=batch_size,
                _lm=lm,
            )
            for (level, metric), sel in _outcomes({task: r}, task).items():
                add(task, level, metric, sel, r["chance"])
            details[task] = r
    if "math" in tasks:
        r = arithmetic(
            model, tokenizer, n=n_per_task, seed=seed, batch_size=max(batch_size, 64), _lm=lm
        )
        add_graded("math", "exact_match", r["items"], r["correct"], r["chance"])
        details["math"] = r
    if "code" in tasks:
        r = programs(
            model, tokenizer, n=n_per_task, seed=seed, batch_size=max(batch_size, 64), _lm=lm
        )
        add_graded("code", "exact_match", r["items"], r["correct"], r["chance"])
        details["code"] = r
    if include_perplexity:
        p = perplexity(model, tokenizer, split="val", seed=seed)
        V = lm.vocab_size or float("nan")
        nan = float("nan")
        uniform_bpb = math.log2(V) * p["n_tokens"] / p["n_bytes"]
        for metric, uniform in (("ppl", float(V)), ("bits_per_byte", uniform_bpb)):
            score = p[metric]  # lower is better: "above chance" means below the uniform model
            rows.append(
                (
                    "perplexity",
                    "all",
                    metric,
                    score,
                    nan,
                    nan,
                    uniform,
                    p["n_tokens"],
                    score < uniform,
                )
            )
        details["perplexity"] = p
    if include_efficiency:
        e = efficiency(model, tokenizer)
        nan = float("nan")
        for metric in EFFICIENCY_COLUMNS:
            rows.append(("efficiency", "all", metric, e[metric], nan, nan, nan, 1, None))
        details["efficiency"] = e
    table = pd.DataFrame(rows, columns=list(COLUMNS))
    return (table, details) if return_details else table


def _outcomes(details: dict, task: str) -> dict[str, list]:
    """(difficulty, metric) -> per-item outcomes of one task in suite details."""
    r = details[task]
    if task == "commonsense":
        return {("all", "acc"): r["correct"], ("all", "acc_norm"): r["correct_norm"]}
    if task in ICL_KINDS:
        shots = dict.fromkeys(it["shots"] for it in r["items"])  # in the order asked
        out = {}
        if any(k > 0 for k in shots):
            out[("all", "acc")] = [c for c, it in zip(r["correct"], r["items"]) if it["shots"] > 0]
        for k in shots:
            out[(f"{k}-shot", "acc")] = [
                c for c, it in zip(r["correct"], r["items"]) if it["shots"] == k
            ]
        return out
    return {("all", "exact_match"): r["correct"]}


def compare(details_a: dict, details_b: dict, alpha: float = 0.05, adjust: str | None = None):
    """Did model B lose (or gain) a capability against model A? Pairs the per-item outcomes of
    two ``suite(..., return_details=True)`` runs on the same items (the same ``seed``,
    ``n_per_task`` and ``shots``) and returns a table, a row per task, difficulty and metric:
    both scores, the difference ``b - a`` with its paired-bootstrap 95% interval, the items only
    A (``only_a``) or only B got right, McNemar's exact p-value and the ``verdict``
    (:func:`~slmlab.evaluate.stats.paired_comparison`).

    A table of many rows is many tests: at ``alpha = 0.05`` one row in twenty says "lost" or
    "gained" by chance. ``adjust="holm"`` adds ``p_adjusted`` (:func:`~slmlab.evaluate.stats.holm`
    over the table's rows) and gives the verdicts from it, so that the chance of any false verdict
    in the table stays below ``alpha``."""
    import pandas as pd

    if adjust not in (None, "holm"):
        raise ValueError(f"adjust must be None or 'holm', got {adjust!r}")
    if not isinstance(details_a, dict) or not isinstance(details_b, dict):
        raise TypeError("pass the details of suite(..., return_details=True) for both models")
    shared = [t for t in TASKS if t in details_a and t in details_b]
    if not shared:
        raise ValueError(
            f"the two runs share no task: {sorted(details_a)} vs {sorted(details_b)}; run the "
            "suite on both models with the same tasks and return_details=True"
        )
    rows = []
    for task in shared:
        items_a, items_b = details_a[task]["items"], details_b[task]["items"]
        if items_a != items_b:
            raise ValueError(
                f"{task}: the two runs scored different items; run both with the same seed, "
                "n_per_task and shots"
            )
        out_a, out_b = _outcomes(details_a, task), _outcomes(details_b, task)
        for (difficulty, metric), a in out_a.items():
            r = paired_comparison(a, out_b[(difficulty, metric)], alpha=alpha)
            rows.append({"task": task, "difficulty": difficulty, "metric": metric, **r})
    table = pd.DataFrame(rows)
    if adjust == "holm":
        table["p_adjusted"] = holm(table["p_value"])
        worse = table["acc_b"] < table["acc_a"]
        significant = table["p_adjusted"] < alpha
        table["verdict"] = [
            ("lost" if w else "gained") if sig else "no evidence"
            for w, sig in zip(worse, significant)
        ]
    return table
