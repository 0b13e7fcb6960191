"""The training loop: from a notebook (``train(config)``) or a shell (``python -m slmlab train CONFIG``).

A run is described by one JSON-able dict with three sections::

    {"model": {...TinyLMConfig fields...},           # vocab_size may be omitted: taken from the tokenizer
     "data":  {"corpus": "tinytales", "train_chars": 20e6, "val_chars": 2e5, "seed": 0,
               "tokenizer": {"kind": "bpe", "vocab_size": 2048, "train_chars": 4e6}},
     "train": {...TrainConfig fields...}}

``data.text_file`` (one UTF-8 file, split 95/5) replaces the synthetic corpus, and
``data.tokenizer.path`` loads an existing tokenizer instead of training one.

Reproducibility: the batch of step ``s`` and the dropout noise of step ``s`` are functions of
``(seed, s)`` only, so a run resumed from a checkpoint follows the same loss trajectory. Under
``torchrun`` each of the ``W`` processes takes its slice of the same global batch, so a
2-process run computes the gradient of the 1-process run with twice the batch size.
"""
from __future__ import annotations

import json
import os
import time
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch
import torch.distributed as dist
from tqdm.auto import tqdm

from ..checkpoint import save_pretrained
from ..lm import lm_loss
from ..models import TinyLM, TinyLMConfig
from ..utils import atomic_write_json, atomic_write_text, pick_device, set_seed
from .checkpoints import load_checkpoint, save_checkpoint
from .config import TrainConfig, lr_at
from .data import evaluate_loss, get_batch, prepare_data


@dataclass
class TrainResult:
    model: TinyLM
    tokenizer: object
    history: list[dict]
    out_dir: Path | None

    @property
    def final_val_loss(self) -> float | None:
        vals = [h["val_loss"] for h in self.history if "val_loss" in h]
        return vals[-1] if vals else None


def _dist_info():
    if "RANK" in os.environ and "WORLD_SIZE" in os.environ and int(os.environ["WORLD_SIZE"]) > 1:
        return int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"]), int(os.environ.get("LOCAL_RANK", 0))
    return 0, 1, 0


def load_run_config(path) -> dict:
    path = Path(path)
    if path.is_dir():
        path = path / "config.json"
    if not path.is_file():
        raise FileNotFoundError(f"no training config at {path}")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise ValueError(f"{path} is not valid JSON: {e}") from None


def train(run_config: dict, resume: bool = True, data=None, callback: Callable[[dict], None] | None = None,
          stop_at: int | None = None) -> TrainResult:
    """Train a TinyLM as ``run_config`` says; returns the model, tokenizer and the logged history.

    ``data=(tokenizer, train_ids, val_ids)`` skips data preparation (notebooks reuse it);
    ``callback(record)`` is called with every log record (for live plots). With ``train.out_dir``
    set and a checkpoint there, training resumes from it (``resume=False`` starts over).
    ``stop_at`` ends the run early at that step, with a checkpoint, as if it were interrupted."""
    unknown = sorted(set(run_config) - {"model", "data", "train", "name", "description"})
    if unknown:
        raise ValueError(f"Unknown top-level section(s) {unknown}; a run config has 'model', 'data', 'train'")
    tc = TrainConfig.from_dict(dict(run_config.get("train", {})))
    rank, world, local_rank = _dist_info()
    if world > 1 and not dist.is_initialized():
        backend = "nccl" if torch.cuda.is_available() else "gloo"
        dist.init_process_group(backend)
    if world > 1 and torch.cuda.is_available():
        torch.cuda.set_device(local_rank)
    device = pick_device(tc.device if world == 1 or not torch.cuda.is_available() else f"cuda:{local_rank}")
    if world > 1 and device.type == "mps":
        device = torch.device("cpu")

    tokenizer, train_ids, val_ids = data if data is not None else prepare_data(run_config.get("data", {}))
    mdict = dict(run_config.get("model", {}))
    mdict.setdefault("vocab_size", tokenizer.vocab_size)
    mdict.setdefault("block_size", tc.seq_len)
    mconf = TinyLMConfig.from_dict(mdict)
    if mconf.vocab_size < tokenizer.vocab_size:
        raise ValueError(f"model.vocab_size={mconf.vocab_size} < tokenizer vocabulary {tokenizer.vocab_size}")
    if tc.seq_len > mconf.block_size:
        raise ValueError(f"train.seq_len={tc.seq_len} exceeds model.block_size={mconf.block_size}")

    set_seed(tc.seed)
    model = TinyLM(mconf).to(device)
    decay = [p for n, p in model.named_parameters() if p.dim() >= 2]
    no_decay = [p for n, p in model.named_parameters() if p.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": tc.weight_decay},
                             {"params": no_decay, "weight_decay": 0.0}],
                            lr=tc.lr, betas=(tc.beta1, tc.beta2), foreach=True)

    out_dir = Path(tc.out_dir) if tc.out_dir else None
    step, history = 0, []
    if out_dir and resume and (out_dir / "checkpoint").exists():
        state = load_checkpoint(out_dir / "checkpoint", model, opt)
        step, history = state["step"], state["history"]
    ddp_model = model
    if world > 1:
        ddp_model = torch.nn.parallel.DistributedDataParallel(model, device_ids=[local_rank] if device.type == "cuda" else None)
    if out_dir and rank == 0:
        out_dir.mkdir(parents=True, exist_ok=True)
        atomic_write_json(out_dir / "config.json", run_config)
        # the log holds exactly the history up to the step we (re)start from
        atomic_write_text(out_dir / "log.jsonl", "".join(json.dumps(r) + "\n" for r in history))

    amp = lambda: torch.autocast(device.type, dtype=torch.bfloat16, enabled=tc.dtype == "bfloat16")  # noqa: E731
    tokens_per_step = tc.batch_size * tc.seq_len * tc.grad_accum * world
    bar = tqdm(total=tc.max_steps, initial=step, disable=not tc.progress or rank != 0, desc="train", dynamic_ncols=True)
    model.train()
    t0, last_log_step = time.perf_counter(), step
    t_start = time.perf_counter() - (history[-1].get("elapsed_s", 0.0) if history else 0.0)

    def log(record):
        history.append(record)
        if out_dir and rank == 0:
            with open(out_dir / "log.jsonl", "a", encoding="utf-8") as f:
                f.write(json.dumps(record) + "\n")
        if callback is not None and rank == 0:
            callback(record)

    end = tc.max_steps if stop_at is None else min(stop_at, tc.max_steps)
    while step < end:
        lr = lr_at(step, tc)
        for g in opt.param_groups:
            g["lr"] = lr
        torch.manual_seed(tc.seed * 7_919 + step * world + rank)  # dropout noise depends on the step only
        loss_sum = 0.0
        for micro in range(tc.grad_accum):
            x, y = get_batch(train_ids, step * tc.grad_accum + micro, tc.seed, tc.batch_size, tc.seq_len, rank, world)
            x, y = x.to(device), y.to(device)
            sync = micro == tc.grad_accum - 1 or world == 1
            ctx = ddp_model.no_sync() if (world > 1 and not sync) else nullcontext()
            with ctx, amp():
                logits = ddp_model(x)
                loss = lm_loss(logits, y) / tc.grad_accum
            loss.backward()
            loss_sum += loss.item()
        if tc.grad_clip > 0:
            grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), tc.grad_clip).item()
        else:
            grad_norm = float("nan")
        opt.step()
        opt.zero_grad(set_to_none=True)
        step += 1
        bar.update(1)
        if world > 1:
            t = torch.tensor([loss_sum], device=device)
            dist.all_reduce(t)
            loss_sum = t.item() / world
        if step % tc.log_every == 0 or step == tc.max_steps:
            dt = time.perf_counter() - t0
            tps = tokens_per_step * (step - last_log_step) / max(dt, 1e-9)
            t0, last_log_step = time.perf_counter(), step
            record = {"step": step, "loss": loss_sum, "lr": lr, "grad_norm": grad_norm, "tokens_per_s": tps,
                      "tokens": step * tokens_per_step, "elapsed_s": round(time.perf_counter() - t_start, 2)}
            if tc.eval_every and (step % tc.eval_every == 0 or step == tc.max_steps):
                record["val_loss"] = evaluate_loss(model, val_ids, tc.seq_len, tc.eval_batches, tc.batch_size, device)
                t0 = time.perf_counter()  # evaluation time is not training throughput
            bar.set_postfix(loss=f"{loss_sum:.3f}", tok_s=f"{tps:,.0f}")
            log(record)
        if out_dir and rank == 0 and ((tc.save_every and step % tc.save_every == 0) or step == end):
            save_checkpoint(out_dir, model, opt, step, run_config, tokenizer, history)
    bar.close()
    if out_dir and rank == 0:
        save_pretrained(model, out_dir / "model", tokenizer)
    if world > 1:
        dist.barrier()
    return TrainResult(model=model.eval(), tokenizer=tokenizer, history=history, out_dir=out_dir)


def main_train(config_path, out_dir=None, max_steps=None, resume=True) -> TrainResult:
    """Entry point of ``python -m slmlab train CONFIG``."""
    cfg = load_run_config(config_path)
    cfg.setdefault("train", {})
    if out_dir is not None:
        cfg["train"]["out_dir"] = str(out_dir)
    if max_steps is not None:
        cfg["train"]["max_steps"] = int(max_steps)
    if not cfg["train"].get("out_dir"):
        cfg["train"]["out_dir"] = str(Path("runs") / Path(config_path).stem)
    res = train(cfg, resume=resume)
    rank, world, _ = _dist_info()
    if rank == 0:
        print(json.dumps({"out_dir": str(res.out_dir), "final": res.history[-1] if res.history else None}))
    if world > 1 and dist.is_initialized():
        dist.destroy_process_group()
    return res
