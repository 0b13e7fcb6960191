"""A linear layer stored as two thin ones: ``x -> up(down(x))``, rank r in between."""

from __future__ import annotations

import torch
import torch.nn as nn


class LowRankLinear(nn.Module):
    """``down``: in -> r, no bias; ``up``: r -> out, with the dense layer's bias. Linear-like
    (``in_features``, ``out_features``, ``dequantize()``), so slmlab's other techniques find it."""

    def __init__(self, in_features: int, out_features: int, rank: int, bias: bool = False):
        super().__init__()
        self.in_features, self.out_features, self.rank = in_features, out_features, rank
        self.down = nn.Linear(in_features, rank, bias=False)
        self.up = nn.Linear(rank, out_features, bias=bias)

    @classmethod
    def from_factors(cls, up: torch.Tensor, down: torch.Tensor, bias=None) -> LowRankLinear:
        layer = cls(down.shape[1], up.shape[0], down.shape[0], bias=bias is not None)
        layer.to(device=up.device, dtype=up.dtype)
        with torch.no_grad():
            layer.up.weight.copy_(up)
            layer.down.weight.copy_(down)
            if bias is not None:
                layer.up.bias.copy_(bias)
        return layer

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.up(self.down(x))

    def dequantize(self, dtype=torch.float32) -> torch.Tensor:
        """The dense (out, in) weight the pair multiplies by: ``up @ down``."""
        return (self.up.weight @ self.down.weight).to(dtype)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, rank={self.rank}"
