"""The reference models the book ships in ``data/reference/<name>/``.

Each folder holds ``config.json`` + ``model.safetensors`` + ``tokenizer.json`` (a
``save_pretrained`` directory), the run config that reproduces it (``train_config.json``:
``python -m slmlab train data/reference/<name>/train_config.json``), its training log
(``log.jsonl``), its final metrics (``metrics.json``) and a sha256 manifest (``SHA256SUMS``)
that ``load_reference`` checks before loading anything.
"""

from __future__ import annotations

import difflib
import json
import shutil
from pathlib import Path

from .checkpoint import (
    MANIFEST,
    CheckpointError,
    read_manifest,
    write_dir_atomically,
    write_manifest,
)
from .models import load_model
from .tokenizer import EOS, load_tokenizer
from .utils import atomic_write_json, data_dir, sha256_file

REQUIRED = ("config.json", "model.safetensors", "tokenizer.json")


def reference_dir() -> Path:
    return data_dir() / "reference"


def available() -> list[str]:
    root = reference_dir()
    return (
        sorted(p.name for p in root.iterdir() if (p / MANIFEST).is_file()) if root.is_dir() else []
    )


def verify(name: str = "base") -> Path:
    """Check every file of a reference model against its manifest; return its folder."""
    folder = reference_dir() / name
    if not folder.is_dir():
        close = difflib.get_close_matches(name, available(), n=3)
        hint = f" Did you mean {close}?" if close else ""
        raise ValueError(f"unknown reference model {name!r}; available: {available()}.{hint}")
    manifest = read_manifest(folder)
    for required in REQUIRED:
        if required not in manifest:
            raise CheckpointError(f"{folder / MANIFEST} does not list {required}")
    for fname, digest in manifest.items():
        path = folder / fname
        if not path.is_file():
            raise CheckpointError(
                f"{path} is missing. Restore it (`git checkout -- {path}` in a clone of the book) "
                f"or retrain it: python -m slmlab train {folder / 'train_config.json'}"
            )
        actual = sha256_file(path)
        if actual != digest:
            raise CheckpointError(
                f"{path} has been altered or is incomplete: sha256 {actual[:12]}... "
                f"but the manifest says {digest[:12]}.... Restore it with `git checkout -- {path}` "
                "(or, if you retrained it on purpose, ship it again with slmlab.reference.ship)."
            )
    return folder


def load_reference(name: str = "base", device=None):
    """``(model, tokenizer)`` of a shipped reference model, after verifying its checksums.

    ``"base"`` is the model the compression and evaluation chapters start from; ``"small"``
    is the ~1M-parameter model for distillation and speed experiments."""
    folder = verify(name)
    return load_model(folder, device=device), load_tokenizer(folder / "tokenizer.json")


def corpus_fingerprint(n_chars: int = 200_000) -> str:
    """sha256 of the first ``n_chars`` of the TinyTales training split: a shipped model records it,
    and the tests check it, so the corpus generator cannot drift away from the shipped models."""
    import hashlib

    from .data import corpus_text

    return hashlib.sha256(corpus_text("train", n_chars).encode("utf-8")).hexdigest()


SAMPLE_PROMPTS = ("Once upon a time", "One morning,")


def samples(
    model,
    tokenizer,
    prompts=SAMPLE_PROMPTS,
    max_new_tokens: int = 100,
    temperature: float = 0.8,
    top_p: float = 0.95,
    seed: int = 0,
) -> list[dict]:
    """A few seeded samples (stopped at the end of the first document) for a model card."""
    import torch

    eos = getattr(tokenizer, "eos_id", None)
    out = []
    for prompt in prompts:
        g = torch.Generator(device=model.device).manual_seed(seed)
        ids = model.generate(
            tokenizer.encode(prompt),
            max_new_tokens,
            temperature=temperature,
            top_p=top_p,
            eos_id=eos,
            generator=g,
        )
        text = tokenizer.decode(ids.tolist()).split(EOS)[0]
        out.append(
            {
                "prompt": prompt,
                "temperature": temperature,
                "top_p": top_p,
                "seed": seed,
                "text": text,
            }
        )
    return out


def evaluate_run(run_dir, n_per_task: int = 500) -> dict:
    """The metrics a shipped model carries: parameters, perplexity, the probe suite, and the corpus
    fingerprint, computed from the finished run in ``run_dir``."""
    from . import evaluate

    model = load_model(Path(run_dir) / "model")
    tok = load_tokenizer(Path(run_dir) / "model" / "tokenizer.json")
    ppl = evaluate.perplexity(model, tok)
    table = evaluate.suite(model, tok, n_per_task=n_per_task, by_difficulty=True)
    log = [
        json.loads(line)
        for line in (Path(run_dir) / "log.jsonl").read_text().splitlines()
        if line.strip()
    ]
    return {
        "parameters": model.num_params(),
        "non_embedding_parameters": model.num_params(non_embedding=True),
        "train_tokens": log[-1]["tokens"] if log else None,
        "final_val_loss": next((r["val_loss"] for r in reversed(log) if "val_loss" in r), None),
        "perplexity": {k: v for k, v in ppl.items() if isinstance(v, (int, float))},
        "suite": json.loads(table.to_json(orient="records")),
        "corpus_fingerprint": corpus_fingerprint(),
        "samples": samples(model, tok),
    }


def _suite_row(r: dict) -> str:
    """One row of the model card's probe table (the suite's tidy columns)."""
    interval = ""
    if r.get("ci_low") is not None and r.get("ci_low") == r.get("ci_low"):  # not NaN
        interval = f" ({r['ci_low']:.3f}-{r['ci_high']:.3f})"
    return (
        f"| {r['task']} | {r.get('difficulty', 'all')} | {r['metric']} | "
        f"{r['score']:.3f}{interval} | {r['chance']:.3f} | {r.get('n', '')} |"
    )


def model_card(name: str, run_config: dict, metrics: dict) -> str:
    """A README for a shipped model, written from its run config and measured metrics."""
    m, t = run_config.get("model", {}), run_config.get("train", {})
    rows = "\n".join(_suite_row(r) for r in metrics.get("suite", []))
    ppl = metrics.get("perplexity", {})
    sample_md = ""
    if metrics.get("samples"):
        first = metrics["samples"][0]
        shown = "\n\n".join(f"> {x['text'].strip()}" for x in metrics["samples"])
        prompts = ", ".join(repr(x["prompt"]) for x in metrics["samples"])
        sample_md = (
            f"\n\nSamples (temperature {first['temperature']}, top-p {first['top_p']}, "
            f"seed {first['seed']}; prompts {prompts}):\n\n{shown}\n"
        )
    return f"""# Reference model `{name}`

{run_config.get("description", "")}

Load it with `slmlab.load_reference("{name}")` (checksums in `SHA256SUMS` are verified first).
Reproduce it with \
`python -m slmlab train data/reference/{name}/train_config.json --out-dir runs/{name}`
then `python -m slmlab ship runs/{name} {name}`. \
This file is written by `ship` from the measured metrics.

| | |
|---|---|
| parameters | {metrics.get("parameters", 0):,} ({metrics.get("non_embedding_parameters", 0):,} \
non-embedding) |
| architecture | {m.get("n_layer")} layers, d_model {m.get("d_model")}, \
{m.get("n_head")} heads / {m.get("n_kv_head")} KV heads, {m.get("ffn")} d_ff {m.get("d_ff")}, \
{m.get("norm")}, {m.get("pos")} |
| training | {t.get("max_steps")} steps x {t.get("batch_size")} x {t.get("seq_len")} tokens = \
{metrics.get("train_tokens") or 0:,} tokens, {t.get("schedule")} schedule, lr {t.get("lr")}, \
{t.get("dtype")} |
| final validation loss | {metrics.get("final_val_loss") or float("nan"):.4f} nats/token |
| perplexity (TinyTales val) | {ppl.get("ppl", float("nan")):.3f} \
({ppl.get("bits_per_byte", float("nan")):.4f} bits per byte) |

Capability probes (`slmlab.evaluate.suite`, held-out items; score with its 95% interval):

| task | difficulty | metric | score | chance | n |
|---|---|---|---|---|---|
{rows}
{sample_md}"""


def ship(run_dir, name: str, metrics: dict | None = None) -> Path:
    """Copy a finished run (``python -m slmlab train``'s out_dir) into ``data/reference/<name>``
    with its config, log, metrics and a fresh manifest — as one atomic directory swap."""
    run_dir = Path(run_dir)
    model_dir = run_dir / "model"
    for required in REQUIRED:
        if not (model_dir / required).is_file():
            raise FileNotFoundError(
                f"{model_dir / required} is missing: is {run_dir} a finished training run?"
            )

    def fill(tmp: Path):
        for f in REQUIRED:
            shutil.copy2(model_dir / f, tmp / f)
        shutil.copy2(run_dir / "config.json", tmp / "train_config.json")
        shutil.copy2(run_dir / "log.jsonl", tmp / "log.jsonl")
        if metrics is not None:
            atomic_write_json(tmp / "metrics.json", metrics)
            (tmp / "README.md").write_text(
                model_card(name, json.loads((run_dir / "config.json").read_text()), metrics),
                encoding="utf-8",
            )
        write_manifest(tmp)

    return write_dir_atomically(reference_dir() / name, fill)
