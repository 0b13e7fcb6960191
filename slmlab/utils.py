"""Small shared utilities: device choice, seeding, atomic files, project paths."""

from __future__ import annotations

import hashlib
import json
import os
import random
import tempfile
from contextlib import contextmanager
from pathlib import Path

import torch

PROJECT_ROOT = Path(__file__).resolve().parent.parent


def data_dir() -> Path:
    """Where the shipped data lives: $SLMLAB_DATA, else the repository's ``data/``."""
    return Path(os.environ.get("SLMLAB_DATA", PROJECT_ROOT / "data"))


_TRUE = ("1", "ON", "YES", "TRUE")  # how huggingface_hub reads its boolean variables


def hub_offline_reason(kind: str = "hub") -> str | None:
    """Why the Hugging Face hub cannot be used now, or None when it can: HF_HUB_OFFLINE (and, for
    ``kind="datasets"``, HF_DATASETS_OFFLINE) set true the way huggingface_hub reads it, or the
    hub host ($SLMLAB_HUB_HOST, default huggingface.co) not reachable. The one offline check of
    the package: models (slmlab.hf) and corpora (slmlab.data) both ask it."""
    names = ("HF_DATASETS_OFFLINE", "HF_HUB_OFFLINE") if kind == "datasets" else ("HF_HUB_OFFLINE",)
    for var in names:
        if os.environ.get(var, "").strip().upper() in _TRUE:
            return f"{var}={os.environ[var]} is set"
    import socket

    host = os.environ.get("SLMLAB_HUB_HOST", "huggingface.co")
    try:
        socket.create_connection((host, 443), timeout=2.0).close()
    except OSError as e:
        return f"{host}:443 is not reachable ({e.__class__.__name__}: {e})"
    return None


def pick_device(device: str | torch.device | None = None) -> torch.device:
    """The device to run on: the one asked for, else CUDA, else MPS, else CPU."""
    if device is not None:
        return torch.device(device)
    if torch.cuda.is_available():
        return torch.device("cuda")
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def set_seed(seed: int) -> None:
    """Seed Python, NumPy (when installed) and torch so that a run repeats on the same machine."""
    random.seed(seed)
    torch.manual_seed(seed)
    try:
        import numpy as np

        np.random.seed(seed % 2**32)
    except ImportError:  # pragma: no cover
        pass


@contextmanager
def atomic_path(path: str | os.PathLike):
    """Yield a temporary path beside ``path``; on success rename it over ``path``.

    On any error the temporary file is removed and ``path`` is left untouched, so a
    crash never leaves a half-written file behind.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        yield Path(tmp)
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    with atomic_path(path) as tmp:
        Path(tmp).write_text(text, encoding="utf-8")


def atomic_write_json(path: str | os.PathLike, obj) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True) + "\n")


def sha256_file(path: str | os.PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()
