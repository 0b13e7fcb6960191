"""Data-parallel training under ``torchrun``: which process this is, its device, and averaging.

``torchrun --nproc_per_node=W`` starts ``W`` copies of the same program and tells each its
``RANK`` and ``WORLD_SIZE`` through the environment. :func:`~slmlab.train.fit` reads them
here, joins the process group (NCCL on CUDA, gloo on CPU), and wraps the model in
``DistributedDataParallel``, which averages the gradients of the ``W`` processes in
``backward``. Each process trains on its own slice of the same global batch, so ``W``
processes compute the gradient of one process with ``W`` times the batch.
"""

from __future__ import annotations

import os

import torch
import torch.distributed as dist

from ..utils import pick_device


def dist_info() -> tuple[int, int, int]:
    """``(rank, world_size, local_rank)`` of this process: ``(0, 1, 0)`` outside ``torchrun``."""
    if "RANK" in os.environ and "WORLD_SIZE" in os.environ and int(os.environ["WORLD_SIZE"]) > 1:
        return (
            int(os.environ["RANK"]),
            int(os.environ["WORLD_SIZE"]),
            int(os.environ.get("LOCAL_RANK", 0)),
        )
    return 0, 1, 0


def train_device(requested: str | None, world: int, local_rank: int) -> torch.device:
    """The device a process trains on: the one asked for (else the best available) in a single
    process; ``cuda:LOCAL_RANK`` under ``torchrun`` with GPUs; CPU under ``torchrun`` on a Mac
    (gloo has no MPS support)."""
    if world > 1 and torch.cuda.is_available():
        return torch.device(f"cuda:{local_rank}")
    device = pick_device(requested)
    return torch.device("cpu") if world > 1 and device.type == "mps" else device


def init_process_group(world: int, device: torch.device) -> None:
    """Join the ``torchrun`` process group (once); nothing to do in a single process."""
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
    if world > 1 and device.type == "cuda":
        torch.cuda.set_device(device)


def mean_over_processes(values: list[float], world: int, device: torch.device) -> list[float]:
    """The mean of each value over the ``world`` processes (the values unchanged in one process)."""
    if world == 1 or not values:
        return values
    t = torch.tensor(values, device=device)
    dist.all_reduce(t)
    return [v / world for v in t.tolist()]
