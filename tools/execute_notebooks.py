"""Re-execute notebooks in place and store their outputs: ``make notebooks [NB=path.ipynb]``.

The book renders the outputs stored in ``notebooks/*.ipynb`` as they are (``_config.yml``:
``execute_notebooks: "off"``), and CI's nbval run checks that today's code still produces them
(``pytest --nbval``). This script is how those outputs are made. For each notebook it

- starts a fresh kernel of this Python environment (the kernel ``pytest --nbval-current-env``
  uses) with ``notebooks/`` as the working directory, and runs every code cell top to bottom,
  except cells tagged ``skip-execution``, numbering them 1, 2, 3, ...;
- stops the notebook with an error when one cell runs past ``--cell-timeout`` or the whole
  notebook past ``--budget`` seconds (the CI limit, see ``notebooks/conftest.py``);
- leaves what an Output widget (``ipywidgets.interact``) shows in the cell's outputs, where
  nbval sees it too and the static page shows it, instead of hiding it in widget state;
- stores nothing volatile: no execution timings, no widget state, fixed widget model ids and
  pandas Styler table ids, consecutive prints joined into one output however they were flushed,
  so re-running unchanged code gives a minimal diff (only what the code prints differently);
- keeps each cell's source exactly as it is in the file, and writes the file only when every
  cell ran without an error (a failing notebook keeps its previous outputs).

It prints each notebook's time, and exits with status 1 if any notebook failed.

Usage:  python tools/execute_notebooks.py [NOTEBOOK.ipynb ...]   (default: notebooks/NN-*.ipynb)
"""

from __future__ import annotations

import argparse
import copy
import hashlib
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import ipykernel.kernelspec
import nbformat
from jupyter_client.kernelspec import KernelSpecManager
from jupyter_client.manager import AsyncKernelManager
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError, CellTimeoutError, DeadKernelError

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"
CELL_TIMEOUT = 120  # seconds; the same as make test's --nbval-cell-timeout
# Seconds per notebook: the hard CI limit (notebooks/conftest.py); on a slow or busy machine,
# SLM_NOTEBOOK_BUDGET=600 raises it for both.
BUDGET = float(os.environ.get("SLM_NOTEBOOK_BUDGET", "180"))
TARGET = 90  # seconds per notebook: what a notebook should stay under in CI
CURRENT_ENV_KERNEL = "slm-current-env"
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
# Cell metadata that only records when or how long a cell ran (nbclient, JupyterLab, nbextensions).
VOLATILE_CELL_METADATA = ("execution", "ExecuteTime")
# Notebook metadata that changes on every run: widget state (model ids, progress-bar texts).
VOLATILE_NB_METADATA = ("widgets",)
STYLER_ID = re.compile(r'<table id="T_([0-9a-f]{5})"')

# The kernels inherit this process's environment; nbval's kernels get the same settings from
# notebooks/conftest.py.
KERNEL_ENV = {"HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}


class CurrentEnvKernelSpecs(KernelSpecManager):
    """The ipykernel of the Python running this script, as ``pytest --nbval-current-env``."""

    def get_kernel_spec(self, kernel_name):
        if kernel_name == CURRENT_ENV_KERNEL:
            return self.kernel_spec_class(
                resource_dir=ipykernel.kernelspec.RESOURCES,
                **ipykernel.kernelspec.get_kernel_dict(),
            )
        return super().get_kernel_spec(kernel_name)


class Client(NotebookClient):
    def create_kernel_manager(self):
        self.km = AsyncKernelManager(
            kernel_name=CURRENT_ENV_KERNEL, kernel_spec_manager=CurrentEnvKernelSpecs()
        )
        return self.km


def executes(cell) -> bool:
    """Whether a code cell runs: it has code and no ``skip-execution`` tag."""
    tags = cell.get("metadata", {}).get("tags", [])
    return (
        cell["cell_type"] == "code"
        and bool(cell["source"].strip())
        and ("skip-execution" not in tags)
    )


def run(nb, cwd: Path, cell_timeout: float, budget: float) -> tuple[list[float], str | None]:
    """Execute ``nb`` in place; return the seconds of each executed cell and an error or None."""
    client = Client(
        nb,
        timeout=cell_timeout,
        resources={"metadata": {"path": str(cwd)}},
        record_timing=False,
        store_widget_state=False,
    )
    # No Output-widget mimic: what interact shows goes into the cell, as nbval sees it.
    client.widget_registry = {}
    times: list[float] = []
    start = time.perf_counter()
    with client.setup_kernel(stderr=subprocess.DEVNULL):  # as nbval: cells' output is captured
        for index, cell in enumerate(nb.cells):
            if not executes(cell):
                continue
            remaining = budget - (time.perf_counter() - start)
            if remaining <= 0:
                return times, f"over the {budget:.0f} s budget before cell {index}"
            client.timeout = max(1, int(min(cell_timeout, remaining)))
            t0 = time.perf_counter()
            try:
                client.execute_cell(cell, index, execution_count=len(times) + 1)
            except CellTimeoutError:
                if time.perf_counter() - start >= budget - 1:
                    return times, f"cell {index} ran past the notebook's {budget:.0f} s budget"
                return times, f"cell {index} ran past the {cell_timeout:.0f} s cell timeout"
            except CellExecutionError as err:
                return times, f"cell {index} failed:\n{err}"
            except DeadKernelError as err:
                return times, f"the kernel died in cell {index}: {err}"
            times.append(time.perf_counter() - t0)
    return times, None


def clear(nb) -> None:
    """Remove every output, execution count and volatile metadata before the run."""
    for key in VOLATILE_NB_METADATA:
        nb.metadata.pop(key, None)
    for cell in nb.cells:
        for key in VOLATILE_CELL_METADATA:
            cell.metadata.pop(key, None)
        if cell.cell_type == "code":
            cell.outputs = []
            cell.execution_count = None


def merge_streams(nb) -> None:
    """Join consecutive stream outputs of one name: how a print is split depends on timing."""
    for cell in nb.cells:
        merged = []
        for out in cell.get("outputs", []):
            last = merged[-1] if merged else None
            if (
                out.output_type == "stream"
                and last is not None
                and last.output_type == "stream"
                and last.name == out.name
            ):
                last.text += out.text
            else:
                merged.append(out)
        if "outputs" in cell:
            cell.outputs = merged


def stable_ids(nb, name: str) -> None:
    """Give the random ids in outputs (widget models, Styler tables) fixed values."""

    def fixed(kind: str, n: int, length: int) -> str:
        return hashlib.sha1(f"{name}:{kind}:{n}".encode()).hexdigest()[:length]

    models: dict[str, str] = {}
    tables = 0
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            data = out.get("data", {})
            view = data.get(WIDGET_VIEW)
            if isinstance(view, dict) and "model_id" in view:
                mid = view["model_id"]
                if mid not in models:  # ipywidgets' model ids: 32 hex digits
                    models[mid] = fixed("widget", len(models), 32)
                view["model_id"] = models[mid]
            html = data.get("text/html")
            if isinstance(html, str):
                for styler in dict.fromkeys(STYLER_ID.findall(html)):
                    tables += 1
                    html = html.replace(f"T_{styler}", f"T_{fixed('styler', tables, 5)}")
                data["text/html"] = html


def store(path: Path, raw: dict, nb) -> None:
    """Write the executed notebook; every cell's source stays as it is in the file."""
    nbformat.validate(nb)
    executed = json.loads(nbformat.writes(nb))  # outputs in nbformat's on-disk layout
    assert len(executed["cells"]) == len(raw["cells"])
    for old, new in zip(raw["cells"], executed["cells"]):
        old["metadata"] = new["metadata"]
        if old["cell_type"] == "code":
            old["execution_count"] = new["execution_count"]
            old["outputs"] = new["outputs"]
    for key in VOLATILE_NB_METADATA:
        raw["metadata"].pop(key, None)
    # The layout of the repository's notebooks (and of nbformat): one-space indent, UTF-8.
    path.write_text(json.dumps(raw, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")


def warn_about_paths(nb, name: str) -> None:
    """Outputs that show this machine's paths differ on every other machine: say where."""
    needles = {str(ROOT), str(Path.home())} - {"/"}
    for index, cell in enumerate(nb.cells):
        text = json.dumps(cell.get("outputs", []))
        found = sorted(n for n in needles if n in text)
        if found:
            print(
                f"  note: {name} cell {index} shows a local path ({found[0]}); nbval masks it, "
                "but a reader sees it",
                flush=True,
            )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("notebooks", nargs="*", type=Path)
    parser.add_argument("--cell-timeout", type=float, default=CELL_TIMEOUT)
    parser.add_argument("--budget", type=float, default=BUDGET)
    args = parser.parse_args(argv)
    paths = [p.resolve() for p in args.notebooks] or sorted(NOTEBOOKS.glob("[0-9][0-9]-*.ipynb"))
    if not paths:
        print("no notebooks found", file=sys.stderr)
        return 1
    os.environ.update(KERNEL_ENV)
    results: list[tuple[str, float, str | None]] = []
    for path in paths:
        name = path.relative_to(ROOT).as_posix() if path.is_relative_to(ROOT) else str(path)
        raw = json.loads(path.read_text(encoding="utf-8"))
        nb = nbformat.from_dict(copy.deepcopy(raw))
        for cell in nb.cells:  # nbformat.reads joins sources stored as lists of lines
            if isinstance(cell.source, list):
                cell.source = "".join(cell.source)
        clear(nb)
        print(f"executing {name} ...", flush=True)
        t0 = time.perf_counter()
        times, error = run(nb, NOTEBOOKS, args.cell_timeout, args.budget)
        total = time.perf_counter() - t0
        if error is None:
            merge_streams(nb)
            stable_ids(nb, path.name)
            store(path, raw, nb)
            warn_about_paths(nb, name)
            slowest = max(times, default=0.0)
            note = f" (over the {TARGET} s target)" if total > TARGET else ""
            top = sorted(range(len(times)), key=times.__getitem__, reverse=True)[:3]
            where = ", ".join(f"In [{i + 1}] {times[i]:.1f} s" for i in top)
            print(
                f"  {total:6.1f} s  {name}: {len(times)} cells, slowest {slowest:.1f} s{note}"
                f" ({where})",
                flush=True,
            )
        else:
            print(f"  FAILED after {total:.1f} s, {name} left unchanged: {error}", flush=True)
        results.append((name, total, error))

    print("\nnotebook times (fresh kernel, all cells):")
    for name, total, error in sorted(results, key=lambda r: -r[1]):
        print(f"  {total:6.1f} s  {name}{'  FAILED' if error else ''}")
    total = sum(r[1] for r in results)
    print(
        f"  {total:6.1f} s  total, {total / len(results):.1f} s per notebook "
        f"(budget: about 45 s on average, at most {TARGET} s each, {BUDGET:.0f} s hard limit)"
    )
    failed = [r[0] for r in results if r[2]]
    if failed:
        print(f"{len(failed)} notebook(s) failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
