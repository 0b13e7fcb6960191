"""The library twin of :mod:`slmlab.evaluate.scoring`: the same multiple-choice items scored by
lm-evaluation-harness (``pip install "slmlab[eval]"``), so the two can be compared item by item.

Three steps, one function each:

1. :func:`export_for_harness` writes the model as a transformers checkpoint that the harness's
   ``hf`` model loads offline (``AutoModelForCausalLM`` and ``AutoTokenizer``, safetensors only).
   slmlab puts the end-of-text token before every prompt (:attr:`~.scoring.LM.prefix_id`); the
   harness leaves that to the tokenizer, so the exported tokenizer prepends it as its BOS token
   when asked for special tokens and adds nothing when not.
2. :func:`write_task` writes slmlab's items (``context``, ``options``, ``label``) as a harness
   task: a YAML file and the items as JSON lines beside it.
3. :func:`run_harness` runs ``lm_eval.simple_evaluate`` on it and returns every option's
   log-likelihood, the harness's ``acc`` and ``acc_norm``, and the exact strings it scored.

How the options are written down decides what ``acc_norm`` means. The harness scores the
continuation ``target_delimiter + choice`` and divides its log-likelihood by ``len(choice)``,
the choice's length in characters *without* the delimiter. Its own tasks (ARC, HellaSwag, PIQA,
OpenBookQA) keep the default delimiter, a space, and write the choices without one. slmlab's
options are continuations that start with that space (``" the ground was wet."``), so the task
keeps ``target_delimiter: " "`` and stores each option without its first character: the string
the harness tokenises, ``" " + choice``, is exactly slmlab's option, and ``acc_norm`` divides by
the option's length without the space, as :func:`~.scoring.multiple_choice` does.

lm_eval is imported inside the functions, never when slmlab is imported.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import re
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path

from ..models import TinyLM

DELIMITER = " "  # the harness's default target_delimiter; every slmlab option starts with it
_TASK_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$")


# ----------------------------------------------------------------------------- the model
def export_for_harness(model, tokenizer, out_dir) -> Path:
    """Write ``model`` and ``tokenizer`` to ``out_dir`` as a checkpoint the harness's ``hf``
    model loads offline; return the directory (written atomically, replacing an existing one).

    - A :class:`~slmlab.TinyLM` with its slmlab tokenizer: :func:`slmlab.hf.export_hf` (the
      Llama-equivalent model, safetensors, and a ``PreTrainedTokenizerFast`` made from the
      slmlab tokenizer's ``tokenizer.json``, whose BOS, EOS and PAD are ``<|endoftext|>``), with
      one change: the tokenizer prepends BOS when encoding with special tokens (a template in
      ``tokenizer.json``, and ``add_bos_token: true``, from which transformers 5 rebuilds the
      same template). The harness then scores ``<|endoftext|> + context + option``, the tokens
      slmlab scores.
    - A transformers causal LM with its tokenizer: both ``save_pretrained`` as they are.

    Raises TypeError for a tokenizer that cannot be saved with the model, ValueError when the
    tokenizer has ids the model's embedding lacks."""
    from ..checkpoint import write_dir_atomically

    if isinstance(model, TinyLM):
        if not hasattr(tokenizer, "to_tokenizers"):
            raise TypeError(
                "export_for_harness(TinyLM, ...) needs the model's slmlab tokenizer "
                f"(BPETokenizer or CharTokenizer), got {type(tokenizer).__name__}"
            )
        _check_vocab(tokenizer.vocab_size, model.config.vocab_size)
        from ..hf import export_hf

        with _quiet():
            out = export_hf(model, tokenizer, out_dir)
            _prepend_bos(out, tokenizer)
        return out
    if not hasattr(model, "save_pretrained") or not hasattr(model, "get_input_embeddings"):
        raise TypeError(
            "export_for_harness needs a TinyLM or a transformers causal LM, "
            f"got {type(model).__name__}"
        )
    if not hasattr(tokenizer, "save_pretrained"):
        raise TypeError(
            "a transformers model is exported with its transformers tokenizer (one with "
            f"save_pretrained), got {type(tokenizer).__name__}"
        )
    _check_vocab(len(tokenizer), model.get_input_embeddings().num_embeddings)

    def fill(tmp: Path) -> None:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)

    with _quiet():
        return write_dir_atomically(out_dir, fill)


def _check_vocab(n_tokenizer: int, n_model: int) -> None:
    if n_tokenizer > n_model:
        raise ValueError(
            f"vocabulary mismatch: the tokenizer has {n_tokenizer} ids but the model only "
            f"{n_model} embedding rows: is this the model's own tokenizer?"
        )


def _prepend_bos(directory: Path, tokenizer) -> None:
    """Make the exported tokenizer prepend ``<|endoftext|>`` when asked for special tokens, and
    check that it now encodes as slmlab's scoring does."""
    from tokenizers import Tokenizer
    from tokenizers.processors import TemplateProcessing

    from ..tokenizer import EOS
    from ..utils import atomic_write_json, atomic_write_text

    eos = tokenizer.eos_id
    tok_path, cfg_path = directory / "tokenizer.json", directory / "tokenizer_config.json"
    backend = Tokenizer.from_file(str(tok_path))
    backend.post_processor = TemplateProcessing(
        single=f"{EOS} $A", pair=f"{EOS} $A {EOS} $B", special_tokens=[(EOS, eos)]
    )
    atomic_write_text(tok_path, backend.to_str(pretty=True))
    cfg = json.loads(cfg_path.read_text(encoding="utf-8"))
    cfg["add_bos_token"] = True
    atomic_write_json(cfg_path, cfg)

    from transformers import AutoTokenizer

    hf_tok = AutoTokenizer.from_pretrained(directory)
    probe = "Once upon a time, Mia said: hello!"
    want = list(tokenizer.encode(probe))
    got = (hf_tok.encode(probe), hf_tok.encode(probe, add_special_tokens=False))
    if got != ([eos] + want, want) or hf_tok.bos_token_id != eos:
        raise RuntimeError(
            f"export_for_harness: the exported tokenizer encodes {probe!r} as {got}, expected "
            f"{[eos] + want} with special tokens and {want} without"
        )


# ----------------------------------------------------------------------------- the task
def write_task(items: Sequence[dict], out_dir, name: str) -> Path:
    """Write ``items`` as the harness task ``name``: ``out_dir/name.yaml`` and the items as
    ``out_dir/name.jsonl`` (one ``{"context", "choices", "label"}`` per line, each choice an
    option without its leading space). Return the YAML's path.

    The task is zero-shot multiple choice with ``acc`` and ``acc_norm``, the data a local JSON
    file (``dataset_path: json``; the YAML names it by its absolute path, and datasets caches it
    in ``out_dir/cache``). Raises ValueError for no items, an item without options, an option
    that does not start with a space or has nothing after it, or a label that is not the index
    of an option; nothing is written then."""
    import yaml

    if not _TASK_NAME.match(name or ""):
        raise ValueError(f"task name {name!r}: use letters, digits, '_', '-' and '.'")
    items = list(items)
    if not items:
        raise ValueError("no items to write: write_task needs at least one multiple-choice item")
    rows = []
    for i, it in enumerate(items):
        missing = {"context", "options", "label"} - set(it)
        if missing:
            raise ValueError(
                f"item {i} has no {sorted(missing)}: items need context, options and label"
            )
        options = list(it["options"])
        if not options:
            raise ValueError(f"item {i} has no options")
        for o in options:
            if not isinstance(o, str) or not o.startswith(DELIMITER) or len(o) == len(DELIMITER):
                raise ValueError(
                    f"item {i}: option {o!r} must be a continuation that starts with a space "
                    "and has text after it, as slmlab's options do"
                )
        label = it["label"]
        if isinstance(label, bool) or not isinstance(label, int) or not 0 <= label < len(options):
            raise ValueError(
                f"item {i}: label {label!r} is not the index of one of its {len(options)} options"
            )
        choices = [o[len(DELIMITER) :] for o in options]
        rows.append({"context": str(it["context"]), "choices": choices, "label": label})

    out_dir = Path(out_dir).resolve()
    out_dir.mkdir(parents=True, exist_ok=True)
    data = out_dir / f"{name}.jsonl"
    from ..utils import atomic_write_text

    atomic_write_text(data, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
    config = {
        "task": name,
        "dataset_path": "json",
        # datasets' cache of the parsed file beside it, not in ~/.cache
        "dataset_kwargs": {"data_files": {"test": str(data)}, "cache_dir": str(out_dir / "cache")},
        "test_split": "test",
        "output_type": "multiple_choice",
        "num_fewshot": 0,
        # field names: the harness reads doc["context"], doc["choices"], doc["label"] as they are
        "doc_to_text": "context",
        "doc_to_choice": "choices",
        "doc_to_target": "label",
        # continuation = target_delimiter + choice = slmlab's option
        "target_delimiter": DELIMITER,
        "metric_list": [
            {"metric": "acc", "aggregation": "mean", "higher_is_better": True},
            {"metric": "acc_norm", "aggregation": "mean", "higher_is_better": True},
        ],
        "metadata": {"version": 1.0},
    }
    path = out_dir / f"{name}.yaml"
    header = (
        "# Written by slmlab.evaluate.harness.write_task: slmlab's multiple-choice items as an\n"
        "# lm-evaluation-harness task. Each choice is an slmlab option without its leading\n"
        "# space, which target_delimiter puts back.\n"
    )
    atomic_write_text(
        path, header + yaml.safe_dump(config, sort_keys=False, allow_unicode=True, width=1000)
    )
    return path


# ----------------------------------------------------------------------------- the run
# a tqdm progress bar: "desc:  40%|####  | 4/10 [00:02<00:03, ...]" or "48 it [00:00, ...]"
_BAR = re.compile(r"\d+%\||\[\d+:\d\d[<,]")
_OFFLINE = {"HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}


def _progress_bar_switches() -> list[tuple]:
    """``(is_on, on, off)`` of the progress bars of transformers, datasets and huggingface_hub
    (those installed)."""
    switches = []
    with contextlib.suppress(ImportError):
        from transformers.utils import logging as tf_logging

        switches.append(
            (
                tf_logging.is_progress_bar_enabled,
                tf_logging.enable_progress_bar,
                tf_logging.disable_progress_bar,
            )
        )
    with contextlib.suppress(ImportError):
        import datasets

        switches.append(
            (
                datasets.is_progress_bar_enabled,
                datasets.enable_progress_bars,
                datasets.disable_progress_bars,
            )
        )
    with contextlib.suppress(ImportError):
        from huggingface_hub import utils as hub_utils

        switches.append(
            (
                lambda: not hub_utils.are_progress_bars_disabled(),
                hub_utils.enable_progress_bars,
                hub_utils.disable_progress_bars,
            )
        )
    return switches


@contextlib.contextmanager
def _quiet(progress: bool = False) -> Iterator[None]:
    """Run the harness offline and quietly; restore everything afterwards.

    Offline: HF_HUB_OFFLINE and HF_DATASETS_OFFLINE are set (model and data are local files).
    Quiet: the harness's, transformers' and datasets' loggers at ERROR; their progress bars
    switched off unless ``progress`` (in a terminal tqdm writes them to stderr, which is dropped;
    in a notebook it draws widgets, which only the libraries' own switches stop), and any other
    stderr text passed on. The harness seeds Python's, NumPy's and torch's random generators:
    their states are restored."""
    import random

    import numpy as np
    import torch

    rng = (random.getstate(), np.random.get_state(), torch.get_rng_state())
    env = {k: os.environ.get(k) for k in _OFFLINE}
    os.environ.update(_OFFLINE)
    names = ("lm_eval", "transformers", "datasets", "accelerate", "huggingface_hub")
    loggers = [logging.getLogger(n) for n in names]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.ERROR)
    err = io.StringIO()
    bars = [] if progress else _progress_bar_switches()
    was_on = [is_on() for is_on, _, _ in bars]
    try:
        for _, _, off in bars:
            off()
        with contextlib.ExitStack() as stack:
            if not progress:
                stack.enter_context(contextlib.redirect_stderr(err))
            yield
    finally:
        for (_, on, _), on_before in zip(bars, was_on):
            if on_before:
                on()
        random.setstate(rng[0])
        np.random.set_state(rng[1])
        torch.set_rng_state(rng[2])
        for lg, level in zip(loggers, levels):
            lg.setLevel(level)
        for k, v in env.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        for line in err.getvalue().split("\n"):
            for part in line.split("\r"):
                if part.strip() and not _BAR.search(part):
                    print(part, file=sys.stderr)


def run_harness(
    model_dir,
    task_dir,
    tasks: str | Sequence[str],
    batch_size: int = 32,
    add_bos_token: bool = True,
    device: str = "cpu",
    progress: bool = False,
) -> dict[str, dict]:
    """Run lm-evaluation-harness's ``hf`` model from ``model_dir`` (see
    :func:`export_for_harness`) on the ``tasks`` written to ``task_dir`` (see :func:`write_task`),
    zero-shot, in float32, offline; only the tasks in ``task_dir`` are indexed, not the harness's
    own. ``add_bos_token=True`` asks the tokenizer for its BOS token before every context, as
    slmlab's scoring puts its end-of-text token there. ``progress=True`` shows the harness's
    progress bars.

    Returns, per task: ``acc`` and ``acc_norm`` (the harness's aggregates), ``n``, and per item in
    the file's order ``loglikelihoods`` (one per option), ``label``, ``correct`` and
    ``correct_norm`` (the harness's per-item 1.0 or 0.0 for acc and acc_norm) and ``requests``
    (the ``(context, continuation)`` strings it scored)."""
    model_dir, task_dir = Path(model_dir), Path(task_dir)
    tasks = [tasks] if isinstance(tasks, str) else list(tasks)
    if not tasks:
        raise ValueError("no tasks to run")
    if not (model_dir / "config.json").is_file():
        raise FileNotFoundError(
            f"{model_dir} has no config.json: write it with export_for_harness(model, tok, dir)"
        )
    missing = [t for t in tasks if not (task_dir / f"{t}.yaml").is_file()]
    if missing:
        raise FileNotFoundError(
            f"no task {missing} in {task_dir}: write it with write_task(items, {task_dir}, name)"
        )
    config = json.loads((model_dir / "config.json").read_text(encoding="utf-8"))
    with _quiet(progress):
        from transformers import AutoTokenizer

        if isinstance(config.get("vocab_size"), int):
            _check_vocab(len(AutoTokenizer.from_pretrained(model_dir)), config["vocab_size"])

        import lm_eval
        from lm_eval.tasks import TaskManager

        out = lm_eval.simple_evaluate(
            model="hf",
            model_args={
                "pretrained": str(model_dir),
                "dtype": "float32",
                "add_bos_token": add_bos_token,
            },
            tasks=tasks,
            task_manager=TaskManager(include_path=str(task_dir), include_defaults=False),
            batch_size=batch_size,
            device=device,
            log_samples=True,
            bootstrap_iters=0,  # no stderr: acc's is not needed here
        )
    result = {}
    for t in tasks:
        samples = sorted(out["samples"][t], key=lambda s: s["doc_id"])
        metrics = out["results"][t]
        result[t] = {
            "acc": metrics["acc,none"],
            "acc_norm": metrics["acc_norm,none"],
            "n": len(samples),
            # filtered_resps: one (log-likelihood, is_greedy) per option
            "loglikelihoods": [[float(r[0]) for r in s["filtered_resps"]] for s in samples],
            "label": [s["doc"]["label"] for s in samples],
            "correct": [s["acc"] for s in samples],
            "correct_norm": [s["acc_norm"] for s in samples],
            "requests": [[tuple(a) for a in s["arguments"]] for s in samples],
        }
    return result
