"""Low-rank factors of one weight matrix: W (out, in) ~ up (out, r) @ down (r, in).

A rank-r pair stores ``r * (in + out)`` numbers instead of ``in * out`` and multiplies as many, so
it is smaller and cheaper only below the break-even rank ``in * out / (in + out)``: half the
smaller dimension of a square layer. Three ways to choose the pair:

- **SVD** keeps the top r singular directions of W. By Eckart-Young it is the best rank-r matrix
  in Frobenius norm, and its squared error is the sum of the discarded squared singular values.
- **ASVD** (Yuan et al., 2023) scales input channel j by ``mean|x_j| ** alpha`` before the SVD and
  unscales after, so channels that carry large activations are kept more faithfully.
- **SVD-LLM** (Wang et al., 2024) whitens by the Cholesky factor S of the input second moment
  (``H = 2 XᵀX / n = S Sᵀ``): the SVD of ``W S`` truncated to r gives the rank-r matrix with the
  smallest *output* error ``tr((W - Ŵ) H (W - Ŵ)ᵀ)``, and that error is exactly the sum of the
  discarded squared singular values of ``W S``.
"""

from __future__ import annotations

import torch


def break_even_rank(in_features: int, out_features: int) -> int:
    """The largest rank whose two factors hold fewer numbers (and multiply fewer) than the
    dense layer: ``r * (in + out) < in * out``."""
    return (in_features * out_features - 1) // (in_features + out_features)


def energy_rank(singular_values: torch.Tensor, energy: float) -> int:
    """The smallest rank whose singular values keep at least ``energy`` of ``sum(s ** 2)``."""
    if not 0.0 < energy <= 1.0:
        raise ValueError(f"energy={energy} must lie in (0, 1]: the share of sum(s^2) to keep")
    power = singular_values.double() ** 2
    kept = power.cumsum(0) / power.sum()
    return int(torch.searchsorted(kept, torch.tensor(energy, dtype=kept.dtype) - 1e-12)) + 1


def truncation_error(weight: torch.Tensor, rank: int) -> float:
    """Eckart-Young: the squared Frobenius error of the best rank-``rank`` approximation of
    ``weight``, the sum of its discarded squared singular values."""
    s = torch.linalg.svdvals(weight.double())
    return float((s[rank:] ** 2).sum())


def _check_rank(weight: torch.Tensor, rank: int) -> None:
    limit = min(weight.shape)
    if isinstance(rank, bool) or not isinstance(rank, int) or not 1 <= rank <= limit:
        raise ValueError(
            f"rank={rank!r} for a {tuple(weight.shape)} weight: pass an int from 1 to {limit}, "
            "min(out_features, in_features)"
        )


def _split(u, s, vh, rank):
    """Balanced factors of U_r diag(s_r) Vh_r: both carry sqrt(s)."""
    root = s[:rank].sqrt()
    return u[:, :rank] * root, root[:, None] * vh[:rank]


def svd_factors(weight: torch.Tensor, rank: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``(up (out, r), down (r, in))``, the truncated SVD of ``weight``."""
    _check_rank(weight, rank)
    u, s, vh = torch.linalg.svd(weight.double(), full_matrices=False)
    up, down = _split(u, s, vh, rank)
    return up.to(weight.dtype), down.to(weight.dtype)


def scaled_factors(
    weight: torch.Tensor, rank: int, scale: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """ASVD: the truncated SVD of ``weight * scale`` (one positive number per input channel),
    the scale divided back out of ``down``."""
    _check_rank(weight, rank)
    if scale.shape != (weight.shape[1],) or not bool((scale > 0).all()):
        raise ValueError(f"scale needs {weight.shape[1]} positive numbers, one per input channel")
    scale = scale.double()
    u, s, vh = torch.linalg.svd(weight.double() * scale, full_matrices=False)
    up, down = _split(u, s, vh, rank)
    return up.to(weight.dtype), (down / scale).to(weight.dtype)


def whitening(hessian: torch.Tensor, damp: float = 1e-6) -> torch.Tensor:
    """S, lower triangular, with S Sᵀ = H + damp * mean(diag H) * I (the damping keeps a
    rank-deficient H, e.g. of a few calibration tokens, invertible)."""
    H = hessian.double()
    H = H + damp * H.diagonal().mean().clamp(min=1e-12) * torch.eye(H.shape[0], dtype=H.dtype)
    return torch.linalg.cholesky(H)


def whitened_factors(
    weight: torch.Tensor, rank: int, hessian: torch.Tensor, damp: float = 1e-6
) -> tuple[torch.Tensor, torch.Tensor]:
    """SVD-LLM: the truncated SVD of ``W S`` (S from :func:`whitening`), ``down`` times S⁻¹."""
    _check_rank(weight, rank)
    if hessian.shape != (weight.shape[1],) * 2:
        raise ValueError(
            f"hessian has shape {tuple(hessian.shape)}; the layer's inputs need "
            f"({weight.shape[1]}, {weight.shape[1]})"
        )
    S = whitening(hessian, damp)
    u, s, vh = torch.linalg.svd(weight.double() @ S, full_matrices=False)
    up, down = _split(u, s, vh, rank)
    # down @ S^-1: solve X S = down, i.e. Sᵀ Xᵀ = downᵀ (upper triangular)
    down = torch.linalg.solve_triangular(S.T, down.T, upper=True).T
    return up.to(weight.dtype), down.to(weight.dtype)


def whitened_singular_values(
    weight: torch.Tensor, hessian: torch.Tensor, damp: float = 1e-6
) -> torch.Tensor:
    """The singular values of ``W S``: their discarded squares sum to SVD-LLM's output error."""
    return torch.linalg.svdvals(weight.double() @ whitening(hessian, damp))
