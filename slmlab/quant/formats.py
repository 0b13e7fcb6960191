"""Number formats and round-to-nearest (RTN) quantizers, from scratch.

A *b*-bit integer quantizer maps a real weight ``w`` to one of ``2**b`` integer codes ``q``
and back (Jacob et al., 2018; Nagel et al., 2021):

* **symmetric** (absmax): ``scale = max|w| / qmax`` with ``qmax = 2**(b-1) - 1``;
  ``q = round(w / scale)`` in ``[-qmax, qmax]``; ``w_hat = q * scale``. Zero is exact.
* **asymmetric** (zero-point): ``scale = (max w - min w) / (2**b - 1)``,
  ``zero = round(-min w / scale)``; ``q = clamp(round(w / scale) + zero, 0, 2**b - 1)``;
  ``w_hat = (q - zero) * scale``. Uses all ``2**b`` levels on a skewed range.

One ``scale`` (and ``zero``) is shared by a set of weights, the *granularity*:

* ``"tensor"``: one scale for the whole matrix;
* ``"channel"``: one per output row of an ``nn.Linear`` weight ``(out_features, in_features)``;
* ``"group"``: one per run of ``group_size`` consecutive inputs within a row (GPTQ, AWQ, NF4).

Finer granularity costs a few more bytes of scales and brings much lower error, because a
single large weight then only stretches the range of its own group.

The NF4 codebook (Dettmers et al., 2023, QLoRA) replaces the evenly spaced integer grid by
16 values placed at quantiles of a standard normal, since trained weights are roughly
normal; blocks of 64 weights share one absmax scale.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

SUPPORTED_BITS = (2, 3, 4, 8)
"""Integer bit widths the quantizers accept."""

GRANULARITIES = ("tensor", "channel", "group")

# The NF4 data type as published with QLoRA and used by bitsandbytes (16 values in [-1, 1]).
NF4_CODEBOOK = torch.tensor(
    [
        -1.0,
        -0.6961928009986877,
        -0.5250730514526367,
        -0.39491748809814453,
        -0.28444138169288635,
        -0.18477343022823334,
        -0.09105003625154495,
        0.0,
        0.07958029955625534,
        0.16093020141124725,
        0.24611230194568634,
        0.33791524171829224,
        0.44070982933044434,
        0.5626170039176941,
        0.7229568362236023,
        1.0,
    ]
)


# ----------------------------------------------------------------------------- validation
def check_bits(bits: int, supported=SUPPORTED_BITS) -> int:
    """Return ``bits`` if it is a supported integer bit width,
    else raise a ValueError that lists them."""
    if isinstance(bits, bool) or not isinstance(bits, int) or bits not in supported:
        raise ValueError(
            f"unsupported bit width {bits!r}; supported bit widths are {tuple(supported)}."
        )
    return bits


def valid_group_sizes(in_features: int, candidates=(16, 32, 64, 128, 256, 512, 1024)) -> list[int]:
    """Common group sizes that divide ``in_features`` (each row splits into whole groups)."""
    return [g for g in candidates if g <= in_features and in_features % g == 0]


def check_group_size(in_features: int, group_size: int | None, name: str = "") -> int | None:
    """Return ``group_size`` if it divides ``in_features`` (``None`` = one group per row),
    else a clear error."""
    if group_size is None:
        return None
    if isinstance(group_size, bool) or not isinstance(group_size, int) or group_size <= 0:
        raise ValueError(
            f"group_size must be a positive integer or None (per-channel), got {group_size!r}."
        )
    if in_features % group_size:
        where = f" of layer {name!r}" if name else ""
        raise ValueError(
            f"group_size={group_size} does not divide the input dimension {in_features}{where}: "
            "each row must split into whole groups. Valid group sizes here include "
            f"{valid_group_sizes(in_features)} (any divisor of {in_features}), "
            "or group_size=None for one scale per output channel."
        )
    return group_size


def _granularity(granularity: str | None, group_size: int | None) -> str:
    if granularity is None:
        return "group" if group_size is not None else "channel"
    if granularity not in GRANULARITIES:
        raise ValueError(f"granularity must be one of {GRANULARITIES}, got {granularity!r}.")
    if granularity == "group" and group_size is None:
        raise ValueError("granularity='group' needs a group_size (e.g. 64).")
    return granularity


def qrange(bits: int, symmetric: bool) -> tuple[int, int]:
    """The smallest and largest integer code: ``[-(2^(b-1)-1), 2^(b-1)-1]`` or ``[0, 2^b - 1]``."""
    check_bits(bits)
    if symmetric:
        return -(2 ** (bits - 1) - 1), 2 ** (bits - 1) - 1
    return 0, 2**bits - 1


# ----------------------------------------------------------------------------- integer RTN
@dataclass
class QTensor:
    """Integer codes of a 2-D weight plus what is needed to dequantize them.

    ``codes`` has the weight's shape (int16, values in ``qrange(bits, symmetric)``);
    ``scale`` and ``zero`` have shape ``(rows, n_groups)`` where ``n_groups`` is 1 for
    per-channel, ``in_features // group_size`` for per-group (per-tensor: ``(1, 1)``).
    ``zero`` is all zeros for symmetric quantization.
    """

    codes: torch.Tensor
    scale: torch.Tensor
    zero: torch.Tensor
    bits: int
    symmetric: bool
    group_size: int | None  # None: the whole row (channel) or the whole tensor is one group

    def dequantize(self, dtype=torch.float32) -> torch.Tensor:
        return dequantize_codes(self.codes, self.scale, self.zero).to(dtype)


def _group_view(w: torch.Tensor, granularity: str, group_size: int | None) -> torch.Tensor:
    """View a 2-D weight as (n_sets, set_size): the rows of this view share one scale each."""
    rows, cols = w.shape
    if granularity == "tensor":
        return w.reshape(1, -1)
    if granularity == "channel":
        return w
    return w.reshape(rows * (cols // group_size), group_size)


def compute_qparams(
    w_groups: torch.Tensor, bits: int, symmetric: bool
) -> tuple[torch.Tensor, torch.Tensor]:
    """Scale and zero-point for each row of ``w_groups`` (n, k) -> ((n, 1), (n, 1)).

    A constant group (max == min) gets scale 1 so that the division stays finite."""
    lo, hi = qrange(bits, symmetric)
    w_groups = w_groups.float()
    if symmetric:
        scale = w_groups.abs().amax(dim=1, keepdim=True) / hi
        zero = torch.zeros_like(scale)
    else:
        wmin = w_groups.amin(dim=1, keepdim=True).clamp(
            max=0
        )  # keep 0 representable (exact zero padding/ReLU)
        wmax = w_groups.amax(dim=1, keepdim=True).clamp(min=0)
        scale = (wmax - wmin) / hi
        zero = torch.round(-wmin / torch.where(scale > 0, scale, torch.ones_like(scale)))
    scale = torch.where(scale > 0, scale, torch.ones_like(scale))
    return scale, zero


def quantize_codes(
    w: torch.Tensor, scale: torch.Tensor, zero: torch.Tensor, bits: int, symmetric: bool
) -> torch.Tensor:
    """Round-to-nearest integer codes of ``w`` for broadcastable ``scale``/``zero``."""
    lo, hi = qrange(bits, symmetric)
    return torch.clamp(torch.round(w.float() / scale) + zero, lo, hi)


def dequantize_codes(codes: torch.Tensor, scale: torch.Tensor, zero: torch.Tensor) -> torch.Tensor:
    """``(codes - zero) * scale`` for a 2-D ``codes`` and per-group ``scale``/``zero``
    (rows, n_groups)."""
    rows, cols = codes.shape
    if scale.numel() == 1:
        return (codes.float() - zero.reshape(())) * scale.reshape(())
    n_groups = scale.shape[-1]
    g = codes.float().reshape(rows, n_groups, cols // n_groups)
    return ((g - zero.reshape(rows, n_groups, 1)) * scale.reshape(rows, n_groups, 1)).reshape(
        rows, cols
    )


def quantize_tensor(
    w: torch.Tensor,
    bits: int = 8,
    symmetric: bool = True,
    group_size: int | None = None,
    granularity: str | None = None,
) -> QTensor:
    """Round-to-nearest quantization of a 2-D weight ``(out_features, in_features)`` into a
    :class:`QTensor`.

    ``granularity`` is ``"tensor"``, ``"channel"`` (default when ``group_size`` is None) or
    ``"group"`` (default when ``group_size`` is given; groups run along the input dimension).
    """
    check_bits(bits)
    if w.dim() != 2:
        raise ValueError(
            "quantize_tensor expects a 2-D weight (out_features, in_features), "
            f"got shape {tuple(w.shape)}."
        )
    granularity = _granularity(granularity, group_size)
    if granularity == "group":
        check_group_size(w.shape[1], group_size)
    rows, cols = w.shape
    groups = _group_view(w.detach(), granularity, group_size)
    scale, zero = compute_qparams(groups, bits, symmetric)
    codes = quantize_codes(groups, scale, zero, bits, symmetric).reshape(rows, cols)
    if granularity == "tensor":
        scale, zero = scale.reshape(1, 1), zero.reshape(1, 1)
    else:
        n_groups = 1 if granularity == "channel" else cols // group_size
        scale, zero = scale.reshape(rows, n_groups), zero.reshape(rows, n_groups)
    return QTensor(
        codes.to(torch.int16),
        scale,
        zero,
        bits,
        symmetric,
        group_size if granularity == "group" else None,
    )


def fake_quantize(
    w: torch.Tensor,
    bits: int = 8,
    symmetric: bool = True,
    group_size: int | None = None,
    granularity: str | None = None,
) -> torch.Tensor:
    """Quantize then dequantize (RTN): the float weight the quantized model effectively uses."""
    return quantize_tensor(w, bits, symmetric, group_size, granularity).dequantize(w.dtype)


def quantize_activations_per_token(
    x: torch.Tensor, bits: int = 8
) -> tuple[torch.Tensor, torch.Tensor]:
    """Dynamic symmetric quantization of activations, one scale per token (row of the last dim).

    Returns ``(codes, scale)`` with ``x ~= codes * scale``; codes are int8 for ``bits <= 8``."""
    check_bits(bits)
    qmax = 2 ** (bits - 1) - 1
    scale = x.abs().amax(dim=-1, keepdim=True).float().clamp(min=1e-8) / qmax
    codes = torch.clamp(torch.round(x.float() / scale), -qmax, qmax).to(torch.int8)
    return codes, scale


def quantize_activations_per_tensor(
    x: torch.Tensor, bits: int = 8
) -> tuple[torch.Tensor, torch.Tensor]:
    """Dynamic symmetric quantization of activations with one scale for the whole tensor."""
    check_bits(bits)
    qmax = 2 ** (bits - 1) - 1
    scale = x.abs().amax().float().clamp(min=1e-8).reshape(1) / qmax
    codes = torch.clamp(torch.round(x.float() / scale), -qmax, qmax).to(torch.int8)
    return codes, scale


# ----------------------------------------------------------------------------- NF4
def nf4_codebook_from_normal(offset: float = 0.9677083) -> torch.Tensor:
    """Derive the NF4 values from the normal distribution, as QLoRA does.

    8 positive values at the normal quantiles of ``linspace(offset, 0.5, 9)[:-1]``, 7 negative
    ones at ``linspace(offset, 0.5, 8)[:-1]``, and an exact zero; normalised to [-1, 1].
    (The asymmetry gives 16 values with an exact 0.) Agrees with :data:`NF4_CODEBOOK` to ~1e-7.
    """
    normal = torch.distributions.Normal(
        torch.tensor(0.0, dtype=torch.float64), torch.tensor(1.0, dtype=torch.float64)
    )
    pos = normal.icdf(torch.linspace(offset, 0.5, 9, dtype=torch.float64)[:-1])
    neg = -normal.icdf(torch.linspace(offset, 0.5, 8, dtype=torch.float64)[:-1])
    values = torch.cat([neg, torch.zeros(1, dtype=torch.float64), pos]).sort().values
    return (values / values.abs().max()).float()


def quantize_nf4(w: torch.Tensor, blocksize: int = 64) -> tuple[torch.Tensor, torch.Tensor]:
    """NF4 codes (uint8 in 0..15, shape of ``w``) and per-block absmax (``numel // blocksize``).

    Blocks are runs of ``blocksize`` consecutive elements of the flattened tensor (as in
    bitsandbytes); each value is divided by its block's absmax and mapped to the nearest
    codebook entry (via the midpoints between sorted entries).
    """
    if w.numel() % blocksize:
        raise ValueError(
            f"NF4 needs numel ({w.numel()}) to be a multiple of blocksize={blocksize}; "
            f"pick a blocksize that divides it (e.g. 64 when in_features is a multiple of 64)."
        )
    blocks = w.detach().float().reshape(-1, blocksize)
    absmax = blocks.abs().amax(dim=1)
    scaled = torch.clamp(blocks * (1.0 / absmax.clamp(min=1e-38)).unsqueeze(1), -1, 1)
    code = NF4_CODEBOOK.to(w.device)
    midpoints = (code[:-1] + code[1:]) / 2
    codes = torch.bucketize(scaled, midpoints).to(torch.uint8)
    return codes.reshape(w.shape), absmax


def dequantize_nf4(
    codes: torch.Tensor, absmax: torch.Tensor, blocksize: int = 64, dtype=torch.float32
) -> torch.Tensor:
    """Inverse of :func:`quantize_nf4`: ``codebook[codes] * absmax`` block by block."""
    values = NF4_CODEBOOK.to(codes.device)[codes.long()].reshape(
        -1, blocksize
    ) * absmax.float().unsqueeze(1)
    return values.reshape(codes.shape).to(dtype)


def fake_quantize_nf4(w: torch.Tensor, blocksize: int = 64) -> torch.Tensor:
    """NF4 quantize-dequantize of ``w``."""
    codes, absmax = quantize_nf4(w, blocksize)
    return dequantize_nf4(codes, absmax, blocksize, w.dtype)


# ----------------------------------------------------------------------------- float formats
FLOAT_FORMATS = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


def cast_roundtrip(w: torch.Tensor, fmt: str = "fp16") -> torch.Tensor:
    """Store ``w`` in a 16-bit float format and read it back: fp16 keeps 10 mantissa bits but a
    small range (max 65504), bf16 keeps fp32's range with only 7 mantissa bits."""
    if fmt not in FLOAT_FORMATS:
        raise ValueError(f"unknown float format {fmt!r}; choose one of {list(FLOAT_FORMATS)}.")
    return w.to(FLOAT_FORMATS[fmt]).to(w.dtype)


def float_format_info(fmt: str) -> dict:
    """Bits, smallest normal, largest value and machine epsilon of a float format
    (from ``torch.finfo``)."""
    if fmt not in FLOAT_FORMATS:
        raise ValueError(f"unknown float format {fmt!r}; choose one of {list(FLOAT_FORMATS)}.")
    fi = torch.finfo(FLOAT_FORMATS[fmt])
    return {
        "format": fmt,
        "bits": fi.bits,
        "max": fi.max,
        "smallest_normal": fi.tiny,
        "eps": fi.eps,
    }


def quant_error(w: torch.Tensor, w_hat: torch.Tensor) -> dict:
    """Mean squared error, relative Frobenius error and max absolute error of a quantized weight."""
    d = w_hat.float() - w.float()
    return {
        "mse": d.pow(2).mean().item(),
        "rel_error": (d.norm() / w.float().norm().clamp(min=1e-12)).item(),
        "max_abs": d.abs().max().item(),
    }
