"""SparseGPT: one-shot pruning with second-order error compensation (Frantar & Alistarh, 2023).

Magnitude and Wanda only choose which weights to zero. SparseGPT also *updates the weights that
stay*, so that the layer's output on calibration inputs changes as little as possible — the
machinery of GPTQ (:mod:`slmlab.quant.gptq`) with "set to zero" in place of "round":

* with the input Hessian ``H = 2 XᵀX / n`` and the upper Cholesky factor ``U`` of ``H⁻¹``, the
  columns are visited left to right; removing weight ``w`` of column ``q`` costs ``w² / U_qq²``
  (the Optimal Brain Surgeon saliency), and the error ``(w - 0) / U_qq`` is spread over the
  columns not yet visited: ``W[:, q:] -= err · U[q, q:]``;
* the mask is chosen as it goes, per block of ``blocksize`` columns, from the weights already
  updated by the blocks before it (adaptive mask selection): the block's lowest saliencies, over
  all its rows at once, so a row may lose more than another;
* N:M: at the start of every group of M columns, each row drops the ``M - N`` lowest saliencies
  of the group.
"""

from __future__ import annotations

import torch

from ..calibration import inverse_hessian_cholesky
from .masks import check_sparsity


@torch.no_grad()
def sparsegpt_prune_weight(
    W: torch.Tensor,
    H: torch.Tensor,
    sparsity: float = 0.5,
    nm: tuple[int, int] | None = None,
    blocksize: int = 128,
    percdamp: float = 0.01,
) -> tuple[torch.Tensor, torch.Tensor]:
    """SparseGPT of one weight matrix ``W`` (out_features, in_features) given its input Hessian.

    ``sparsity`` of every block of columns is removed (``round(sparsity * block size)`` weights),
    or with ``nm=(N, M)`` all but N of every M consecutive weights of a row. Returns the pruned and
    compensated weight (float32) and its keep-mask."""
    check_sparsity(sparsity)
    rows, cols = W.shape
    if H.shape != (cols, cols):
        raise ValueError(
            f"Hessian shape {tuple(H.shape)} does not match the weight's {cols} input features."
        )
    if nm is not None:
        n, m = nm
        if cols % m or blocksize % m:
            raise ValueError(
                f"{n}:{m} needs the input features ({cols}) and the blocksize ({blocksize}) to "
                f"be multiples of {m}."
            )
    W = W.detach().clone().float()
    H = H.detach().clone().float()
    dead = torch.diag(H) == 0  # inputs that were always zero: pruning their weights is free
    H[dead, dead] = 1.0
    U = inverse_hessian_cholesky(H, percdamp, "SparseGPT")
    keep = torch.ones(rows, cols, dtype=torch.bool, device=W.device)

    for i1 in range(0, cols, blocksize):
        i2 = min(i1 + blocksize, cols)
        W1 = W[:, i1:i2].clone()
        Err1 = torch.zeros_like(W1)
        U1 = U[i1:i2, i1:i2]
        d2 = torch.diag(U1).square().unsqueeze(0)
        keep1 = torch.ones_like(W1, dtype=torch.bool)
        if nm is None:
            k = round(sparsity * W1.numel())
            if k:
                saliency = (W1.square() / d2).reshape(-1)
                keep1.view(-1)[saliency.topk(k, largest=False).indices] = False
        for i in range(i2 - i1):
            if nm is not None and i % nm[1] == 0:
                group = W1[:, i : i + nm[1]].square() / d2[:, i : i + nm[1]]
                drop = group.topk(nm[1] - nm[0], dim=1, largest=False).indices
                keep1[:, i : i + nm[1]].scatter_(1, drop, False)
            w = W1[:, i]
            q = torch.where(keep1[:, i], w, torch.zeros_like(w))
            err = (w - q) / U1[i, i]
            W1[:, i:] -= err.unsqueeze(1) * U1[i, i:].unsqueeze(0)  # the OBS update
            W1[:, i] = q
            Err1[:, i] = err
        W[:, i1:i2] = W1
        W[:, i2:] -= Err1 @ U[i1:i2, i2:]  # lazy update of every column after the block
        keep[:, i1:i2] = keep1
    return W * keep, keep
