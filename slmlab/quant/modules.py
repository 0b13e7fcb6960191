"""Walking a model: its ``nn.Linear`` layers, its stack of transformer blocks, its size in bytes.

Everything in :mod:`slmlab.quant` works on *any* model made of ``nn.Linear`` layers — the
project's TinyLM and a transformers model alike — because layers are found by module type,
never by a model-specific list of names. The transformer blocks (``TinyLM.blocks``,
``LlamaForCausalLM.model.layers``) are found the same way: the ``nn.ModuleList`` holding the
most linear layers. Sequential methods (GPTQ, AWQ) run the calibration data through one
block at a time (:func:`run_blocks`), so a whole model is never held twice in memory.
"""
from __future__ import annotations

import fnmatch
from typing import Callable, Iterable

import torch
import torch.nn as nn

DEFAULT_SKIP = ("lm_head", "*embed*", "*wte*", "*wpe*", "output")
"""Layers left in full precision by default: the LM head (and anything named like an embedding).
bitsandbytes through transformers skips the head too (it is the most sensitive layer)."""


def _matches(name: str, patterns: Iterable[str]) -> bool:
    leaf = name.rsplit(".", 1)[-1]
    return any(fnmatch.fnmatchcase(name, p) or fnmatch.fnmatchcase(leaf, p) for p in patterns)


def find_linears(model: nn.Module, skip: Iterable[str] | None = DEFAULT_SKIP,
                 include: Iterable[str] | None = None) -> dict[str, nn.Linear]:
    """The model's ``nn.Linear`` layers by qualified name, in execution-like (registration) order.

    ``skip``: glob patterns matched against the full name or its last part (default: the LM
    head and embeddings); ``include``: if given, only names matching one of these patterns.
    Raises a ValueError when nothing is left, saying what was found.
    """
    skip = tuple(skip or ())
    all_linear = {n: m for n, m in model.named_modules() if isinstance(m, nn.Linear)}
    chosen = {n: m for n, m in all_linear.items()
              if not _matches(n, skip) and (include is None or _matches(n, tuple(include)))}
    if not chosen:
        if not all_linear:
            raise ValueError(
                f"{type(model).__name__} has no nn.Linear layers to quantize; slmlab.quant works on models "
                "built of torch.nn.Linear (TinyLM, transformers Llama/Qwen/SmolLM models, ...)."
            )
        raise ValueError(
            f"no nn.Linear layer of {type(model).__name__} is left after skip={list(skip)} and include="
            f"{None if include is None else list(include)}; the model's linear layers are {list(all_linear)[:8]}"
            f"{' ...' if len(all_linear) > 8 else ''}."
        )
    return chosen


def get_module(model: nn.Module, name: str) -> nn.Module:
    return model.get_submodule(name)


def set_module(model: nn.Module, name: str, new: nn.Module) -> None:
    """Replace the sub-module called ``name`` (e.g. ``blocks.0.attn.q_proj``) by ``new``."""
    parent_name, _, leaf = name.rpartition(".")
    parent = model.get_submodule(parent_name) if parent_name else model
    setattr(parent, leaf, new)


def find_blocks(model: nn.Module) -> tuple[str, nn.ModuleList] | None:
    """The ``nn.ModuleList`` of transformer blocks: the one containing the most ``nn.Linear`` layers.

    ``("blocks", model.blocks)`` for TinyLM, ``("model.layers", ...)`` for a transformers Llama; None if
    the model has no ModuleList with linear layers (then methods fall back to whole-model passes)."""
    best, best_count = None, 0
    for name, mod in model.named_modules():
        if isinstance(mod, nn.ModuleList) and len(mod) > 0:
            count = sum(isinstance(m, nn.Linear) for m in mod.modules())
            if count > best_count:
                best, best_count = (name, mod), count
    return best


def is_transformers_model(model: nn.Module) -> bool:
    """True for a transformers ``PreTrainedModel`` (checked without importing transformers)."""
    import sys

    if "transformers" not in sys.modules:  # a transformers model cannot exist before the import
        return False
    from transformers import PreTrainedModel

    return isinstance(model, PreTrainedModel)


def model_forward(model: nn.Module, batch: torch.Tensor) -> torch.Tensor:
    """Logits of a causal LM for token ids (B, T): TinyLM's ``model(ids)`` or a transformers
    model's ``model(input_ids=ids, use_cache=False).logits``; any other module: ``model(batch)``."""
    if is_transformers_model(model):
        return model(input_ids=batch, use_cache=False).logits
    out = model(batch)
    return out.logits if hasattr(out, "logits") else out


def model_device(model: nn.Module) -> torch.device:
    for t in list(model.parameters()) + list(model.buffers()):
        return t.device
    return torch.device("cpu")


def model_nbytes(model: nn.Module) -> int:
    """Bytes of all parameters and buffers of ``model`` (a tensor shared by two names counts once)."""
    seen, total = set(), 0
    for t in list(model.parameters()) + list(model.buffers()):
        key = (t.data_ptr(), t.numel(), t.dtype)
        if key in seen or t.numel() == 0:
            continue
        seen.add(key)
        total += t.numel() * t.element_size()
    return total


def module_nbytes(module: nn.Module) -> int:
    """Bytes of one module's own parameters and buffers."""
    return model_nbytes(module)


# ----------------------------------------------------------------------------- sequential runner
class _StopForward(Exception):
    pass


def _hidden(args: tuple, kwargs: dict) -> torch.Tensor:
    if args and torch.is_tensor(args[0]):
        return args[0]
    if "hidden_states" in kwargs:
        return kwargs["hidden_states"]
    raise TypeError("cannot find the hidden-state input of the first block (first positional argument or "
                    "`hidden_states=`); use a model whose blocks take the hidden states first.")


def _with_hidden(args: tuple, kwargs: dict, h: torch.Tensor) -> tuple[tuple, dict]:
    if args and torch.is_tensor(args[0]):
        return (h,) + tuple(args[1:]), kwargs
    return args, {**kwargs, "hidden_states": h}


@torch.no_grad()
def capture_block_inputs(model: nn.Module, blocks: nn.ModuleList, windows: torch.Tensor,
                         batch_size: int = 8) -> list[tuple[tuple, dict]]:
    """Run the model on ``windows`` up to its first block and keep that block's inputs
    (args, kwargs) for every batch (the "catcher" of the GPTQ reference code)."""
    inputs: list[tuple[tuple, dict]] = []

    def hook(module, args, kwargs):
        inputs.append((tuple(args), dict(kwargs)))
        raise _StopForward

    handle = blocks[0].register_forward_pre_hook(hook, with_kwargs=True)
    try:
        for batch in windows.split(batch_size):
            try:
                model_forward(model, batch.to(model_device(model)))
            except _StopForward:
                pass
    finally:
        handle.remove()
    return inputs


@torch.no_grad()
def run_block(block: nn.Module, inputs: list[tuple[tuple, dict]]) -> list[torch.Tensor]:
    """Outputs (hidden states) of ``block`` for each cached input."""
    outs = []
    for args, kwargs in inputs:
        out = block(*args, **kwargs)
        outs.append(out[0] if isinstance(out, (tuple, list)) else out)
    return outs


@torch.no_grad()
def run_blocks(model: nn.Module, windows: torch.Tensor, targets: dict[str, nn.Linear],
               process: Callable[[dict[str, nn.Linear], Callable[[], None]], None],
               batch_size: int = 8, propagate_quantized: bool = True) -> None:
    """Calibrate ``targets`` one transformer block at a time.

    For each block, ``process(layers, run)`` receives the block's target layers (name ->
    module) and a function ``run()`` that feeds the calibration inputs through the block
    (the caller's forward hooks collect statistics during ``run``); ``process`` then modifies
    the layers in place. The block's outputs, computed after ``process`` when
    ``propagate_quantized`` (GPTQ: later layers see earlier layers' quantization error) or
    before it (AWQ: inputs of the float model), become the next block's inputs.
    Targets outside the blocks (or all targets, for a model without a block list) are then
    calibrated with whole-model passes.
    """
    found = find_blocks(model)
    remaining = dict(targets)
    if found is not None:
        prefix, blocks = found
        inputs = capture_block_inputs(model, blocks, windows, batch_size)
        for i, block in enumerate(blocks):
            block_prefix = f"{prefix}.{i}." if prefix else f"{i}."
            layers = {n: m for n, m in remaining.items() if n.startswith(block_prefix)}
            for n in layers:
                remaining.pop(n)
            if not propagate_quantized:
                outs = run_block(block, inputs)
            if layers:
                process(layers, lambda: run_block(block, inputs))
            if propagate_quantized:
                outs = run_block(block, inputs)
            inputs = [_with_hidden(a, k, h) for (a, k), h in zip(inputs, outs)]
        del inputs
    if remaining:
        def run_all():
            for batch in windows.split(batch_size):
                model_forward(model, batch.to(model_device(model)))

        # layers outside the block list, one at a time in registration order (each sees the previous ones quantized)
        for name, mod in list(remaining.items()):
            process({name: mod}, run_all)
