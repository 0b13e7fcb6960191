"""GPTQ: second-order post-training quantization (Frantar et al., 2022).

Round-to-nearest treats every weight alone. GPTQ quantizes the columns of a weight matrix
one at a time and, after each, updates the *not yet quantized* columns so that the layer's
output on calibration data changes as little as possible. For a linear layer with inputs
``X`` (tokens x in_features) the output error is ``||(W - W_hat) X^T||^2``, whose Hessian
with respect to each row of ``W`` is ``H = 2 X^T X`` (the same for every row). Quantizing
column ``q`` with error ``e = (w_q - quant(w_q)) / [H^-1]_qq`` is compensated by
``W[:, q:] -= e [H^-1]_q,q:`` (the Optimal Brain Surgeon update).

The practical recipe of the paper, all here:

* the Cholesky factor of ``H^-1`` gives every row of ``H^-1`` needed, in a stable way;
* dampening: ``H += percdamp * mean(diag H) * I`` (``percdamp=0.01``);
* lazy batch updates: columns are processed in blocks of 128 and the rest of the matrix is
  updated once per block (a matrix product instead of 128 rank-1 updates);
* groups: scale and zero-point per ``group_size`` inputs, computed when the group starts,
  from the already-updated weights;
* act-order (optional): quantize the columns with the largest ``diag(H)`` (the inputs with
  the most energy) first. With groups, the group parameters are then fixed up front from
  the original weights ("static groups") so the stored format stays contiguous.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from ..calibration import (
    collect_input_stats,
    inverse_hessian_cholesky,
    run_blocks,
)
from .formats import QTensor, check_bits, check_group_size, compute_qparams, qrange


@torch.no_grad()
def gptq_quantize_weight(
    W: torch.Tensor,
    H: torch.Tensor,
    bits: int = 4,
    group_size: int | None = 64,
    symmetric: bool = False,
    act_order: bool = False,
    percdamp: float = 0.01,
    blocksize: int = 128,
) -> tuple[QTensor, dict]:
    """GPTQ of one weight matrix ``W`` (out_features, in_features) given the input Hessian ``H``.

    Returns the :class:`QTensor` (codes, per-group scales/zeros) and a dict with GPTQ's
    running estimate of the error it could not compensate (``loss``, as in the reference code).
    """
    check_bits(bits)
    rows, cols = W.shape
    check_group_size(cols, group_size)
    if H.shape != (cols, cols):
        raise ValueError(
            f"Hessian shape {tuple(H.shape)} does not match the weight's {cols} input features."
        )
    lo, hi = qrange(bits, symmetric)
    W = W.detach().clone().float()
    H = H.detach().clone().float()
    dead = torch.diag(H) == 0  # inputs that were always zero: their weights do not matter
    H[dead, dead] = 1.0
    W[:, dead] = 0.0

    n_groups = 1 if group_size is None else cols // group_size
    scales = torch.zeros(rows, n_groups, device=W.device)
    zeros = torch.zeros(rows, n_groups, device=W.device)
    if group_size is None:  # one scale per row from the whole row
        s, z = compute_qparams(W, bits, symmetric)
        scales[:, 0], zeros[:, 0] = s[:, 0], z[:, 0]

    perm = None
    if act_order:
        perm = torch.argsort(torch.diag(H), descending=True)
        if (
            group_size is not None
        ):  # static groups, from the original weights, original column order
            s, z = compute_qparams(W.reshape(rows * n_groups, group_size), bits, symmetric)
            scales, zeros = s.reshape(rows, n_groups), z.reshape(rows, n_groups)
        W, H = W[:, perm], H[perm][:, perm]

    perm_list = perm.tolist() if perm is not None else None
    Hinv = inverse_hessian_cholesky(H, percdamp, "GPTQ")
    codes = torch.zeros(rows, cols, device=W.device)
    Q = torch.zeros_like(W)
    loss = 0.0

    for i1 in range(0, cols, blocksize):
        i2 = min(i1 + blocksize, cols)
        W1 = W[:, i1:i2].clone()
        Err1 = torch.zeros_like(W1)
        Hinv1 = Hinv[i1:i2, i1:i2]
        for i in range(i2 - i1):
            col = i1 + i
            orig_col = perm_list[col] if perm is not None else col
            g = 0 if group_size is None else orig_col // group_size
            if group_size is not None and not act_order and col % group_size == 0:
                # the group starts here: its range from the current
                # (already error-compensated) weights
                end = col + group_size
                grp = (
                    torch.cat([W1[:, i:], W[:, i2:end]], dim=1)[:, :group_size]
                    if end > i2
                    else W1[:, i : i + group_size]
                )
                s, z = compute_qparams(grp, bits, symmetric)
                scales[:, g], zeros[:, g] = s[:, 0], z[:, 0]
            w = W1[:, i]
            d = Hinv1[i, i]
            s, z = scales[:, g], zeros[:, g]
            c = torch.clamp(torch.round(w / s) + z, lo, hi)
            q = (c - z) * s
            codes[:, col], Q[:, col] = c, q
            err = (w - q) / d
            W1[:, i:].addr_(
                err, Hinv1[i, i:], alpha=-1.0
            )  # the OBS update of the block's remaining columns
            Err1[:, i] = err
        W[:, i2:] -= Err1 @ Hinv[i1:i2, i2:]  # lazy batch update of everything after the block
        loss += 0.5 * float(Err1.pow(2).sum())

    if perm is not None:
        inv = torch.argsort(perm)
        codes, Q = codes[:, inv], Q[:, inv]
    qt = QTensor(codes.to(torch.int16), scales, zeros, bits, symmetric, group_size)
    return qt, {"loss": loss}


@torch.no_grad()
def gptq_layers(
    model: nn.Module,
    layers: dict[str, nn.Linear],
    windows: torch.Tensor,
    bits: int = 4,
    group_size: int | None = 64,
    symmetric: bool = False,
    act_order: bool = False,
    percdamp: float = 0.01,
    blocksize: int = 128,
    batch_size: int = 8,
    progress: bool = False,
) -> dict[str, QTensor]:
    """GPTQ every layer in ``layers`` (name -> nn.Linear of ``model``), block by block.

    Each transformer block sees calibration inputs that went through the already-quantized
    blocks before it (the weights of ``model`` are overwritten with their dequantized
    values as it goes). Returns name -> :class:`QTensor`."""

    results: dict[str, QTensor] = {}
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(layers), desc="GPTQ", leave=False)

    def process(block_layers: dict[str, nn.Linear], run) -> None:
        stats = collect_input_stats(block_layers, run)
        for n, m in block_layers.items():
            qt, _ = gptq_quantize_weight(
                m.weight, stats[n].H, bits, group_size, symmetric, act_order, percdamp, blocksize
            )
            m.weight.copy_(qt.dequantize(m.weight.dtype))
            results[n] = qt
            if bar is not None:
                bar.update(1)

    run_blocks(model, windows, layers, process, batch_size=batch_size, propagate_quantized=True)
    if bar is not None:
        bar.close()
    return results
