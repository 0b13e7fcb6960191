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


# int8 GEMM kernels pay where the CPU has int8 dot-product instructions (AVX-512 VNNI, AMX):
# there torch._int_mm was measured 4x faster than float32 on a 4096-wide layer. On an AVX2-only
# CPU the same call was measured 20-175x *slower* than float32 (benchmarks/bench_quant.py), so
# there the product is computed in float32 instead, which is exact: every int8 x int8 product
# and every partial sum of up to 1024 of them is an integer below 2^24, and float32 represents
# such integers exactly (wider products are summed from 1024-wide slices, in int32).
INT8_KERNELS = ("int_mm", "float")
_FLOAT32_EXACT_K = 2**24 // (128 * 128)  # 1024: the widest exact float32 int8 product


def default_int8_kernel(device: torch.device) -> str:
    """``"int_mm"`` where an int8 GEMM is fast (CUDA, AVX-512 CPUs), else ``"float"``."""
    if device.type == "cuda":
        return "int_mm"
    if device.type == "cpu" and torch.backends.cpu.get_cpu_capability().startswith("AVX512"):
        return "int_mm"
    return "float"


def int8_matmul(a: torch.Tensor, b_t: torch.Tensor, kernel: str | None = None) -> torch.Tensor:
    """Exact int8 x int8 -> int32 product ``a @ b_t`` (a: (M, K), b_t: (K, N)).

    ``kernel="int_mm"`` uses PyTorch's int8 GEMM (``torch._int_mm``); ``"float"`` multiplies
    in float32, 1024 columns of ``a`` at a time, which gives the same integers; ``None`` picks
    ``default_int8_kernel(a.device)``."""
    kernel = default_int8_kernel(a.device) if kernel is None else kernel
    if kernel not in INT8_KERNELS:
        raise ValueError(f"unknown int8 kernel {kernel!r}; choose from {INT8_KERNELS}")
    if kernel == "int_mm" and hasattr(torch, "_int_mm") and a.device.type in ("cpu", "cuda"):
        try:
            return torch._int_mm(a, b_t)
        except RuntimeError:  # e.g. shapes a CUDA kernel does not accept
            pass
    out = torch.zeros(a.shape[0], b_t.shape[1], dtype=torch.int32, device=a.device)
    for k0 in range(0, a.shape[-1], _FLOAT32_EXACT_K):  # exact float32 slices, summed in int32
        k1 = k0 + _FLOAT32_EXACT_K
        part = (a[:, k0:k1].float() @ b_t[k0:k1].float()).to(torch.int32)
        out += part
    return out


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
        self.kernel: str | None = None  # int8_matmul's kernel; None: the device's default

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
        acc = int8_matmul(codes, self.weight_t, self.kernel)
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
