"""Generation scored by execution: pass@k of sampled outputs.

A code benchmark (HumanEval, MBPP) scores a model by *running* what it wrote; the ``programs``
probe (:func:`slmlab.evaluate.probes.programs`) turns this around: the model reads a tiny program
and predicts what it prints, and the truth is what the program prints when
:func:`slmlab.evaluate.sandbox.run_program` runs it safely.

**pass@k.** Sample ``n`` completions per problem at a temperature above 0, count the ``c`` that
are correct, and estimate the probability that at least one of ``k`` samples is correct with
the unbiased estimator of Chen et al. (2021, the Codex paper): :func:`pass_at_k`. pass@1 at
temperature 0.8 is the expected accuracy of *one* sample, lower than greedy decoding's exact
match; pass@10 says how often the right answer is among the model's guesses at all.

=======================  ===================================================================
:func:`pass_at_k`        the unbiased pass@k estimator, in its numerically stable form
:func:`score_samples`    pass@k over problems, of predicted outputs or of programs to run
:func:`sample_outputs`   ``n`` sampled continuations per probe item (TinyLM or transformers)
:func:`pass_at_k_probe`  the ``programs`` probe scored by pass@k, truths from running them
=======================  ===================================================================
"""

from __future__ import annotations

import math
import operator
from collections.abc import Sequence

from .sandbox import run_programs


# ----------------------------------------------------------------------------- pass@k
def _count(name: str, value) -> int:
    if isinstance(value, bool):
        raise TypeError(f"{name} must be an integer count, got {value!r}")
    try:
        value = operator.index(value)
    except TypeError:
        raise TypeError(
            f"{name} must be an integer count, got {type(value).__name__} {value!r}"
        ) from None
    if value < 0:
        raise ValueError(f"{name} must be >= 0, got {value}")
    return value


def pass_at_k(n: int, c: int, k: int) -> float:
    """The unbiased estimate of pass@k from ``n`` samples of which ``c`` are correct (Chen et
    al. 2021, arXiv 2107.03374): the probability that ``k`` of the ``n`` samples, drawn without
    replacement, include at least one correct one, ``1 - C(n-c, k) / C(n, k)``.

    Computed as ``1 - prod_{i=n-c+1}^{n} (1 - k/i)``, which never forms the huge binomial
    coefficients. ``1 - (1 - c/n)**k``, the plug-in estimate, is biased low."""
    n, c, k = _count("n", n), _count("c", c), _count("k", k)
    if k < 1:
        raise ValueError("k must be >= 1 (pass@k: at least one of k samples is correct)")
    if k > n:
        raise ValueError(
            f"k={k} is more than the n={n} samples: pass@k needs at least k samples per "
            f"problem; sample n >= {k} or pass a smaller k"
        )
    if c > n:
        raise ValueError(f"c={c} correct samples out of n={n}: c must be <= n")
    if n - c < k:  # every choice of k samples holds a correct one
        return 1.0
    return 1.0 - math.prod(1.0 - k / i for i in range(n - c + 1, n + 1))


def _first_line(completion: str) -> str:
    """What the ``programs`` probe compares: the completion up to its first newline, stripped."""
    return completion.split("\n")[0].strip()


def score_samples(
    samples: Sequence[Sequence[str]],
    expected: Sequence[str],
    ks: Sequence[int] = (1, 5, 10),
    execute: bool = False,
    timeout: float = 1.0,
) -> dict:
    """pass@k averaged over problems. ``samples[i]`` holds the ``n`` samples of problem ``i``
    (``n`` may differ between problems, but must be at least every ``k``), ``expected[i]`` its
    right output.

    - ``execute=False`` (the ``programs`` probe): a sample is the text a model generated after
      "Output:"; it is correct when its first line, stripped, equals ``expected[i]`` stripped.
    - ``execute=True``: a sample is a program; it is correct when :func:`run_program` runs it
      to its end (``ok``) and what it prints, stripped, equals ``expected[i]`` stripped.

    Returns ``{"pass@1": ..., "pass@5": ..., "n": [n_i], "correct": [c_i], "hits": [[bool]]}``
    (``hits[i][j]``: sample ``j`` of problem ``i`` is correct)."""
    if isinstance(samples, str) or any(isinstance(s, str) for s in samples):
        raise TypeError(
            "samples must hold a list of sampled strings per problem, e.g. [['7', ' 8'], ...]"
        )
    if isinstance(expected, str):
        raise TypeError("expected must hold one string per problem, e.g. ['7', 'Hello, Tom']")
    if len(samples) != len(expected):
        raise ValueError(f"{len(samples)} problems of samples but {len(expected)} expected outputs")
    if not samples:
        raise ValueError("no problems to score")
    ks = [ks] if isinstance(ks, int) else list(ks)
    fewest = min(len(s) for s in samples)
    if any(k > fewest for k in ks):
        raise ValueError(
            f"ks={ks} but a problem has only {fewest} samples: pass ks <= {fewest} or sample more"
        )
    if execute:
        flat = [p for s in samples for p in s]
        runs = iter(run_programs(flat, timeout=timeout))
        hits = [
            [(r := next(runs))["ok"] and r["output"].strip() == want.strip() for _ in s]
            for s, want in zip(samples, expected)
        ]
    else:
        hits = [[_first_line(x) == want.strip() for x in s] for s, want in zip(samples, expected)]
    correct = [sum(h) for h in hits]
    ns = [len(s) for s in samples]
    scores = {
        f"pass@{k}": sum(pass_at_k(n, c, k) for n, c in zip(ns, correct)) / len(ns) for k in ks
    }
    return {**scores, "n": ns, "correct": correct, "hits": hits}


# ----------------------------------------------------------------------------- sampling
def sample_outputs(
    model,
    tokenizer,
    items: Sequence,
    n: int = 10,
    temperature: float = 0.8,
    max_new_tokens: int = 16,
    seed: int = 0,
    top_p: float | None = None,
    _lm=None,
) -> list[list[str]]:
    """``n`` sampled continuations of each item's ``prompt`` (an item of
    :func:`~slmlab.evaluate.items.code_items`, or a prompt string), each cut at the end-of-text
    token and before its first newline: ``out[i][j]`` is sample ``j`` of item ``i``.

    The ``n`` samples of an item are one batch, drawn with a random generator seeded by
    ``seed`` and the prompt: an item's samples do not depend on which other items are sampled
    with it, nor in what order. ``temperature=0`` is greedy decoding (``n`` equal
    continuations, those of the ``programs`` probe); ``top_p`` keeps the nucleus only. A
    TinyLM samples with its own ``generate``; a transformers model with
    ``generate(do_sample=True)`` (no top-k)."""
    import random

    import torch

    from ..lm import eval_mode
    from .scoring import LM

    if n < 1:
        raise ValueError(f"n must be >= 1 samples per item, got {n}")
    if temperature < 0:
        raise ValueError(f"temperature must be >= 0 (0: greedy), got {temperature}")
    lm = _lm or LM(model, tokenizer)
    keep = lm.max_len - max_new_tokens
    if keep < 1:
        raise ValueError(
            f"max_new_tokens={max_new_tokens} leaves no room for a prompt in a context of "
            f"{lm.max_len}"
        )
    out = []
    with eval_mode(model), torch.no_grad():
        for item in items:
            prompt = item if isinstance(item, str) else item["prompt"]
            ids = lm.with_prefix(lm.encode(prompt))[-keep:]
            x = torch.tensor([ids] * n, dtype=torch.long, device=lm.device)
            item_seed = random.Random(f"slmlab/sample/{seed}/{prompt}").getrandbits(63)
            new = _sample_batch(lm, x, max_new_tokens, temperature, top_p, item_seed)
            texts = []
            for toks in new.tolist():
                if lm.eos_id is not None and lm.eos_id in toks:
                    toks = toks[: toks.index(lm.eos_id)]
                texts.append(lm.decode(toks).split("\n")[0])
            out.append(texts)
    return out


def _sample_batch(lm, x, max_new_tokens: int, temperature: float, top_p, seed: int):
    """(B, <= max_new_tokens) sampled new tokens after the equal-length prompts ``x`` (B, T)."""
    import torch

    from ..models import TinyLM
    from ..models.generation import sample_next

    model = lm.model
    g = torch.Generator(device=lm.device).manual_seed(seed)
    if isinstance(model, TinyLM):
        out = model.generate(
            x, max_new_tokens, temperature=temperature, top_p=top_p, eos_id=lm.eos_id, generator=g
        )
        return out[:, x.shape[1] :]
    if hasattr(model, "generate") and hasattr(model, "generation_config"):
        from transformers import GenerationConfig

        sample = temperature > 0
        gc = GenerationConfig(
            max_new_tokens=max_new_tokens,
            do_sample=sample,
            temperature=temperature if sample else None,
            top_p=top_p if sample else None,
            top_k=0 if sample else None,  # transformers' default is top-k 50
            eos_token_id=lm.eos_id,
            pad_token_id=lm.eos_id if lm.eos_id is not None else 0,
        )
        devices = [lm.device] if lm.device.type == "cuda" else []
        with torch.random.fork_rng(devices=devices):  # seeded without touching the global RNG
            torch.manual_seed(seed)
            out = model.generate(x, attention_mask=torch.ones_like(x), generation_config=gc)
        return out[:, x.shape[1] :]
    seq = x  # any other causal LM: full forward passes, no cache
    for _ in range(max_new_tokens):
        nxt = sample_next(lm.logits(seq)[:, -1], temperature, None, top_p, g)
        seq = torch.cat([seq, nxt[:, None].to(seq.device)], dim=1)
    return seq[:, x.shape[1] :]


def pass_at_k_probe(
    model,
    tokenizer,
    n_items: int = 30,
    n: int = 10,
    ks: Sequence[int] = (1, 5, 10),
    temperature: float = 0.8,
    seed: int = 0,
    max_new_tokens: int = 16,
    top_p: float | None = None,
    greedy: bool = True,
    _lm=None,
) -> dict:
    """The ``programs`` probe scored by pass@k: ``n`` samples at ``temperature`` for each of
    ``n_items`` programs of :func:`~slmlab.evaluate.items.code_items` (``seed`` picks the items
    and seeds the sampling); the right output of each is what :func:`run_program` prints when it
    runs the program. Returns ``pass@k`` for each k of ``ks``, ``greedy_exact_match`` (the
    ``programs`` probe's score on the same items, when ``greedy``), pass@k per difficulty in
    ``by_difficulty``, per-item ``correct`` counts, the ``samples``, ``expected`` and ``items``."""
    from .items import DIFFICULTIES, code_items
    from .scoring import LM, greedy_generate

    lm = _lm or LM(model, tokenizer)
    items = code_items(n_items, seed=seed)
    runs = run_programs([it["program"] for it in items])
    bad = [(it["program"], r["error"]) for it, r in zip(items, runs) if not r["ok"]]
    if bad:  # pragma: no cover - the tests run every shipped program
        raise RuntimeError(f"a probe program failed to run: {bad[0]}")
    expected = [r["output"].strip() for r in runs]
    samples = sample_outputs(
        model, tokenizer, items, n, temperature, max_new_tokens, seed, top_p, _lm=lm
    )
    ks = [ks] if isinstance(ks, int) else list(ks)
    res = score_samples(samples, expected, ks)
    by_difficulty = {}
    for d in DIFFICULTIES:
        sel = [i for i, it in enumerate(items) if it["difficulty"] == d]
        if sel:
            sub = score_samples([samples[i] for i in sel], [expected[i] for i in sel], ks)
            by_difficulty[d] = {f"pass@{k}": sub[f"pass@{k}"] for k in ks} | {"n_items": len(sel)}
    out = {
        **{f"pass@{k}": res[f"pass@{k}"] for k in ks},
        "n": n,
        "n_items": n_items,
        "temperature": temperature,
        "by_difficulty": by_difficulty,
        "correct": res["correct"],
        "samples": samples,
        "expected": expected,
        "items": items,
    }
    if greedy:
        gens = greedy_generate(
            model,
            tokenizer,
            [it["prompt"] for it in items],
            max_new_tokens=max_new_tokens,
            stop=("\n",),
            _lm=lm,
        )
        out["greedy_exact_match"] = sum(_first_line(g) == e for g, e in zip(gens, expected)) / len(
            items
        )
    return out
