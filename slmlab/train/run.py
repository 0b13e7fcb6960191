"""Pre-training a TinyLM from one run config: :func:`train` (a notebook) and :func:`main_train`
(``python -m slmlab train CONFIG``).

A run is described by one JSON-able dict with three sections::

    {"model": {...TinyLMConfig fields...},  # vocab_size may be omitted: taken from the tokenizer
     "data":  {"corpus": "tinytales", "train_chars": 20e6, "val_chars": 2e5, "seed": 0,
               "tokenizer": {"kind": "bpe", "vocab_size": 2048, "train_chars": 4e6}},
     "train": {...TrainConfig fields...}}

``data.text_file`` (one UTF-8 file, split 95/5) replaces the synthetic corpus, and
``data.tokenizer.path`` loads an existing tokenizer instead of training one.

An optional fourth section trains the model as a student, by distillation from a teacher::

     "distill": {"teacher": "data/reference/base", "direction": "forward", "temperature": 1.0,
                 "hard_weight": 0.0}

``teacher`` is a ``save_pretrained`` directory (its tokenizer must be the run's); the loss is
:func:`~slmlab.train.losses.distillation_loss` with the other options, on the same batches.

:func:`train` builds the data, the tokenizer and the TinyLM, hands them to the general loop
:func:`~slmlab.train.fit` with :func:`~slmlab.train.losses.causal_lm_loss` and the batches of
:func:`~slmlab.train.get_batch`, and saves the final model to ``out_dir/model``. The loop
writes ``out_dir/config.json``, ``log.jsonl`` and the checkpoints, and makes resumption exact.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.distributed as dist
import torch.nn as nn

from ..checkpoint import save_pretrained
from ..models import TinyLM, TinyLMConfig, load_model
from ..tokenizer import load_tokenizer
from ..utils import set_seed
from .config import TrainConfig
from .data import evaluate_loss, get_batch, prepare_data
from .distributed import dist_info, train_device
from .loop import fit
from .losses import causal_lm_loss, check_same_vocabulary, distillation_loss


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


def load_run_config(path) -> dict:
    """The run config in a JSON file, or in ``config.json`` of a run's ``out_dir``."""
    path = Path(path)
    if path.is_dir():
        path = path / "config.json"
    if not path.is_file():
        raise FileNotFoundError(f"no training config at {path}")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise ValueError(f"{path} is not valid JSON: {e}") from None


def pretraining_batches(ids: torch.Tensor, c: TrainConfig, rank: int = 0, world: int = 1):
    """``batches(step)`` for :func:`~slmlab.train.fit`: this process's ``(x, y)`` of ``step``, the
    ``grad_accum`` micro-batches of :func:`get_batch` one after the other (micro-batch ``m`` of step
    ``s`` is the batch of sampler step ``s * grad_accum + m``)."""

    def batches(step: int) -> tuple[torch.Tensor, torch.Tensor]:
        xs, ys = zip(
            *(
                get_batch(
                    ids, step * c.grad_accum + m, c.seed, c.batch_size, c.seq_len, rank, world
                )
                for m in range(c.grad_accum)
            ),
            strict=True,
        )
        return (xs[0], ys[0]) if c.grad_accum == 1 else (torch.cat(xs), torch.cat(ys))

    return batches


def train(
    run_config: dict,
    resume: bool = True,
    data=None,
    callback: Callable[[dict], None] | None = None,
    stop_at: int | None = None,
) -> TrainResult:
    """Train a TinyLM as ``run_config`` says; returns the model, tokenizer and the logged history.

    ``data=(tokenizer, train_ids, val_ids)`` skips data preparation (notebooks reuse it);
    ``callback(record)`` is called with every log record (for live plots). With ``train.out_dir``
    set and a checkpoint there, training resumes from it (``resume=False`` starts over).
    ``stop_at`` ends the run early at that step, with a checkpoint, as if it were interrupted."""
    unknown = sorted(set(run_config) - {*SECTIONS, "name", "description"})
    if unknown:
        raise ValueError(
            f"Unknown top-level section(s) {unknown}; a run config has 'model', 'data', 'train' "
            "(and 'distill' for a student)"
        )
    tc = TrainConfig.from_dict(dict(run_config.get("train", {})))
    tokenizer, train_ids, val_ids = (
        data if data is not None else prepare_data(run_config.get("data", {}))
    )
    loss_fn, teacher = causal_lm_loss, None
    if run_config.get("distill") is not None:
        teacher, loss_fn = distillation_from_config(run_config["distill"], tokenizer)
    mdict = dict(run_config.get("model", {}))
    mdict.setdefault("vocab_size", tokenizer.vocab_size)
    mdict.setdefault("block_size", tc.seq_len)
    mconf = TinyLMConfig.from_dict(mdict)
    if mconf.vocab_size < tokenizer.vocab_size:
        raise ValueError(
            f"model.vocab_size={mconf.vocab_size} < tokenizer vocabulary {tokenizer.vocab_size}"
        )
    if tc.seq_len > mconf.block_size:
        raise ValueError(f"train.seq_len={tc.seq_len} exceeds model.block_size={mconf.block_size}")

    set_seed(tc.seed)
    model = TinyLM(mconf)
    rank, world, local_rank = dist_info()
    if teacher is not None:
        check_same_vocabulary(model, teacher)
        teacher.to(train_device(tc.device, world, local_rank))

    def evaluate(m):
        return {"val_loss": evaluate_loss(m, val_ids, tc.seq_len, tc.eval_batches, tc.batch_size)}

    batches = pretraining_batches(train_ids, tc, rank, world)
    history = fit(
        model,
        batches,
        loss_fn,
        tc,
        evaluate=evaluate,
        callback=callback,
        resume=resume,
        stop_at=stop_at,
        run_config=run_config,
        tokenizer=tokenizer,
    )
    out_dir = Path(tc.out_dir) if tc.out_dir else None
    if out_dir and rank == 0:
        save_pretrained(model, out_dir / "model", tokenizer)
    return TrainResult(model=model.eval(), tokenizer=tokenizer, history=history, out_dir=out_dir)


SECTIONS = ("model", "data", "train", "distill")
DISTILL_OPTIONS = ("teacher", "direction", "temperature", "hard_weight")
_TOKENIZER_PROBE = "Once upon a time, Mia counted 12 red apples: 7 + 5 = 12."


def distillation_from_config(section: dict, tokenizer) -> tuple[nn.Module, Callable]:
    """``(teacher, loss_fn)`` of a run config's ``distill`` section (see the module docstring),
    checked: known options, a teacher directory, and a teacher tokenizer that encodes text as the
    run's does."""
    if not isinstance(section, dict) or "teacher" not in section:
        raise ValueError(
            "distill needs a dict with a 'teacher' (a save_pretrained directory), e.g. "
            '{"teacher": "data/reference/base"}'
        )
    unknown = sorted(set(section) - set(DISTILL_OPTIONS))
    if unknown:
        raise ValueError(f"unknown distill option(s) {unknown}; known: {list(DISTILL_OPTIONS)}")
    folder = Path(section["teacher"])
    if not (folder / "config.json").is_file():
        raise FileNotFoundError(
            f"distill.teacher={str(folder)!r} is not a save_pretrained directory"
        )
    options = {k: section[k] for k in ("temperature", "direction", "hard_weight") if k in section}
    distillation_loss(None, **options)  # checks the options before the teacher is loaded
    teacher = load_model(folder).eval()  # run under no_grad by the loss: never changed
    tok_file = folder / "tokenizer.json"
    if tok_file.is_file():
        theirs = load_tokenizer(tok_file).encode(_TOKENIZER_PROBE)
        if list(getattr(theirs, "ids", theirs)) != list(tokenizer.encode(_TOKENIZER_PROBE)):
            raise ValueError(
                f"the teacher's tokenizer ({tok_file}) encodes text differently from the run's: "
                "distillation compares distributions token by token, so the student must be "
                "trained with the teacher's tokenizer (data.tokenizer.path)"
            )
    return teacher, distillation_loss(teacher, **options)


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
    rank, world, _ = dist_info()
    if rank == 0:
        print(
            json.dumps(
                {"out_dir": str(res.out_dir), "final": res.history[-1] if res.history else None}
            )
        )
    if world > 1 and dist.is_initialized():
        dist.destroy_process_group()
    return res
