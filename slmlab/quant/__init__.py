"""Quantization from scratch: number formats, RTN, NF4, LLM.int8, SmoothQuant, GPTQ, AWQ,
KV-cache quantization and quantization-aware training, for any model built of ``nn.Linear``.

Built on the package's shared plumbing: :mod:`slmlab.surgery` finds and replaces the linear
layers, :mod:`slmlab.calibration` cuts the calibration windows and collects each layer's input
statistics, :mod:`slmlab.lm` measures perplexity and KL.

One module per idea, each readable top to bottom:

================  =============================================================
``formats``       integer (absmax / zero-point) and NF4 quantizers, fp16/bf16
``packing``       bit packing, :class:`QuantLinear`, save/load, sizes in bytes
``llm_int8``      LLM.int8(): int8 with floating-point outlier columns
``smoothquant``   W8A8 with per-token activations; SmoothQuant's smoothing
``gptq``          GPTQ: Hessian-based error compensation
``awq``           AWQ: activation-aware per-channel scales (+ clipping)
``kv_cache``      int8/int4 KV cache for ``TinyLM.generate(cache_cls=...)``
``qat``           quantization-aware training with the straight-through estimator
``apply``         :func:`quantize`, the single entry point
================  =============================================================

Typical use::

    from slmlab.calibration import calibration_windows
    from slmlab.quant import quantize
    calib = calibration_windows(tok, n_samples=32, seq_len=128)
    q = quantize(model, "gptq", bits=4, group_size=64, calib=calib)
"""

from ..calibration import hessian_from_inputs, output_error
from .apply import (
    METHODS,
    compare_methods,
    dequantize_model,
    dequantized_linear,
    quantize,
    weight_bits_per_param,
)
from .awq import awq_quantize_weight, awq_search_scale
from .formats import (
    NF4_CODEBOOK,
    SUPPORTED_BITS,
    QTensor,
    cast_roundtrip,
    check_bits,
    check_group_size,
    dequantize_nf4,
    fake_quantize,
    fake_quantize_nf4,
    float_format_info,
    nf4_codebook_from_normal,
    quant_error,
    quantize_activations_per_tensor,
    quantize_activations_per_token,
    quantize_nf4,
    quantize_tensor,
    valid_group_sizes,
)
from .gptq import gptq_quantize_weight
from .kv_cache import Int4KVCache, Int8KVCache, QuantizedKVCache, cache_nbytes, quantized_kv_cache
from .llm_int8 import Int8Linear, outlier_stats
from .packing import (
    QuantLinear,
    load_quantized,
    pack_bits,
    quantized_layers,
    save_quantized,
    saved_nbytes,
    unpack_bits,
)
from .qat import QATLinear, fake_quantize_ste, prepare_qat, qat_finetune, ste_round
from .smoothquant import W8A8Linear, collect_act_absmax, smoothing_factors

__all__ = [
    "quantize",
    "METHODS",
    "compare_methods",
    "dequantize_model",
    "dequantized_linear",
    "weight_bits_per_param",
    "SUPPORTED_BITS",
    "NF4_CODEBOOK",
    "QTensor",
    "check_bits",
    "check_group_size",
    "valid_group_sizes",
    "quantize_tensor",
    "fake_quantize",
    "quantize_nf4",
    "dequantize_nf4",
    "fake_quantize_nf4",
    "nf4_codebook_from_normal",
    "cast_roundtrip",
    "float_format_info",
    "quant_error",
    "quantize_activations_per_token",
    "quantize_activations_per_tensor",
    "QuantLinear",
    "pack_bits",
    "unpack_bits",
    "save_quantized",
    "load_quantized",
    "saved_nbytes",
    "quantized_layers",
    "Int8Linear",
    "outlier_stats",
    "W8A8Linear",
    "smoothing_factors",
    "collect_act_absmax",
    "gptq_quantize_weight",
    "hessian_from_inputs",
    "output_error",
    "awq_search_scale",
    "awq_quantize_weight",
    "QuantizedKVCache",
    "quantized_kv_cache",
    "Int8KVCache",
    "Int4KVCache",
    "cache_nbytes",
    "QATLinear",
    "ste_round",
    "fake_quantize_ste",
    "prepare_qat",
    "qat_finetune",
]
