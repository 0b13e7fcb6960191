"""Training checkpoints: model and optimizer state in safetensors plus ``state.json``, written as
a whole directory or not at all, so an interrupted run resumes exactly where it stopped."""
from __future__ import annotations

import json
from pathlib import Path

import torch

from ..checkpoint import CheckpointError, load_tensors, load_weights, save_pretrained, save_tensors, write_dir_atomically
from ..utils import atomic_write_json


def _optimizer_tensors(opt: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], dict]:
    sd = opt.state_dict()
    tensors = {}
    for pid, state in sd["state"].items():
        for key, val in state.items():
            tensors[f"{pid}.{key}"] = val if torch.is_tensor(val) else torch.tensor(val)
    return tensors, {"param_groups": sd["param_groups"]}


def _load_optimizer(opt: torch.optim.Optimizer, tensors: dict[str, torch.Tensor], meta: dict) -> None:
    state: dict[int, dict] = {}
    for name, val in tensors.items():
        pid, key = name.split(".", 1)
        state.setdefault(int(pid), {})[key] = val
    opt.load_state_dict({"state": state, "param_groups": meta["param_groups"]})


def save_checkpoint(out_dir, model, opt, step: int, run_config: dict, tokenizer, history: list[dict]) -> Path:
    """``out_dir/checkpoint``: model + optimizer (safetensors), state.json; written as a whole or not at all."""
    opt_tensors, opt_meta = _optimizer_tensors(opt)

    def fill(tmp: Path):
        save_pretrained(model, tmp, tokenizer)
        save_tensors(opt_tensors, tmp / "optimizer.safetensors")
        atomic_write_json(tmp / "state.json", {"step": step, "run_config": run_config, "optimizer": opt_meta,
                                                "history": history})

    return write_dir_atomically(Path(out_dir) / "checkpoint", fill)


def load_checkpoint(ckpt_dir, model, opt) -> dict:
    ckpt_dir = Path(ckpt_dir)
    state_path = ckpt_dir / "state.json"
    if not state_path.is_file():
        raise CheckpointError(f"missing {state_path}: {ckpt_dir} is not a complete training checkpoint")
    try:
        state = json.loads(state_path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise CheckpointError(f"{state_path} is corrupt ({e})") from None
    load_weights(model, ckpt_dir)
    _load_optimizer(opt, load_tensors(ckpt_dir / "optimizer.safetensors"), state["optimizer"])
    return state
