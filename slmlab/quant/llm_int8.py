"""LLM.int8(): vector-wise int8 matrix multiplication with a mixed-precision outlier path
(Dettmers et al., 2022).

The int8 part: each row of the weight (one output feature) gets its own absmax scale, each
row of the input (one token) gets its own at run time, and the product of int8 codes is
accumulated exactly in int32:  ``y ~= (X_q @ W_q.T) * s_x s_w / 127^2``.

The outlier part: a few hidden dimensions of large transformers carry values far larger than
the rest (|x| > 6 is the paper's threshold). Rounding them to the token's int8 grid would
wipe out the small values of that token, so the input *columns* holding any such value are
taken out of the int8 product and multiplied in floating point instead.

This follows bitsandbytes' ``Linear8bitLt(has_fp16_weights=False, threshold=6.0)``: weights
live only in int8, so the outlier columns are multiplied with the *dequantized* int8 weight
columns. The tests check the outputs agree with bitsandbytes on this CPU.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from .formats import check_bits


def int8_vectorwise_quant(A: torch.Tensor, threshold: float = 0.0):
    """Row-wise absmax int8 quantization of a 2-D tensor, with outlier columns split off.

    Returns ``(codes int8, row_absmax float32, outlier_cols or None)``. Values with
    ``|a| >= threshold`` are excluded from the row absmax; every column holding one is zeroed
    in ``codes`` (it is handled in floating point by the caller)."""
    A = A.float()
    outlier_cols = None
    stats_src = A
    if threshold > 0:
        outliers = A.abs() >= threshold
        outlier_cols = torch.nonzero(outliers.any(dim=0)).reshape(-1)
        if outlier_cols.numel():
            stats_src = A.masked_fill(outliers, 0.0)
    row_absmax = stats_src.abs().amax(dim=1)
    codes = (
        torch.round(stats_src * (127.0 / row_absmax.clamp(min=1e-12)).unsqueeze(1))
        .clamp(-127, 127)
        .to(torch.int8)
    )
    if outlier_cols is not None and outlier_cols.numel():
        codes[:, outlier_cols] = 0
    return codes, row_absmax, outlier_cols


def int8_matmul(a: torch.Tensor, b_t: torch.Tensor) -> torch.Tensor:
    """Exact int8 x int8 -> int32 product ``a @ b_t`` (a: (M, K), b_t: (K, N)).

    Uses PyTorch's int8 GEMM (``torch._int_mm``, VNNI/AMX on x86 CPUs) when it is available,
    else an exact float64 fallback."""
    if hasattr(torch, "_int_mm") and a.device.type in ("cpu", "cuda"):
        try:
            return torch._int_mm(a, b_t)
        except RuntimeError:  # e.g. shapes a CUDA kernel does not accept
            pass
    return (a.double() @ b_t.double()).to(torch.int32)


class Int8Linear(nn.Module):
    """LLM.int8() linear layer: int8 weights (one absmax scale per output row), int8 inputs
    (one scale per token, computed at run time), fp outlier columns above ``threshold``.

    ``threshold=0`` disables the outlier path (plain vector-wise int8).
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        bias: bool = False,
        threshold: float = 6.0,
        device=None,
    ):
        super().__init__()
        self.in_features, self.out_features, self.threshold = (
            in_features,
            out_features,
            float(threshold),
        )
        self.register_buffer(
            "weight_t", torch.zeros(in_features, out_features, dtype=torch.int8, device=device)
        )
        self.register_buffer(
            "weight_scale", torch.ones(out_features, dtype=torch.float32, device=device)
        )
        self.register_buffer("bias", torch.zeros(out_features, device=device) if bias else None)
        self.last_outlier_cols = (
            0  # how many input columns took the fp path in the last call (for teaching)
        )

    @classmethod
    def from_linear(cls, linear: nn.Linear, threshold: float = 6.0) -> Int8Linear:
        layer = cls(
            linear.in_features,
            linear.out_features,
            linear.bias is not None,
            threshold,
            device=linear.weight.device,
        )
        codes, absmax, _ = int8_vectorwise_quant(linear.weight.detach(), 0.0)
        layer.weight_t.copy_(codes.t())
        layer.weight_scale.copy_(absmax)
        if linear.bias is not None:
            layer.bias.copy_(linear.bias.detach())
        return layer

    def dequantize(self, dtype=torch.float32) -> torch.Tensor:
        """The int8 weight as floats (out_features, in_features)."""
        return (self.weight_t.t().float() * (self.weight_scale / 127.0).unsqueeze(1)).to(dtype)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shape = x.shape
        x2 = x.reshape(-1, self.in_features)
        codes, row_absmax, cols = int8_vectorwise_quant(x2, self.threshold)
        acc = int8_matmul(codes, self.weight_t)
        out = acc.float() * (
            row_absmax.unsqueeze(1) * self.weight_scale.unsqueeze(0) / (127.0 * 127.0)
        )
        self.last_outlier_cols = 0 if cols is None else int(cols.numel())
        if cols is not None and cols.numel():
            w_cols = self.weight_t[cols].float() * (self.weight_scale / 127.0).unsqueeze(
                0
            )  # (n_out_cols, out)
            out = out + x2[:, cols].float() @ w_cols
        if self.bias is not None:
            out = out + self.bias
        return out.to(x.dtype).reshape(*shape[:-1], self.out_features)

    def layer_config(self) -> dict:
        return {
            "kind": "Int8Linear",
            "in_features": self.in_features,
            "out_features": self.out_features,
            "bias": self.bias is not None,
            "threshold": self.threshold,
        }

    @classmethod
    def from_layer_config(cls, cfg: dict) -> Int8Linear:
        return cls(cfg["in_features"], cfg["out_features"], cfg["bias"], cfg["threshold"])

    def extra_repr(self) -> str:
        return (
            f"in_features={self.in_features}, out_features={self.out_features}, "
            f"threshold={self.threshold}"
        )


def outlier_stats(x: torch.Tensor, threshold: float = 6.0) -> dict:
    """How many hidden dimensions (columns of ``x`` reshaped to (tokens, d)) hold a value with
    |x| >= threshold, and what fraction of all values that is."""
    x2 = x.reshape(-1, x.shape[-1]).abs()
    mask = x2 >= threshold
    return {
        "outlier_dims": int(mask.any(dim=0).sum()),
        "dims": x2.shape[1],
        "outlier_fraction": mask.float().mean().item(),
        "absmax": x2.max().item(),
    }


def check_int8_bits(bits: int) -> None:
    check_bits(bits)
    if bits != 8:
        raise ValueError(
            f"LLM.int8 quantizes to 8 bits only, got bits={bits}; use method='gptq', "
            "'awq' or 'rtn' for lower bit widths."
        )
