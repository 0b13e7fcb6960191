"""AWQ: activation-aware weight quantization (Lin et al., 2023).

Not all weights matter equally: the weights that multiply input channels with large
activations contribute most to the output. AWQ protects them without mixed precision, by an
exact per-input-channel rescaling before round-to-nearest:

    y = x W^T = (x / s) (W s)^T  ->  quantize W s,   W_hat = Q(W s) / s

Scaling a column up by ``s_j > 1`` shrinks its *relative* rounding error (the group's scale
hardly changes when one column grows). AWQ sets ``s = mean|x_j|^alpha`` (normalised) and
searches ``alpha`` over a grid in [0, 1] for the value that minimises the layer's output
error on calibration data; ``alpha = 0`` is plain RTN, so the search never does worse than
RTN on the calibration set. An optional clipping search then shrinks each group's range
(ratios 1.0 down to 0.5) where that lowers the output error. Here each linear layer is
searched on its own and the scale is kept in the layer (``input_scale``); the reference code
searches layers that share an input together and folds ``1/s`` into the preceding layer.
"""
from __future__ import annotations

import torch
import torch.nn as nn

from .formats import QTensor, check_bits, check_group_size, compute_qparams, quantize_codes


def _fake_quant_groups(w: torch.Tensor, bits: int, group_size: int | None, symmetric: bool,
                       clip: torch.Tensor | None = None) -> torch.Tensor:
    rows, cols = w.shape
    gs = cols if group_size is None else group_size
    g = w.reshape(rows, cols // gs, gs)
    if clip is not None:  # clip (rows, n_groups): shrink each group's range before computing its scale
        if symmetric:
            m = g.abs().amax(-1, keepdim=True) * clip.unsqueeze(-1)
            g = torch.maximum(torch.minimum(g, m), -m)
        else:
            hi = g.amax(-1, keepdim=True).clamp(min=0) * clip.unsqueeze(-1)
            lo = g.amin(-1, keepdim=True).clamp(max=0) * clip.unsqueeze(-1)
            g = torch.maximum(torch.minimum(g, hi), lo)
    flat = g.reshape(-1, gs)
    s, z = compute_qparams(flat, bits, symmetric)
    return ((quantize_codes(flat, s, z, bits, symmetric) - z) * s).reshape(rows, cols)


@torch.no_grad()
def awq_search_scale(W: torch.Tensor, X: torch.Tensor, bits: int = 4, group_size: int | None = 64,
                     symmetric: bool = False, n_grid: int = 20) -> tuple[torch.Tensor, float, list[float]]:
    """Search AWQ's per-input-channel scale for weight ``W`` (out, in) and calibration inputs ``X`` (n, in).

    Returns ``(s, best_alpha, errors)`` where ``errors[k]`` is the output MSE at ``alpha = k / n_grid``."""
    W, X = W.float(), X.float().reshape(-1, W.shape[1])
    x_mean = X.abs().mean(dim=0)
    Y = X @ W.t()
    best_err, best_alpha, best_s, errors = float("inf"), 0.0, torch.ones_like(x_mean), []
    for k in range(n_grid + 1):
        alpha = k / n_grid
        s = x_mean.pow(alpha).clamp(min=1e-4)
        s = s / (s.max() * s.min()).sqrt()
        W_hat = _fake_quant_groups(W * s, bits, group_size, symmetric) / s
        err = (X @ W_hat.t() - Y).pow(2).mean().item()
        errors.append(err)
        if err < best_err:
            best_err, best_alpha, best_s = err, alpha, s
    return best_s, best_alpha, errors


@torch.no_grad()
def awq_search_clip(W: torch.Tensor, X: torch.Tensor, bits: int = 4, group_size: int | None = 64,
                    symmetric: bool = False, ratios=None, max_tokens: int = 512) -> torch.Tensor:
    """Per (row, group) clipping ratio that minimises that group's share of the output error."""
    ratios = ratios if ratios is not None else [1.0 - 0.05 * i for i in range(11)]  # 1.0 ... 0.5
    W = W.float()
    rows, cols = W.shape
    gs = cols if group_size is None else group_size
    G = cols // gs
    X = X.float().reshape(-1, cols)
    if X.shape[0] > max_tokens:
        X = X[torch.linspace(0, X.shape[0] - 1, max_tokens).long()]
    Xg = X.reshape(-1, G, gs)
    best_err = torch.full((rows, G), float("inf"))
    best = torch.ones(rows, G)
    for r in ratios:
        clip = torch.full((rows, G), r)
        D = (W - _fake_quant_groups(W, bits, group_size, symmetric, clip)).reshape(rows, G, gs)
        err = torch.einsum("ngk,rgk->rgn", Xg, D).pow(2).mean(-1)  # (rows, G)
        better = err < best_err
        best_err = torch.where(better, err, best_err)
        best = torch.where(better, clip, best)
    return best


@torch.no_grad()
def awq_quantize_weight(W: torch.Tensor, X: torch.Tensor, bits: int = 4, group_size: int | None = 64,
                        symmetric: bool = False, n_grid: int = 20, clip: bool = True) -> tuple[QTensor, torch.Tensor, dict]:
    """AWQ of one weight: returns the :class:`QTensor` of ``W * s``, the input scale ``s`` (the
    layer computes ``(x / s) @ W_hat_s.T``) and a dict with the chosen ``alpha``."""
    check_bits(bits)
    check_group_size(W.shape[1], group_size)
    s, alpha, errors = awq_search_scale(W, X, bits, group_size, symmetric, n_grid)
    Ws = W.float() * s
    rows, cols = Ws.shape
    gs = cols if group_size is None else group_size
    if clip:
        c = awq_search_clip(Ws, X / s, bits, group_size, symmetric)
        hi = Ws.reshape(rows, -1, gs).amax(-1).clamp(min=0) * c
        lo = Ws.reshape(rows, -1, gs).amin(-1).clamp(max=0) * c
        if symmetric:
            m = torch.maximum(hi, -lo)
            hi, lo = m, -m
        Ws = torch.maximum(torch.minimum(Ws.reshape(rows, -1, gs), hi.unsqueeze(-1)), lo.unsqueeze(-1)).reshape(rows, cols)
    from .formats import quantize_tensor

    qt = quantize_tensor(Ws, bits, symmetric, group_size)
    return qt, s, {"alpha": alpha, "errors": errors}


@torch.no_grad()
def awq_layers(model: nn.Module, layers: dict[str, nn.Linear], windows: torch.Tensor, bits: int = 4,
               group_size: int | None = 64, symmetric: bool = False, n_grid: int = 20, clip: bool = True,
               max_tokens: int = 4096, batch_size: int = 8, progress: bool = False) -> dict[str, tuple[QTensor, torch.Tensor]]:
    """AWQ every layer in ``layers``; inputs come from the float model (block by block).

    At most ``max_tokens`` calibration tokens per layer are kept (evenly spaced). Returns
    name -> (QTensor of ``W * s``, ``s``)."""
    from .modules import run_blocks

    results: dict[str, tuple[QTensor, torch.Tensor]] = {}
    bar = None
    if progress:
        from tqdm.auto import tqdm
        bar = tqdm(total=len(layers), desc="AWQ", leave=False)

    def process(block_layers: dict[str, nn.Linear], run) -> None:
        seen: dict[str, list[torch.Tensor]] = {n: [] for n in block_layers}
        handles = [m.register_forward_pre_hook(lambda mod, args, n=n: seen[n].append(args[0].detach().reshape(-1, args[0].shape[-1])))
                   for n, m in block_layers.items()]
        try:
            run()
        finally:
            for h in handles:
                h.remove()
        for n, m in block_layers.items():
            if not seen[n]:
                raise RuntimeError(f"AWQ: layer {n} saw no calibration input; is it used in the forward pass?")
            X = torch.cat(seen[n])
            if X.shape[0] > max_tokens:
                X = X[torch.linspace(0, X.shape[0] - 1, max_tokens).long()]
            qt, s, _ = awq_quantize_weight(m.weight, X, bits, group_size, symmetric, n_grid, clip)
            results[n] = (qt, s)
            if bar is not None:
                bar.update(1)

    run_blocks(model, windows, layers, process, batch_size=batch_size, propagate_quantized=False)
    if bar is not None:
        bar.close()
    return results
