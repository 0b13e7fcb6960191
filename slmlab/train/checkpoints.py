"""Training checkpoints: model and optimizer state in safetensors plus ``state.json``, written as
a whole directory or not at all, so an interrupted run resumes exactly where it stopped.

A model slmlab can save (a TinyLM) is written with ``save_pretrained``, so a checkpoint is also a
model directory; any other module (a transformers model) as its ``state_dict`` in
``model.safetensors`` (a shared weight once), enough to resume into the same module."""

from __future__ import annotations

import json
from pathlib import Path

import torch

from ..checkpoint import (
    CheckpointError,
    _tied_names,
    load_tensors,
    load_weights,
    save_pretrained,
    save_tensors,
    write_dir_atomically,
)
from ..utils import atomic_write_json


def _optimizer_tensors(opt: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], dict]:
    sd = opt.state_dict()
    tensors = {}
    for pid, state in sd["state"].items():
        for key, val in state.items():
            tensors[f"{pid}.{key}"] = val if torch.is_tensor(val) else torch.tensor(val)
    return tensors, {"param_groups": sd["param_groups"]}


def _load_optimizer(
    opt: torch.optim.Optimizer, tensors: dict[str, torch.Tensor], meta: dict
) -> None:
    state: dict[int, dict] = {}
    for name, val in tensors.items():
        pid, key = name.split(".", 1)
        state.setdefault(int(pid), {})[key] = val
    opt.load_state_dict({"state": state, "param_groups": meta["param_groups"]})


def _save_model(model: torch.nn.Module, directory: Path, tokenizer) -> None:
    if hasattr(model, "model_type") and hasattr(getattr(model, "config", None), "to_dict"):
        save_pretrained(model, directory, tokenizer)
        return
    tied = _tied_names(model)
    weights = {k: v for k, v in model.state_dict().items() if k not in tied}
    save_tensors(weights, directory / "model.safetensors")
    if tokenizer is not None and hasattr(tokenizer, "save"):
        tokenizer.save(directory / "tokenizer.json")


def save_checkpoint(
    out_dir,
    model,
    opt,
    step: int,
    run_config: dict | None = None,
    tokenizer=None,
    history: list[dict] = (),
    tokens: int | None = None,
) -> Path:
    """``out_dir/checkpoint``: model + optimizer (safetensors) and ``state.json`` (the step, the
    run's description, the log so far and the tokens trained on); written as a whole or not at
    all."""
    opt_tensors, opt_meta = _optimizer_tensors(opt)
    state = {
        "step": step,
        "run_config": run_config,
        "optimizer": opt_meta,
        "history": list(history),
    }
    if tokens is not None:
        state["tokens"] = tokens

    def fill(tmp: Path):
        _save_model(model, tmp, tokenizer)
        save_tensors(opt_tensors, tmp / "optimizer.safetensors")
        atomic_write_json(tmp / "state.json", state)

    return write_dir_atomically(Path(out_dir) / "checkpoint", fill)


def load_checkpoint(ckpt_dir, model, opt) -> dict:
    """Fill ``model`` and ``opt`` from a checkpoint directory; returns its ``state.json`` (raises
    CheckpointError, before touching the model, when the state is missing or corrupt)."""
    ckpt_dir = Path(ckpt_dir)
    state_path = ckpt_dir / "state.json"
    if not state_path.is_file():
        raise CheckpointError(
            f"missing {state_path}: {ckpt_dir} is not a complete training checkpoint"
        )
    try:
        state = json.loads(state_path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise CheckpointError(f"{state_path} is corrupt ({e})") from None
    opt_tensors = load_tensors(
        ckpt_dir / "optimizer.safetensors"
    )  # read every file before changing anything
    load_weights(model, ckpt_dir)
    _load_optimizer(opt, opt_tensors, state["optimizer"])
    return state
