"""Structured pruning: remove whole FFN neurons or whole blocks, so that the shapes really shrink.

Unstructured zeros need a sparse kernel to get faster (:mod:`slmlab.prune.sparse`); a model with
fewer neurons or fewer blocks is simply a smaller dense model, faster in every runtime.

* **FFN neurons.** Neuron ``j`` of a (Swi)GLU FFN is row ``j`` of ``gate_proj`` and ``up_proj``
  and column ``j`` of ``down_proj``; removing it removes all three. Scored by its weights alone
  (``"magnitude"``: the norms of its rows and column) or by what it contributes on calibration
  data (``"activation"``: ``‖down[:, j]‖ · sqrt(mean h_j²)``, with ``h`` the input of
  ``down_proj`` — Wanda's score summed over a neuron's output column, as FLAP and Wanda-sp do).
  Every block keeps the same number of neurons, so the result is one config (``d_ff`` /
  ``intermediate_size``) that ``save_pretrained`` writes and ``from_pretrained`` reads.
* **Blocks (depth).** ShortGPT's block influence, ``1 - cos(h_in, h_out)`` averaged over
  calibration tokens, says how much a block changes the hidden state; the blocks that change it
  least are removed.

Both work on TinyLM and on transformers Llama-family models (``mlp.gate_proj`` ... and
``config.intermediate_size`` / ``num_hidden_layers``).
"""

from __future__ import annotations

import copy

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..calibration import as_windows, collect_input_stats
from ..lm import is_transformers_model, logits, model_device
from ..surgery import find_blocks
from .masks import check_sparsity

NEURON_SCORES = ("magnitude", "activation", "random")


def _ffns(model: nn.Module) -> dict[str, nn.Module]:
    """The FFN of every block: the module holding ``up_proj`` and ``down_proj`` (and
    ``gate_proj``) as ``nn.Linear`` layers, by qualified name."""
    found = {
        name: mod
        for name, mod in model.named_modules()
        if isinstance(getattr(mod, "up_proj", None), nn.Linear)
        and isinstance(getattr(mod, "down_proj", None), nn.Linear)
    }
    if not found:
        raise ValueError(
            f"{type(model).__name__} has no FFN with up_proj and down_proj linear layers (TinyLM "
            "and Llama-family models have them); a mixture of experts or a recurrent mixer has "
            "no single FFN to prune."
        )
    widths = {m.up_proj.out_features for m in found.values()}
    if len(widths) > 1:
        raise ValueError(f"the FFNs have different widths {sorted(widths)}; prune uniform FFNs.")
    return found


def _parts(ffn: nn.Module) -> list[str]:
    """The names of the FFN's layers that have a row per neuron: ``up_proj`` (and ``gate_proj``)."""
    return [n for n in ("up_proj", "gate_proj") if isinstance(getattr(ffn, n, None), nn.Linear)]


@torch.no_grad()
def neuron_scores(
    model: nn.Module, score: str = "activation", calib=None, batch_size: int = 8, seed: int = 0
) -> dict[str, torch.Tensor]:
    """Importance of every FFN neuron, by FFN name: a vector of ``d_ff`` scores each."""
    if score not in NEURON_SCORES:
        raise ValueError(f"unknown neuron score {score!r}; choose one of {NEURON_SCORES}.")
    ffns = _ffns(model)
    if score == "random":
        gen = torch.Generator().manual_seed(seed)
        return {n: torch.rand(f.up_proj.out_features, generator=gen) for n, f in ffns.items()}
    out = {}
    for name, f in ffns.items():
        s = f.down_proj.weight.float().norm(dim=0)
        if score == "magnitude":
            for part in _parts(f):
                s = s * getattr(f, part).weight.float().norm(dim=1)
        out[name] = s
    if score == "activation":
        windows = as_windows(calib)
        downs = {n: f.down_proj for n, f in ffns.items()}
        device = model_device(model)

        def run():
            for batch in windows.split(batch_size):
                logits(model, batch.to(device))

        stats = collect_input_stats(downs, run, hessian=False, sqmean=True)
        out = {n: out[n] * stats[n].sqmean.sqrt() for n in ffns}
    return out


def _shrink_linear(lin: nn.Linear, rows=None, cols=None) -> nn.Linear:
    w = lin.weight
    w = w if rows is None else w[rows]
    w = w if cols is None else w[:, cols]
    new = nn.Linear(w.shape[1], w.shape[0], bias=lin.bias is not None)
    new = new.to(device=w.device, dtype=w.dtype)
    new.weight.copy_(w)
    if lin.bias is not None:
        new.bias.copy_(lin.bias if rows is None else lin.bias[rows])
    return new


def _set_config(model: nn.Module, **values) -> None:
    config = model.config
    names = {
        "d_ff": "intermediate_size" if is_transformers_model(model) else "d_ff",
        "n_layer": "num_hidden_layers" if is_transformers_model(model) else "n_layer",
    }
    for key, value in values.items():
        setattr(config, names[key], value)


@torch.no_grad()
def prune_ffn_neurons(
    model: nn.Module,
    sparsity: float,
    score: str | dict = "activation",
    calib=None,
    batch_size: int = 8,
    seed: int = 0,
) -> nn.Module:
    """A copy of ``model`` with ``round(sparsity * d_ff)`` neurons removed from every FFN: the
    lowest :func:`neuron_scores` of kind ``score``, or of the given scores (a dict of FFN name ->
    vector of ``d_ff`` scores). Its config's FFN width says the new size."""
    check_sparsity(sparsity)
    ffns = _ffns(model)
    width = next(iter(ffns.values())).up_proj.out_features
    keep = width - round(sparsity * width)
    if keep < 1:
        raise ValueError(f"sparsity={sparsity} would remove every one of the {width} neurons.")
    if isinstance(score, dict):  # the caller's own scores, one vector per FFN
        scores = score
        bad = [n for n in ffns if n not in scores or tuple(scores[n].shape) != (width,)]
        if bad or set(scores) - set(ffns):
            raise ValueError(
                f"scores must map every FFN ({list(ffns)[:3]} ...) to a vector of its {width} "
                f"neurons; wrong or missing: {bad[:3] or sorted(set(scores) - set(ffns))[:3]}."
            )
    else:
        scores = neuron_scores(model, score, calib, batch_size, seed)
    out = copy.deepcopy(model)
    for name, ffn in _ffns(out).items():
        kept = scores[name].topk(keep).indices.sort().values.to(ffn.down_proj.weight.device)
        for part in _parts(ffn):
            setattr(ffn, part, _shrink_linear(getattr(ffn, part), rows=kept))
        ffn.down_proj = _shrink_linear(ffn.down_proj, cols=kept)
    _set_config(out, d_ff=keep)
    label = score if isinstance(score, str) else "given"
    out.prune_info = {"structured": "ffn_neurons", "score": label, "d_ff": (width, keep)}
    return out


@torch.no_grad()
def block_influence(model: nn.Module, calib, batch_size: int = 8) -> list[float]:
    """ShortGPT's block influence of every block: ``1 - cos(input, output)`` of its hidden
    states, averaged over the calibration tokens (0: the block changes nothing)."""
    windows = as_windows(calib)
    found = find_blocks(model)
    if found is None:
        raise ValueError(f"{type(model).__name__} has no list of transformer blocks.")
    blocks = found[1]
    sums = [0.0] * len(blocks)
    count = [0]

    def hook(i):
        def fn(module, args, kwargs, output):
            h_in = args[0] if args else kwargs["hidden_states"]
            h_out = output[0] if isinstance(output, (tuple, list)) else output
            cos = F.cosine_similarity(h_in.float(), h_out.float(), dim=-1)
            sums[i] += float((1 - cos).sum())
            if i == 0:
                count[0] += cos.numel()

        return fn

    handles = [b.register_forward_hook(hook(i), with_kwargs=True) for i, b in enumerate(blocks)]
    try:
        for batch in windows.split(batch_size):
            logits(model, batch.to(model_device(model)))
    finally:
        for h in handles:
            h.remove()
    return [s / count[0] for s in sums]


@torch.no_grad()
def drop_blocks(model: nn.Module, drop) -> nn.Module:
    """A copy of ``model`` without the blocks whose indices are in ``drop`` (the rest keep their
    order); the config's layer count says the new depth."""
    found = find_blocks(model)
    if found is None:
        raise ValueError(f"{type(model).__name__} has no list of transformer blocks.")
    name, blocks = found
    drop = sorted(set(int(i) for i in drop))
    if any(not 0 <= i < len(blocks) for i in drop) or len(drop) >= len(blocks):
        raise ValueError(
            f"cannot drop blocks {drop} of a model with {len(blocks)}: give indices in "
            f"0..{len(blocks) - 1}, and keep at least one."
        )
    if getattr(model.config, "block_repeat", 1) != 1:
        raise ValueError("drop_blocks does not handle block_repeat (shared blocks).")
    out = copy.deepcopy(model)
    old = out.get_submodule(name)
    kept = nn.ModuleList(b for i, b in enumerate(old) if i not in drop)
    parent, _, leaf = name.rpartition(".")
    setattr(out.get_submodule(parent) if parent else out, leaf, kept)
    keep_idx = [i for i in range(len(old)) if i not in drop]
    for new_i, block in enumerate(kept):
        for mod in block.modules():  # transformers' attention indexes the KV cache by layer
            if isinstance(getattr(mod, "layer_idx", None), int):
                mod.layer_idx = new_i
    config = out.config
    if isinstance(getattr(config, "layer_types", None), list):
        config.layer_types = [config.layer_types[i] for i in keep_idx]
    _set_config(out, n_layer=len(kept))
    out.prune_info = {"structured": "blocks", "dropped": drop}
    return out
