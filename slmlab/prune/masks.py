"""Importance scores and pruning masks of one weight matrix: the per-layer functions, on tensors.

A mask is a boolean tensor of the weight's shape, ``True`` where a weight is *kept* (the
convention of ``torch.nn.utils.prune``). Scores say how much a weight matters:

* magnitude, ``|W_ij|`` (Han et al.);
* Wanda, ``|W_ij| · ‖X_j‖₂``: the weight times the norm of the input feature it multiplies over
  the calibration tokens (Sun et al.). Only the ranking within a row matters, so the mean of
  ``x_j²`` (:class:`slmlab.calibration.InputStats`'s ``sqmean``) serves as well as the sum.

Patterns say which weights may go together:

* unstructured, compared within each output row (``scope="row"``, Wanda's choice) or over the
  whole matrix (``scope="layer"``, what ``torch.nn.utils.prune.l1_unstructured`` does);
* N:M, ``"2:4"``: ``N`` weights kept in every group of ``M`` consecutive inputs of a row (what
  sparse tensor cores run), sparsity ``1 - N/M``.

The number of weights removed is ``round(sparsity * count)`` (as in ``torch.nn.utils.prune``), so
the asked sparsity is met exactly up to one weight per row or matrix.
"""

from __future__ import annotations

import torch

PATTERNS = ("unstructured", "N:M (e.g. '2:4', '4:8')")
SCOPES = ("row", "layer")


def magnitude_scores(weight: torch.Tensor) -> torch.Tensor:
    """``|W|``: the classic score (no data needed)."""
    return weight.detach().float().abs()


def wanda_scores(weight: torch.Tensor, input_sqmean: torch.Tensor) -> torch.Tensor:
    """``|W_ij| · sqrt(mean_t x_tj²)``: Wanda's score from the mean square of each input feature
    (shape (in_features,)) over the calibration tokens."""
    if input_sqmean.shape != (weight.shape[1],):
        raise ValueError(
            f"input statistics of shape {tuple(input_sqmean.shape)} do not match the weight's "
            f"{weight.shape[1]} input features."
        )
    return magnitude_scores(weight) * input_sqmean.float().clamp(min=0).sqrt().unsqueeze(0)


def parse_pattern(pattern: str) -> tuple[int, int] | None:
    """``"unstructured"`` -> None; ``"2:4"`` -> (2, 4) (keep N of every M)."""
    if pattern == "unstructured":
        return None
    parts = pattern.split(":") if isinstance(pattern, str) else []
    if len(parts) == 2 and all(p.strip().isdigit() for p in parts):
        n, m = int(parts[0]), int(parts[1])
        if 0 < n < m:
            return n, m
    raise ValueError(
        f"unknown sparsity pattern {pattern!r}: use 'unstructured' or 'N:M' with 0 < N < M, "
        "e.g. '2:4' (keep 2 of every 4 consecutive weights of a row)."
    )


def check_sparsity(sparsity: float, name: str = "sparsity") -> float:
    """A fraction in [0, 1)."""
    if isinstance(sparsity, bool) or not isinstance(sparsity, (int, float)):
        raise TypeError(f"{name} must be a number in [0, 1), got {sparsity!r}.")
    if not 0.0 <= sparsity < 1.0:
        raise ValueError(
            f"{name} must be in [0, 1) (the fraction of weights removed), got {sparsity}."
        )
    return float(sparsity)


def unstructured_mask(scores: torch.Tensor, sparsity: float, scope: str = "row") -> torch.Tensor:
    """Keep-mask removing the ``round(sparsity * count)`` lowest scores of every row
    (``scope="row"``) or of the whole matrix (``scope="layer"``)."""
    check_sparsity(sparsity)
    if scope not in SCOPES:
        raise ValueError(f"unknown scope {scope!r}; choose one of {SCOPES}.")
    flat = scores if scope == "row" else scores.reshape(1, -1)
    k = round(sparsity * flat.shape[1])
    keep = torch.ones_like(flat, dtype=torch.bool)
    if k:
        keep.scatter_(1, flat.topk(k, dim=1, largest=False).indices, False)
    return keep.reshape(scores.shape)


def nm_mask(scores: torch.Tensor, n: int, m: int) -> torch.Tensor:
    """Keep-mask keeping the ``n`` highest scores in every group of ``m`` consecutive inputs of a
    row (``in_features`` must be a multiple of ``m``)."""
    rows, cols = scores.shape
    if cols % m:
        raise ValueError(
            f"an {n}:{m} pattern needs the input features ({cols}) to be a multiple of {m}."
        )
    groups = scores.reshape(rows, cols // m, m)
    keep = torch.zeros_like(groups, dtype=torch.bool)
    keep.scatter_(-1, groups.topk(n, dim=-1).indices, True)
    return keep.reshape(rows, cols)


def mask_from_scores(
    scores: torch.Tensor, sparsity: float, pattern: str = "unstructured", scope: str = "row"
) -> torch.Tensor:
    """The keep-mask of ``pattern`` (``sparsity`` is ignored for N:M, which fixes it)."""
    nm = parse_pattern(pattern)
    if nm is None:
        return unstructured_mask(scores, sparsity, scope)
    return nm_mask(scores, *nm)


def pattern_sparsity(pattern: str, sparsity: float | None) -> float:
    """The sparsity a pattern gives: ``sparsity`` for unstructured, ``1 - N/M`` for N:M (a
    different ``sparsity`` given with N:M is an error, not silently ignored)."""
    nm = parse_pattern(pattern)
    if nm is None:
        if sparsity is None:
            raise ValueError("unstructured pruning needs a sparsity, e.g. sparsity=0.5.")
        return check_sparsity(sparsity)
    implied = 1 - nm[0] / nm[1]
    if sparsity is not None and abs(sparsity - implied) > 1e-9:
        raise ValueError(
            f"pattern {pattern!r} fixes the sparsity at {implied:g}; got sparsity={sparsity} "
            "(leave it unset)."
        )
    return implied


def is_nm(weight: torch.Tensor, n: int, m: int) -> bool:
    """Does every group of ``m`` consecutive inputs of every row hold at most ``n`` non-zeros?"""
    rows, cols = weight.shape
    if cols % m:
        return False
    return bool(((weight.reshape(rows, cols // m, m) != 0).sum(-1) <= n).all())


def zero_fraction(t: torch.Tensor) -> float:
    """Fraction of exactly-zero entries."""
    return float((t == 0).sum()) / max(1, t.numel())
