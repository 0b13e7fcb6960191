"""The training loop every objective shares: :func:`fit`.

``fit(model, batches, loss_fn, config)`` trains any ``nn.Module`` (a TinyLM, a transformers
causal LM, a QAT model) on the batches ``batches(step)`` gives, minimising
``loss_fn(model, batch) -> (loss, metrics)``. It owns everything a loss should not have to
know about: the learning-rate schedule (:func:`~slmlab.train.lr_at`), bf16 autocast, gradient
accumulation, clipping, data parallelism under ``torchrun``, logging, evaluation, checkpoints,
resumption and the progress bar. Pre-training (:func:`~slmlab.train.train`) and QAT
(:func:`slmlab.quant.qat_finetune`) are two callers; SFT, DPO and distillation are new losses
(:mod:`slmlab.train.losses`) over the same loop.

It is called ``fit`` (as in Keras and scikit-learn: fit a model to data under an objective)
because ``train`` is taken twice over: by the run-config entry point, and by ``nn.Module.train()``,
which only switches dropout on.

Reproducibility: the batch of step ``s`` is ``batches(s)`` and the dropout noise of step ``s`` is
seeded from ``(config.seed, s)``, so nothing depends on the steps before: a run resumed from a
checkpoint follows the same loss trajectory as one never interrupted. Under ``torchrun`` each of
the ``W`` processes trains on its own slice of the same global batch (``batches`` must return
this process's slice: see :func:`~slmlab.train.distributed.dist_info`), so a 2-process run
computes the gradient of the 1-process run with twice the batch.
"""

from __future__ import annotations

import json
import time
import warnings
from collections.abc import Callable
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
import torch.nn as nn
from tqdm.auto import tqdm

from ..lm import eval_mode
from ..utils import atomic_write_json, atomic_write_text
from .checkpoints import load_checkpoint, save_checkpoint
from .config import TrainConfig, lr_at
from .distributed import dist_info, init_process_group, mean_over_processes, train_device
from .losses import LossFn, get_loss


def bf16_supported(device: torch.device) -> bool:
    """Whether ``device`` can run bfloat16 autocast
    (every CPU; CUDA from Ampere on; MPS on macOS 14+)."""
    if device.type == "cpu":
        return True
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    try:
        torch.ones(1, dtype=torch.bfloat16, device=device) + 1
        return True
    except (RuntimeError, TypeError):
        return False


def cpu_has_native_bf16() -> bool | None:
    """Whether this CPU computes bfloat16 matrix products in hardware (the x86 flags
    ``avx512_bf16`` or ``amx_bf16``, read from ``/proc/cpuinfo``); None where that cannot be
    told (not Linux, not x86). Without them PyTorch emulates bfloat16 on the CPU."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            info = f.read()
    except OSError:
        return None
    flags = set()
    for line in info.splitlines():
        if line.startswith("flags"):
            flags.update(line.split(":", 1)[1].split())
    if not flags:  # not an x86 cpuinfo (e.g. ARM lists "Features")
        return None
    return bool({"avx512_bf16", "amx_bf16"} & flags)


def micro_batches(batch, n: int) -> list:
    """``batch`` cut into ``n`` equal micro-batches along the first dimension of every tensor in it
    (a tensor, or tuples, lists and dicts of them; other values go to every micro-batch)."""
    if n == 1:
        return [batch]
    if torch.is_tensor(batch):
        if batch.dim() == 0 or batch.shape[0] % n:
            raise ValueError(
                f"train.grad_accum={n} must divide the number of rows of every tensor in a "
                f"batch, got a tensor of shape {tuple(batch.shape)}"
            )
        return list(batch.split(batch.shape[0] // n))
    if isinstance(batch, (tuple, list)):
        parts = [micro_batches(b, n) for b in batch]
        return [type(batch)(p[i] for p in parts) for i in range(n)]
    if isinstance(batch, dict):
        parts = {k: micro_batches(v, n) for k, v in batch.items()}
        return [{k: v[i] for k, v in parts.items()} for i in range(n)]
    return [batch] * n


def _to(batch, device: torch.device):
    if torch.is_tensor(batch):
        return batch.to(device)
    if isinstance(batch, (tuple, list)):
        return type(batch)(_to(b, device) for b in batch)
    if isinstance(batch, dict):
        return {k: _to(v, device) for k, v in batch.items()}
    return batch


def _n_tokens(batch) -> int | None:
    """The number of entries of the batch's first tensor (its input token ids)."""
    if torch.is_tensor(batch):
        return batch.numel()
    values = (
        batch.values()
        if isinstance(batch, dict)
        else batch
        if isinstance(batch, (tuple, list))
        else ()
    )
    for b in values:
        if (n := _n_tokens(b)) is not None:
            return n
    return None


def _optimizer(model: nn.Module, config: TrainConfig) -> torch.optim.AdamW:
    # weight decay on matrices and embeddings only (not on gains and biases); frozen parameters
    # (a LoRA base, say) are left out entirely
    trainable = [p for p in model.parameters() if p.requires_grad]
    decay = [p for p in trainable if p.dim() >= 2]
    no_decay = [p for p in trainable if p.dim() < 2]
    return torch.optim.AdamW(
        [
            {"params": decay, "weight_decay": config.weight_decay},
            {"params": no_decay, "weight_decay": 0.0},
        ],
        lr=config.lr,
        betas=(config.beta1, config.beta2),
        foreach=True,
    )


def fit(
    model: nn.Module,
    batches: Callable[[int], Any],
    loss_fn: LossFn | str,
    config: TrainConfig,
    *,
    evaluate: Callable[[nn.Module], dict] | None = None,
    callback: Callable[[dict], None] | None = None,
    resume: bool = True,
    stop_at: int | None = None,
    run_config: dict | None = None,
    tokenizer=None,
    progress_kw: dict | None = None,
) -> list[dict]:
    """Train ``model`` in place for ``config.max_steps`` optimizer steps; returns the log records.

    Parameters
    ----------
    model : any ``nn.Module``; only its parameters with ``requires_grad`` are trained (AdamW,
        weight decay on parameters of 2 or more dimensions). It is moved to the training device
        (``config.device``, else the best available) and comes back in the mode it came in.
    batches : ``batches(step)`` -> the batch of that optimizer step for this process (a tensor,
        or tuples, lists, dicts of tensors); a function of ``(seed, step)`` only, so that resumption
        is exact. With ``config.grad_accum = k`` it is cut into ``k`` micro-batches along the
        first dimension, whose gradients add up to the whole batch's.
    loss_fn : ``loss_fn(model, batch) -> (loss, metrics)``, or the name of one in
        :data:`~slmlab.train.losses.LOSSES` (``"causal_lm"``). ``metrics`` (a dict of numbers) are
        averaged over micro-batches and processes and logged.
    config : the schedule (``lr``, ``min_lr``, ``warmup_steps``, ``schedule``, ``decay_frac``),
        optimizer (``weight_decay``, ``beta1``, ``beta2``), ``grad_accum``, ``grad_clip`` (0: none),
        ``dtype`` ("bfloat16": autocast), ``log_every``, ``eval_every``, ``save_every``, ``seed``,
        ``device``, ``progress`` and ``out_dir``. ``batch_size`` and ``seq_len`` are not read here:
        they describe what ``batches`` gives.
    evaluate : ``evaluate(model) -> dict`` of numbers to add to the log record (e.g. ``val_loss``),
        run in eval mode without gradients on log steps that are multiples of ``eval_every``, and
        at the last step.
    callback : called with every log record, as it is made (live plots).
    resume : with ``config.out_dir`` holding a checkpoint, continue from it (``False``: start over).
    stop_at : end at this step, with a checkpoint, as if interrupted there.
    run_config, tokenizer : written into ``out_dir`` (``config.json``; ``tokenizer.json`` in each
        checkpoint) so a run can be resumed and its model used.
    progress_kw : options for the tqdm bar (``desc``, ``leave``).

    A log record (every ``log_every`` steps and at the last) holds ``step``, ``loss`` (the mean
    over the step's batch), ``lr``, ``grad_norm`` (before clipping), ``tokens_per_s``, ``tokens``
    (entries of the input tensors trained on so far), ``elapsed_s``, then the metrics and the
    evaluation. With ``config.out_dir`` set, process 0 appends each record to
    ``out_dir/log.jsonl`` and writes ``out_dir/checkpoint`` (atomically) every ``save_every``
    steps and at the end.

    Every error of the arguments (an unknown loss, an option out of range, bfloat16 on a device
    without it, ``grad_accum`` not dividing the batch, nothing to train) is raised before the
    model is touched.
    """
    loss_fn = get_loss(loss_fn)
    config.validate()
    rank, world, local_rank = dist_info()
    device = train_device(config.device, world, local_rank)
    if config.dtype == "bfloat16" and not bf16_supported(device):
        raise ValueError(
            f"train.dtype='bfloat16' but {device} cannot run bfloat16 autocast; use 'float32'"
        )
    if config.dtype == "bfloat16" and device.type == "cpu" and cpu_has_native_bf16() is False:
        warnings.warn(
            "train.dtype='bfloat16' on a CPU without AVX512-BF16 or AMX: PyTorch emulates "
            "bfloat16 here, and the base config trained about 24x slower than in float32 on "
            "such a CPU (223 against 5,430 tokens/s, measured). Set train.dtype to 'float32'.",
            stacklevel=2,
        )
    if not any(p.requires_grad for p in model.parameters()):
        raise ValueError("the model has no parameters with requires_grad=True: nothing to train")
    first = batches(0)
    micro_batches(first, config.grad_accum)  # raises when grad_accum does not divide the batch

    init_process_group(world, device)
    model.to(device)
    opt = _optimizer(model, config)
    out_dir = Path(config.out_dir) if config.out_dir else None
    step, history, tokens = 0, [], 0
    if out_dir and resume and (out_dir / "checkpoint").exists():
        state = load_checkpoint(out_dir / "checkpoint", model, opt)
        step, history = state["step"], state["history"]
        # a checkpoint from before the count was kept: every step had as many tokens as the first
        tokens = state.get("tokens", step * (_n_tokens(first) or 0) * world)
    ddp_model = model
    if world > 1:
        device_ids = [device.index] if device.type == "cuda" else None
        ddp_model = nn.parallel.DistributedDataParallel(model, device_ids=device_ids)
    if out_dir and rank == 0:
        out_dir.mkdir(parents=True, exist_ok=True)
        if run_config is not None:
            atomic_write_json(out_dir / "config.json", run_config)
        # the log holds exactly the history up to the step we (re)start from
        atomic_write_text(out_dir / "log.jsonl", "".join(json.dumps(r) + "\n" for r in history))

    def log(record):
        history.append(record)
        if out_dir and rank == 0:
            with open(out_dir / "log.jsonl", "a", encoding="utf-8") as f:
                f.write(json.dumps(record) + "\n")
        if callback is not None and rank == 0:
            callback(record)

    bf16 = config.dtype == "bfloat16"
    amp = lambda: torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16)  # noqa: E731
    params = [p for p in model.parameters() if p.requires_grad]
    ga = config.grad_accum
    end = config.max_steps if stop_at is None else min(stop_at, config.max_steps)
    bar = tqdm(
        total=config.max_steps,
        initial=step,
        disable=not config.progress or rank != 0,
        **{"desc": "train", "dynamic_ncols": True, **(progress_kw or {})},
    )
    was_training = model.training
    model.train()
    t0, last_tokens = time.perf_counter(), tokens
    t_start = time.perf_counter() - (history[-1].get("elapsed_s", 0.0) if history else 0.0)
    try:
        while step < end:
            lr = lr_at(step, config)
            for g in opt.param_groups:
                g["lr"] = lr
            torch.manual_seed(
                config.seed * 7_919 + step * world + rank
            )  # dropout noise of this step
            loss_sum, metric_sums = 0.0, {}
            for micro, batch in enumerate(micro_batches(batches(step), ga)):
                batch = _to(batch, device)
                sync = micro == ga - 1 or world == 1
                with ddp_model.no_sync() if not sync else nullcontext(), amp():
                    loss, metrics = loss_fn(ddp_model, batch)
                    loss = loss / ga
                loss.backward()
                loss_sum += loss.item()
                for k, v in metrics.items():
                    metric_sums[k] = metric_sums.get(k, 0.0) + float(v) / ga
                tokens += (_n_tokens(batch) or 0) * world
            if config.grad_clip > 0:
                grad_norm = torch.nn.utils.clip_grad_norm_(params, config.grad_clip).item()
            else:
                grad_norm = float("nan")
            opt.step()
            opt.zero_grad(set_to_none=True)
            step += 1
            bar.update(1)
            loss_sum, *means = mean_over_processes([loss_sum, *metric_sums.values()], world, device)
            if step % config.log_every == 0 or step == config.max_steps:
                dt = time.perf_counter() - t0
                tps = (tokens - last_tokens) / max(dt, 1e-9)
                t0, last_tokens = time.perf_counter(), tokens
                record = {
                    "step": step,
                    "loss": loss_sum,
                    "lr": lr,
                    "grad_norm": grad_norm,
                    "tokens_per_s": tps,
                    "tokens": tokens,
                    "elapsed_s": round(time.perf_counter() - t_start, 2),
                    **dict(zip(metric_sums, means, strict=True)),
                }
                if (
                    evaluate is not None
                    and config.eval_every
                    and (step % config.eval_every == 0 or step == config.max_steps)
                ):
                    with eval_mode(model), torch.no_grad():
                        record.update(evaluate(model))
                    t0 = time.perf_counter()  # evaluation time is not training throughput
                bar.set_postfix(loss=f"{loss_sum:.3f}", tok_s=f"{tps:,.0f}")
                log(record)
            save_now = (config.save_every and step % config.save_every == 0) or step == end
            if out_dir and rank == 0 and save_now:
                save_checkpoint(out_dir, model, opt, step, run_config, tokenizer, history, tokens)
    finally:
        bar.close()
        model.train(was_training)
    if world > 1:
        dist.barrier()
    return history
