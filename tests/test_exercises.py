"""Exercises that grade the reader's answer, in both editions.

Every code exercise is the reader's cell (a placeholder), then a check cell that grades what
the reader's cell left behind — ``@exercise("ex-NN-k")`` from :mod:`slmlab.checks` — and then the
solution in a dropdown, which calls the check again. The notebooks are stored with their outputs
and ``make test`` re-executes them with nbval, comparing every output: so the stored outputs
checked here — "not yet" with a reason after the placeholder, "passed" after the solution — are
what today's code prints. The student edition (``tools/student_notebooks.py``) keeps the
exercises and the check cells and drops the solutions; one student notebook is executed here.
"""

from __future__ import annotations

import ast
import json
import re
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))
import student_notebooks  # noqa: E402

NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]-*.ipynb"))
LABEL = re.compile(r"^```\{exercise\}.*?^:label:\s*(\S+)", re.M | re.S)


def source(cell: dict) -> str:
    return "".join(cell["source"])


def printed(cell: dict) -> str:
    return "".join("".join(o.get("text", "")) for o in cell.get("outputs", []))


def exercises(nb: dict) -> list[dict]:
    """Each exercise: its label, reader and check cells, and the code cells of its solution."""
    cells, found = nb["cells"], []
    for i, cell in enumerate(cells):
        m = LABEL.search(source(cell)) if cell["cell_type"] == "markdown" else None
        if not m:
            continue
        label = m.group(1)
        start = next(
            j for j in range(i, len(cells)) if f"solution-start}} {label}" in source(cells[j])
        )
        end = next(j for j in range(start, len(cells)) if "solution-end" in source(cells[j]))
        code = [c for c in cells[i + 1 : start] if c["cell_type"] == "code"]
        solution = [c for c in cells[start:end] if c["cell_type"] == "code"]
        found.append({"label": label, "code": code, "solution": solution})
    return found


def graded(nb: dict) -> list[dict]:
    return [e for e in exercises(nb) if e["code"]]


def check_function(cell: dict, label: str) -> str:
    """The name of the function the check cell decorates with ``@exercise(label)``."""
    for node in ast.parse(source(cell)).body:
        if isinstance(node, ast.FunctionDef):
            for dec in node.decorator_list:
                if (
                    isinstance(dec, ast.Call)
                    and getattr(dec.func, "id", None) == "exercise"
                    and [a.value for a in dec.args if isinstance(a, ast.Constant)] == [label]
                ):
                    return node.name
    raise AssertionError(f"{label}: the check cell defines no @exercise({label!r}) function")


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_every_code_exercise_is_answer_check_solution(path):
    nb = json.loads(path.read_text(encoding="utf-8"))
    assert graded(nb), f"{path.name}: no exercise with a cell for the reader's answer"
    for ex in graded(nb):
        label = ex["label"]
        assert len(ex["code"]) == 2, (
            f"{label}: between the exercise and its solution come exactly two code cells, the "
            f"reader's and the check ({len(ex['code'])} found)"
        )
        reader, checker = ex["code"]
        assert "check(" not in source(reader) and "exercise-check" not in reader["metadata"].get(
            "tags", []
        ), f"{label}: the reader's cell holds only the placeholder"
        assert "exercise-check" in checker["metadata"].get("tags", []), (
            f"{label}: the check cell is tagged exercise-check"
        )
        name = check_function(checker, label)
        assert any(f"{name}()" in source(c) for c in ex["solution"]), (
            f"{label}: the solution ends by calling {name}() again"
        )


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_placeholders_fail_with_a_reason_and_solutions_pass(path):
    """The stored outputs (re-made and compared by nbval in ``make test``)."""
    nb = json.loads(path.read_text(encoding="utf-8"))
    for ex in graded(nb):
        label = ex["label"]
        verdict = printed(ex["code"][1]).strip().splitlines()
        assert verdict and verdict[-1].startswith(f"{label}: not yet. "), (
            f"{label}: run against the placeholder, the check says 'not yet': {verdict}"
        )
        reason = verdict[-1][len(f"{label}: not yet. ") :]
        assert len(reason) >= 15, f"{label}: the check says what is missing or wrong: {reason!r}"
        solved = "".join(printed(c) for c in ex["solution"])
        assert f"{label}: passed" in solved, f"{label}: the solution passes its check"
        assert "not yet" not in solved, f"{label}: every check of the solution passes"


def test_student_edition_drops_solutions_and_keeps_the_checks(tmp_path):
    assert student_notebooks.main(["--out", str(tmp_path), *map(str, NOTEBOOKS)]) == 0
    for path in NOTEBOOKS:
        nb = json.loads(path.read_text(encoding="utf-8"))
        student = json.loads((tmp_path / path.name).read_text(encoding="utf-8"))
        text = "\n".join(source(c) for c in student["cells"])
        assert "{solution" not in text, f"{path.name}: no solution is left"
        assert len(student["cells"]) < len(nb["cells"])
        for ex in exercises(nb):
            assert f":label: {ex['label']}" in text, f"{path.name}: {ex['label']} is still there"
            for cell in ex["code"]:
                assert source(cell) in text, f"{ex['label']}: the reader's and check cells stay"
            for cell in ex["solution"]:
                assert source(cell) not in text, f"{ex['label']}: its solution code is gone"


@pytest.mark.slow
def test_a_student_notebook_runs_and_grades_the_placeholders(tmp_path):
    """Notebook 11 (the fastest) without solutions runs top to bottom; every check says 'not
    yet', none raises."""
    import nbformat

    # nbclient comes with the book extra (myst-nb), not with .[hf,test] (make test-min)
    NotebookClient = pytest.importorskip("nbclient").NotebookClient

    path = ROOT / "notebooks" / "11-slm-landscape.ipynb"
    student_notebooks.main(["--out", str(tmp_path), str(path)])
    nb = nbformat.read(tmp_path / path.name, as_version=4)
    NotebookClient(
        nb,
        timeout=300,
        kernel_name="python3",
        resources={"metadata": {"path": str(ROOT / "notebooks")}},
    ).execute()
    checks = [c for c in nb.cells if "exercise-check" in c.metadata.get("tags", [])]
    assert len(checks) == len(graded(json.loads(path.read_text(encoding="utf-8"))))
    for cell in checks:
        out = "".join(o.get("text", "") for o in cell.outputs)
        assert ": not yet. " in out, out
