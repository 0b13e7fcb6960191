"""Real low-bit storage: bit packing, a quantized linear layer,
and saving/loading a quantized model.

Simulated ("fake") quantization keeps float weights that happen to lie on a grid; it shows
the *quality* of a format but saves no memory. Here the integer codes are really stored in
``bits`` bits each — eight ``b``-bit codes in ``b`` bytes, so 4-bit weights are two per byte
(high nibble first, the layout bitsandbytes uses) — with their scales and zero-points, and
:class:`QuantLinear` dequantizes them on the fly in ``forward``. :func:`model_nbytes` and the
size of the saved files measure what was saved.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..surgery import model_nbytes, set_module
from .formats import (
    FLOAT_FORMATS,
    QTensor,
    check_bits,
    check_group_size,
    dequantize_nf4,
    qrange,
    quantize_nf4,
    quantize_tensor,
)

QUANT_CONFIG = "quant_config.json"
WEIGHTS = "model.safetensors"


# ----------------------------------------------------------------------------- bit packing
def pack_bits(codes: torch.Tensor, bits: int) -> torch.Tensor:
    """Pack unsigned integer codes (values in ``[0, 2**bits)``) into a 1-D uint8 tensor.

    Each run of 8 codes becomes one ``8 * bits``-bit big-endian integer, stored as ``bits``
    bytes: 8-bit codes are the bytes themselves, 4-bit codes two per byte (first code in the
    high nibble), 3-bit codes eight per three bytes, 2-bit codes four per byte. The input is
    flattened and zero-padded to a multiple of 8 codes.
    """
    check_bits(bits)
    flat = codes.reshape(-1).to(torch.int64)
    if flat.numel() and (int(flat.min()) < 0 or int(flat.max()) >= 2**bits):
        raise ValueError(
            f"pack_bits: codes must lie in [0, {2**bits - 1}] for {bits} bits, "
            f"got [{int(flat.min())}, {int(flat.max())}]."
        )
    pad = (-flat.numel()) % 8
    if pad:
        flat = torch.cat([flat, flat.new_zeros(pad)])
    chunks = flat.reshape(-1, 8)
    shifts = torch.arange(7, -1, -1, device=flat.device) * bits  # first code in the highest bits
    word = (chunks << shifts).sum(
        dim=1
    )  # at most 64 bits for bits = 8: fits in int64 as unsigned pattern
    byte_shifts = torch.arange(bits - 1, -1, -1, device=flat.device) * 8
    return ((word.unsqueeze(1) >> byte_shifts) & 0xFF).to(torch.uint8).reshape(-1)


def unpack_bits(packed: torch.Tensor, bits: int, numel: int) -> torch.Tensor:
    """Inverse of :func:`pack_bits`: the first ``numel`` codes, as uint8."""
    check_bits(bits)
    if bits == 8:
        return packed[:numel]
    if bits in (2, 4):  # whole codes per byte: shifts on uint8, no wide integers needed
        per, mask = 8 // bits, 2**bits - 1
        parts = [(packed >> (bits * (per - 1 - i))) & mask for i in range(per)]
        return torch.stack(parts, dim=1).reshape(-1)[:numel]
    groups = packed.to(torch.int32).reshape(
        -1, bits
    )  # 3 bits: 8 codes in 3 bytes = one 24-bit word
    byte_shifts = torch.arange(bits - 1, -1, -1, device=packed.device, dtype=torch.int32) * 8
    word = (groups << byte_shifts).sum(dim=1, dtype=torch.int32)
    shifts = torch.arange(7, -1, -1, device=packed.device, dtype=torch.int32) * bits
    return ((word.unsqueeze(1) >> shifts) & (2**bits - 1)).to(torch.uint8).reshape(-1)[:numel]


def packed_nbytes(numel: int, bits: int) -> int:
    """Bytes that :func:`pack_bits` uses for ``numel`` codes."""
    return (numel + (-numel) % 8) * bits // 8


# ----------------------------------------------------------------------------- the layer
class QuantLinear(nn.Module):
    """A linear layer whose weight is stored quantized and dequantized on the fly in ``forward``.

    Storage formats (``fmt``):

    * ``"int"``: ``bits``-bit integer codes packed with :func:`pack_bits` (buffer ``qweight``),
      one float16 ``scales`` entry per group (``group_size`` inputs of a row; None = the whole
      row) and, if asymmetric, one uint8 ``zeros`` entry per group. Symmetric codes are stored
      offset by ``2**(bits-1)``.
    * ``"nf4"``: 4-bit NF4 codes packed two per byte and one float32 ``absmax`` per block of
      ``group_size`` consecutive weights (QLoRA / bitsandbytes layout).
    * ``"fp16"`` / ``"bf16"``: the weight cast to a 16-bit float format (``weight16``).

    An optional ``input_scale`` (one float per input feature) divides the input first:
    ``y = (x / s) @ W_hat.T + b``. AWQ and SmoothQuant store their per-channel scales there
    (a deployment would fold them into the preceding normalisation layer).
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        bits: int = 4,
        group_size: int | None = 64,
        symmetric: bool = False,
        fmt: str = "int",
        bias: bool = False,
        input_scale: bool = False,
        device=None,
    ):
        super().__init__()
        if fmt not in ("int", "nf4", "fp16", "bf16"):
            raise ValueError(
                f"QuantLinear fmt must be 'int', 'nf4', 'fp16' or 'bf16', got {fmt!r}."
            )
        self.in_features, self.out_features = in_features, out_features
        self.fmt, self.symmetric = fmt, bool(symmetric)
        numel = in_features * out_features
        if fmt == "int":
            self.bits = check_bits(bits)
            self.group_size = check_group_size(in_features, group_size)
            n_groups = 1 if group_size is None else in_features // group_size
            self.register_buffer(
                "qweight", torch.zeros(packed_nbytes(numel, bits), dtype=torch.uint8, device=device)
            )
            self.register_buffer(
                "scales", torch.ones(out_features, n_groups, dtype=torch.float16, device=device)
            )
            if not self.symmetric:
                self.register_buffer(
                    "zeros", torch.zeros(out_features, n_groups, dtype=torch.uint8, device=device)
                )
        elif fmt == "nf4":
            self.bits, self.group_size = 4, group_size or 64
            if numel % self.group_size:
                raise ValueError(
                    f"NF4 blocksize {self.group_size} must divide the weight's {numel} elements."
                )
            self.register_buffer(
                "qweight", torch.zeros(packed_nbytes(numel, 4), dtype=torch.uint8, device=device)
            )
            self.register_buffer(
                "absmax", torch.ones(numel // self.group_size, dtype=torch.float32, device=device)
            )
        else:
            self.bits, self.group_size = 16, None
            self.register_buffer(
                "weight16",
                torch.zeros(out_features, in_features, dtype=FLOAT_FORMATS[fmt], device=device),
            )
        self.register_buffer("bias", torch.zeros(out_features, device=device) if bias else None)
        self.register_buffer(
            "input_scale", torch.ones(in_features, device=device) if input_scale else None
        )

    # -- construction
    @classmethod
    def from_qtensor(
        cls, qt: QTensor, bias: torch.Tensor | None = None, input_scale: torch.Tensor | None = None
    ) -> QuantLinear:
        """Pack a :class:`~slmlab.quant.formats.QTensor`
        (per-channel or per-group integer codes)."""
        out_f, in_f = qt.codes.shape
        if qt.scale.numel() == 1 and out_f > 1:  # per-tensor: store the scale once per row
            qt = QTensor(
                qt.codes,
                qt.scale.expand(out_f, 1).clone(),
                qt.zero.expand(out_f, 1).clone(),
                qt.bits,
                qt.symmetric,
                None,
            )
        layer = cls(
            in_f,
            out_f,
            qt.bits,
            qt.group_size,
            qt.symmetric,
            "int",
            bias is not None,
            input_scale is not None,
            device=qt.codes.device,
        )
        offset = 2 ** (qt.bits - 1) if qt.symmetric else 0
        layer.qweight.copy_(pack_bits(qt.codes.to(torch.int64) + offset, qt.bits))
        layer.scales.copy_(qt.scale.to(torch.float16))
        if not qt.symmetric:
            layer.zeros.copy_(qt.zero.to(torch.uint8))
        if bias is not None:
            layer.bias.copy_(bias.detach())
        if input_scale is not None:
            layer.input_scale.copy_(input_scale.detach())
        return layer

    @classmethod
    def from_linear(
        cls,
        linear: nn.Linear,
        bits: int = 4,
        group_size: int | None = 64,
        symmetric: bool = False,
        fmt: str = "int",
    ) -> QuantLinear:
        """Round-to-nearest quantization of an ``nn.Linear``
        (``fmt`` "int", "nf4", "fp16" or "bf16")."""
        w, b = linear.weight.detach(), linear.bias
        if fmt == "int":
            return cls.from_qtensor(quantize_tensor(w, bits, symmetric, group_size), b)
        layer = cls(
            linear.in_features,
            linear.out_features,
            bits,
            group_size,
            symmetric,
            fmt,
            b is not None,
            device=w.device,
        )
        if fmt == "nf4":
            codes, absmax = quantize_nf4(w, layer.group_size)
            layer.qweight.copy_(pack_bits(codes, 4))
            layer.absmax.copy_(absmax)
        else:
            layer.weight16.copy_(w.to(FLOAT_FORMATS[fmt]))
        if b is not None:
            layer.bias.copy_(b.detach())
        return layer

    # -- use
    def codes(self) -> torch.Tensor:
        """The unpacked integer codes (out_features, in_features), as stored (unsigned)."""
        if self.fmt not in ("int", "nf4"):
            raise ValueError(f"a {self.fmt} QuantLinear stores floats, not integer codes.")
        return unpack_bits(self.qweight, self.bits, self.in_features * self.out_features).reshape(
            self.out_features, self.in_features
        )

    def dequantize(self, dtype=torch.float32) -> torch.Tensor:
        """The float weight (out_features, in_features) that ``forward`` multiplies by."""
        if self.fmt in ("fp16", "bf16"):
            return self.weight16.to(dtype)
        codes = self.codes()
        if self.fmt == "nf4":
            return dequantize_nf4(codes, self.absmax, self.group_size, dtype)
        n_groups = self.scales.shape[1]
        scale = self.scales.to(torch.float32).unsqueeze(-1)
        zero = (
            self.zeros.to(torch.float32)
            if not self.symmetric
            else torch.full_like(scale[..., 0], 2 ** (self.bits - 1))
        ).unsqueeze(-1)
        w = codes.reshape(self.out_features, n_groups, -1).to(torch.float32)
        w = w.mul_(scale).sub_(zero * scale)  # (codes - zero) * scale, in place
        return w.reshape(self.out_features, self.in_features).to(dtype)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.input_scale is not None:
            x = x / self.input_scale.to(x.dtype)
        bias = None if self.bias is None else self.bias.to(x.dtype)
        return F.linear(x, self.dequantize(x.dtype), bias)

    def layer_config(self) -> dict:
        """What :func:`load_quantized` needs to rebuild an empty layer of this shape."""
        return {
            "kind": "QuantLinear",
            "in_features": self.in_features,
            "out_features": self.out_features,
            "bits": self.bits,
            "group_size": self.group_size,
            "symmetric": self.symmetric,
            "fmt": self.fmt,
            "bias": self.bias is not None,
            "input_scale": self.input_scale is not None,
        }

    @classmethod
    def from_layer_config(cls, cfg: dict) -> QuantLinear:
        return cls(
            cfg["in_features"],
            cfg["out_features"],
            cfg["bits"],
            cfg["group_size"],
            cfg["symmetric"],
            cfg["fmt"],
            cfg["bias"],
            cfg["input_scale"],
        )

    def extra_repr(self) -> str:
        gs = f", group_size={self.group_size}" if self.group_size else ""
        sym = "" if self.fmt != "int" else f", symmetric={self.symmetric}"
        return (
            f"in_features={self.in_features}, out_features={self.out_features}, fmt={self.fmt}, "
            f"bits={self.bits}{gs}{sym}, input_scale={self.input_scale is not None}"
        )


# ----------------------------------------------------------------------------- model-level
def _layer_classes() -> dict[str, type]:
    from .llm_int8 import Int8Linear
    from .smoothquant import W8A8Linear

    return {"QuantLinear": QuantLinear, "Int8Linear": Int8Linear, "W8A8Linear": W8A8Linear}


def quantized_layers(model: nn.Module) -> dict[str, nn.Module]:
    """The model's quantized layers (QuantLinear, Int8Linear, W8A8Linear) by name."""
    classes = tuple(_layer_classes().values())
    return {n: m for n, m in model.named_modules() if isinstance(m, classes)}


def _base_description(model: nn.Module) -> dict:
    from ..lm import is_transformers_model
    from ..models import TinyLM

    if isinstance(model, TinyLM):
        return {"type": "tinylm", "config": model.config.to_dict()}
    if is_transformers_model(model):
        return {"type": "transformers", "config": model.config.to_dict()}
    raise TypeError(
        f"save_quantized supports TinyLM and transformers models, got {type(model).__name__}; "
        "for other modules save model.state_dict() with safetensors yourself."
    )


def save_quantized(model: nn.Module, directory, tokenizer=None, info: dict | None = None) -> Path:
    """Save a quantized TinyLM or transformers model: ``model.safetensors`` (packed codes,
    scales, remaining float weights), ``quant_config.json`` (base config and every quantized
    layer's format) and optionally ``tokenizer.json``. The directory is written atomically."""
    from ..checkpoint import save_tensors, write_dir_atomically
    from ..utils import atomic_write_json

    layers = quantized_layers(model)
    if not layers:
        raise ValueError(
            "save_quantized: the model has no quantized layers; quantize it first "
            "(slmlab.quant.quantize(model, ...)) or save it with save_pretrained."
        )
    cfg = {
        "format": "slmlab-quant",
        "version": 1,
        "base": _base_description(model),
        "layers": {n: m.layer_config() for n, m in layers.items()},
        "info": info if info is not None else getattr(model, "quant_info", {}),
    }
    sd = {k: v for k, v in model.state_dict().items()}
    if cfg["base"]["type"] == "tinylm" and model.config.tie_embeddings:
        sd.pop("lm_head.weight", None)
    if cfg["base"]["type"] == "transformers" and getattr(
        model.config, "tie_word_embeddings", False
    ):
        sd.pop("lm_head.weight", None)

    def fill(tmp: Path):
        save_tensors(sd, tmp / WEIGHTS, metadata={"format": "pt", "slmlab": "quantized"})
        atomic_write_json(tmp / QUANT_CONFIG, json.loads(json.dumps(cfg, default=str)))
        if tokenizer is not None:
            tokenizer.save(tmp / "tokenizer.json")

    return write_dir_atomically(directory, fill)


def load_quantized(directory, device=None) -> nn.Module:
    """Load a model written by :func:`save_quantized` (no pickle: safetensors + JSON only)."""
    from ..checkpoint import CheckpointError, load_tensors
    from ..models import TinyLM, TinyLMConfig

    directory = Path(directory)
    path = directory / QUANT_CONFIG
    if not path.is_file():
        raise CheckpointError(
            f"missing {path}: not a directory written by slmlab.quant.save_quantized"
        )
    cfg = json.loads(path.read_text(encoding="utf-8"))
    if cfg.get("format") != "slmlab-quant":
        raise CheckpointError(
            f"{path} is not an slmlab quantized-model config (format={cfg.get('format')!r})"
        )
    base = cfg["base"]
    if base["type"] == "tinylm":
        model = TinyLM(TinyLMConfig.from_dict(base["config"]))
    elif base["type"] == "transformers":
        from transformers import AutoConfig, AutoModelForCausalLM

        c = dict(base["config"])
        hf_config = AutoConfig.for_model(c.pop("model_type"), **c)
        model = AutoModelForCausalLM.from_config(hf_config)
    else:
        raise CheckpointError(f"{path}: unknown base model type {base['type']!r}")
    classes = _layer_classes()
    for name, lc in cfg["layers"].items():
        if lc["kind"] not in classes:
            raise CheckpointError(f"{path}: unknown layer kind {lc['kind']!r} for {name}")
        set_module(model, name, classes[lc["kind"]].from_layer_config(lc))
    sd = load_tensors(directory / WEIGHTS)
    tied = (base["type"] == "tinylm" and model.config.tie_embeddings) or (
        base["type"] == "transformers" and getattr(model.config, "tie_word_embeddings", False)
    )
    expected = model.state_dict()
    if tied and "lm_head.weight" in expected and "lm_head.weight" not in sd:
        emb = (
            "embed.weight"
            if base["type"] == "tinylm"
            else next(k for k in sd if k.endswith("embed_tokens.weight"))
        )
        sd["lm_head.weight"] = sd[emb]
    problems = [f"missing {k}" for k in expected if k not in sd]
    problems += [f"unexpected {k}" for k in sd if k not in expected]
    problems += [
        f"{k}: shape {tuple(sd[k].shape)} != {tuple(v.shape)}"
        for k, v in expected.items()
        if k in sd and sd[k].shape != v.shape
    ]
    if problems:
        raise CheckpointError(
            f"{directory / WEIGHTS} does not match {QUANT_CONFIG}: " + "; ".join(problems[:5])
        )
    model.load_state_dict(sd, strict=True)
    if tied and hasattr(model, "tie_weights"):
        model.tie_weights()
    model.quant_info = cfg.get("info", {})
    return model.to(device or "cpu").eval()


def saved_nbytes(directory) -> int:
    """Total size in bytes of the files in a saved model directory."""
    return sum(p.stat().st_size for p in Path(directory).iterdir() if p.is_file())


__all__ = [
    "pack_bits",
    "unpack_bits",
    "packed_nbytes",
    "QuantLinear",
    "quantized_layers",
    "save_quantized",
    "load_quantized",
    "saved_nbytes",
    "model_nbytes",
    "qrange",
]
