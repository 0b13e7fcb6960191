"""slmlab: the helper package of *Small Language Models, hands-on*."""

from .models import (
    KVCache,
    TinyLM,
    TinyLMConfig,
    flops_per_token,
    kv_cache_bytes_per_token,
    num_params,
    weight_bytes,
)
from .utils import pick_device, set_seed

__version__ = "0.1.0"


def __getattr__(name):  # lazy: transformers is imported only when needed
    if name in ("to_hf", "from_hf", "export_hf"):
        from . import hf

        return getattr(hf, name)
    if name == "load_reference":
        from .reference import load_reference

        return load_reference
    raise AttributeError(f"module 'slmlab' has no attribute {name!r}")


__all__ = [
    "TinyLMConfig",
    "TinyLM",
    "KVCache",
    "to_hf",
    "from_hf",
    "export_hf",
    "load_reference",
    "num_params",
    "flops_per_token",
    "weight_bytes",
    "kv_cache_bytes_per_token",
    "pick_device",
    "set_seed",
]
