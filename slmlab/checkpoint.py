"""Saving and loading models the transformers way: a directory with ``config.json`` and
``model.safetensors`` (plus ``tokenizer.json`` when given). Every file is written atomically
and every load says clearly what is missing or wrong.

This module knows no model class: it writes any module whose ``config`` has ``to_dict()`` and
fills any module from a directory. Which class a directory holds is the ``model_type`` of its
``config.json``, looked up by :func:`slmlab.models.load_model`. Weights shared by two names (a
tied embedding and LM head) are stored once and re-tied on load."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

import torch
import torch.nn as nn
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from .utils import atomic_path, atomic_write_json, atomic_write_text, sha256_file


class CheckpointError(RuntimeError):
    """A checkpoint file is missing, truncated, or does not match its config."""


def save_tensors(
    tensors: dict[str, torch.Tensor], path, metadata: dict[str, str] | None = None
) -> None:
    """safetensors ``save_file`` through a temporary file
    (shared weights are stored once per name)."""
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


def _tied_names(model: nn.Module) -> dict[str, str]:
    """name -> the first name of the same parameter (for weights shared by several names)."""
    first: dict[int, str] = {}
    tied = {}
    for name, p in model.named_parameters(remove_duplicate=False):
        if id(p) in first:
            tied[name] = first[id(p)]
        else:
            first[id(p)] = name
    return tied


def save_pretrained(model: nn.Module, directory, tokenizer=None, extra: dict | None = None) -> Path:
    """Write ``config.json`` (with the model's ``model_type``), ``model.safetensors`` (a shared
    weight once) and, given a tokenizer, ``tokenizer.json`` into ``directory``."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    tied = _tied_names(model)
    sd = {k: v for k, v in model.state_dict().items() if k not in tied}
    metadata = {"format": "pt", "model_type": model.model_type, "tied": json.dumps(tied)}
    save_tensors(sd, directory / "model.safetensors", metadata=metadata)
    atomic_write_json(
        directory / "config.json",
        {"model_type": model.model_type, **model.config.to_dict(), **(extra or {})},
    )
    if tokenizer is not None:
        tokenizer.save(directory / "tokenizer.json")
    return directory


def read_config(directory) -> dict:
    """The ``config.json`` of a model directory, as a dict (``model_type`` included)."""
    path = Path(directory) / "config.json"
    if not path.is_file():
        raise CheckpointError(f"missing {path}: not a model directory written by save_pretrained")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise CheckpointError(f"{path} is not valid JSON ({e})") from None


def load_weights(model: nn.Module, directory, name: str = "model.safetensors") -> nn.Module:
    """Fill ``model`` with the weights saved in ``directory`` (tied weights stay tied); raises
    CheckpointError when a tensor is missing, unexpected or of another shape."""
    directory = Path(directory)
    sd = load_tensors(directory / name)
    for alias, source in _tied_names(model).items():
        if source in sd:
            sd.setdefault(alias, sd[source])
    expected = model.state_dict()
    problems = [f"missing {k}" for k in expected if k not in sd]
    problems += [f"unexpected {k}" for k in sd if k not in expected]
    problems += [
        f"{k}: shape {tuple(sd[k].shape)} != {tuple(v.shape)}"
        for k, v in expected.items()
        if k in sd and sd[k].shape != v.shape
    ]
    if problems:
        raise CheckpointError(
            f"{directory / name} does not match its config.json: " + "; ".join(problems[:5])
        )
    model.load_state_dict(sd)
    return model


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


# ------------------------------------------------------------------------------ manifests
MANIFEST = "SHA256SUMS"


def read_manifest(folder) -> dict[str, str]:
    """``{relative path: sha256}`` of ``folder/SHA256SUMS`` (``sha256sum``'s format)."""
    path = Path(folder) / MANIFEST
    if not path.is_file():
        raise CheckpointError(f"{path} is missing: cannot verify the files in {folder}")
    entries = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip():
            digest, name = line.split(maxsplit=1)
            entries[name.strip().lstrip("*")] = digest
    return entries


def write_manifest(folder) -> None:
    """Write ``folder/SHA256SUMS`` for every file under ``folder`` (atomically)."""
    folder = Path(folder)
    files = sorted(p for p in folder.rglob("*") if p.is_file() and p.name != MANIFEST)
    lines = [f"{sha256_file(p)}  {p.relative_to(folder).as_posix()}\n" for p in files]
    atomic_write_text(folder / MANIFEST, "".join(lines))
