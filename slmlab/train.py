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
import math
import os
import time
from contextlib import nullcontext
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Callable

import torch
import torch.distributed as dist
import torch.nn.functional as F
from tqdm.auto import tqdm

from .checkpoint import CheckpointError, load_tensors, save_pretrained, save_tensors, write_dir_atomically
from .model import TinyLM, TinyLMConfig
from .tokenizer import BPETokenizer, CharTokenizer, load_tokenizer
from .utils import atomic_write_json, atomic_write_text, pick_device, set_seed


@dataclass
class TrainConfig:
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
        if self.schedule not in ("cosine", "wsd", "constant"):
            raise ValueError(f"train.schedule={self.schedule!r} is not one of 'cosine', 'wsd', 'constant'")
        if self.dtype not in ("float32", "bfloat16"):
            raise ValueError(f"train.dtype={self.dtype!r} is not 'float32' or 'bfloat16'")
        for name in ("batch_size", "seq_len", "grad_accum", "max_steps"):
            if getattr(self, name) <= 0:
                raise ValueError(f"train.{name} must be positive, got {getattr(self, name)}")
        if not 0 < self.decay_frac <= 1:
            raise ValueError(f"train.decay_frac must be in (0, 1], got {self.decay_frac}")

    @classmethod
    def from_dict(cls, d: dict) -> "TrainConfig":
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(f"Unknown train option(s) {unknown}; known options are {sorted(known)}.")
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


# ----------------------------------------------------------------------------- data
def build_tokenizer(spec: dict, texts: Callable[[int], str]):
    if "path" in spec:
        return load_tokenizer(spec["path"])
    kind = spec.get("kind", "bpe")
    sample = texts(int(spec.get("train_chars", 4_000_000)))
    if kind == "bpe":
        return BPETokenizer.train([sample[i : i + 10_000] for i in range(0, len(sample), 10_000)],
                                  vocab_size=int(spec.get("vocab_size", 2048)))
    if kind == "char":
        return CharTokenizer.train([sample])
    raise ValueError(f"data.tokenizer.kind={kind!r} is not 'bpe' or 'char'")


def _tinytales_docs(split: str, n_chars: int, seed: int, mix) -> list[str]:
    from .data import iter_documents

    docs, total = [], 0
    for doc in iter_documents(split, seed=seed, mix=mix):
        docs.append(doc)
        total += len(doc) + 1
        if total >= n_chars:
            return docs
    return docs


def encode_docs(tokenizer, docs: list[str]) -> torch.Tensor:
    """One long 1-D tensor of token ids: each document followed by the tokenizer's EOS."""
    ids: list[int] = []
    for chunk in range(0, len(docs), 1024):
        for seq in tokenizer.encode_batch(docs[chunk : chunk + 1024]):
            ids.extend(seq)
            ids.append(tokenizer.eos_id)
    return torch.tensor(ids, dtype=torch.int32 if tokenizer.vocab_size < 2**31 else torch.int64)


def prepare_data(data: dict):
    """(tokenizer, train_ids, val_ids) for a run's ``data`` section."""
    unknown = sorted(set(data) - {"corpus", "text_file", "train_chars", "val_chars", "seed", "mix", "tokenizer"})
    if unknown:
        raise ValueError(f"Unknown data option(s) {unknown}")
    seed = int(data.get("seed", 0))
    if "text_file" in data:
        text = Path(data["text_file"]).read_text(encoding="utf-8")
        cut = int(len(text) * 0.95)
        train_docs, val_docs = [text[:cut]], [text[cut:]]
        sample = lambda n: text[:n]  # noqa: E731
    else:
        if data.get("corpus", "tinytales") != "tinytales":
            raise ValueError(f"data.corpus={data.get('corpus')!r}: only 'tinytales' or a data.text_file is supported")
        mix = data.get("mix")
        train_docs = _tinytales_docs("train", int(data.get("train_chars", 20_000_000)), seed, mix)
        val_docs = _tinytales_docs("val", int(data.get("val_chars", 200_000)), seed, mix)
        sample = lambda n: "\n\n".join(_tinytales_docs("train", n, seed, mix))  # noqa: E731
    tokenizer = build_tokenizer(data.get("tokenizer", {}), sample)
    return tokenizer, encode_docs(tokenizer, train_docs), encode_docs(tokenizer, val_docs)


def get_batch(ids: torch.Tensor, step: int, seed: int, batch_size: int, seq_len: int,
              rank: int = 0, world: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    """This process's slice of the global batch of ``step``: a function of (seed, step) only."""
    if len(ids) <= seq_len + 1:
        raise ValueError(f"only {len(ids)} tokens of data, fewer than seq_len+1={seq_len + 1}")
    g = torch.Generator().manual_seed(seed * 1_000_003 + step)
    starts = torch.randint(0, len(ids) - seq_len - 1, (batch_size * world,), generator=g)
    starts = starts[rank * batch_size : (rank + 1) * batch_size]
    x = torch.stack([ids[s : s + seq_len] for s in starts.tolist()]).long()
    y = torch.stack([ids[s + 1 : s + seq_len + 1] for s in starts.tolist()]).long()
    return x, y


@torch.no_grad()
def evaluate_loss(model, ids: torch.Tensor, seq_len: int, n_batches: int, batch_size: int, device) -> float:
    """Mean next-token loss on fixed, evenly spaced windows of ``ids`` (the same every call)."""
    was = model.training
    model.eval()
    n = min(n_batches * batch_size, max(1, (len(ids) - 1) // seq_len))
    starts = torch.linspace(0, len(ids) - seq_len - 1, n).long().tolist()
    losses = []
    for i in range(0, n, batch_size):
        s = starts[i : i + batch_size]
        x = torch.stack([ids[j : j + seq_len] for j in s]).long().to(device)
        y = torch.stack([ids[j + 1 : j + seq_len + 1] for j in s]).long().to(device)
        logits = model(x)
        losses.append(F.cross_entropy(logits.flatten(0, 1).float(), y.flatten(), reduction="sum").item())
    model.train(was)
    return sum(losses) / (n * seq_len)


# ----------------------------------------------------------------------------- checkpoints
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
    sd = load_tensors(ckpt_dir / "model.safetensors")
    if model.config.tie_embeddings:
        sd.setdefault("lm_head.weight", sd.get("embed.weight"))
    try:
        model.load_state_dict(sd)
    except RuntimeError as e:
        raise CheckpointError(f"{ckpt_dir}/model.safetensors does not fit this model: {e}") from None
    _load_optimizer(opt, load_tensors(ckpt_dir / "optimizer.safetensors"), state["optimizer"])
    return state


# ----------------------------------------------------------------------------- the loop
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
                loss = F.cross_entropy(logits.flatten(0, 1).float(), y.flatten()) / tc.grad_accum
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
