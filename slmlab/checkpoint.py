"""Saving and loading models the transformers way: a directory with ``config.json`` and
``model.safetensors`` (plus ``tokenizer.json`` when given). Every file is written atomically
and every load says clearly what is missing or wrong."""
from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from .model import TinyLM, TinyLMConfig
from .utils import atomic_path, atomic_write_json


class CheckpointError(RuntimeError):
    """A checkpoint file is missing, truncated, or does not match its config."""


def save_tensors(tensors: dict[str, torch.Tensor], path, metadata: dict[str, str] | None = None) -> None:
    """safetensors ``save_file`` through a temporary file (shared weights are stored once per name)."""
    tensors = {k: v.detach().contiguous().cpu().clone() for k, v in tensors.items()}
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata=metadata)


def load_tensors(path) -> dict[str, torch.Tensor]:
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"missing checkpoint file {path}")
    try:
        return load_file(str(path))
    except (SafetensorError, OSError, ValueError) as e:
        raise CheckpointError(
            f"{path} is not a readable safetensors file ({e}); it may be truncated or corrupt — "
            "re-download it or re-create it (python -m slmlab train CONFIG)."
        ) from None


def save_pretrained(model: TinyLM, directory, tokenizer=None, extra: dict | None = None) -> Path:
    """Write ``config.json``, ``model.safetensors`` (and ``tokenizer.json``) into ``directory``."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    sd = model.state_dict()
    if model.config.tie_embeddings:
        sd = {k: v for k, v in sd.items() if k != "lm_head.weight"}  # stored once, re-tied on load
    save_tensors(sd, directory / "model.safetensors", metadata={"format": "pt", "slmlab": "TinyLM"})
    atomic_write_json(directory / "config.json", {"model_type": "slmlab-tinylm", **model.config.to_dict(), **(extra or {})})
    if tokenizer is not None:
        tokenizer.save(directory / "tokenizer.json")
    return directory


def load_config(directory) -> TinyLMConfig:
    path = Path(directory) / "config.json"
    if not path.is_file():
        raise CheckpointError(f"missing {path}: not a TinyLM directory written by save_pretrained")
    try:
        d = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise CheckpointError(f"{path} is not valid JSON ({e})") from None
    d.pop("model_type", None)
    return TinyLMConfig.from_dict(d)


def load_pretrained(directory, device=None, dtype: torch.dtype | None = None) -> TinyLM:
    """The TinyLM saved in ``directory``; raises CheckpointError on missing/corrupt/mismatched files."""
    directory = Path(directory)
    if not directory.is_dir():
        raise CheckpointError(f"no model directory at {directory}")
    config = load_config(directory)
    sd = load_tensors(directory / "model.safetensors")
    if config.tie_embeddings:
        sd.setdefault("lm_head.weight", sd.get("embed.weight"))
    model = TinyLM(config)
    expected = model.state_dict()
    problems = [f"missing {k}" for k in expected if k not in sd]
    problems += [f"unexpected {k}" for k in sd if k not in expected]
    problems += [f"{k}: shape {tuple(sd[k].shape)} != {tuple(v.shape)}" for k, v in expected.items()
                 if k in sd and sd[k].shape != v.shape]
    if problems:
        raise CheckpointError(f"{directory}/model.safetensors does not match its config.json: " + "; ".join(problems[:5]))
    model.load_state_dict(sd)
    if dtype is not None:
        model = model.to(dtype)
    return model.to(device or "cpu").eval()


def write_dir_atomically(directory, fill) -> Path:
    """Create ``directory`` by calling ``fill(tmp_dir)`` on a temporary sibling and renaming it.

    A crash inside ``fill`` leaves no partial directory behind."""
    directory = Path(directory)
    directory.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=directory.parent, prefix=f".{directory.name}.", suffix=".tmp"))
    try:
        fill(tmp)
        os.chmod(tmp, 0o755)
        if directory.exists():
            old = directory.with_name(f".{directory.name}.old")
            shutil.rmtree(old, ignore_errors=True)
            os.replace(directory, old)
            os.replace(tmp, directory)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, directory)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return directory
