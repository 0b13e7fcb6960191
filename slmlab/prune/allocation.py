"""How much to prune where: per-layer sensitivity, and OWL's non-uniform sparsity.

Uniform sparsity removes the same fraction from every layer. Layers are not equally fragile:
:func:`layer_sensitivity` prunes one layer at a time and measures how far the model's
predictions move (KL to the dense model). OWL (Yin et al., 2024, "outlier-weighted layerwise
sparsity") allocates without that scan: a block whose Wanda scores hold more *outliers* — scores
above ``M`` times their layer's mean — is pruned less, the others more, within ``target ± lam``
and with the same mean sparsity as uniform pruning.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from ..calibration import as_windows, collect_input_stats
from ..lm import ReferenceComparison, logits, model_device
from ..surgery import DEFAULT_SKIP, find_blocks, find_linears
from .apply import prune
from .masks import check_sparsity, wanda_scores


@torch.no_grad()
def outlier_ratios(
    model: nn.Module, calib, M: float = 5.0, skip=DEFAULT_SKIP, include=None, batch_size: int = 8
) -> dict[str, float]:
    """OWL's layerwise outlier distribution: for every transformer block (by its prefix, e.g.
    ``"blocks.3."``), the share of Wanda scores of its linear layers above ``M`` times their
    layer's mean score (one pass of the dense model over ``calib``)."""
    windows = as_windows(calib)
    layers = find_linears(model, skip, include)
    device = model_device(model)

    def run():
        for batch in windows.split(batch_size):
            logits(model, batch.to(device))

    stats = collect_input_stats(layers, run, hessian=False, sqmean=True)
    prefix, blocks = _blocks(model)
    counts = {f"{prefix}{i}.": [0, 0] for i in range(len(blocks))}
    for name, layer in layers.items():
        key = next((k for k in counts if name.startswith(k)), None)
        if key is None:
            continue
        s = wanda_scores(layer.weight, stats[name].sqmean)
        counts[key][0] += int((s > M * s.mean()).sum())
        counts[key][1] += s.numel()
    return {k: (c[0] / c[1] if c[1] else 0.0) for k, c in counts.items()}


def _blocks(model):
    found = find_blocks(model)
    if found is None:
        raise ValueError(f"{type(model).__name__} has no list of transformer blocks.")
    name, blocks = found
    return (f"{name}." if name else ""), blocks


def owl_sparsities(
    model: nn.Module,
    calib,
    sparsity: float,
    lam: float = 0.08,
    M: float = 5.0,
    skip=DEFAULT_SKIP,
    include=None,
) -> dict[str, float]:
    """Per-layer sparsities for :func:`slmlab.prune.prune` (a dict of layer names): each block's
    sparsity is ``sparsity + lam - 2 lam · r`` with ``r`` its outlier ratio scaled to [0, 1]
    across blocks, shifted so that the mean over blocks is ``sparsity``. ``lam = 0`` is uniform."""
    check_sparsity(sparsity)
    if lam < 0:
        raise ValueError(f"lam must be >= 0, got {lam}.")
    ratios = outlier_ratios(model, calib, M, skip, include)
    r = torch.tensor(list(ratios.values()), dtype=torch.float64)
    spread = float(r.max() - r.min())
    scaled = (r - r.min()) / spread if spread > 0 else torch.zeros_like(r)
    per_block = sparsity + lam - 2 * lam * scaled
    per_block = per_block - per_block.mean() + sparsity
    if float(per_block.min()) < 0 or float(per_block.max()) >= 1:
        raise ValueError(
            f"lam={lam} pushes a block's sparsity outside [0, 1) around {sparsity}; use a "
            "smaller lam."
        )
    by_block = dict(zip(ratios, per_block.tolist()))
    out = {}
    for name in find_linears(model, skip, include):
        key = next((k for k in by_block if name.startswith(k)), None)
        out[name] = by_block[key] if key is not None else sparsity
    return out


@torch.no_grad()
def layer_sensitivity(
    model: nn.Module,
    eval_windows,
    sparsity: float = 0.5,
    skip=DEFAULT_SKIP,
    include=None,
) -> dict[str, float]:
    """KL(dense || pruned) per prediction when only one layer is magnitude-pruned to
    ``sparsity``, for every layer (nats): how fragile each layer is."""
    check_sparsity(sparsity)
    compare = ReferenceComparison(model, eval_windows)
    out = {}
    for name in find_linears(model, skip, include):
        pruned = prune(model, "magnitude", sparsity, include=[name], skip=())
        out[name] = compare(pruned)["kl"]
    return out


def sensitivity_sparsities(
    model: nn.Module,
    sensitivity: dict[str, float],
    sparsity: float,
    lam: float = 0.1,
) -> dict[str, float]:
    """Per-layer sparsities from a measured :func:`layer_sensitivity`: the most fragile layer
    gets ``sparsity - lam``, the least ``sparsity + lam`` (linear in the rank of its log
    sensitivity), then all are shifted so that the *weights* removed overall are ``sparsity`` of
    the pruned layers (layers differ in size, so the mean is weighted by their weight counts)."""
    check_sparsity(sparsity)
    if lam < 0:
        raise ValueError(f"lam must be >= 0, got {lam}.")
    layers = {n: m for n, m in find_linears(model, skip=()).items() if n in sensitivity}
    missing = [n for n in sensitivity if n not in layers]
    if missing:
        raise ValueError(f"the model has no linear layer(s) {missing[:4]}.")
    names = list(sensitivity)
    order = torch.tensor([sensitivity[n] for n in names]).argsort().argsort().double()
    scaled = order / max(1, len(names) - 1)  # 0: the least sensitive, 1: the most
    per_layer = sparsity + lam - 2 * lam * scaled
    sizes = torch.tensor([layers[n].weight.numel() for n in names], dtype=torch.float64)
    per_layer = per_layer - (per_layer * sizes).sum() / sizes.sum() + sparsity
    if float(per_layer.min()) < 0 or float(per_layer.max()) >= 1:
        raise ValueError(
            f"lam={lam} pushes a layer's sparsity outside [0, 1) around {sparsity}; use a "
            "smaller lam."
        )
    return dict(zip(names, per_layer.tolist()))
