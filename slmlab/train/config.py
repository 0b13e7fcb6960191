"""A training run's options (:class:`TrainConfig`) and its learning-rate schedule
(:func:`lr_at`)."""

from __future__ import annotations

import math
from dataclasses import dataclass, fields


@dataclass
class TrainConfig:
    """The ``train`` section of a run config. :func:`~slmlab.train.fit` reads the schedule,
    optimizer, accumulation, clipping, precision, logging, checkpoint and device options;
    ``batch_size`` and ``seq_len`` describe the batches (pre-training draws them with
    :func:`~slmlab.train.get_batch`; QAT sets them from its windows)."""

    out_dir: str | None = None  # None: keep everything in memory (notebooks)
    batch_size: int = 16  # sequences per process per micro-step
    seq_len: int = 256
    grad_accum: int = 1
    max_steps: int = 1000
    lr: float = 3e-3
    min_lr: float = 3e-4
    warmup_steps: int = 100
    schedule: str = "cosine"  # "cosine" | "wsd" (warm-up, stable, decay) | "constant"
    decay_frac: float = 0.2  # WSD: the last fraction of steps that decays
    weight_decay: float = 0.1
    beta1: float = 0.9
    beta2: float = 0.95
    grad_clip: float = 1.0
    eval_every: int = 200
    eval_batches: int = 20
    save_every: int = 0  # 0: only at the end
    log_every: int = 10
    seed: int = 0
    dtype: str = "float32"  # or "bfloat16" (autocast)
    device: str | None = None
    progress: bool = True

    def __post_init__(self):
        self.validate()

    def validate(self) -> None:
        """Raise ValueError on an option out of range (run again by :func:`~slmlab.train.fit`, as a
        dataclass can be changed after it was made).

        A warm-up longer than ``max_steps`` is allowed: the run then covers only the first steps of
        its warm-up (a one-step check of a longer run's configuration, as notebook 21 does)."""
        if self.schedule not in ("cosine", "wsd", "constant"):
            raise ValueError(
                f"train.schedule={self.schedule!r} is not one of 'cosine', 'wsd', 'constant'"
            )
        if self.dtype not in ("float32", "bfloat16"):
            raise ValueError(f"train.dtype={self.dtype!r} is not 'float32' or 'bfloat16'")
        for name in ("batch_size", "seq_len", "grad_accum", "max_steps"):
            if getattr(self, name) <= 0:
                raise ValueError(f"train.{name} must be positive, got {getattr(self, name)}")
        if self.warmup_steps < 0:
            raise ValueError(f"train.warmup_steps must be >= 0, got {self.warmup_steps}")
        if not 0 < self.decay_frac <= 1:
            raise ValueError(f"train.decay_frac must be in (0, 1], got {self.decay_frac}")

    @classmethod
    def from_dict(cls, d: dict) -> TrainConfig:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(
                f"Unknown train option(s) {unknown}; known options are {sorted(known)}."
            )
        return cls(**d)


def lr_at(step: int, c: TrainConfig) -> float:
    """Learning rate at ``step``: linear warm-up, then cosine, WSD or constant."""
    if step < c.warmup_steps:
        return c.lr * (step + 1) / c.warmup_steps
    if c.schedule == "constant":
        return c.lr
    if c.schedule == "wsd":
        decay_start = int(c.max_steps * (1 - c.decay_frac))
        if step < decay_start:
            return c.lr
        frac = (step - decay_start) / max(1, c.max_steps - decay_start)
        return c.lr + (c.min_lr - c.lr) * min(1.0, frac)
    frac = min(1.0, (step - c.warmup_steps) / max(1, c.max_steps - c.warmup_steps))
    return c.min_lr + 0.5 * (c.lr - c.min_lr) * (1 + math.cos(math.pi * frac))
