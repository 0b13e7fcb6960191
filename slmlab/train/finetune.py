"""A short fine-tune on a tensor of token windows: what QAT and recovery after pruning run.

Step ``s`` trains on ``batch_size`` windows drawn at random (the ``s``-th draw of a generator
seeded with ``seed``), with :func:`~slmlab.train.fit`: AdamW without weight decay, ``warmup``
steps of linear warm-up then cosine decay to 10% of ``lr``, gradients clipped to norm 1, on the
device the model is on.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from ..lm import model_device
from .config import TrainConfig
from .loop import fit
from .losses import causal_lm_loss


def check_finetune_args(steps: int, batch_size: int, warmup: int, lr: float) -> None:
    """Clear errors for a run that cannot be: negative steps, an empty batch, a warm-up longer
    than the run."""
    if steps < 0 or batch_size < 1:
        raise ValueError(
            f"a fine-tune needs steps >= 0 and batch_size >= 1, got steps={steps}, "
            f"batch_size={batch_size}"
        )
    if steps and not 0 <= warmup <= steps:
        raise ValueError(
            f"a warm-up of {warmup} steps is longer than the run (steps={steps}): the learning "
            f"rate would never reach lr={lr}; pass 0 <= warmup <= steps"
        )


def finetune_on_windows(
    model: nn.Module,
    windows: torch.Tensor,
    steps: int,
    batch_size: int = 8,
    lr: float = 3e-4,
    warmup: int = 10,
    seed: int = 0,
    loss_fn=causal_lm_loss,
    progress: bool = False,
    log_every: int = 0,
    desc: str = "fine-tune",
) -> list[float]:
    """Train ``model`` in place for ``steps`` steps on ``windows`` (N, T); returns the training
    loss of every step. ``log_every`` prints the loss every that many steps. Torch's global
    random state is left as it was (``fit`` seeds it every step for dropout)."""
    check_finetune_args(steps, batch_size, warmup, lr)
    losses: list[float] = []
    if not steps:
        return losses
    n = windows.shape[0]
    gen = torch.Generator().manual_seed(seed)
    picks = [torch.randint(0, n, (min(batch_size, n),), generator=gen) for _ in range(steps)]
    device = model_device(model)
    config = TrainConfig(
        batch_size=min(batch_size, n),
        seq_len=windows.shape[1] - 1,
        max_steps=steps,
        lr=lr,
        min_lr=0.1 * lr,
        warmup_steps=warmup,
        schedule="cosine",
        weight_decay=0.0,
        beta1=0.9,
        beta2=0.95,
        grad_clip=1.0,
        eval_every=0,
        log_every=1,
        seed=seed,
        device=str(device),
        progress=progress,
    )

    def record(r: dict) -> None:
        losses.append(r["loss"])
        step = r["step"] - 1
        if log_every and (step % log_every == 0 or step == steps - 1):
            print(f"step {step:4d}  loss {r['loss']:.4f}  ({r['elapsed_s']:.0f}s)")

    with torch.random.fork_rng(devices=[device.index or 0] if device.type == "cuda" else []):
        fit(
            model,
            lambda step: windows[picks[step]],
            loss_fn,
            config,
            callback=record,
            progress_kw={"desc": desc, "leave": False},
        )
    return losses
