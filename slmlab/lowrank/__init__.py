"""Low-rank factorization: each linear layer W replaced by two thin ones, ``up @ down``.

- :mod:`~slmlab.lowrank.factors`: one matrix — truncated SVD, ASVD's activation scaling, SVD-LLM's
  whitening; the Eckart-Young error, the rank keeping a share of the spectrum, the break-even rank;
- :mod:`~slmlab.lowrank.layer`: :class:`LowRankLinear`;
- :mod:`~slmlab.lowrank.apply`: ``factorize(model, method, rank= | energy=)`` and its registry.
"""

from .apply import METHODS, factorization_report, factorize
from .factors import (
    break_even_rank,
    energy_rank,
    scaled_factors,
    svd_factors,
    truncation_error,
    whitened_factors,
    whitened_singular_values,
    whitening,
)
from .layer import LowRankLinear

__all__ = [
    "METHODS",
    "LowRankLinear",
    "break_even_rank",
    "energy_rank",
    "factorization_report",
    "factorize",
    "scaled_factors",
    "svd_factors",
    "truncation_error",
    "whitened_factors",
    "whitened_singular_values",
    "whitening",
]
