"""The benchmark catalogue: the benchmarks the SLM surveys evaluate with, and the probe that
mirrors each one on TinyTales.

``benchmarks()`` reads ``data/benchmarks/benchmarks.csv``, one row per benchmark: what it
measures, its format and metric, the size of its evaluation split, its paper, which of the three
surveys cite it (``surveys``, codes in :data:`SURVEYS`; ``survey_source`` says where each
attribution comes from), the lm-evaluation-harness task that runs it, and ``tinytales_probe``: the
probe of :mod:`slmlab.evaluate` that mirrors it (one of :data:`PROBES`, or missing when none does
— ``notes`` says why). Every column, and its sources, is described in data/benchmarks/README.md.

>>> from slmlab.evaluate import benchmarks
>>> cat = benchmarks()
>>> cat.loc[cat["tinytales_probe"] == "math", "name"].tolist()
['GSM8K', 'MATH']
"""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd

from ..utils import data_dir

# The three surveys the book follows (references.bib: sakib2025slm, nguyen2024slmsurvey,
# lu2024slmsurvey), by the one-letter code the table's ``surveys`` column uses.
SURVEYS = {
    "S": "Sakib, Hosain, Morol 2025 (arXiv 2505.19529)",
    "N": "Nguyen et al. 2024 (arXiv 2410.20011)",
    "L": "Lu et al. 2024 (arXiv 2409.15790)",
}

# The probes a benchmark can be mirrored by (``tinytales_probe``).
PROBES = ("commonsense", "icl", "math", "code", "perplexity")

COLUMNS = (
    "name",
    "measures",
    "format",
    "metric",
    "n_items",
    "eval_split",
    "paper",
    "arxiv",
    "surveys",
    "survey_source",
    "zoo_column",
    "lm_eval_task",
    "tinytales_probe",
    "notes",
)


def benchmarks_path() -> Path:
    return data_dir() / "benchmarks" / "benchmarks.csv"


def benchmarks(path: str | os.PathLike | None = None) -> pd.DataFrame:
    """The benchmark catalogue as a DataFrame, one row per benchmark (columns in
    data/benchmarks/README.md).

    Text columns are strings with missing values where the table leaves a cell blank (an unknown
    split size, no arXiv id, no mirroring probe); ``n_items`` is a nullable integer (``Int64``);
    ``arxiv`` stays text ("1803.05457", not a float)."""
    path = Path(path) if path is not None else benchmarks_path()
    if not path.is_file():
        raise FileNotFoundError(
            f"{path} not found: the benchmark catalogue ships in data/benchmarks/, or set "
            "$SLMLAB_DATA to the folder holding benchmarks/."
        )
    df = pd.read_csv(path, dtype=str, keep_default_na=False, na_values=[""])
    missing = [c for c in COLUMNS if c not in df.columns]
    if missing:
        raise ValueError(f"{path}: columns {missing} are missing")
    df["n_items"] = df["n_items"].astype("Int64")
    return df
