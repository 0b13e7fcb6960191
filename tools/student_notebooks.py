"""Write the student edition of the notebooks: ``make student-book`` (with the student site).

A class hands out notebooks, not only a website. The student edition of a notebook is the same
notebook without its solutions: every run of cells from a ``{solution-start}`` marker to its
``{solution-end}`` (the dropdown the site shows) is removed, together with a plain
``{solution}`` directive's cell. Everything else stays as it is, outputs included: the
exercise, the reader's cell with its placeholder, and the check cell that grades what the reader
writes there (its stored output says "not yet" until the reader has answered).

Usage:  python tools/student_notebooks.py [--out DIR] [NOTEBOOK.ipynb ...]
        (default: every notebooks/NN-*.ipynb into _build/student/notebooks/)
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

from slmlab.utils import atomic_write_text

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"
OUT = ROOT / "_build" / "student" / "notebooks"
START = re.compile(r"^```\{solution-start\}\s*(\S+)", re.M)
END = re.compile(r"^```\{solution-end\}", re.M)
PLAIN = re.compile(r"^```\{solution\}", re.M)


def source(cell: dict) -> str:
    text = cell.get("source", "")
    return "".join(text) if isinstance(text, list) else text


def strip_solutions(nb: dict) -> tuple[dict, list[str]]:
    """The notebook without its solutions, and the labels of the solutions removed."""
    kept, removed, inside = [], [], None
    for cell in nb["cells"]:
        text = source(cell) if cell["cell_type"] == "markdown" else ""
        if inside is None and (start := START.search(text)):
            inside = start.group(1)
        if inside is None:
            if PLAIN.search(text):
                removed.append("solution")
                continue
            kept.append(cell)
            continue
        if END.search(text):
            removed.append(inside)
            inside = None
    if inside is not None:
        raise ValueError(f"solution {inside} has no solution-end")
    return {**nb, "cells": kept}, removed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("notebooks", nargs="*", type=Path)
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args(argv)
    paths = args.notebooks or sorted(NOTEBOOKS.glob("[0-9][0-9]-*.ipynb"))
    for path in paths:
        nb = json.loads(path.read_text(encoding="utf-8"))
        student, removed = strip_solutions(nb)
        text = json.dumps(student, indent=1, ensure_ascii=False) + "\n"
        atomic_write_text(args.out / path.name, text)
        print(f"{args.out / path.name}: {len(removed)} solutions removed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
