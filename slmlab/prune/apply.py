"""One entry point for every pruning method: ``prune(model, method, sparsity, pattern=...)``.

:data:`METHODS` is the registry, one :class:`Method` per method. :func:`prune` checks every
argument first (a bad one leaves the model as it was), deep-copies the model, finds its linear
layers (skipping the LM head and embeddings unless told otherwise), zeroes the weights each
method chooses — and, for SparseGPT, updates the ones that stay — and returns the copy. The layers
stay ``nn.Linear`` (a *masked* model: same shapes, same speed); :mod:`slmlab.prune.sparse` stores
them sparse, :mod:`slmlab.prune.structured` removes whole units so the shapes shrink.

Methods that look at activations (Wanda, SparseGPT) run block by block: each block is calibrated
on the outputs of the blocks already pruned before it, as both papers' code does.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
import torch.nn as nn

from ..calibration import as_windows, collect_input_stats, run_blocks
from ..lm import window_perplexity
from ..surgery import DEFAULT_SKIP, find_linears
from .masks import (
    SCOPES,
    magnitude_scores,
    mask_from_scores,
    parse_pattern,
    pattern_sparsity,
    wanda_scores,
    zero_fraction,
)
from .sparsegpt import sparsegpt_prune_weight


@dataclass(frozen=True)
class Method:
    """One pruning method as :func:`prune` runs it.

    ``prune_layer(weight, stats, sparsity, pattern, scope, options)`` returns the new weight of one
    layer; ``stats`` holds what :func:`~slmlab.calibration.collect_input_stats` collected for it
    (``needs`` names the statistic: ``"sqmean"`` or ``"hessian"``; None: no data)."""

    name: str
    prune_layer: Callable[..., torch.Tensor]
    needs: str | None = None
    default_scope: str | None = "row"  # None: the method chooses its own mask shape
    options: dict = field(default_factory=dict)
    summary: str = ""


def _masked(weight, scores, sparsity, pattern, scope):
    return weight * mask_from_scores(scores, sparsity, pattern, scope).to(weight.dtype)


def _magnitude(weight, stats, sparsity, pattern, scope, opts):
    return _masked(weight, magnitude_scores(weight), sparsity, pattern, scope)


def _random(weight, stats, sparsity, pattern, scope, opts):
    gen = torch.Generator().manual_seed(opts["seed"])
    scores = torch.rand(weight.shape, generator=gen).to(weight.device)
    return _masked(weight, scores, sparsity, pattern, scope)


def _wanda(weight, stats, sparsity, pattern, scope, opts):
    return _masked(weight, wanda_scores(weight, stats.sqmean), sparsity, pattern, scope)


def _sparsegpt(weight, stats, sparsity, pattern, scope, opts):
    new, _ = sparsegpt_prune_weight(
        weight, stats.H, sparsity, parse_pattern(pattern), opts["blocksize"], opts["percdamp"]
    )
    return new.to(weight.dtype)


METHODS: dict[str, Method] = {
    m.name: m
    for m in [
        Method("magnitude", _magnitude, default_scope="layer", summary="smallest |W| (no data)"),
        Method(
            "random",
            _random,
            default_scope="layer",
            options={"seed": 0},
            summary="a random choice (the floor any score must beat)",
        ),
        Method("wanda", _wanda, needs="sqmean", summary="smallest |W|·‖x‖ in each row"),
        Method(
            "sparsegpt",
            _sparsegpt,
            needs="hessian",
            default_scope=None,
            options={"blocksize": 128, "percdamp": 0.01},
            summary="second-order mask and weight update on the input Hessian",
        ),
    ]
}
"""Every method :func:`prune` knows, by name (see :class:`Method`)."""


def _check(model, method, sparsity, pattern, scope, calib, skip, include, options):
    if method not in METHODS:
        raise ValueError(f"unknown pruning method {method!r}; choose one of {sorted(METHODS)}.")
    spec = METHODS[method]
    unknown = sorted(set(options) - set(spec.options))
    if unknown:
        raise TypeError(
            f"prune(method={method!r}) got unknown option(s) {unknown}; "
            f"its options are {spec.options or 'none'}."
        )
    if spec.default_scope is None and scope is not None:
        raise ValueError(f"method={method!r} chooses its own mask per block; leave scope=None.")
    scope = spec.default_scope if scope is None else scope
    if scope is not None and scope not in SCOPES:
        raise ValueError(f"unknown scope {scope!r}; choose one of {SCOPES}.")
    nm = parse_pattern(pattern)
    layers = find_linears(model, skip, include)
    if isinstance(sparsity, dict):
        missing = [n for n in layers if n not in sparsity]
        if missing:
            raise ValueError(
                f"sparsity is a dict of layer names, but it has no entry for {missing[:4]}"
                f"{' ...' if len(missing) > 4 else ''}."
            )
        per_layer = {n: pattern_sparsity(pattern, sparsity[n]) for n in layers}
    else:
        per_layer = dict.fromkeys(layers, pattern_sparsity(pattern, sparsity))
    for name, lin in layers.items():
        if not isinstance(lin, nn.Linear):
            raise TypeError(
                f"layer {name!r} is a {type(lin).__name__}, not an nn.Linear: prune the float "
                "model first, then quantize it (the model given is left unchanged)."
            )
        if nm is not None and lin.in_features % nm[1]:
            raise ValueError(
                f"layer {name!r} has {lin.in_features} inputs, not a multiple of {nm[1]} "
                f"(pattern {pattern!r})."
            )
    windows = as_windows(calib) if spec.needs else None
    return spec, scope, per_layer, windows, {**spec.options, **options}


def prune(
    model: nn.Module,
    method: str = "magnitude",
    sparsity: float | dict[str, float] | None = None,
    *,
    pattern: str = "unstructured",
    scope: str | None = None,
    calib=None,
    skip=DEFAULT_SKIP,
    include=None,
    batch_size: int = 8,
    progress: bool = False,
    **options,
) -> nn.Module:
    """Return a pruned deep copy of ``model`` (TinyLM or any causal LM built of ``nn.Linear``).

    Parameters
    ----------
    method : a name of :data:`METHODS`: ``"magnitude"``, ``"random"``, ``"wanda"``,
        ``"sparsegpt"``.
    sparsity : fraction of each layer's weights removed (default 0.5 when unstructured), or a
        dict of layer name -> fraction (non-uniform allocation, e.g.
        :func:`slmlab.prune.owl_sparsities`). Leave it None with an N:M pattern (which fixes it).
    pattern : ``"unstructured"`` or ``"N:M"`` (keep N of every M consecutive inputs, e.g.
        ``"2:4"``).
    scope : unstructured weights compared within each output ``"row"`` (Wanda's default) or
        over the whole ``"layer"`` (magnitude's default, as ``torch.nn.utils.prune``);
        SparseGPT chooses per block of columns.
    calib : calibration token windows (N, T), needed by wanda and sparsegpt.
    skip, include : glob patterns of layer names to leave out / restrict to (default: skip the
        LM head and embeddings).
    options : ``blocksize``, ``percdamp`` (sparsegpt); ``seed`` (random).

    The copy has a ``prune_info`` dict: method, pattern, scope, the sparsity measured in each
    pruned layer, and the seconds taken.
    """
    if pattern == "unstructured" and sparsity is None:
        sparsity = 0.5
    spec, scope, per_layer, windows, opts = _check(
        model, method, sparsity, pattern, scope, calib, skip, include, options
    )
    t0 = time.perf_counter()
    pruned = copy.deepcopy(model)
    pruned.eval()
    layers = find_linears(pruned, skip, include)

    def prune_layer(name, layer, stats):
        new = spec.prune_layer(layer.weight, stats, per_layer[name], pattern, scope, opts)
        layer.weight.copy_(new)

    with torch.no_grad():
        if spec.needs is None:
            for name, layer in layers.items():
                prune_layer(name, layer, None)
        else:
            wanted = {"hessian": spec.needs == "hessian", spec.needs: True}
            _sequential(pruned, layers, windows, prune_layer, wanted, batch_size, progress, method)
    pruned.prune_info = {
        "method": method,
        "pattern": pattern,
        "scope": scope,
        "options": opts,
        "layers": {n: zero_fraction(m.weight) for n, m in layers.items()},
        "seconds": time.perf_counter() - t0,
    }
    return pruned


def _sequential(model, layers, windows, prune_layer, stats, batch_size, progress, desc):
    """Prune ``layers`` one transformer block at a time, each block calibrated on the outputs of
    the already pruned blocks before it."""
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(layers), desc=desc, leave=False)

    def process(block_layers, run):
        collected = collect_input_stats(block_layers, run, **stats)
        for name, layer in block_layers.items():
            prune_layer(name, layer, collected[name])
            if bar is not None:
                bar.update(1)

    run_blocks(model, windows, layers, process, batch_size=batch_size, propagate_quantized=True)
    if bar is not None:
        bar.close()


def sparsity_report(model: nn.Module, skip=DEFAULT_SKIP, include=None) -> dict:
    """How sparse a model is, counted the two ways a paper should report it: the zero fraction of
    the chosen linear layers (``layers``, the headline number) and of every parameter of the
    model (``model``: embeddings and head included, each shared tensor once), and per layer."""
    layers = find_linears(model, skip, include)
    zeros = sum(int((m.weight == 0).sum()) for m in layers.values())
    count = sum(m.weight.numel() for m in layers.values())
    seen, all_zeros, all_count = set(), 0, 0
    for p in model.parameters():
        if p.data_ptr() in seen:
            continue
        seen.add(p.data_ptr())
        all_zeros += int((p == 0).sum())
        all_count += p.numel()
    return {
        "layers": zeros / count,
        "model": all_zeros / all_count,
        "per_layer": {n: zero_fraction(m.weight) for n, m in layers.items()},
    }


def compare_pruning(
    model: nn.Module, eval_windows, runs: list[dict], calib=None, baseline: bool = True
) -> list[dict]:
    """Prune ``model`` once per entry of ``runs`` (dicts of :func:`prune` keyword arguments; the
    calibration set is added where the method needs it) and measure each: method, pattern,
    sparsity of the pruned layers and of the whole model, perplexity on ``eval_windows`` and its
    ratio to the dense model's, seconds taken. ``pandas.DataFrame(rows)`` makes it a table."""
    dense = window_perplexity(model, eval_windows)
    rows = []
    if baseline:
        rows.append(
            {
                "method": "dense",
                "pattern": "-",
                "sparsity": 0.0,
                "model sparsity": sparsity_report(model)["model"],
                "ppl": dense,
                "ppl_ratio": 1.0,
                "seconds": 0.0,
            }
        )
    for run in runs:
        run = dict(run)
        method = run.pop("method")
        if METHODS[method].needs and "calib" not in run:
            run["calib"] = calib
        pruned = prune(model, method, **run)
        report = sparsity_report(pruned)
        ppl = window_perplexity(pruned, eval_windows)
        rows.append(
            {
                "method": method,
                "pattern": pruned.prune_info["pattern"],
                "sparsity": report["layers"],
                "model sparsity": report["model"],
                "ppl": ppl,
                "ppl_ratio": ppl / dense,
                "seconds": pruned.prune_info["seconds"],
            }
        )
    return rows
