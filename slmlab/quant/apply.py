"""One entry point for every method: ``quantize(model, method, bits, group_size, calib=...)``.

:data:`METHODS` is the registry: one :class:`Method` record per method (bits, options, whether it
needs calibration data, the function that makes its layers). :func:`quantize` checks the
arguments against it, deep-copies the model, finds its ``nn.Linear`` layers by type (skipping the LM
head and embeddings unless told otherwise), quantizes them with the chosen method and returns the
copy with quantized layers in their place. The same call works for a TinyLM and for a
transformers causal LM.
"""

from __future__ import annotations

import contextlib
import copy
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
import torch.nn as nn

from ..calibration import as_windows
from ..lm import window_perplexity
from ..surgery import DEFAULT_SKIP, find_linears, model_nbytes, set_module
from .formats import check_bits, check_group_size
from .packing import QuantLinear


@dataclass(frozen=True)
class Method:
    """One quantization method as :func:`quantize` runs it.

    ``apply(model, layers, windows, bits, group_size, symmetric, options, progress)`` returns the
    new layers by name (and may fill ``info``); it may change ``model`` (the deep copy being
    quantized), never the model the caller gave."""

    name: str
    default_bits: int
    allowed_bits: tuple[int, ...]
    apply: Callable[..., dict[str, nn.Module]]
    needs_calib: bool = False
    options: dict = field(default_factory=dict)  # extra keyword options and their defaults
    grouped: bool = True  # uses group_size (False: per channel or per token only)
    weight_only: bool = True  # False: activations are quantized too (W8A8, SmoothQuant, LLM.int8)
    default_group_size: int | None = None
    summary: str = ""


def _rtn(model, layers, windows, bits, group_size, symmetric, opts, progress, info):
    return {n: QuantLinear.from_linear(m, bits, group_size, symmetric) for n, m in layers.items()}


def _float_format(fmt):
    def apply(model, layers, windows, bits, group_size, symmetric, opts, progress, info):
        return {
            n: QuantLinear.from_linear(m, 4, group_size, False, fmt=fmt) for n, m in layers.items()
        }

    return apply


def _gptq(model, layers, windows, bits, group_size, symmetric, opts, progress, info):
    from .gptq import gptq_layers

    qts = gptq_layers(
        model,
        layers,
        windows,
        bits,
        group_size,
        symmetric,
        opts["act_order"],
        opts["percdamp"],
        opts["blocksize"],
        opts["batch_size"],
        progress,
    )
    return {n: QuantLinear.from_qtensor(qt, layers[n].bias) for n, qt in qts.items()}


def _awq(model, layers, windows, bits, group_size, symmetric, opts, progress, info):
    from .awq import awq_layers

    res = awq_layers(
        model,
        layers,
        windows,
        bits,
        group_size,
        symmetric,
        opts["n_grid"],
        opts["clip"],
        opts["batch_size"],
        progress,
    )
    info["awq_alpha"] = {n: r[2]["alpha"] for n, r in res.items()}
    return {
        n: QuantLinear.from_qtensor(qt, layers[n].bias, input_scale=s)
        for n, (qt, s, _) in res.items()
    }


def _llm_int8(model, layers, windows, bits, group_size, symmetric, opts, progress, info):
    from .llm_int8 import Int8Linear

    return {n: Int8Linear.from_linear(m, opts["threshold"]) for n, m in layers.items()}


def _w8a8(model, layers, windows, bits, group_size, symmetric, opts, progress, info):
    from .smoothquant import W8A8Linear

    return {
        n: W8A8Linear.from_linear(m, None, opts["act_granularity"], opts["act_bits"])
        for n, m in layers.items()
    }


def _smoothquant(model, layers, windows, bits, group_size, symmetric, opts, progress, info):
    from .smoothquant import smoothquant_layers

    return smoothquant_layers(
        model,
        layers,
        windows,
        opts["alpha"],
        opts["act_granularity"],
        opts["act_bits"],
        opts["batch_size"],
    )


def _qat(model, layers, windows, bits, group_size, symmetric, opts, progress, info):
    """Fine-tune through fake-quantized weights, copy the trained weights into ``model``'s layers,
    then round them to nearest (the layers keep their place and names). A warm-up longer than
    ``steps`` (the default 10 in a shorter run) is shortened to ``steps``."""
    from .qat import qat_finetune

    names = list(layers)
    warmup = min(opts["warmup"], opts["steps"])
    trained, losses = qat_finetune(
        model,
        windows,
        bits,
        group_size,
        symmetric,
        opts["steps"],
        opts["batch_size"],
        opts["lr"],
        warmup,
        opts["seed"],
        (),
        names,
        progress,
    )
    with torch.no_grad():
        model.load_state_dict(trained.state_dict())
        info["final_train_loss"] = losses[-1] if losses else None
        return _rtn(model, layers, windows, bits, group_size, symmetric, opts, progress, info)


_INT_BITS = (2, 3, 4, 8)
METHODS: dict[str, Method] = {
    m.name: m
    for m in [
        Method("rtn", 4, _INT_BITS, _rtn, summary="round to nearest, per channel or per group"),
        Method(
            "nf4",
            4,
            (4,),
            _float_format("nf4"),
            default_group_size=64,
            summary="4-bit NormalFloat, blocks of 64",
        ),
        Method(
            "fp16", 16, (16,), _float_format("fp16"), grouped=False, summary="16-bit float storage"
        ),
        Method("bf16", 16, (16,), _float_format("bf16"), grouped=False, summary="bfloat16 storage"),
        Method(
            "gptq",
            4,
            _INT_BITS,
            _gptq,
            needs_calib=True,
            options={"act_order": False, "percdamp": 0.01, "blocksize": 128, "batch_size": 8},
            summary="second-order error compensation on the input Hessian",
        ),
        Method(
            "awq",
            4,
            _INT_BITS,
            _awq,
            needs_calib=True,
            options={"n_grid": 20, "clip": True, "batch_size": 8},
            summary="activation-aware per-channel scales (+ clipping)",
        ),
        Method(
            "llm_int8",
            8,
            (8,),
            _llm_int8,
            options={"threshold": 6.0},
            grouped=False,
            weight_only=False,
            summary="int8 with floating-point outlier columns",
        ),
        Method(
            "w8a8",
            8,
            (8,),
            _w8a8,
            options={"act_granularity": "token", "act_bits": 8},
            grouped=False,
            weight_only=False,
            summary="int8 weights and int8 activations, naive",
        ),
        Method(
            "smoothquant",
            8,
            (8,),
            _smoothquant,
            needs_calib=True,
            grouped=False,
            weight_only=False,
            options={"alpha": 0.5, "act_granularity": "token", "act_bits": 8, "batch_size": 8},
            summary="W8A8 after migrating activation outliers into the weights",
        ),
        Method(
            "qat",
            3,
            _INT_BITS,
            _qat,
            needs_calib=True,
            options={"steps": 100, "batch_size": 8, "lr": 3e-4, "warmup": 10, "seed": 0},
            summary="quantization-aware fine-tune on calib, then RTN",
        ),
    ]
}
"""Every method :func:`quantize` knows, by name (see :class:`Method`)."""


def _check_options(method: Method, options: dict) -> dict:
    unknown = sorted(set(options) - set(method.options))
    if unknown:
        raise TypeError(
            f"quantize(method={method.name!r}) got unknown option(s) {unknown}; "
            f"its options are {method.options or 'none'}."
        )
    return {**method.options, **options}


def quantize(
    model: nn.Module,
    method: str = "rtn",
    bits: int | None = None,
    group_size: int | None = None,
    *,
    symmetric: bool = False,
    calib=None,
    skip=DEFAULT_SKIP,
    include=None,
    pack: bool = True,
    progress: bool = False,
    **options,
) -> nn.Module:
    """Return a quantized deep copy of ``model`` (TinyLM or any causal LM built of ``nn.Linear``).

    Parameters
    ----------
    method : a name of :data:`METHODS`: ``"rtn"`` round-to-nearest; ``"nf4"`` 4-bit NormalFloat
        (blocks of ``group_size``, default 64); ``"fp16"``/``"bf16"`` 16-bit float storage;
        ``"gptq"``; ``"awq"``; ``"llm_int8"`` (int8 with fp outlier columns); ``"w8a8"`` (int8
        weights and per-token int8 activations, naive); ``"smoothquant"`` (W8A8 after smoothing);
        ``"qat"`` (quantization-aware fine-tune on ``calib``, then RTN).
    bits : integer bit width (default per method: 4 for weight-only methods, 8 for W8A8/LLM.int8,
        3 for QAT).
    group_size : inputs per quantization group (must divide every layer's input dimension);
        ``None`` = one scale per output channel.
    symmetric : absmax (True) or zero-point (False, default: what GPTQ and AWQ use) integer grid.
    calib : calibration token windows (N, T), e.g. :func:`slmlab.calibration.calibration_windows`;
        needed by gptq, awq, smoothquant (and qat, as training data).
    skip, include : glob patterns of layer names to leave out / to restrict to (default: skip the
        LM head).
    pack : store weight-only results as packed :class:`QuantLinear` layers (real low-bit storage,
        dequantized on the fly). ``pack=False`` keeps plain ``nn.Linear`` layers holding the
        dequantized weights (same outputs, faster to evaluate, no memory saved).
    options : per-method options (``act_order``, ``percdamp``, ``alpha``, ``threshold``,
        ``steps`` ...).

    The returned model has a ``quant_info`` dict: method, settings, layers and seconds taken. Every
    check runs before anything is copied, so a bad argument leaves ``model`` as it was.
    """
    if method not in METHODS:
        raise ValueError(
            f"unknown quantization method {method!r}; choose one of {sorted(METHODS)}."
        )
    spec = METHODS[method]
    bits = spec.default_bits if bits is None else bits
    if bits not in spec.allowed_bits:
        if spec.default_bits == 16:
            raise ValueError(
                f"method={method!r} stores 16-bit floats; leave bits unset (got {bits})."
            )
        check_bits(bits)  # says which integer widths exist at all
        raise ValueError(f"method={method!r} supports bits in {spec.allowed_bits}, got {bits}.")
    opts = _check_options(spec, options)
    if group_size is None:
        group_size = spec.default_group_size
    if not spec.grouped and group_size is not None:
        raise ValueError(f"method={method!r} does not use groups; leave group_size=None.")
    windows = as_windows(calib) if spec.needs_calib else None
    for name, lin in find_linears(model, skip, include).items():
        if not isinstance(lin, nn.Linear):
            raise TypeError(
                f"layer {name!r} is a {type(lin).__name__}, not an nn.Linear: quantize the float "
                "model (the model given is left unchanged)"
            )
        if method == "nf4":
            if (lin.in_features * lin.out_features) % group_size:
                raise ValueError(
                    f"NF4 blocksize {group_size} must divide the "
                    f"{lin.in_features * lin.out_features} weights of layer {name!r}."
                )
        else:
            check_group_size(lin.in_features, group_size, name)

    t0 = time.perf_counter()
    qmodel = copy.deepcopy(model)
    qmodel.eval()
    layers = find_linears(qmodel, skip, include)
    info = {
        "method": method,
        "bits": bits,
        "group_size": group_size,
        "symmetric": symmetric,
        "options": {k: v for k, v in opts.items() if k != "batch_size"},
        "layers": list(layers),
    }
    with torch.no_grad() if method != "qat" else contextlib.nullcontext():
        new = spec.apply(qmodel, layers, windows, bits, group_size, symmetric, opts, progress, info)
    for name, layer in new.items():
        if not pack and isinstance(layer, QuantLinear):
            layer = dequantized_linear(layer)
        set_module(qmodel, name, layer)
    info["seconds"] = time.perf_counter() - t0
    qmodel.quant_info = info
    return qmodel


def dequantized_linear(layer: nn.Module) -> nn.Linear:
    """A plain ``nn.Linear`` computing the same function as a quantized layer's weight path
    (input scales folded into the weight)."""
    w = layer.dequantize(torch.float32)
    if getattr(layer, "input_scale", None) is not None:
        w = w / layer.input_scale.unsqueeze(0)
    lin = nn.Linear(
        layer.in_features, layer.out_features, bias=layer.bias is not None, device=w.device
    )
    with torch.no_grad():
        lin.weight.copy_(w)
        if layer.bias is not None:
            lin.bias.copy_(layer.bias)
    return lin


def dequantize_model(model: nn.Module) -> nn.Module:
    """A copy of a quantized model with every weight-only quantized layer replaced by a plain
    ``nn.Linear`` holding its dequantized weights (:func:`dequantized_linear`): the same function,
    faster to evaluate, no memory saved (what ``quantize(..., pack=False)`` returns)."""
    from .packing import quantized_layers

    out = copy.deepcopy(model)
    for name, layer in quantized_layers(out).items():
        if isinstance(layer, QuantLinear):
            set_module(out, name, dequantized_linear(layer))
    return out


def weight_bits_per_param(model: nn.Module) -> float:
    """Average stored bits per weight of the quantized linear layers (codes + scales + zeros)."""
    from .packing import quantized_layers

    layers = quantized_layers(model)
    if not layers:
        raise ValueError("the model has no quantized layers.")
    nbytes = sum(
        sum(t.numel() * t.element_size() for t in m.buffers() if t is not None)
        - (m.bias.numel() * m.bias.element_size() if getattr(m, "bias", None) is not None else 0)
        for m in layers.values()
    )
    n = sum(m.in_features * m.out_features for m in layers.values())
    return 8 * nbytes / n


def compare_methods(
    model: nn.Module,
    eval_windows,
    runs: list[dict],
    calib=None,
    baseline: bool = True,
    progress: bool = False,
) -> list[dict]:
    """Quantize ``model`` once per entry of ``runs`` and measure each result.

    Each run is a dict of :func:`quantize` keyword arguments (``{"method": "gptq", "bits": 4,
    "group_size": 64}``; ``calib`` is added when the method needs it). Returns one row per run
    (plus the float model first when ``baseline``): method, bits, group_size, perplexity on
    ``eval_windows``, its ratio to the float perplexity, measured bytes of the model, average
    stored bits per quantized weight, and the seconds quantization took. ``pandas.DataFrame(rows)``
    makes it a table.
    """
    rows = []
    ppl_float = window_perplexity(model, eval_windows)
    if baseline:
        rows.append(
            {
                "method": "float32",
                "bits": 32,
                "group_size": None,
                "ppl": ppl_float,
                "ppl_ratio": 1.0,
                "bytes": model_nbytes(model),
                "bits_per_weight": 32.0,
                "seconds": 0.0,
            }
        )
    it = runs
    if progress:
        from tqdm.auto import tqdm

        it = tqdm(runs, desc="methods", leave=False)
    for run in it:
        run = dict(run)
        method = run.pop("method")
        if method in METHODS and METHODS[method].needs_calib and "calib" not in run:
            run["calib"] = calib
        q = quantize(model, method, **run)
        ppl = window_perplexity(q, eval_windows)
        label = {k: v for k, v in run.items() if k not in ("calib", "bits", "group_size")}
        rows.append(
            {
                "method": method + (f" {label}" if label else ""),
                "bits": q.quant_info["bits"],
                "group_size": q.quant_info["group_size"],
                "ppl": ppl,
                "ppl_ratio": ppl / ppl_float,
                "bytes": model_nbytes(q),
                "bits_per_weight": weight_bits_per_param(q),
                "seconds": q.quant_info["seconds"],
            }
        )
    return rows
