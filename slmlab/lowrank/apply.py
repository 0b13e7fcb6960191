"""One entry point for low-rank factorization: ``factorize(model, method, rank=... | energy=...)``.

:data:`METHODS` is the registry. :func:`factorize` checks every argument first (a bad one leaves
the model as it was), collects what the method needs of each layer's inputs on the calibration
windows (ASVD: mean |x| per channel; SVD-LLM: the input Hessian), deep-copies the model and
replaces each chosen linear layer by a :class:`~slmlab.lowrank.layer.LowRankLinear`. The ranks are
one number, one per layer (a dict), or chosen per layer to keep a share of the spectrum
(``energy``) of the matrix the method truncates.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn as nn

from ..calibration import as_windows, collect_input_stats
from ..lm import eval_mode, logits, model_device
from ..surgery import DEFAULT_SKIP, find_linears, set_module
from .factors import (
    break_even_rank,
    energy_rank,
    scaled_factors,
    svd_factors,
    whitened_factors,
    whitened_singular_values,
)
from .layer import LowRankLinear


@dataclass(frozen=True)
class Method:
    """``factor(weight, rank, stats, options) -> (up, down)``; ``spectrum(weight, stats,
    options)`` the singular values the rank truncates (for ``energy``); ``needs`` the input
    statistic (``"absmean"``, ``"hessian"`` or None)."""

    name: str
    factor: Callable
    spectrum: Callable
    needs: str | None = None
    summary: str = ""


def _asvd_scale(stats, options):
    return stats.absmean.clamp(min=1e-8) ** options.get("alpha", 0.5)


METHODS: dict[str, Method] = {
    m.name: m
    for m in (
        Method(
            "svd",
            lambda w, r, st, o: svd_factors(w, r),
            lambda w, st, o: torch.linalg.svdvals(w.double()),
            summary="truncated SVD of the weight (Eckart-Young: the best rank-r weight)",
        ),
        Method(
            "asvd",
            lambda w, r, st, o: scaled_factors(w, r, _asvd_scale(st, o)),
            lambda w, st, o: torch.linalg.svdvals(w.double() * _asvd_scale(st, o).double()),
            needs="absmean",
            summary="SVD of the weight scaled by mean|x|^alpha per input channel (ASVD)",
        ),
        Method(
            "svd_llm",
            lambda w, r, st, o: whitened_factors(w, r, st.H, o.get("damp", 1e-6)),
            lambda w, st, o: whitened_singular_values(w, st.H, o.get("damp", 1e-6)),
            needs="hessian",
            summary="SVD of the weight whitened by the inputs' Cholesky factor (SVD-LLM)",
        ),
    )
}


def _weight(layer: nn.Module) -> torch.Tensor:
    w = layer.weight if isinstance(layer, nn.Linear) else layer.dequantize()
    return w.detach().float()


def _ranks(layers: dict, rank, energy, spectra) -> dict[str, int]:
    if (rank is None) == (energy is None):
        raise ValueError(
            "pass exactly one of rank= (an int, a share of full rank, or a dict name -> int) and "
            "energy="
        )
    if energy is not None:
        if isinstance(energy, bool) or not isinstance(energy, float | int) or not 0 < energy <= 1:
            raise ValueError(f"energy={energy!r} must lie in (0, 1]: the share of sum(s^2) kept")
        return {n: energy_rank(spectra(n), float(energy)) for n in layers}
    if isinstance(rank, float):  # a share of each layer's full rank
        if not 0 < rank <= 1:
            raise ValueError(f"rank={rank} as a float is a share of full rank: pass it in (0, 1]")
        full = {n: min(m.in_features, m.out_features) for n, m in layers.items()}
        return {n: max(1, round(rank * f)) for n, f in full.items()}
    ranks = rank if isinstance(rank, dict) else dict.fromkeys(layers, rank)
    unknown = sorted(set(ranks) - set(layers))
    if unknown or set(layers) - set(ranks):
        raise ValueError(
            f"rank= as a dict needs one entry per chosen layer; unknown {unknown}, "
            f"missing {sorted(set(layers) - set(ranks))[:4]}"
        )
    for n, r in ranks.items():
        limit = min(layers[n].in_features, layers[n].out_features)
        if isinstance(r, bool) or not isinstance(r, int) or not 1 <= r <= limit:
            raise ValueError(
                f"rank {r!r} for layer {n} ({layers[n].out_features} x {layers[n].in_features}): "
                f"pass an int from 1 to {limit}, min(out_features, in_features)"
            )
    return ranks


@torch.no_grad()
def _input_stats(model, layers, calib, needs, batch_size):
    windows = as_windows(calib)
    device = model_device(model)

    def run():
        with eval_mode(model):
            for i in range(0, len(windows), batch_size):
                logits(model, windows[i : i + batch_size].to(device))

    return collect_input_stats(layers, run, hessian=needs == "hessian", absmean=needs == "absmean")


def factorize(
    model: nn.Module,
    method: str = "svd",
    rank: int | float | dict[str, int] | None = None,
    energy: float | None = None,
    calib=None,
    skip=DEFAULT_SKIP,
    include=None,
    batch_size: int = 8,
    **options,
) -> nn.Module:
    """A copy of ``model`` whose chosen linear layers are rank-r :class:`LowRankLinear` pairs.

    method : ``"svd"``, ``"asvd"`` (option ``alpha``, default 0.5) or ``"svd_llm"`` (option
        ``damp``); the last two need ``calib``, token windows (N, T).
    rank : one rank for every layer (an int), a share of each layer's full rank min(in, out) (a
        float in (0, 1]), or a dict layer name -> rank; or ``energy`` in (0, 1]: per layer the
        smallest rank keeping that share of the truncated matrix's ``sum(s^2)``.
    skip, include : glob patterns of layer names (default: not the LM head nor embeddings).
    A layer whose rank reaches the break-even rank gets larger and slower, not smaller; the
    result says so in :func:`factorization_report` and does not refuse it."""
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; methods are {', '.join(METHODS)}")
    spec = METHODS[method]
    unknown = sorted(set(options) - {"alpha", "damp"})
    if unknown:
        raise ValueError(f"unknown option(s) {unknown} for factorize (alpha for asvd, damp)")
    if spec.needs and calib is None:
        raise ValueError(f"method {method!r} looks at activations: pass calib= token windows")
    layers = find_linears(model, skip, include)
    stats = _input_stats(model, layers, calib, spec.needs, batch_size) if spec.needs else {}

    def spectrum(name):
        return spec.spectrum(_weight(layers[name]), stats.get(name), options)

    ranks = _ranks(layers, rank, energy, spectrum)
    out = copy.deepcopy(model)
    for name, layer in layers.items():
        bias = getattr(layer, "bias", None)
        up, down = spec.factor(_weight(layer), ranks[name], stats.get(name), options)
        new = LowRankLinear.from_factors(up, down, None if bias is None else bias.detach())
        set_module(out, name, new.to(device=_weight(layer).device))
    return out


def factorization_report(model: nn.Module) -> list[dict]:
    """Per factorized layer: its name, shape, rank, the numbers it stores against the dense
    layer's, and whether the rank is below break-even (smaller and fewer multiplications)."""
    rows = []
    for name, m in model.named_modules():
        if isinstance(m, LowRankLinear):
            dense = m.in_features * m.out_features
            rows.append(
                {
                    "layer": name,
                    "shape": (m.out_features, m.in_features),
                    "rank": m.rank,
                    "params": m.rank * (m.in_features + m.out_features),
                    "dense_params": dense,
                    "smaller": m.rank <= break_even_rank(m.in_features, m.out_features),
                }
            )
    return rows
