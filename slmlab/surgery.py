"""Layer surgery for any model built of linear layers: find them, replace them, wrap them.

Every compression and adaptation technique of the book works on *any* causal LM — the
project's TinyLM and a transformers model alike — because layers are found by what they are,
never by a model-specific list of names:

- a **linear-like** layer is an ``nn.Linear`` or any module with integer ``in_features`` and
  ``out_features`` and a ``weight`` tensor or a ``dequantize()`` method (the quantized layers
  of :mod:`slmlab.quant`, a bitsandbytes layer, a LoRA wrapper);
- a **wrapping** layer keeps the layer it wraps as ``base`` (as peft does); :func:`find_linears`
  reports the outermost layer, not the one inside it;
- the transformer **blocks** (``TinyLM.blocks``, ``LlamaForCausalLM.model.layers``) are the
  ``nn.ModuleList`` holding the most linear-like layers.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable

import torch
import torch.nn as nn

DEFAULT_SKIP = ("lm_head", "*embed*", "*wte*", "*wpe*", "output")
"""Layers left alone by default: the LM head (and anything named like an embedding).
bitsandbytes through transformers skips the head too (it is the most sensitive layer)."""


def is_linear_like(module: nn.Module) -> bool:
    """An ``nn.Linear``, or a module with int ``in_features``/``out_features`` and a ``weight``
    tensor or a ``dequantize()`` method."""
    if isinstance(module, nn.Linear):
        return True
    dims = (getattr(module, "in_features", None), getattr(module, "out_features", None))
    if not all(isinstance(d, int) and not isinstance(d, bool) for d in dims):
        return False
    return torch.is_tensor(getattr(module, "weight", None)) or callable(
        getattr(module, "dequantize", None)
    )


def matches(name: str, patterns: Iterable[str]) -> bool:
    """Does ``name`` (or its last part) match one of the glob ``patterns``?"""
    leaf = name.rsplit(".", 1)[-1]
    return any(fnmatch.fnmatchcase(name, p) or fnmatch.fnmatchcase(leaf, p) for p in patterns)


def linear_layers(model: nn.Module) -> dict[str, nn.Module]:
    """Every linear-like layer by qualified name, in registration order; inside a linear-like
    layer (a wrapper and its ``base``) only the outer one."""
    found: dict[str, nn.Module] = {}
    for name, module in model.named_modules():
        if any(name.startswith(outer + ".") for outer in found):
            continue
        if name and is_linear_like(module):
            found[name] = module
    return found


def find_linears(
    model: nn.Module,
    skip: Iterable[str] | None = DEFAULT_SKIP,
    include: Iterable[str] | None = None,
) -> dict[str, nn.Module]:
    """The model's linear-like layers by qualified name, in registration order.

    ``skip``: glob patterns matched against the full name or its last part (default: the LM
    head and embeddings); ``include``: if given, only names matching one of these patterns.
    Raises a ValueError when nothing is left, saying what was found."""
    skip = tuple(skip or ())
    every = linear_layers(model)
    chosen = {
        n: m
        for n, m in every.items()
        if not matches(n, skip) and (include is None or matches(n, tuple(include)))
    }
    if not chosen:
        if not every:
            raise ValueError(
                f"{type(model).__name__} has no linear layers; slmlab's techniques work on models "
                "built of torch.nn.Linear or linear-like layers (TinyLM, "
                "transformers Llama/Qwen/SmolLM models, ...)."
            )
        raise ValueError(
            f"no linear layer of {type(model).__name__} is left after skip={list(skip)} and "
            f"include={None if include is None else list(include)}; "
            f"the model's linear layers are {list(every)[:8]}{' ...' if len(every) > 8 else ''}."
        )
    return chosen


def set_module(model: nn.Module, name: str, new: nn.Module) -> None:
    """Replace the sub-module called ``name`` (e.g. ``blocks.0.attn.q_proj``) by ``new``."""
    parent_name, _, leaf = name.rpartition(".")
    parent = model.get_submodule(parent_name) if parent_name else model
    setattr(parent, leaf, new)


def find_blocks(model: nn.Module) -> tuple[str, nn.ModuleList] | None:
    """``(name, blocks)``: the ``nn.ModuleList`` of transformer blocks, the one holding the most
    linear-like layers — ``("blocks", model.blocks)`` for TinyLM, ``("model.layers", ...)`` for a
    transformers Llama; None when the model has no such list."""
    best, best_count = None, 0
    for name, mod in model.named_modules():
        if isinstance(mod, nn.ModuleList) and len(mod) > 0:
            count = len(linear_layers(mod))
            if count > best_count:
                best, best_count = (name, mod), count
    return best


def model_nbytes(model: nn.Module) -> int:
    """Bytes of all parameters and buffers of ``model``
    (a tensor shared by two names counts once)."""
    seen, total = set(), 0
    for t in list(model.parameters()) + list(model.buffers()):
        key = (t.data_ptr(), t.numel(), t.dtype)
        if key in seen or t.numel() == 0:
            continue
        seen.add(key)
        total += t.numel() * t.element_size()
    return total
