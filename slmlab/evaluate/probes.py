"""The capability probes: commonsense (multiple choice), in-context learning (pattern lessons,
lookup, groups), arithmetic (word problems, exact match of "Answer: N") and programs (exact
match of the printed output), each on held-out items of :mod:`slmlab.evaluate.items`, and the
chance level each is measured against."""

from __future__ import annotations

import re
from collections.abc import Sequence
from functools import cache

from . import items as probe_items
from . import lessons
from .scoring import greedy_generate, multiple_choice

_ANSWER = re.compile(r"Answer:\s*(-?\d+)")


def extract_answer(generation: str) -> str | None:
    """The number after "Answer:" in a generated solution (else None)."""
    m = _ANSWER.search(generation)
    return m.group(1) if m else None


def commonsense(
    model, tokenizer, n: int = 200, seed: int = 0, batch_size: int = 32, _lm=None
) -> dict:
    """Four-way multiple choice about the world on held-out items at three difficulties
    (:func:`slmlab.evaluate.probe_items.commonsense_items`): ``acc``, ``acc_norm`` (chance 0.25
    each), per-kind accuracy in ``by_kind`` (held-out material items split into "material/stated",
    where the context says the material, and "material/recall", where the model must remember it;
    new things by how the context describes them), and the items."""
    items = probe_items.commonsense_items(n, seed=seed)
    res = multiple_choice(model, tokenizer, items, batch_size=batch_size, _lm=_lm)
    correct = [p == it["label"] for p, it in zip(res["pred"], items)]
    correct_norm = [p == it["label"] for p, it in zip(res["pred_norm"], items)]
    by_kind = {}
    sub = lambda it: (
        it["kind"]
        + (
            ""
            if "material_stated" not in it
            # noqa: E731
            else "/stated"
            if it["material_stated"]
            else "/recall"
        )
    )
    for kind in sorted(
        {sub(it) for it in items},
        key=lambda k: (list(probe_items.COMMONSENSE_KINDS).index(k.split("/")[0]), k),
    ):
        sel = [i for i, it in enumerate(items) if sub(it) == kind]
        if sel:
            by_kind[kind] = {
                "acc": sum(correct[i] for i in sel) / len(sel),
                "acc_norm": sum(correct_norm[i] for i in sel) / len(sel),
                "n": len(sel),
            }
    return {
        **res,
        "by_kind": by_kind,
        "items": items,
        "correct": correct,
        "correct_norm": correct_norm,
    }


def in_context(
    model,
    tokenizer,
    n: int = 100,
    shots: Sequence[int] = (0, 1, 5),
    seed: int = 0,
    kind: str = "pattern",
    batch_size: int = 32,
    _lm=None,
) -> dict:
    """In-context learning: a mapping given only by examples in the prompt. Three kinds of lesson:

    - ``"pattern"`` (the suite's ``icl`` task): *task recognition*, few-shot learning in GPT-3's
      sense (:func:`slmlab.evaluate.lessons.icl_pattern_items`). ``k`` lines ``thing -> value``
      of one relation (an animal's food, home or sound; an object's material, place or use), then a
      new thing. The options are the new thing's value under each relation of its domain, so only
      the examples say which one is meant: chance is 1/3 at any number of shots.
    - ``"code"`` (the suite's ``icl_lookup`` task): *lookup*, an induction-head skill
      (:func:`slmlab.evaluate.lessons.icl_items`): an invented word for each of ``k`` words,
      then one of them asked again; 4 options, chance 1/4; at 0 shots a model can only be at chance,
      at 5 shots the other options are shown too, paired with other words.
    - ``"copy"``: secret codes at the copy grade
      (:func:`slmlab.evaluate.lessons.icl_copy_items`): the query's pair among ``k - 1``
      distractor pairs, but the wrong options are codes the prompt never shows (chance 1/4).
    - ``"groups"``: two invented words for two groups of things and a new member of one group
      to sort (:func:`slmlab.evaluate.lessons.icl_group_items`, chance 1/2): it needs the
      examples *and* knowing which things belong together.

    Returns accuracy per number of shots (``acc``), the chance level and the items."""
    makers = {
        "pattern": lessons.icl_pattern_items,
        "copy": lessons.icl_copy_items,
        "code": lessons.icl_items,
        "groups": lessons.icl_group_items,
    }
    if kind not in makers:
        raise ValueError(f"kind must be one of {sorted(makers)}, got {kind!r}")
    make = makers[kind]
    items = make(n, shots=tuple(shots), seed=seed)
    res = multiple_choice(model, tokenizer, items, batch_size=batch_size, _lm=_lm)
    correct = [p == it["label"] for p, it in zip(res["pred"], items)]
    acc = {}
    for k in shots:
        sel = [c for c, it in zip(correct, items) if it["shots"] == k]
        acc[k] = sum(sel) / len(sel)
    return {
        "acc": acc,
        "chance": res["chance"],
        "n": n,
        "items": items,
        "pred": res["pred"],
        "correct": correct,
        "loglikelihoods": res["loglikelihoods"],
    }


def arithmetic(
    model,
    tokenizer,
    n: int = 100,
    seed: int = 0,
    max_new_tokens: int = 48,
    batch_size: int = 64,
    _lm=None,
) -> dict:
    """Word problems of the test split (:func:`slmlab.evaluate.probe_items.math_items`), answered by
    greedy generation; exact match of the number after "Answer:". ``chance`` is the best trivial
    guesser (:func:`slmlab.evaluate.probe_items.trivial_baselines`)."""
    items = probe_items.math_items(n, seed=seed)
    gens = greedy_generate(
        model,
        tokenizer,
        [it["prompt"] for it in items],
        max_new_tokens=max_new_tokens,
        stop=("\n\n",),
        batch_size=batch_size,
        _lm=_lm,
    )
    preds = [extract_answer(g) for g in gens]
    correct = [p == it["answer"] for p, it in zip(preds, items)]
    return {
        "exact_match": sum(correct) / n,
        "chance": chance_level("math"),
        "n": n,
        "generations": gens,
        "pred": preds,
        "correct": correct,
        "items": items,
    }


def programs(
    model,
    tokenizer,
    n: int = 100,
    seed: int = 0,
    max_new_tokens: int = 16,
    batch_size: int = 64,
    _lm=None,
) -> dict:
    """Tiny programs of the test split (:func:`slmlab.evaluate.probe_items.code_items`): the greedy
    continuation after "Output:" up to the end of the line must equal what the program prints."""
    items = probe_items.code_items(n, seed=seed)
    gens = greedy_generate(
        model,
        tokenizer,
        [it["prompt"] for it in items],
        max_new_tokens=max_new_tokens,
        stop=("\n",),
        batch_size=batch_size,
        _lm=_lm,
    )
    preds = [g.strip() for g in gens]
    correct = [p == it["answer"] for p, it in zip(preds, items)]
    return {
        "exact_match": sum(correct) / n,
        "chance": chance_level("code"),
        "n": n,
        "generations": gens,
        "pred": preds,
        "correct": correct,
        "items": items,
    }


@cache
def chance_level(task: str) -> float:
    """The chance level of a probe. Multiple choice: 1 / number of options (commonsense 1/4,
    in-context pattern lessons 1/3, lookup 1/4). Exact match (math, code): the accuracy of the best
    answer-free guesser — always the most common answer, or copy the first or the last number of the
    prompt — measured on 900 probe items of another seed
    (:func:`slmlab.evaluate.probe_items.trivial_baselines`)."""
    if task == "commonsense":
        return 0.25
    if task in ("icl", "in_context"):
        return 1 / 3
    if task == "icl_lookup":
        return 0.25
    if task in ("math", "code"):
        return max(probe_items.trivial_baselines(task).values())
    raise ValueError(f"unknown task {task!r}; tasks are {', '.join(TASKS)}")


TASKS = ("commonsense", "icl", "icl_lookup", "math", "code")
