"""Sparse storage of a pruned layer, and when it pays on this machine.

A pruned ``nn.Linear`` still stores (and multiplies) every zero. Compressed sparse rows (CSR)
store only the kept weights: their values, their column indices, and where each row starts —
``nnz · (value + index bytes) + (rows + 1) · index bytes``. With float32 values and int32
indices that is 8 bytes per kept weight against 4 per weight dense, so CSR is smaller only below
50% density (above 50% sparsity), and its matrix product, which jumps through memory by index,
must skip many zeros before it beats a dense kernel that streams through them.
:func:`time_sparse_vs_dense` measures where that happens (interleaved calls, medians): the book
states the crossover as measured, not as a rule of thumb.
"""

from __future__ import annotations

import copy
import warnings

import torch
import torch.nn as nn

from ..surgery import DEFAULT_SKIP, find_linears, set_module
from ..timing import interleaved
from .masks import check_sparsity


def _csr(weight: torch.Tensor, index_dtype=torch.int32) -> tuple[torch.Tensor, ...]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "sparse CSR support is in beta"
        csr = weight.detach().to_sparse_csr()
    return (
        csr.crow_indices().to(index_dtype),
        csr.col_indices().to(index_dtype),
        csr.values().clone(),
    )


class SparseLinear(nn.Module):
    """A linear layer whose weight is stored in CSR (int32 indices): the same function as the
    pruned ``nn.Linear`` it was made from, with only the non-zero weights in memory."""

    def __init__(self, crow, col, values, in_features, out_features, bias=None):
        super().__init__()
        self.in_features, self.out_features = in_features, out_features
        self.register_buffer("crow_indices", crow)
        self.register_buffer("col_indices", col)
        self.register_buffer("values", values)
        self.bias = None if bias is None else nn.Parameter(bias.detach().clone())

    @classmethod
    def from_linear(cls, linear: nn.Linear) -> SparseLinear:
        crow, col, values = _csr(linear.weight)
        return cls(crow, col, values, linear.in_features, linear.out_features, linear.bias)

    def sparse_weight(self) -> torch.Tensor:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return torch.sparse_csr_tensor(
                self.crow_indices,
                self.col_indices,
                self.values,
                size=(self.out_features, self.in_features),
            )

    def dequantize(self, dtype=torch.float32) -> torch.Tensor:
        """The dense weight (what :mod:`slmlab.surgery` reads from any linear-like layer)."""
        return self.sparse_weight().to_dense().to(dtype)

    @property
    def density(self) -> float:
        return self.values.numel() / (self.in_features * self.out_features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        flat = x.reshape(-1, self.in_features)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            y = torch.sparse.mm(self.sparse_weight(), flat.t()).t()
        if self.bias is not None:
            y = y + self.bias
        return y.reshape(*x.shape[:-1], self.out_features)

    def extra_repr(self) -> str:
        return f"{self.in_features}, {self.out_features}, density={self.density:.3f}, CSR int32"


def csr_nbytes(rows: int, cols: int, nnz: int, value_bytes: int = 4, index_bytes: int = 4) -> int:
    """Bytes of a CSR matrix: values and column indices of the ``nnz`` kept weights, and
    ``rows + 1`` row starts."""
    return nnz * (value_bytes + index_bytes) + (rows + 1) * index_bytes


def to_sparse(
    model: nn.Module, min_sparsity: float = 0.5, skip=DEFAULT_SKIP, include=None
) -> nn.Module:
    """A copy of ``model`` whose linear layers with at least ``min_sparsity`` zeros are
    :class:`SparseLinear` (CSR); the others stay dense."""
    check_sparsity(min_sparsity, "min_sparsity")
    layers = find_linears(model, skip, include)
    for name, layer in layers.items():
        if not isinstance(layer, nn.Linear):
            raise TypeError(f"layer {name!r} is a {type(layer).__name__}, not an nn.Linear.")
    out = copy.deepcopy(model)
    for name, layer in find_linears(out, skip, include).items():
        if float((layer.weight == 0).float().mean()) >= min_sparsity:
            set_module(out, name, SparseLinear.from_linear(layer))
    return out


@torch.no_grad()
def time_sparse_vs_dense(
    out_features: int,
    in_features: int,
    sparsities=(0.0, 0.5, 0.7, 0.8, 0.9, 0.95, 0.99),
    tokens=(1, 128),
    reps: int = 30,
    seed: int = 0,
) -> list[dict]:
    """Time a random ``out_features x in_features`` layer, dense (``nn.Linear``) and CSR
    (:class:`SparseLinear`), at each sparsity and number of tokens, calls interleaved. Rows:
    sparsity, tokens, dense and CSR microseconds, ``speedup`` (dense time / CSR time: above 1,
    CSR is faster), and both sizes in bytes."""
    gen = torch.Generator().manual_seed(seed)
    rows = []
    for s in sparsities:
        check_sparsity(s)
        dense = nn.Linear(in_features, out_features, bias=False)
        w = torch.randn(out_features, in_features, generator=gen)
        w[torch.rand(w.shape, generator=gen) < s] = 0.0
        dense.weight.copy_(w)
        sparse = SparseLinear.from_linear(dense)
        for t in tokens:
            x = torch.randn(t, in_features, generator=gen)
            med = interleaved({"dense": lambda: dense(x), "csr": lambda: sparse(x)}, reps)
            rows.append(
                {
                    "sparsity": s,
                    "tokens": t,
                    "dense_us": 1e6 * med["dense"],
                    "csr_us": 1e6 * med["csr"],
                    "speedup": med["dense"] / med["csr"],
                    "dense_bytes": w.numel() * 4,
                    "csr_bytes": csr_nbytes(out_features, in_features, sparse.values.numel()),
                }
            )
    return rows


def crossover(rows: list[dict], tokens: int) -> float | None:
    """The lowest sparsity from which CSR stayed faster than dense at ``tokens`` tokens in a
    :func:`time_sparse_vs_dense` table (None: it never did)."""
    timed = sorted((r["sparsity"], r["speedup"]) for r in rows if r["tokens"] == tokens)
    found = None
    for s, speedup in reversed(timed):
        if speedup <= 1.0:
            break
        found = s
    return found
