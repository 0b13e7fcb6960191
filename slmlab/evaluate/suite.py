"""The suite: every probe on one model, as one tidy table."""

from __future__ import annotations

import math
from collections.abc import Sequence

from .perplexity import perplexity
from .probes import TASKS, _stderr, arithmetic, commonsense, in_context, programs
from .scoring import LM


def suite(
    model,
    tokenizer,
    n_per_task: int = 100,
    seed: int = 0,
    tasks: Sequence[str] = TASKS,
    include_perplexity: bool = False,
    batch_size: int = 32,
    return_details: bool = False,
):
    """Run the capability probes and return one tidy ``pandas.DataFrame``: one row per task and
    metric with columns ``task``, ``metric``, ``score``, ``chance``, ``n``, ``stderr`` (binomial
    standard error) and ``above_chance`` (score more than two standard errors above chance).

    ``n_per_task`` items per task (commonsense gets twice as many: they are cheap), the two
    in-context tasks (``icl``: pattern lessons, task recognition; ``icl_lookup``: secret codes,
    lookup; see :func:`in_context`) at 0, 1 and 5 shots. ``include_perplexity`` adds perplexity and
    bits per byte on the validation split (lower is better; "chance" is the uniform model: the
    vocabulary size, and log2(vocabulary) bits per token over the bytes per token).
    ``return_details`` returns ``(table, details)`` with every item, prediction and generation."""
    import pandas as pd

    unknown = set(tasks) - set(TASKS)
    if unknown:
        raise ValueError(f"unknown task(s) {sorted(unknown)}; tasks are {list(TASKS)}")
    if n_per_task < 1:
        raise ValueError(f"n_per_task must be >= 1, got {n_per_task}")
    lm = LM(model, tokenizer)
    rows, details = [], {}

    def row(task, metric, score, chance, n, higher=True):
        se = _stderr(score, n) if higher else float("nan")
        rows.append(
            {
                "task": task,
                "metric": metric,
                "score": score,
                "chance": chance,
                "n": n,
                "stderr": se,
                "above_chance": bool(score - 2 * se > chance) if higher else bool(score < chance),
            }
        )

    if "commonsense" in tasks:
        r = commonsense(
            model, tokenizer, n=2 * n_per_task, seed=seed, batch_size=batch_size, _lm=lm
        )
        row("commonsense", "acc", r["acc"], r["chance"], r["n"])
        row("commonsense", "acc_norm", r["acc_norm"], r["chance"], r["n"])
        details["commonsense"] = r
    for task, kind in (("icl", "pattern"), ("icl_lookup", "code")):
        if task in tasks:
            r = in_context(
                model, tokenizer, n=n_per_task, seed=seed, kind=kind, batch_size=batch_size, _lm=lm
            )
            for k, v in r["acc"].items():
                row(task, f"acc_{k}shot", v, r["chance"], r["n"])
            details[task] = r
    if "math" in tasks:
        r = arithmetic(
            model, tokenizer, n=n_per_task, seed=seed, batch_size=max(batch_size, 64), _lm=lm
        )
        row("math", "exact_match", r["exact_match"], r["chance"], r["n"])
        details["math"] = r
    if "code" in tasks:
        r = programs(
            model, tokenizer, n=n_per_task, seed=seed, batch_size=max(batch_size, 64), _lm=lm
        )
        row("code", "exact_match", r["exact_match"], r["chance"], r["n"])
        details["code"] = r
    if include_perplexity:
        p = perplexity(model, tokenizer, split="val", seed=seed)
        V = lm.vocab_size or float("nan")
        row("perplexity", "ppl", p["ppl"], float(V), p["n_tokens"], higher=False)
        row(
            "perplexity",
            "bits_per_byte",
            p["bits_per_byte"],
            math.log2(V) * p["n_tokens"] / p["n_bytes"],
            p["n_tokens"],
            higher=False,
        )
        details["perplexity"] = p
    table = pd.DataFrame(
        rows, columns=["task", "metric", "score", "chance", "n", "stderr", "above_chance"]
    )
    return (table, details) if return_details else table
