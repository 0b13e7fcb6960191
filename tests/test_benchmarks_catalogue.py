"""The benchmark catalogue (data/benchmarks/benchmarks.csv, slmlab.evaluate.benchmarks): its shape,
its vocabularies, its attributions against their sources, and chapter 7 rendering it."""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path

import pandas as pd
import pytest

from slmlab import evaluate
from slmlab.evaluate import catalogue

ROOT = Path(__file__).resolve().parent.parent
CHAPTER = ROOT / "book" / "07-evaluation" / "index.md"
SURVEY_REF = Path(
    os.environ.get("SLM_SURVEY_DIR", ROOT.parent / "shared" / "reference" / "slm_survey")
)

# The catalogue the design notes' chapter-7 line names (ARC as its two parts).
DESIGN_CHAPTER_7 = (
    "ARC-Easy",
    "ARC-Challenge",
    "HellaSwag",
    "WinoGrande",
    "PIQA",
    "MMLU",
    "TruthfulQA",
    "CommonsenseQA",
    "OpenBookQA",
    "GSM8K",
    "HumanEval",
)
ALSO_REQUIRED = ("BoolQ", "SIQA", "MATH", "MBPP", "LAMBADA", "TriviaQA", "BBH")

# The companion leaderboard's notes (TinyLLMLeaderBoard@087631a, src/App_new.tsx): the
# lm-evaluation-harness tasks averaged into the survey table's three scores.
LEADERBOARD = {
    "slm_zoo.csv:score_commonsense": {
        "hellaswag",
        "truthfulqa_mc2",
        "winogrande",
        "commonsense_qa",
        "piqa",
        "openbookqa",
        "boolq",
    },
    "slm_zoo.csv:score_problem_solving": {"arc_easy", "arc_challenge", "mmlu"},
    "slm_zoo.csv:score_math": {"gsm8k", "minerva_math"},
}
# data.json's performance keys -> the benchmark they score
ONDEVICE_KEYS = {"wino": "WinoGrande", "hellaswag": "HellaSwag", "mmlu": "MMLU"}


@pytest.fixture(scope="module")
def cat():
    return evaluate.benchmarks()


def codes(cell) -> list[str]:
    return [] if pd.isna(cell) else [c.strip() for c in cell.split(";")]


def test_loads_with_its_columns_and_dtypes(cat):
    assert isinstance(cat, pd.DataFrame) and len(cat) >= 20
    assert tuple(cat.columns) == catalogue.COLUMNS
    assert str(cat["n_items"].dtype) == "Int64"
    assert cat["arxiv"].dropna().map(type).eq(str).all()  # "1803.05457", not a float
    assert "benchmarks" in evaluate.__all__ and evaluate.benchmarks is catalogue.benchmarks


def test_names_unique_and_every_row_explained(cat):
    assert cat["name"].is_unique
    for col in ("name", "measures", "format", "metric", "paper", "survey_source", "lm_eval_task"):
        assert cat[col].notna().all(), col
    assert (cat["notes"].str.len() > 20).all()
    assert cat["paper"].str.fullmatch(r"[A-Z][\w-]+ et al\. (19|20)\d\d").all()
    assert cat["arxiv"].dropna().str.fullmatch(r"\d{4}\.\d{4,5}").all()


def test_probes_are_named_ones_or_blank(cat):
    probes = cat["tinytales_probe"].dropna()
    assert set(probes) <= set(catalogue.PROBES), set(probes) - set(catalogue.PROBES)
    assert {"commonsense", "math", "code", "perplexity"} <= set(probes)
    blank = cat[cat["tinytales_probe"].isna()]
    assert {"MMLU", "TruthfulQA"} <= set(blank["name"])
    assert blank["notes"].str.contains("No probe|No single probe").all()  # the note says why


def test_survey_codes_and_their_sources(cat):
    assert set(catalogue.SURVEYS) == {"S", "N", "L"}
    for _, row in cat.iterrows():
        got = codes(row["surveys"])
        assert set(got) <= {"S", "N", "L"} and len(got) == len(set(got)), row["name"]
        sources = [s.strip() for s in row["survey_source"].split(";")]
        if not got:
            assert sources == ["none confirmed"], row["name"]
            continue
        # every code has a source, every source belongs to a code of the row
        assert {s.split(":")[0] for s in sources} == set(got), row["name"]
        assert all(s in ("L: leaderboard", "L: on-device runs", "N: recalled") for s in sources), (
            row["name"]
        )


def test_leaderboard_attributions_match_its_notes(cat):
    """Rows marked "L: leaderboard" are exactly the twelve tasks of the leaderboard's notes, each
    pointing at the zoo score it is averaged into."""
    lb = cat[cat["survey_source"].str.contains("L: leaderboard")]
    assert len(lb) == sum(map(len, LEADERBOARD.values())) == 12
    for _, row in lb.iterrows():
        score = next(c for c in row["zoo_column"].split("; ") if c.startswith("slm_zoo.csv:"))
        assert row["lm_eval_task"] in LEADERBOARD[score], row["name"]


def test_zoo_columns_exist(cat):
    for cell in cat["zoo_column"].dropna():
        for ref in cell.split("; "):
            file, col = ref.split(":")
            header = (ROOT / "data" / "zoo" / file).read_text(encoding="utf-8").splitlines()[0]
            assert col in header.split(","), ref


def test_ondevice_attributions_match_the_reference_data(cat):
    marked = set(cat.loc[cat["survey_source"].str.contains("on-device runs"), "name"])
    assert marked == set(ONDEVICE_KEYS.values())
    if not (SURVEY_REF / "data.json").is_file():
        pytest.skip("the survey's reference files are not on this machine")
    runs = json.loads((SURVEY_REF / "data.json").read_text(encoding="utf-8"))
    keys = {k for r in runs for k in (r.get("performance") or {}) if k != "model"}
    assert keys == set(ONDEVICE_KEYS)


def test_sizes_are_positive_integers_with_their_split(cat):
    n = cat["n_items"].dropna()
    assert len(n) >= 17 and (n > 0).all()
    assert cat.loc[cat["n_items"].notna(), "eval_split"].isin(["test", "validation"]).all()
    sizes = dict(zip(cat["name"], cat["n_items"]))
    assert sizes["HumanEval"] == 164 and sizes["MMLU"] == 14042 and sizes["GSM8K"] == 1319
    assert sizes["TruthfulQA"] == 817 and sizes["OpenBookQA"] == 500


@pytest.mark.parametrize("name", DESIGN_CHAPTER_7 + ALSO_REQUIRED)
def test_required_benchmark_present(cat, name):
    assert name in set(cat["name"])


def test_chapter_7_renders_the_table():
    text = CHAPTER.read_text(encoding="utf-8")
    assert "## The benchmark catalogue" in text
    m = re.search(r"```\{csv-table\}[^\n]*\n:file: (\S+)\n:header-rows: 1\n", text)
    assert m, "chapter 7 renders the catalogue with a {csv-table} directive"
    assert (CHAPTER.parent / m.group(1)).resolve() == catalogue.benchmarks_path().resolve()
    assert "slmlab.evaluate.benchmarks()" in text


def test_data_dir_override_and_missing_file(tmp_path, monkeypatch):
    (tmp_path / "benchmarks").mkdir()
    shutil.copy(catalogue.benchmarks_path(), tmp_path / "benchmarks" / "benchmarks.csv")
    monkeypatch.setenv("SLMLAB_DATA", str(tmp_path))
    assert len(evaluate.benchmarks()) == len(pd.read_csv(tmp_path / "benchmarks/benchmarks.csv"))
    with pytest.raises(FileNotFoundError, match="data/benchmarks"):
        evaluate.benchmarks(tmp_path / "nowhere.csv")
