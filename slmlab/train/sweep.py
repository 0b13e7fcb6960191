"""Experiments longer than a notebook: one config file, many training runs, results shipped.

An experiment (``configs/experiments/NAME.json``) is a base run config and named changes to it,
each trained with every seed::

    {"name": "block-choices", "description": "...",
     "base": {"model": {...}, "data": {...}, "train": {...}},
     "runs": {"rmsnorm": {}, "layernorm": {"model": {"norm": "layernorm"}}, ...},
     "seeds": [0, 1],
     "eval_lengths": [128, 256, 512],
     "probes": {"tasks": ["icl_lookup"], "n_per_task": 200, "shots": [1, 5]}}

``python -m slmlab sweep configs/experiments/NAME.json`` trains every (run, seed) on the same
data, measures the validation loss at the end (and at each of ``eval_lengths`` tokens, for
length extrapolation; ``null`` where the model cannot take that length), runs the capability
probes named in ``probes`` (:func:`slmlab.evaluate.suite`; a column ``"TASK@DIFFICULTY"`` per
accuracy, e.g. ``"icl_lookup@5-shot"``), records how a mixture of experts spread the tokens of a
validation batch over its experts (``expert_load``: per layer, each expert's share), and writes
``data/experiments/NAME/``: ``experiment.json`` (what was run), ``results.json`` (one row per run
and seed), ``logs/RUN-sSEED.jsonl`` (each training history) and ``SHA256SUMS``.

An experiment with a ``"search"`` section (:func:`slmlab.train.search.run_search`: a search
space, a parameter budget, a proxy of a few training steps and the strategies) first searches
the architecture from its base, writes every scored candidate to ``search.json``, and adds the
best candidates to its runs as ``"search #1"``, ``"search #2"``, ... : they are trained at the
full budget beside the hand-designed runs, each row with its ``proxy_loss``. Notebooks read
it with :func:`load_results`, which checks the checksums first; a test retrains the first steps
of a shipped run from its config and compares them with its log (:func:`first_steps`).
"""

from __future__ import annotations

import copy
import json
import math
import time
from pathlib import Path

from ..checkpoint import MANIFEST, CheckpointError, read_manifest, write_manifest
from ..utils import PROJECT_ROOT, atomic_write_json, atomic_write_text, data_dir, sha256_file
from .data import evaluate_loss, prepare_data
from .run import train
from .search import check_spec, memoised, proxy_loss, run_search

SECTIONS = ("model", "data", "train", "distill")  # distill: only in the runs that have it
SEARCHED = "search #"  # the label of the search's k-th best candidate: "search #k"


def experiments_dir() -> Path:
    return data_dir() / "experiments"


def load_experiment(path) -> dict:
    """The experiment in a JSON file, checked: a name, a base run config, named runs, seeds."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no experiment config at {path}")
    exp = json.loads(path.read_text(encoding="utf-8"))
    keys = {"name", "description", "base", "runs", "seeds", "eval_lengths", "probes", "search"}
    unknown = sorted(set(exp) - keys)
    if unknown:
        raise ValueError(f"{path}: unknown key(s) {unknown}")
    for key in ("name", "base", "runs"):
        if key not in exp:
            raise ValueError(f"{path} has no {key!r}: an experiment names its base and its runs")
    for label, change in exp["runs"].items():
        bad = sorted(set(change) - set(SECTIONS))
        if bad:
            raise ValueError(f"run {label!r} changes {bad}; a run changes only {SECTIONS}")
        if "search" in exp and label.startswith(SEARCHED):
            raise ValueError(f"run {label!r}: labels starting {SEARCHED!r} are the search's")
    if "search" in exp:
        check_spec(exp["search"])
    return exp


def run_config(exp: dict, label: str, seed: int) -> dict:
    """The base run config with run ``label``'s changes and ``seed`` (every section merged key by
    key; the run is kept in memory: no ``out_dir``)."""
    if label not in exp["runs"]:
        raise ValueError(f"no run {label!r} in experiment {exp['name']!r}: {list(exp['runs'])}")
    cfg = copy.deepcopy(exp["base"])
    for section in SECTIONS:
        merged = {**cfg.get(section, {}), **exp["runs"][label].get(section, {})}
        if merged or section != "distill":
            cfg[section] = merged
    cfg["train"].update(seed=seed, out_dir=None, progress=False)
    cfg["name"] = f"{exp['name']}/{label}/s{seed}"
    tok = cfg["data"].get("tokenizer", {})
    if "path" in tok and not Path(tok["path"]).is_absolute():  # relative to the repository
        cfg["data"]["tokenizer"] = {**tok, "path": str(PROJECT_ROOT / tok["path"])}
    teacher = cfg.get("distill", {}).get("teacher")
    if teacher is not None and not Path(teacher).is_absolute():
        cfg["distill"]["teacher"] = str(PROJECT_ROOT / teacher)
    return cfg


def _loss_at(model, val_ids, length: int, batch_size: int) -> float | None:
    c = model.config
    if c.pos == "learned" and length > c.block_size:
        return None  # no position embedding past the table
    return evaluate_loss(model, val_ids, length, max(1, 4096 // length), batch_size)


def run_experiment(
    exp: dict, out_dir=None, only: list[str] | None = None, max_steps: int | None = None
) -> list[dict]:
    """Train every run of ``exp`` with every seed (or only the runs named in ``only``), writing
    the results into ``out_dir`` (default ``data/experiments/NAME``) after each run; returns the
    result rows. ``max_steps`` shortens every run (a smoke test; not for shipping)."""
    out = Path(out_dir) if out_dir is not None else experiments_dir() / exp["name"]
    labels = list(exp["runs"]) if only is None else only
    for label in labels:
        run_config(exp, label, 0)  # unknown labels fail before any training
        if exp["runs"][label].get("data"):
            raise ValueError(f"run {label!r} changes the data: every run of a sweep shares it")
    data = tokenizer, train_ids, val_ids = prepare_data(run_config(exp, labels[0], 0)["data"])
    (out / "logs").mkdir(parents=True, exist_ok=True)
    proxies = {}
    if "search" in exp and only is None:
        exp, proxies = _search(exp, data, out, max_steps)
        labels = list(exp["runs"])
    atomic_write_json(out / "experiment.json", exp)
    rows = []
    for label in labels:
        for seed in exp.get("seeds", [0]):
            cfg = run_config(exp, label, seed)
            if max_steps is not None:
                cfg["train"]["max_steps"] = max_steps
            t0 = time.perf_counter()
            result = train(cfg, resume=False, data=(tokenizer, train_ids, val_ids))
            seconds = time.perf_counter() - t0
            model, history = result.model, result.history
            final = result.final_val_loss
            final = final if final is not None and math.isfinite(final) else None
            row = {
                "run": label,
                "seed": seed,
                "params": model.num_params(),
                "active_params": _active(model),
                "steps": history[-1]["step"] if history else 0,
                "val_loss": final,
                "diverged": final is None,
                "seconds": round(seconds, 1),
            }
            if label in proxies:
                row["proxy_loss"] = proxies[label]
            for length in exp.get("eval_lengths", []):
                loss = None if final is None else _loss_at(model, val_ids, length, 8)
                row[f"val_loss@{length}"] = loss if loss is None or math.isfinite(loss) else None
            if final is not None and exp.get("probes"):
                row.update(probe_scores(model, tokenizer, **exp["probes"]))
            if model.config.n_experts:
                row["expert_load"] = expert_load(model, val_ids, cfg["train"]["seq_len"])
            rows.append(row)
            log = "".join(json.dumps(h) + "\n" for h in history)
            atomic_write_text(out / "logs" / f"{label}-s{seed}.jsonl", log)
            atomic_write_json(out / "results.json", rows)
            print(f"{label} seed {seed}: val loss {final} ({seconds:.0f} s)", flush=True)
    write_manifest(out)
    return rows


def _search(exp: dict, data, out: Path, max_steps: int | None) -> tuple[dict, dict]:
    """Run the experiment's architecture search (:func:`slmlab.train.search.run_search`), write
    its candidates to ``search.json`` and return the experiment with the best candidates added
    as runs ``"search #1"``, ... (what is then trained), and each run's proxy score."""
    spec = dict(exp["search"])
    if max_steps is not None:
        spec["proxy_steps"] = min(spec.get("proxy_steps", 100), max_steps)
    cfg = run_config({**exp, "runs": {"base": {}}}, "base", spec.get("seed", 0))
    base = {"vocab_size": data[0].vocab_size, "block_size": cfg["train"]["seq_len"]}
    score = memoised(proxy_loss(cfg, spec.get("proxy_steps", 100), data))
    candidates, best = run_search(spec, {**base, **cfg["model"]}, score)
    atomic_write_json(out / "search.json", candidates)
    scores = {label: score(change.get("model", {})) for label, change in exp["runs"].items()}
    runs = dict(exp["runs"])
    for k, (fields, proxy) in enumerate(best, 1):
        runs[f"{SEARCHED}{k}"], scores[f"{SEARCHED}{k}"] = {"model": fields}, proxy
    return {**exp, "runs": runs}, scores


def probe_scores(model, tokenizer, tasks, n_per_task: int = 100, shots=(0, 1, 5)) -> dict:
    """The accuracy on each of the suite's ``tasks`` (at each number of ``shots`` for the
        in-context ones), as ``{"TASK@DIFFICULTY": score}``, and each task's chance level
    (``"TASK@chance"``); the same items for every run."""
    from ..evaluate import suite

    table = suite(model, tokenizer, n_per_task=n_per_task, tasks=list(tasks), shots=list(shots))
    table = table[table["metric"].isin(["acc", "exact_match"])]
    scores = {f"{r.task}@{r.difficulty}": float(r.score) for r in table.itertuples()}
    scores.update({f"{r.task}@chance": float(r.chance) for r in table.itertuples()})
    return scores


def expert_load(model, val_ids, seq_len: int, batch: int = 8) -> list[list[float]]:
    """Each expert's share of the token-to-expert assignments of every mixture-of-experts layer,
    over the first ``batch`` validation sequences (equal shares: a balanced router)."""
    import torch

    from ..models.moe import MoEFeedForward

    n = batch * seq_len
    x = torch.as_tensor(val_ids[:n], dtype=torch.long).view(batch, seq_len)
    was_training = model.training
    model.eval()
    with torch.no_grad():
        model(x.to(model.device))
    model.train(was_training)
    loads = [m.last_load.float() for m in model.modules() if isinstance(m, MoEFeedForward)]
    return [[round(float(v), 4) for v in load / load.sum()] for load in loads]


def _active(model) -> int:
    from ..models import active_params

    return active_params(model.config)


def verify_experiment(name: str) -> Path:
    """Check every file of a shipped experiment against its ``SHA256SUMS``; return its folder."""
    folder = experiments_dir() / name
    if not folder.is_dir():
        known = sorted(p.name for p in experiments_dir().glob("*") if p.is_dir())
        raise ValueError(f"no shipped experiment {name!r}; shipped: {known}")
    manifest = read_manifest(folder)
    for required in ("experiment.json", "results.json"):
        if required not in manifest:
            raise CheckpointError(f"{folder / MANIFEST} does not list {required}")
    for fname, digest in manifest.items():
        path = folder / fname
        if not path.is_file() or sha256_file(path) != digest:
            raise CheckpointError(
                f"{path} is missing or altered: restore it (`git checkout -- {path}`) or rerun "
                f"python -m slmlab sweep configs/experiments/{name}.json"
            )
    return folder


def load_results(name: str) -> tuple[dict, list[dict]]:
    """``(experiment, rows)`` of a shipped experiment, after verifying its checksums."""
    folder = verify_experiment(name)
    exp = json.loads((folder / "experiment.json").read_text(encoding="utf-8"))
    return exp, json.loads((folder / "results.json").read_text(encoding="utf-8"))


def shipped_search(name: str) -> list[dict]:
    """The candidates a shipped experiment's architecture search scored (``search.json``)."""
    folder = verify_experiment(name)
    if not (folder / "search.json").is_file():
        raise ValueError(f"experiment {name!r} ran no architecture search")
    return json.loads((folder / "search.json").read_text(encoding="utf-8"))


def shipped_log(name: str, label: str, seed: int) -> list[dict]:
    """The training history of one shipped run."""
    folder = verify_experiment(name)
    text = (folder / "logs" / f"{label}-s{seed}.jsonl").read_text(encoding="utf-8")
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def first_steps(name: str, label: str, seed: int, steps: int = 3) -> tuple[list, list]:
    """``(shipped, retrained)``: the training losses of the first ``steps`` logged steps of a
    shipped run, and of the same steps trained again now from its experiment config (stopped
    early, so the learning-rate schedule is the shipped one)."""
    exp, _ = load_results(name)
    shipped = [h["loss"] for h in shipped_log(name, label, seed)[:steps]]
    cfg = run_config(exp, label, seed)
    cfg["train"]["eval_every"] = 0
    stop = cfg["train"].get("log_every", 10) * steps
    history = train(cfg, resume=False, stop_at=stop).history
    return shipped, [h["loss"] for h in history[:steps]]
