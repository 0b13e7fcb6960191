"""W8A8 (int8 weights *and* activations) and SmoothQuant (Xiao et al., 2022).

Weight-only quantization saves memory but still multiplies in floating point. Quantizing
the activations too lets the matrix product itself run in int8 (``torch._int_mm``: several
times faster than float32 at large sizes on a CPU with int8 dot-product instructions, much
slower on one without; see ``llm_int8.default_int8_kernel`` and ``benchmarks/bench_quant.py``).
Activations are harder to quantize than weights: a few input channels carry outliers that
stretch every token's scale. SmoothQuant moves part of that difficulty into the weights
with an exact rescaling of each input channel ``j``:

    y = x W^T = (x / s) (W s)^T,        s_j = max|x_j|^alpha / max|W_:,j|^(1 - alpha)

``alpha`` (the migration strength) balances the two: 0 leaves the activations alone, 1
flattens them completely onto the weights; 0.5 is the paper's default. The smoothed
activations ``x / s`` and weights ``W s`` are then quantized to int8 (here: per-token
dynamic activation scales, per-output-channel weight scales). Here ``s`` is kept in the layer
(``smooth``) so it works for every linear layer of any model; a deployment folds ``1/s``
into the preceding normalisation layer's weight so it costs nothing.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from ..calibration import collect_input_stats
from ..lm import logits, model_device
from .formats import check_bits, quantize_activations_per_tensor, quantize_activations_per_token
from .llm_int8 import int8_matmul, int8_vectorwise_quant

ACT_GRANULARITIES = ("token", "tensor")


def smoothing_factors(
    act_absmax: torch.Tensor, weight: torch.Tensor, alpha: float = 0.5, eps: float = 1e-5
) -> torch.Tensor:
    """SmoothQuant's per-input-channel factors ``s_j = max|x_j|^alpha / max_i |W_ij|^(1-alpha)``."""
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"migration strength alpha must be in [0, 1], got {alpha}.")
    w_absmax = weight.detach().abs().amax(dim=0).float().clamp(min=eps)
    a = act_absmax.float().clamp(min=eps)
    s = a.pow(alpha) / w_absmax.pow(1.0 - alpha)
    return s.clamp(min=eps)


class W8A8Linear(nn.Module):
    """Linear layer with int8 weights (per output channel, symmetric) and int8 activations
    quantized dynamically at run time (per token, or one scale per tensor), multiplied
    with an exact int8 GEMM. With ``smooth`` set it is a SmoothQuant layer."""

    def __init__(
        self,
        in_features: int,
        out_features: int,
        bias: bool = False,
        act_granularity: str = "token",
        act_bits: int = 8,
        smooth: bool = False,
        device=None,
    ):
        super().__init__()
        if act_granularity not in ACT_GRANULARITIES:
            raise ValueError(
                f"act_granularity must be one of {ACT_GRANULARITIES}, got {act_granularity!r}."
            )
        check_bits(act_bits)
        self.in_features, self.out_features = in_features, out_features
        self.act_granularity, self.act_bits = act_granularity, act_bits
        self.register_buffer(
            "weight_t", torch.zeros(in_features, out_features, dtype=torch.int8, device=device)
        )
        self.register_buffer(
            "weight_scale", torch.ones(out_features, dtype=torch.float32, device=device)
        )
        self.register_buffer("bias", torch.zeros(out_features, device=device) if bias else None)
        self.register_buffer("smooth", torch.ones(in_features, device=device) if smooth else None)
        self.kernel: str | None = None  # int8_matmul's kernel; None: the device's default

    @classmethod
    def from_linear(
        cls,
        linear: nn.Linear,
        smooth: torch.Tensor | None = None,
        act_granularity: str = "token",
        act_bits: int = 8,
    ) -> W8A8Linear:
        """Quantize ``linear``; if ``smooth`` (in_features,) is given,
        the weight is first multiplied by it."""
        layer = cls(
            linear.in_features,
            linear.out_features,
            linear.bias is not None,
            act_granularity,
            act_bits,
            smooth is not None,
            device=linear.weight.device,
        )
        w = linear.weight.detach().float()
        if smooth is not None:
            w = w * smooth.to(w).unsqueeze(0)
            layer.smooth.copy_(smooth)
        codes, absmax, _ = int8_vectorwise_quant(w, 0.0)
        layer.weight_t.copy_(codes.t())
        layer.weight_scale.copy_(absmax / 127.0)
        if linear.bias is not None:
            layer.bias.copy_(linear.bias.detach())
        return layer

    def dequantize(self, dtype=torch.float32) -> torch.Tensor:
        """The effective float weight (smoothing undone), (out_features, in_features)."""
        w = self.weight_t.t().float() * self.weight_scale.unsqueeze(1)
        if self.smooth is not None:
            w = w / self.smooth.unsqueeze(0)
        return w.to(dtype)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shape = x.shape
        x2 = x.reshape(-1, self.in_features)
        if self.smooth is not None:
            x2 = x2 / self.smooth.to(x2.dtype)
        if self.act_granularity == "token":
            codes, scale = quantize_activations_per_token(x2, self.act_bits)
        else:
            codes, scale = quantize_activations_per_tensor(x2, self.act_bits)
        out = int8_matmul(codes, self.weight_t, self.kernel).float() * (scale * self.weight_scale)
        if self.bias is not None:
            out = out + self.bias
        return out.to(x.dtype).reshape(*shape[:-1], self.out_features)

    def layer_config(self) -> dict:
        return {
            "kind": "W8A8Linear",
            "in_features": self.in_features,
            "out_features": self.out_features,
            "bias": self.bias is not None,
            "act_granularity": self.act_granularity,
            "act_bits": self.act_bits,
            "smooth": self.smooth is not None,
        }

    @classmethod
    def from_layer_config(cls, cfg: dict) -> W8A8Linear:
        return cls(
            cfg["in_features"],
            cfg["out_features"],
            cfg["bias"],
            cfg["act_granularity"],
            cfg["act_bits"],
            cfg["smooth"],
        )

    def extra_repr(self) -> str:
        return (
            f"in_features={self.in_features}, out_features={self.out_features}, "
            f"act={self.act_granularity}/{self.act_bits}bit, smooth={self.smooth is not None}"
        )


@torch.no_grad()
def collect_act_absmax(
    model: nn.Module, windows: torch.Tensor, layers: dict[str, nn.Module], batch_size: int = 8
) -> dict[str, torch.Tensor]:
    """Per-input-channel max |x| seen at the input of each layer over the calibration windows."""

    def run():
        for batch in windows.split(batch_size):
            logits(model, batch.to(model_device(model)))

    return {
        n: st.absmax
        for n, st in collect_input_stats(layers, run, hessian=False, absmax=True).items()
    }


def smoothquant_layers(
    model: nn.Module,
    layers: dict[str, nn.Linear],
    windows: torch.Tensor,
    alpha: float = 0.5,
    act_granularity: str = "token",
    act_bits: int = 8,
    batch_size: int = 8,
) -> dict[str, W8A8Linear]:
    """SmoothQuant W8A8 versions of ``layers`` (name -> nn.Linear of ``model``),
    calibrated on ``windows``."""
    absmax = collect_act_absmax(model, windows, layers, batch_size)
    out = {}
    for name, lin in layers.items():
        s = smoothing_factors(absmax[name], lin.weight, alpha)
        out[name] = W8A8Linear.from_linear(lin, s, act_granularity, act_bits)
    return out
