"""Real corpora (TinyStories, WikiText) from the hub or from local files in the same format."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

from ..utils import hub_offline_reason

HUB_DATASETS = {
    "tinystories": {
        "path": "roneneldan/TinyStories",
        "name": None,
        "splits": {"train": "train", "val": "validation", "validation": "validation"},
    },
    "wikitext": {
        "path": "Salesforce/wikitext",
        "name": "wikitext-2-raw-v1",
        "splits": {
            "train": "train",
            "val": "validation",
            "validation": "validation",
            "test": "test",
        },
    },
}


def load_text_dataset(
    name_or_path: str | os.PathLike,
    split: str = "train",
    n_docs: int | None = None,
    text_field: str = "text",
    drop_empty: bool = True,
) -> list[str]:
    """Texts of a real corpus, as a list of strings (one per row / document).

    ``name_or_path`` is either a hub corpus the book knows — ``"tinystories"``
    (roneneldan/TinyStories; splits train, val) or ``"wikitext"`` (wikitext-2-raw-v1; train, val,
    test) — loaded through ``datasets`` when the hub is reachable, or a local file or folder in
    the same format:

    - ``.jsonl`` / ``.json``: JSON lines (or a JSON list) of objects with a ``text_field``;
    - ``.parquet``: a table with a ``text_field`` column (what the hub serves);
    - ``.txt``: documents separated by ``<|endoftext|>`` (TinyStories' own text files), else by
      blank lines;
    - a folder written by ``datasets``' ``save_to_disk`` (a Dataset or a DatasetDict with
      ``split``).

    Offline (no network, or ``HF_DATASETS_OFFLINE=1``/``HF_HUB_OFFLINE=1``) a hub name fails at
    once with a message saying how to use a local file. ``drop_empty`` drops blank rows (WikiText
    has many); ``n_docs`` keeps the first rows only.
    """
    path = Path(name_or_path)
    if path.exists():
        texts = _load_local(path, split, text_field)
    else:
        key = str(name_or_path).lower()
        if key not in HUB_DATASETS:
            raise FileNotFoundError(
                f"{name_or_path!r} is neither a file or folder nor a corpus this loader knows "
                f"({sorted(HUB_DATASETS)}); give a path to a .jsonl/.json/.parquet/.txt file or a "
                "save_to_disk folder."
            )
        spec = HUB_DATASETS[key]
        if split not in spec["splits"]:
            raise ValueError(
                f"{key} has no split {split!r}; use one of {sorted(set(spec['splits']))}"
            )
        reason = hub_offline_reason("datasets")
        if reason:
            raise ConnectionError(
                f"cannot load {key!r} ({spec['path']}) from the Hugging Face hub: {reason}. "
                "Download it where you have a network, e.g. "
                f"`datasets.load_dataset({spec['path']!r}"
                f"{', ' + repr(spec['name']) if spec['name'] else ''}, "
                f"split={spec['splits'][split]!r})"
                f".to_json('{key}-{split}.jsonl')`, copy the file here and call "
                f"load_text_dataset('{key}-{split}.jsonl'). Or use the built-in corpus: "
                "slmlab.data.corpus_text()."
            )
        import datasets

        ds = datasets.load_dataset(spec["path"], spec["name"], split=spec["splits"][split])
        texts = _column(ds, text_field, spec["path"])
    if drop_empty:
        texts = [t for t in texts if t.strip()]
    return texts[:n_docs] if n_docs is not None else texts


def _column(rows, field: str, where) -> list[str]:
    cols = getattr(rows, "column_names", None)
    if cols is not None and field not in cols:
        raise KeyError(
            f"{where} has no column {field!r}; its columns are {cols}. Pass text_field=..."
        )
    out = rows[field] if cols is not None else None
    if out is None:
        out = []
        for i, row in enumerate(rows):
            if not isinstance(row, dict) or field not in row:
                raise KeyError(
                    f"row {i} of {where} has no field {field!r} (it has "
                    f"{sorted(row) if isinstance(row, dict) else type(row).__name__}); "
                    "pass text_field=..."
                )
            out.append(row[field])
    bad = next((i for i, t in enumerate(out) if not isinstance(t, str)), None)
    if bad is not None:
        raise TypeError(f"{where}: {field!r} of row {bad} is {type(out[bad]).__name__}, not text")
    return list(out)


def _load_local(path: Path, split: str, field: str) -> list[str]:
    if path.is_dir():
        import datasets

        try:
            ds = datasets.load_from_disk(str(path))
        except FileNotFoundError as e:
            raise ValueError(
                f"{path} is a folder but not one written by datasets' save_to_disk ({e})"
            ) from None
        if isinstance(ds, datasets.DatasetDict):
            names = {"val": "validation"}.get(split, split)
            if names not in ds:
                raise ValueError(f"{path} has splits {list(ds)}, not {split!r}")
            ds = ds[names]
        return _column(ds, field, path)
    suffix = "".join(path.suffixes[-2:]) if path.suffix == ".gz" else path.suffix
    if suffix in (".jsonl", ".json"):
        raw = path.read_text(encoding="utf-8")
        stripped = raw.lstrip()
        if stripped.startswith("["):
            rows = json.loads(raw)
        else:
            rows = []
            for i, line in enumerate(raw.splitlines()):
                if line.strip():
                    try:
                        rows.append(json.loads(line))
                    except json.JSONDecodeError as e:
                        raise ValueError(f"{path}, line {i + 1}: not valid JSON ({e})") from None
        return _column(rows, field, path)
    if suffix == ".parquet":
        import pandas as pd

        df = pd.read_parquet(path)
        if field not in df.columns:
            raise KeyError(
                f"{path} has no column {field!r}; its columns are {list(df.columns)}. "
                "Pass text_field=..."
            )
        return _column(df[[field]].to_dict("records"), field, path)
    if suffix == ".txt":
        raw = path.read_text(encoding="utf-8")
        parts = raw.split("<|endoftext|>") if "<|endoftext|>" in raw else re.split(r"\n\s*\n", raw)
        return [p.strip() for p in parts]
    raise ValueError(
        f"don't know how to read {path}: use .jsonl, .json, .parquet or .txt, "
        "or a save_to_disk folder"
    )
