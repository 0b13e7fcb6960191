"""Every notebook follows the book's conventions (book/appendix/contributing.md): these run in a
second, before nbval executes the notebooks themselves.

Notebooks are committed WITH their outputs. The book renders the stored outputs and executes
nothing; ``make notebooks`` (or ``make notebooks NB=notebooks/NN-name.ipynb``) re-executes a
notebook in a fresh kernel and stores its outputs; ``make test`` executes every notebook once with
nbval and fails if a cell no longer shows what is stored (``tests/nbval_sanitize.cfg`` masks
timings, progress bars, addresses and paths; tag a cell ``nbval-ignore-output`` only when its
output cannot be the same twice, e.g. a timing table, and ``cpu-dependent`` when it follows a
training run inside the notebook, whose trajectory differs between CPUs: nbval runs both without
comparing them, so the claims they show must be asserted in a hidden cell after them).

The time budget of a notebook, top to bottom in a fresh kernel on a 2-core CPU: about 45 s on
average, at most 90 s; 3 minutes (180 s) is the hard limit at which CI fails it
(``notebooks/conftest.py``), and one cell may take at most 120 s. CI prints the ten slowest.
"""

import json
from pathlib import Path

import pytest

NOTEBOOKS = sorted((Path(__file__).parent.parent / "notebooks").glob("[0-9][0-9]-*.ipynb"))


def cells(nb_path):
    return json.loads(nb_path.read_text(encoding="utf-8"))["cells"]


def source(cell):
    return "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]


def test_there_are_notebooks():
    assert NOTEBOOKS, "no notebooks found in notebooks/"


@pytest.mark.parametrize("nb", NOTEBOOKS, ids=lambda p: p.name)
def test_first_cell_is_the_colab_setup(nb):
    first = cells(nb)[0]
    assert first["cell_type"] == "code"
    src = source(first)
    assert '"google.colab" in sys.modules' in src and "pip" in src and "git" in src, (
        f"{nb.name}: the first cell must be the Colab set-up cell (book/appendix/contributing.md)"
    )


@pytest.mark.parametrize("nb", NOTEBOOKS, ids=lambda p: p.name)
def test_structure(nb):
    cs = cells(nb)
    meta = json.loads(nb.read_text(encoding="utf-8"))["metadata"]
    assert meta.get("kernelspec", {}).get("name") == "python3", f"{nb.name}: kernel must be python3"
    titles = [c for c in cs if c["cell_type"] == "markdown" and source(c).lstrip().startswith("# ")]
    assert len(titles) == 1, f"{nb.name}: exactly one H1 title"
    assert hidden_asserts(cs), (
        f"{nb.name}: its claims must be asserted in a cell tagged remove-cell"
    )
    md = "\n".join(source(c) for c in cs if c["cell_type"] == "markdown")
    assert "{exercise}" in md and "{solution-start}" in md and "{solution-end}" in md, (
        f"{nb.name}: exercises with solutions"
    )
    assert ":class: dropdown" in md, f"{nb.name}: solutions are dropdowns"
    code = "\n".join(source(c) for c in cs if c["cell_type"] == "code")
    if "matplotlib" in code:
        assert "use_style()" in code, (
            f"{nb.name}: plots use the book's style (slmlab.plotting.use_style)"
        )


def hidden_asserts(cs):
    """Indices of the code cells tagged remove-cell that assert something."""
    return [
        i
        for i, c in enumerate(cs)
        if c["cell_type"] == "code"
        and "remove-cell" in c.get("metadata", {}).get("tags", [])
        and "assert" in source(c)
    ]


def cpu_dependent(cs):
    return [i for i, c in enumerate(cs) if "cpu-dependent" in c.get("metadata", {}).get("tags", [])]


TRAIN_IN_NOTEBOOK = [nb for nb in NOTEBOOKS if cpu_dependent(cells(nb))]


@pytest.mark.parametrize("nb", TRAIN_IN_NOTEBOOK, ids=lambda p: p.name)
def test_cpu_dependent_outputs_are_asserted_after_them(nb):
    cs = cells(nb)
    tagged = cpu_dependent(cs)
    asserted = hidden_asserts(cs)
    assert asserted and max(asserted) > tagged[0], (
        f"{nb.name}: cells tagged cpu-dependent are not compared by nbval; a hidden cell after "
        "them must assert what they show"
    )
    not_code = [i for i in tagged if cs[i]["cell_type"] != "code"]
    assert not not_code, f"{nb.name}: cpu-dependent belongs on code cells, not cells {not_code}"


def runs(cell):
    """A code cell that is executed: it has code and no skip-execution tag."""
    tags = cell.get("metadata", {}).get("tags", [])
    return cell["cell_type"] == "code" and source(cell).strip() and "skip-execution" not in tags


@pytest.mark.parametrize("nb", NOTEBOOKS, ids=lambda p: p.name)
def test_stored_with_outputs(nb):
    fix = f"run  make notebooks NB=notebooks/{nb.name}  and commit the notebook with its outputs"
    code = [c for c in cells(nb) if c["cell_type"] == "code"]
    executed = [c for c in code if runs(c)]
    counts = [c.get("execution_count") for c in executed]
    unrun = [i for i, n in enumerate(counts) if n is None]
    assert not unrun, (
        f"{nb.name}: {len(unrun)} of {len(executed)} code cells were never executed (the book "
        f"shows stored outputs and executes nothing): {fix}"
    )
    assert counts == list(range(1, len(counts) + 1)), (
        f"{nb.name}: cells were executed out of order or not in one fresh kernel "
        f"(execution counts {counts[:12]}...): {fix}"
    )
    for c in code:
        if not runs(c):
            assert not c.get("outputs") and c.get("execution_count") is None, (
                f"{nb.name}: a cell that is not executed (empty or tagged skip-execution) "
                f"stores outputs: {fix}"
            )
        if "raises-exception" not in c.get("metadata", {}).get("tags", []):
            assert all(o.get("output_type") != "error" for o in c.get("outputs", [])), (
                f"{nb.name}: a stored output is an error: {fix}"
            )
        assert not ({"execution", "ExecuteTime"} & set(c.get("metadata", {}))), (
            f"{nb.name}: execution timing in cell metadata (volatile): {fix}"
        )
    assert "widgets" not in json.loads(nb.read_text(encoding="utf-8"))["metadata"], (
        f"{nb.name}: widget state in the notebook metadata (volatile): {fix}"
    )


def sanitize(text):
    import re

    from nbval.plugin import get_sanitize_patterns

    cfg = Path(__file__).parent / "nbval_sanitize.cfg"
    for regex, replace in get_sanitize_patterns(cfg.read_text(encoding="utf-8")):
        text = re.sub(regex, replace, text)
    return text


@pytest.mark.parametrize(
    "varies, same",
    [
        (
            "train:  45%|####5     | 45/100 [00:03<00:04, 12.5it/s, loss=2.31]",
            "train:  45%|####5     | 45/100 [00:04<00:05, 11.1it/s, loss=2.31]",
        ),
        (
            "1,024,000 tokens in 124 s (8,235 tokens/s)",
            "1,024,000 tokens in 120 s (8,533 tokens/s)",
        ),
        (
            "trained in 0.7 s, 3.2 ms per step; 45.6 GFLOP/s",
            "trained in 0.9 s, 3.0 ms per step; 41.1 GFLOP/s",
        ),
        ("<Figure at 0x7f3a2c1b9d90>", "<Figure at 0x7f00deadbeef>"),
        (
            "saved to /tmp/slm-base-hf-ab12cd/model.safetensors",
            "saved to /tmp/slm-base-hf-zz99yy/model.safetensors",
        ),
        ("/home/me/slm-book/slmlab/x.py:3: UserWarning", "/work/ci/slmlab/x.py:3: UserWarning"),
        ('<table id="T_3f2a1">', '<table id="T_9c1e2">'),
    ],
)
def test_sanitizer_masks_what_varies_between_runs(varies, same):
    assert sanitize(varies) == sanitize(same)


@pytest.mark.parametrize(
    "result",
    [
        "float32: perplexity 3.0296 on 4,064 held-out tokens",
        "loss 0.919 -> 0.675",
        "2.375 vs 3.375 bits",
        "494,032,768 parameters; KV cache 12,288 bytes per token",
        "int8: 99.22% of the codes identical",
        "<td>3.0296</td>",
        "Once upon a time, there was a clever boy named Liam.",
    ],
)
def test_sanitizer_keeps_results(result):
    assert sanitize(result) == result
