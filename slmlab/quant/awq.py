"""AWQ: activation-aware weight quantization (Lin et al., 2023).

Not all weights matter equally: the weights that multiply input channels with large
activations contribute most to the output. AWQ protects them without mixed precision, by an
exact per-input-channel rescaling before round-to-nearest:

    y = x W^T = (x / s) (W s)^T  ->  quantize W s,   W_hat = Q(W s) / s

Scaling a column up by ``s_j > 1`` shrinks its *relative* rounding error (the group's scale
hardly changes when one column grows). AWQ sets ``s = mean|x_j|^alpha`` (normalised) and
searches ``alpha`` over a grid in [0, 1] for the value that minimises the layer's output
error on calibration data; ``alpha = 0`` is plain RTN, so the search never does worse than
RTN on the calibration set. A clipping search then shrinks each group's range (ratios 1.0
down to 0.5) where that lowers the output error.

The output error of a candidate ``W_hat`` on inputs ``X`` is
``mean_tokens ||x (W_hat - W)^T||^2 = trace(D H D^T) / 2`` with ``D = W_hat - W`` and the
input Hessian ``H = 2 X^T X / n`` (the one GPTQ uses), so the search costs a few small
matrix products per candidate whatever the number of calibration tokens. Here each linear
layer is searched on its own and the scale is kept in the layer (``input_scale``); the
reference code searches layers that share an input together and folds ``1/s`` into the
preceding layer.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from .formats import (
    QTensor,
    check_bits,
    check_group_size,
    compute_qparams,
    quantize_codes,
    quantize_tensor,
)


def _fake_quant_groups(
    w: torch.Tensor,
    bits: int,
    group_size: int | None,
    symmetric: bool,
    clip: torch.Tensor | None = None,
) -> torch.Tensor:
    """Group-wise RTN of ``w``; ``clip`` (rows, n_groups) first shrinks each group's range by that
    ratio."""
    rows, cols = w.shape
    gs = cols if group_size is None else group_size
    g = w.reshape(rows, cols // gs, gs)
    if clip is not None:
        g = _clip_groups(g, clip, symmetric)
    flat = g.reshape(-1, gs)
    s, z = compute_qparams(flat, bits, symmetric)
    return ((quantize_codes(flat, s, z, bits, symmetric) - z) * s).reshape(rows, cols)


def _clip_groups(g: torch.Tensor, clip: torch.Tensor, symmetric: bool) -> torch.Tensor:
    if symmetric:
        m = g.abs().amax(-1, keepdim=True) * clip.unsqueeze(-1)
        return torch.maximum(torch.minimum(g, m), -m)
    hi = g.amax(-1, keepdim=True).clamp(min=0) * clip.unsqueeze(-1)
    lo = g.amin(-1, keepdim=True).clamp(max=0) * clip.unsqueeze(-1)
    return torch.maximum(torch.minimum(g, hi), lo)


def _output_mse(D: torch.Tensor, H: torch.Tensor) -> float:
    """Mean over tokens of the squared output error ``||x D^T||^2`` = trace(D H D^T) / 2."""
    return float(((D @ H) * D).sum() / 2)


def input_stats(X: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(H, mean|x|)`` of calibration inputs ``X`` (n, in): what the AWQ searches need."""
    X = X.float().reshape(-1, X.shape[-1])
    return 2.0 * X.t() @ X / X.shape[0], X.abs().mean(dim=0)


@torch.no_grad()
def awq_search_scale(
    W: torch.Tensor,
    X: torch.Tensor | None = None,
    bits: int = 4,
    group_size: int | None = 64,
    symmetric: bool = False,
    n_grid: int = 20,
    H: torch.Tensor | None = None,
    x_absmean: torch.Tensor | None = None,
) -> tuple[torch.Tensor, float, list[float]]:
    """Search AWQ's per-input-channel scale for weight ``W`` (out, in).

    Give the calibration inputs ``X`` (n, in), or their statistics ``H`` and ``x_absmean``.
    Returns ``(s, best_alpha, errors)`` where ``errors[k]`` is the mean squared output error
    at ``alpha = k / n_grid`` (``errors[0]`` is plain RTN)."""
    if X is not None:
        H, x_absmean = input_stats(X)
    if H is None or x_absmean is None:
        raise ValueError(
            "awq_search_scale needs the calibration inputs X, or their H and x_absmean."
        )
    W = W.float()
    best_err, best_alpha, best_s, errors = float("inf"), 0.0, torch.ones_like(x_absmean), []
    for k in range(n_grid + 1):
        alpha = k / n_grid
        s = x_absmean.pow(alpha).clamp(min=1e-4)
        s = s / (s.max() * s.min()).sqrt()
        W_hat = _fake_quant_groups(W * s, bits, group_size, symmetric) / s
        err = _output_mse(W_hat - W, H)
        errors.append(err)
        if err < best_err:
            best_err, best_alpha, best_s = err, alpha, s
    return best_s, best_alpha, errors


@torch.no_grad()
def awq_search_clip(
    W: torch.Tensor,
    H: torch.Tensor,
    bits: int = 4,
    group_size: int | None = 64,
    symmetric: bool = False,
    ratios=None,
) -> torch.Tensor:
    """Per (row, group) clipping ratio minimising that group's share of the output error,
    ``D_g H_gg D_g^T`` (the group's block of the Hessian)."""
    ratios = ratios if ratios is not None else [1.0 - 0.05 * i for i in range(11)]  # 1.0 ... 0.5
    W = W.float()
    rows, cols = W.shape
    gs = cols if group_size is None else group_size
    G = cols // gs
    Hg = torch.stack(
        [H[g * gs : (g + 1) * gs, g * gs : (g + 1) * gs] for g in range(G)]
    )  # (G, gs, gs)
    best_err = torch.full((rows, G), float("inf"), device=W.device)
    best = torch.ones(rows, G, device=W.device)
    for r in ratios:
        clip = torch.full((rows, G), r, device=W.device)
        D = (_fake_quant_groups(W, bits, group_size, symmetric, clip) - W).reshape(rows, G, gs)
        err = torch.einsum("rgk,gkl,rgl->rg", D, Hg, D)
        better = err < best_err
        best_err = torch.where(better, err, best_err)
        best = torch.where(better, clip, best)
    return best


@torch.no_grad()
def awq_quantize_weight(
    W: torch.Tensor,
    X: torch.Tensor | None = None,
    bits: int = 4,
    group_size: int | None = 64,
    symmetric: bool = False,
    n_grid: int = 20,
    clip: bool = True,
    H: torch.Tensor | None = None,
    x_absmean: torch.Tensor | None = None,
) -> tuple[QTensor, torch.Tensor, dict]:
    """AWQ of one weight (from inputs ``X`` or their ``H``/``x_absmean``): returns the
    :class:`QTensor` of the (clipped) ``W * s``, the input scale ``s`` (the layer computes
    ``(x / s) @ W_hat_s.T``) and a dict with the chosen ``alpha`` and the grid's errors."""
    check_bits(bits)
    check_group_size(W.shape[1], group_size)
    if X is not None:
        H, x_absmean = input_stats(X)
    s, alpha, errors = awq_search_scale(W, None, bits, group_size, symmetric, n_grid, H, x_absmean)
    Ws = W.float() * s
    rows, cols = Ws.shape
    gs = cols if group_size is None else group_size
    if clip:
        Hs = H / s.unsqueeze(0) / s.unsqueeze(1)  # Hessian of the scaled inputs x / s
        c = awq_search_clip(Ws, Hs, bits, group_size, symmetric)
        Ws = _clip_groups(Ws.reshape(rows, -1, gs), c, symmetric).reshape(rows, cols)
    qt = quantize_tensor(Ws, bits, symmetric, group_size)
    return qt, s, {"alpha": alpha, "errors": errors}


@torch.no_grad()
def awq_layers(
    model: nn.Module,
    layers: dict[str, nn.Linear],
    windows: torch.Tensor,
    bits: int = 4,
    group_size: int | None = 64,
    symmetric: bool = False,
    n_grid: int = 20,
    clip: bool = True,
    batch_size: int = 8,
    progress: bool = False,
) -> dict[str, tuple[QTensor, torch.Tensor, dict]]:
    """AWQ every layer in ``layers`` with inputs from the float model (block by block).

    Returns name -> (QTensor of ``W * s``, ``s``, info with ``alpha``)."""
    from ..calibration import collect_input_stats, run_blocks

    results: dict[str, tuple[QTensor, torch.Tensor, dict]] = {}
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(layers), desc="AWQ", leave=False)

    def process(block_layers: dict[str, nn.Linear], run) -> None:
        stats = collect_input_stats(block_layers, run, absmean=True)
        for n, m in block_layers.items():
            results[n] = awq_quantize_weight(
                m.weight,
                None,
                bits,
                group_size,
                symmetric,
                n_grid,
                clip,
                stats[n].H,
                stats[n].absmean,
            )
            if bar is not None:
                bar.update(1)

    run_blocks(model, windows, layers, process, batch_size=batch_size, propagate_quantized=False)
    if bar is not None:
        bar.close()
    return results
