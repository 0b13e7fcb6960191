"""The models the book trains: TinyLM and its variants, one config field per architectural choice.

==================  ==============================================================================
``config``          :class:`TinyLMConfig`, its choices and checks
``estimates``       parameters, bytes, FLOPs and KV-cache size from a config (one set of formulas)
``layers``          norms, RoPE, the KV cache, attention (MHA, GQA, MQA)
``mla``             multi-head latent attention and its latent cache
``block``           the transformer block: attention and FFN with their norms
``ffn``             the feed-forward network: SwiGLU, GELU, ReLU, ReLU²
``masks``           causal and sliding-window masks, ALiBi's biases
``sliding_window``  the ring-buffer KV cache of sliding-window attention
``moe``             mixture of experts: router, top-k experts, load-balancing loss
``mamba``           a selective state-space layer (Mamba) and its constant-size state cache
``rwkv``            a linear-attention recurrent layer (RWKV-4) and its constant-size state cache
``tinylm``          :class:`TinyLM`: the modules assembled, save/load, generate
``decoder``         the lean decode step generation runs (same function, half the operator calls)
``generation``      sampling and the generation loop with a KV cache
==================  ==============================================================================

:data:`MODEL_TYPES` maps a ``config.json``'s ``model_type`` to the class that reads it;
:func:`load_model` loads any directory ``save_pretrained`` wrote.
"""

from __future__ import annotations

from pathlib import Path

from .. import checkpoint
from .config import CHOICES, TinyLMConfig
from .estimates import (
    Arch,
    active_params,
    as_arch,
    bits_of,
    flops_per_token,
    kv_cache_bytes,
    kv_cache_bytes_per_token,
    num_params,
    param_breakdown,
    state_bytes,
    weight_bytes,
)
from .generation import cache_class, generate, sample_next, stream
from .layers import KVCache
from .tinylm import TinyLM

MODEL_TYPES = {TinyLM.model_type: TinyLM}
"""``model_type`` of a ``config.json`` -> the model class (the variants of the architecture
chapter register here)."""


def load_model(directory, device=None, dtype=None):
    """The model saved in ``directory`` by ``save_pretrained``,
    of the class its ``model_type`` names."""
    if not Path(directory).is_dir():
        raise checkpoint.CheckpointError(f"no model directory at {directory}")
    model_type = checkpoint.read_config(directory).get("model_type", TinyLM.model_type)
    if model_type not in MODEL_TYPES:
        raise checkpoint.CheckpointError(
            f"{directory}/config.json has model_type {model_type!r}, "
            f"which slmlab does not know (known: {sorted(MODEL_TYPES)}); "
            "a transformers checkpoint loads with slmlab.from_hf(path)"
        )
    return MODEL_TYPES[model_type].from_pretrained(directory, device=device, dtype=dtype)


__all__ = [
    "TinyLMConfig",
    "CHOICES",
    "TinyLM",
    "KVCache",
    "MODEL_TYPES",
    "load_model",
    "Arch",
    "as_arch",
    "num_params",
    "active_params",
    "param_breakdown",
    "weight_bytes",
    "flops_per_token",
    "kv_cache_bytes_per_token",
    "kv_cache_bytes",
    "state_bytes",
    "bits_of",
    "sample_next",
    "generate",
    "stream",
    "cache_class",
]
