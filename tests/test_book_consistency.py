"""The book's pages agree with the project's own notebooks, data and benchmarks (issue #11).

Fast and build-free: the pages (``book/**/*.md``) and notebooks are read as text and JSON; the
numbers a page states are compared with the files they come from (``data/zoo/*.csv``,
``data/reference/base/metrics.json``, ``benchmarks/README.md``). What is checked:

* every notebook a page points to exists — by a ``{doc}`` role, a link, a glue reference, or in
  words ("notebook 21", "notebooks 62, 63, 64") — and every ``{doc}`` and link target exists;
* every glued value a page pastes is glued by the notebook it names, every cited key is in
  ``references.bib``;
* the preface's list of what runs today names exactly the notebooks in ``notebooks/``;
* no page has a control character where a LaTeX command was (``\\t`` of ``\\text`` read as a TAB);
* one count of the surveyed SLMs: the table's SLMs released from 2022 to 2024, the count chapter 1
  glues as ``n_slms`` from notebook 11 (GPT-2's four 2019 sizes and the four LLaMA-7B-class
  baselines are not counted);
* a few facts fixed in issue #11 (``FACTS``, ``FORBIDDEN``), each against its source.
"""

import json
import re
from functools import lru_cache
from pathlib import Path

import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parent.parent
BOOK = ROOT / "book"
PAGES = sorted(p for p in BOOK.rglob("*.md") if "_ext" not in p.parts)
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]-*.ipynb"))
PREFACE = BOOK / "00-preface" / "index.md"


def rel(p: Path) -> str:
    return str(p.relative_to(ROOT))


@lru_cache(None)
def text(page: Path) -> str:
    """A page's text; for a notebook, its markdown cells (what the page shows as prose)."""
    if page.suffix == ".ipynb":
        cells = json.loads(page.read_text(encoding="utf-8"))["cells"]
        return "\n\n".join("".join(c["source"]) for c in cells if c["cell_type"] == "markdown")
    return page.read_text(encoding="utf-8")


def flat(page: Path) -> str:
    """The page with every run of whitespace made one space, so phrases match across line breaks."""
    return re.sub(r"\s+", " ", text(page))


def paragraphs(page: Path) -> list[str]:
    return [re.sub(r"\s+", " ", p) for p in re.split(r"\n\s*\n", text(page))]


@lru_cache(None)
def notebook_glue_names(nb: Path) -> tuple[re.Pattern, ...]:
    """The names a notebook glues, as patterns: ``glue("n_slms", ...)`` is the name itself,
    ``glue(f"kl_{method}_w{bits}", ...)`` matches any key with something in place of each field."""
    cells = json.loads(nb.read_text(encoding="utf-8"))["cells"]
    src = "\n".join("".join(c["source"]) for c in cells if c["cell_type"] == "code")
    names = re.findall(r"""\bglue\(\s*(f?)["']([^"']+)["']""", src)
    return tuple(
        re.compile(
            "[A-Za-z0-9_]+".join(map(re.escape, re.split(r"\{[^}]*\}", name)))
            if f
            else re.escape(name)
        )
        for f, name in names
    )


def notebook_glues(nb: Path, key: str) -> bool:
    return any(p.fullmatch(key) for p in notebook_glue_names(nb))


def resolve(page: Path, target: str) -> Path:
    """A {doc} or link target: absolute from the project root when it starts with "/", else
    relative to the page."""
    target = target.split("#")[0]
    return (ROOT / target.lstrip("/")) if target.startswith("/") else (page.parent / target)


def exists(path: Path) -> bool:
    return any(Path(str(path) + s).is_file() for s in ("", ".md", ".ipynb"))


def doc_targets(page: Path) -> list[str]:
    out = []
    for m in re.finditer(r"\{doc\}`([^`]+)`", text(page)):
        inner = m.group(1)
        t = re.search(r"<([^>]+)>\s*$", inner)
        out.append((t.group(1) if t else inner).strip())
    return out


def link_targets(page: Path) -> list[str]:
    links = re.findall(r"\]\(([^)\s]+)\)", text(page))
    return [t for t in links if not re.match(r"[a-z]+:|#", t)]


def glue_refs(page: Path) -> list[tuple[str, str]]:
    """(notebook path, key) of every {glue:...}`path::key` role and ```{glue} key / :doc: path."""
    refs = [
        (m.group(1), m.group(2))
        for m in re.finditer(r"\{glue(?::[a-z]+)?\}`([^`:]+\.ipynb)::([A-Za-z0-9_]+)", text(page))
    ]
    refs += [
        (m.group(2), m.group(1))
        for m in re.finditer(r"```\{glue\}\s+([A-Za-z0-9_]+)\s*\n:doc:\s*(\S+)", text(page))
    ]
    return refs


def notebooks_named_in_words(page: Path) -> set[str]:
    """Two-digit notebook numbers in "notebook 21", "notebooks 62, 63, 64", "notebook (61)"."""
    nums = set()
    for m in re.finditer(
        r"\bnotebooks?\s+(\(?\d\d\)?(?:\s*(?:,|and|to)\s*\d\d\b)*)", flat(page), re.I
    ):
        nums |= set(re.findall(r"\d\d", m.group(1)))
    return nums


def notebook_exists(number: str) -> bool:
    return any(nb.name.startswith(f"{number}-") for nb in NOTEBOOKS)


# ----------------------------------------------------------------------------- pointers
def test_there_are_pages_and_notebooks():
    assert PREFACE in PAGES and len(PAGES) > 10 and NOTEBOOKS


@pytest.mark.parametrize("page", PAGES, ids=rel)
def test_doc_and_link_targets_exist(page):
    missing = [t for t in doc_targets(page) + link_targets(page) if not exists(resolve(page, t))]
    assert not missing, f"{rel(page)} points to pages or notebooks that do not exist: {missing}"


@pytest.mark.parametrize("page", PAGES, ids=rel)
def test_notebooks_named_in_words_exist(page):
    missing = sorted(n for n in notebooks_named_in_words(page) if not notebook_exists(n))
    named = set(re.findall(r"`(\d\d-[a-z0-9-]+)`", text(page)))  # notebook names in backticks
    missing += sorted(n for n in named if not (ROOT / "notebooks" / f"{n}.ipynb").is_file())
    assert not missing, (
        f"{rel(page)} names notebooks that do not exist: {missing}; "
        "say 'planned' or 'to come' in words, without a number, until it lands"
    )


@pytest.mark.parametrize("page", PAGES, ids=rel)
def test_glued_values_are_glued_by_their_notebook(page):
    bad = []
    for path, key in glue_refs(page):
        nb = resolve(page, path)
        if not nb.is_file():
            bad.append(f"{path} (no such notebook)")
        elif not notebook_glues(nb, key):
            bad.append(f"{path}::{key} (the notebook glues no such name)")
    assert not bad, f"{rel(page)}: {bad}"


def test_cited_keys_are_in_the_bibliography():
    bib = set(
        re.findall(
            r"^@\w+\{([^,\s]+),", (ROOT / "references.bib").read_text(encoding="utf-8"), re.M
        )
    )
    missing = {}
    for page in PAGES:
        for m in re.finditer(r"\{cite(?::[a-z]+)?\}`([^`]+)`", text(page)):
            for key in (k.strip() for k in m.group(1).split(",")):
                if key not in bib:
                    missing.setdefault(rel(page), []).append(key)
    assert not missing, f"cited but not in references.bib: {missing}"


def test_preface_lists_exactly_the_notebooks_that_run():
    listed = {resolve(PREFACE, t).name for t in doc_targets(PREFACE) if "notebooks/" in t}
    on_disk = {nb.stem for nb in NOTEBOOKS}
    assert listed == on_disk, (
        f"the preface's 'What runs today' must name every notebook in notebooks/: "
        f"missing {sorted(on_disk - listed)}, not on disk {sorted(listed - on_disk)}"
    )


# ----------------------------------------------------------------------------- broken LaTeX
@pytest.mark.parametrize("page", PAGES, ids=rel)
def test_no_control_characters(page):
    """A TAB followed by "ext" is a ``\\text`` whose ``\\t`` was read as an escape; a form feed or a
    backspace would be ``\\frac`` or ``\\beta``. Pages hold none of them (nor any TAB)."""
    for n, line in enumerate(text(page).splitlines(), 1):
        assert "\text" not in line, f"{rel(page)}:{n}: TAB + 'ext' — write \\text"
        bad = re.search(r"[\x00-\x08\x0b-\x1f\x7f]", line)
        assert not bad, (
            f"{rel(page)}:{n}: control character {bad.group()!r} in {line.strip()[:60]!r}"
        )


# ----------------------------------------------------------------------------- one count of SLMs
def surveyed_slm_count() -> int:
    """The definition the book uses (chapter 1, glued as ``n_slms`` by notebook 11): the rows of
    the project's table that are not baselines and were released from 2022 on."""
    from slmlab import zoo

    table = zoo.load_zoo()
    return int((~table["is_baseline"] & (table["released"] >= "2022-01-01")).sum())


COUNT_PATTERNS = [
    r"\b(\d{1,3}) (?:open |surveyed |small )?(?:SLMs|small language models)\b",  # not "2024 SLMs"
    r"\bsurvey(?:'s)? of (\d{1,3})\b",
    r"\b(\d{1,3}) models (?:in|of) the (?:survey|table)\b",
]


def test_one_count_of_surveyed_slms():
    expected = surveyed_slm_count()
    stated = {}
    for page in PAGES + NOTEBOOKS:
        for pattern in COUNT_PATTERNS:
            for m in re.finditer(pattern, flat(page)):
                stated.setdefault(int(m.group(1)), []).append(f"{rel(page)}: {m.group(0)!r}")
    wrong = {n: where for n, where in stated.items() if n != expected}
    assert not wrong, (
        f"the book counts {expected} surveyed SLMs (released 2022-2024, no baselines); "
        f"glue n_slms from notebook 11 rather than typing a number: {wrong}"
    )
    gluing = [rel(p) for p in PAGES if any(k == "n_slms" for _, k in glue_refs(p))]
    assert "book/01-what-is-an-slm/index.md" in gluing, (
        "chapter 1 defines the count by gluing n_slms"
    )


# ----------------------------------------------------------------------------- facts of issue #11
def tied_step_ratio_from_benchmarks() -> str:
    readme = (ROOT / "benchmarks" / "README.md").read_text(encoding="utf-8")
    m = re.search(
        r"tied embedding / LM head step takes ([\d.]+-[\d.]+x)", re.sub(r"\s+", " ", readme)
    )
    assert m, "benchmarks/README.md no longer states the tied/untied step ratio"
    return m.group(1)


def test_tied_embeddings_cost_what_the_benchmark_measures():
    measured = tied_step_ratio_from_benchmarks()
    stated = []
    for page in PAGES:
        for para in paragraphs(page):
            if re.search(r"\bti(?:e|ed|es|ing)\b", para, re.I):
                assert not re.search(r"times slower|slows?\b", para, re.I), (
                    f"{rel(page)}: the benchmark measures a tied step at {measured} of an "
                    f"untied one: {para[:120]!r}"
                )
                stated += re.findall(r"step takes ([\d.]+[–-][\d.]+x)", para)
    assert stated, "chapter 3 states the measured tied/untied ratio"
    assert all(s.replace("–", "-") == measured for s in stated), (stated, measured)


def base_parameters_m() -> float:
    return json.loads((ROOT / "data/reference/base/metrics.json").read_text())["parameters"] / 1e6


def suite_score(model: str, task: str, metric: str, difficulty: str = "all") -> float:
    """A shipped reference model's probe score (its metrics.json suite), in percent."""
    rows = json.loads((ROOT / f"data/reference/{model}/metrics.json").read_text())["suite"]
    return 100 * next(
        r["score"]
        for r in rows
        if r["task"] == task and r["metric"] == metric and r["difficulty"] == difficulty
    )


def shipped_perplexity(model: str) -> float:
    return json.loads((ROOT / f"data/reference/{model}/metrics.json").read_text())["perplexity"][
        "ppl"
    ]


def test_chapter_7s_perplexity_warning_holds():
    page = flat(BOOK / "07-evaluation" / "index.md")
    assert "the small model's validation perplexity is *lower* than the base model's" in page
    assert shipped_perplexity("small") < shipped_perplexity("base")


def zoo_row(name: str) -> pd.Series:
    t = pd.read_csv(ROOT / "data/zoo/slm_zoo.csv")
    return t.loc[t["name"] == name].iloc[0]


def tokens_per_param(name: str) -> float:
    r = zoo_row(name)
    return r["training_tokens"] / (r["params_b"] * 1e9)


def ondevice_memory_gb(model: str) -> float:
    runs = pd.read_csv(ROOT / "data/zoo/ondevice_runs.csv")
    return float(runs.loc[runs["model"] == model, "memory_gb"].median())


# (what, regex with one number group (whitespace-flattened page text), the source's value,
# tolerance)
FACTS = [
    (
        "base model parameters (millions)",
        r"the base model has ([\d.]+)M parameters",
        base_parameters_m,
        0.06,
    ),
    (
        "5B parameters at 4 bits (GB)",
        r"5B parameters at 4 bits take about ([\d.]+) GB",
        lambda: 5e9 * 4 / 8 / 1e9,
        0.01,
    ),
    (
        "LLaMA-7B INT4 on the phones (GB)",
        r"LLaMA-7B in ([\d.]+) GB",
        lambda: ondevice_memory_gb("LLaMA 7B"),
        0.05,
    ),
    (
        "SmolLM-135M training tokens (T)",
        r"SmolLM-135M saw ([\d.]+)T tokens",
        lambda: zoo_row("SmolLM-135M")["training_tokens"] / 1e12,
        0.01,
    ),
    (
        "SmolLM-135M tokens per parameter",
        r"SmolLM-135M saw [\d.]+T tokens, about ([\d,]+) per parameter",
        lambda: tokens_per_param("SmolLM-135M"),
        50,
    ),
    (
        "base commonsense accuracy (%)",
        r"The base model answers (\d+)% of the held-out commonsense items",
        lambda: suite_score("base", "commonsense", "acc"),
        0.5,
    ),
    (
        "small commonsense accuracy (%)",
        r"commonsense items and the smaller\s+reference model (\d+)%",
        lambda: suite_score("small", "commonsense", "acc"),
        0.5,
    ),
    *[
        (
            f"{who} {task} exact match (%)",
            label + (r" \((\d+)% against" if who == "base" else r" \(\d+% against (\d+)%"),
            lambda who=who, task=task: suite_score(who, task, "exact_match"),
            0.5,
        )
        for task, label in (("math", "Math"), ("code", "programs"))
        for who in ("base", "small")
    ],
    *[
        (
            f"{who} lookup at one pair (%)",
            r"copy a code shown once "
            + (r"\((\d+)% and" if who == "base" else r"\(\d+% and (\d+)%"),
            lambda who=who: suite_score(who, "icl_lookup", "acc", "1-shot"),
            0.5,
        )
        for who in ("base", "small")
    ],
    (
        "Qwen2-0.5B training tokens (T)",
        r"Qwen2-0\.5B saw ([\d.]+)T",
        lambda: zoo_row("Qwen2-0.5B")["training_tokens"] / 1e12,
        0.01,
    ),
    (
        "Qwen2-0.5B tokens per parameter",
        r"Qwen2-0\.5B saw [\d.]+T, ([\d,]+) per parameter",
        lambda: tokens_per_param("Qwen2-0.5B"),
        50,
    ),
]


@pytest.mark.parametrize("what, pattern, source, tol", FACTS, ids=[f[0] for f in FACTS])
def test_stated_numbers_match_their_source(what, pattern, source, tol):
    found = [
        (rel(p), float(m.group(1).replace(",", "")))
        for p in PAGES
        for m in re.finditer(pattern, flat(p))
    ]
    assert found, f"no page states {what!r} any more: fix the regex or drop the fact from FACTS"
    value = source()
    wrong = [(where, v) for where, v in found if abs(v - value) > tol]
    assert not wrong, f"{what}: the source says {value:g}, pages say {wrong}"


# (regex, why it is wrong) — claims issue #11 removed; none may come back
FORBIDDEN = [
    (r"\b5M-parameter", "the base model has 3.15M parameters (data/reference/base/metrics.json)"),
    (
        r"no longer fits? a phone",
        "7B models at INT4 ran on the survey's phones (data/zoo/ondevice_runs.csv)",
    ),
    (
        r"hundred times past Chinchilla",
        "sub-1B models in the table saw up to 36,000 tokens per parameter",
    ),
    (
        r"pruning 50% hurts more",
        "no notebook or cited source compares 50% pruning with 4-bit quantization",
    ),
    (
        r"in preparation",
        "an existing notebook is linked; one that does not exist yet is 'planned' or 'to come'",
    ),
    (
        r"GPTQ at 4 bits loses less perplexity",
        "notebook 62 asserts GPTQ's lower KL, not perplexity",
    ),
    (
        r"70[–-]90% (?:sparsity|of the energy)",
        "no source: the crossover depends on kernel and hardware",
    ),
]


@pytest.mark.parametrize("pattern, why", FORBIDDEN, ids=[f[0] for f in FORBIDDEN])
def test_removed_claims_stay_removed(pattern, why):
    hits = [rel(p) for p in PAGES if re.search(pattern, flat(p), re.I)]
    assert not hits, f"{hits}: {pattern!r} — {why}"


def test_survey_qwen_figure_comes_with_the_computed_one():
    """The survey's "25.4% more parameters" is not what the published configs give (notebook 11):
    a paragraph that quotes it also pastes the computed value."""
    for page in PAGES:
        for para in paragraphs(page):
            if "25.4%" in para:
                assert "qwen_more_params" in para, (
                    f"{rel(page)}: quote 25.4% only next to the computed value"
                )


def test_acc_norm_has_one_definition():
    """lm-evaluation-harness's acc_norm divides the log-likelihood by the option's length in
    characters (``len(choice)``), as ``slmlab.evaluate`` does: never per token or per byte."""
    paras = [(rel(p), para) for p in PAGES for para in paragraphs(p) if "acc_norm" in para]
    assert paras, "chapter 7 defines acc_norm"
    for where, para in paras:
        assert not re.search(r"\bper[- ](?:token|byte)\b|\bbytes\b", para, re.I), (
            f"{where}: {para[:160]!r}"
        )
    assert any("character" in para for _, para in paras), "say what acc_norm divides by: characters"
