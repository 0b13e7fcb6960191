"""Quantization-aware training (QAT) with the straight-through estimator.

Post-training quantization rounds a finished model; at 2-3 bits the rounding error is too
large to correct afterwards. QAT fine-tunes the model *through* the quantizer: the forward
pass uses fake-quantized weights ``Q(w)`` so the loss sees the rounding, and the backward
pass treats rounding as the identity (the straight-through estimator, Bengio et al., 2013),
so gradients reach the float "latent" weights:

    w_q = w + (Q(w) - w).detach()        # value Q(w), gradient d/dw = 1

After a short fine-tune the latent weights sit where their rounded values work well;
exporting them with round-to-nearest gives exactly the model that was trained.
"""

from __future__ import annotations

import copy

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..calibration import as_windows
from ..surgery import DEFAULT_SKIP, find_linears, set_module
from ..train import causal_lm_loss
from ..train.finetune import check_finetune_args, finetune_on_windows
from .formats import check_bits, check_group_size, fake_quantize


def ste_round(x: torch.Tensor) -> torch.Tensor:
    """``round(x)`` in the forward pass, identity in the backward pass."""
    return x + (torch.round(x) - x).detach()


def fake_quantize_ste(
    w: torch.Tensor, bits: int, group_size: int | None = 64, symmetric: bool = False
) -> torch.Tensor:
    """Fake quantization whose gradient is the identity (straight-through) w.r.t. ``w``.

    The scales are computed from the current weights and treated as constants."""
    with torch.no_grad():
        w_hat = fake_quantize(w.detach(), bits, symmetric, group_size)
    return w + (w_hat - w).detach()


class QATLinear(nn.Linear):
    """An ``nn.Linear`` whose forward pass uses its fake-quantized weight (STE backward)."""

    def __init__(
        self,
        in_features: int,
        out_features: int,
        bias: bool = True,
        bits: int = 4,
        group_size: int | None = 64,
        symmetric: bool = False,
        device=None,
        dtype=None,
    ):
        super().__init__(in_features, out_features, bias, device=device, dtype=dtype)
        self.bits, self.symmetric = check_bits(bits), symmetric
        self.group_size = check_group_size(in_features, group_size)

    @classmethod
    def from_linear(
        cls, linear: nn.Linear, bits: int, group_size: int | None, symmetric: bool
    ) -> QATLinear:
        layer = cls(
            linear.in_features,
            linear.out_features,
            linear.bias is not None,
            bits,
            group_size,
            symmetric,
            device=linear.weight.device,
            dtype=linear.weight.dtype,
        )
        with torch.no_grad():
            layer.weight.copy_(linear.weight)
            if linear.bias is not None:
                layer.bias.copy_(linear.bias)
        return layer

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = fake_quantize_ste(self.weight, self.bits, self.group_size, self.symmetric)
        return F.linear(x, w, self.bias)

    def to_linear(self) -> nn.Linear:
        lin = nn.Linear(
            self.in_features,
            self.out_features,
            self.bias is not None,
            device=self.weight.device,
            dtype=self.weight.dtype,
        )
        with torch.no_grad():
            lin.weight.copy_(self.weight)
            if self.bias is not None:
                lin.bias.copy_(self.bias)
        return lin

    def extra_repr(self) -> str:
        return (
            super().extra_repr()
            + f", bits={self.bits}, group_size={self.group_size}, symmetric={self.symmetric}"
        )


def prepare_qat(
    model: nn.Module,
    bits: int = 4,
    group_size: int | None = 64,
    symmetric: bool = False,
    skip=None,
    include=None,
) -> nn.Module:
    """A deep copy of ``model`` whose linear layers (except ``skip``) are :class:`QATLinear`."""

    check_bits(bits)
    model = copy.deepcopy(model)
    for name, lin in find_linears(model, DEFAULT_SKIP if skip is None else skip, include).items():
        check_group_size(lin.in_features, group_size, name)
        set_module(model, name, QATLinear.from_linear(lin, bits, group_size, symmetric))
    return model


def strip_qat(model: nn.Module) -> nn.Module:
    """Replace every :class:`QATLinear` by a plain ``nn.Linear`` holding its latent float weights
    (in place)."""

    for name, m in list(model.named_modules()):
        if isinstance(m, QATLinear):
            set_module(model, name, m.to_linear())
    return model


def qat_finetune(
    model: nn.Module,
    windows: torch.Tensor,
    bits: int = 3,
    group_size: int | None = 64,
    symmetric: bool = False,
    steps: int = 100,
    batch_size: int = 8,
    lr: float = 3e-4,
    warmup: int = 10,
    seed: int = 0,
    skip=None,
    include=None,
    progress: bool = False,
    log_every: int = 0,
) -> tuple[nn.Module, list[float]]:
    """Fine-tune a copy of ``model`` through fake-quantized weights (straight-through estimator).

    ``windows`` (N, T) are training token windows; step ``s`` trains on ``batch_size`` of them
    drawn at random (the ``s``-th draw of a generator seeded with ``seed``). Returns
    ``(model_with_latent_weights, losses)``: a float model whose weights, quantized with
    ``quantize(m, "rtn", bits, group_size, symmetric=symmetric)``, give the trained quantized
    model, and the training loss of every step. ``model`` itself is not changed.

    The training is :func:`slmlab.train.fit` with :func:`~slmlab.train.causal_lm_loss`: AdamW
    (no weight decay), ``warmup`` steps of linear warm-up then cosine decay to 10% of ``lr``,
    gradients clipped to norm 1, on the device the model is on. ``steps=0`` returns the
    model as it is (its RTN export is plain RTN); a warm-up longer than ``steps`` is refused.
    ``log_every`` prints the loss every that many steps.
    """
    windows = as_windows(windows, name="QAT training windows")
    check_finetune_args(steps, batch_size, warmup, lr)  # before the model is copied
    qmodel = prepare_qat(model, bits, group_size, symmetric, skip, include)
    losses = finetune_on_windows(
        qmodel,
        windows,
        steps,
        batch_size,
        lr,
        warmup,
        seed,
        causal_lm_loss,
        progress,
        log_every,
        f"QAT {bits}-bit",
    )
    qmodel.eval()
    return strip_qat(qmodel), losses
