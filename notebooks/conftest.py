"""pytest plugin for the notebooks, loaded by ``pytest --nbval ... notebooks``
(``make test``).

nbval collects every code cell of ``notebooks/*.ipynb`` as one test item and runs a
notebook's cells in one fresh kernel. This plugin adds what nbval lacks:

- **Time per notebook.** It sums the wall time of each notebook's items (kernel
  start-up included) and prints the ten slowest notebooks at the end of the session.
- **The notebook budget.** About 45 s per notebook on average and at most 90 s; 180 s
  in total is the hard CI limit. A cell that would take a notebook past 180 s is
  interrupted and fails with a message that states the budget, and the notebook's
  remaining cells are skipped. (The per-cell limit is nbval's
  ``--nbval-cell-timeout``, set in the Makefile.)
- **skip-execution.** Cells tagged ``skip-execution`` are skipped here too, as the
  book's executor (``make notebooks``) skips them.
- **Cells run as in Jupyter.** nbval 0.11 sends each cell with
  ``store_history=False``; IPython then misses a final ``;`` (it looks for it in the
  history) and shows the value the notebook hides, e.g. the function
  ``widgets.interact(...);`` returns. Here cells run with history, as in Jupyter and in
  ``make notebooks``.

The kernels inherit this process's environment: offline, as in
``tools/execute_notebooks.py``.
"""

from __future__ import annotations

import os
import time
from collections import defaultdict

import pytest

# The hard CI limit for one notebook, kernel start-up included. SLM_NOTEBOOK_BUDGET=600
# raises it on a slow or busy machine (tools/execute_notebooks.py reads the same
# variable).
BUDGET_S = float(os.environ.get("SLM_NOTEBOOK_BUDGET", "180"))
TARGET_S = 90.0  # what each notebook should stay under
AVERAGE_S = 45.0  # what notebooks should take on average
SLOWEST_SHOWN = 10
BUDGET_TEXT = (
    f"the notebook budget: about {AVERAGE_S:.0f} s on average, "
    f"at most {TARGET_S:.0f} s per notebook; 3 minutes (180 s) is the hard CI limit"
    + (
        ""
        if BUDGET_S == 180
        else f", set to {BUDGET_S:.0f} s here by SLM_NOTEBOOK_BUDGET"
    )
)

os.environ.setdefault(
    "HF_HUB_OFFLINE", "1"
)  # a notebook never reaches a hub in the tests
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

_spent: dict[str, float] = defaultdict(
    float
)  # notebook -> seconds of its finished test phases
_over_budget: dict[str, str] = {}  # notebook -> the cell that used up its budget


def _execute_as_jupyter(self, cell_input, allow_stdin=None):
    """nbval's RunningKernel.execute_cell_input, with the history Jupyter keeps."""
    return self.kc.execute(
        cell_input, store_history=True, allow_stdin=allow_stdin, stop_on_error=False
    )


def pytest_configure(config):
    if getattr(config.option, "nbval", False) or getattr(
        config.option, "nbval_lax", False
    ):
        from nbval.kernel import RunningKernel

        RunningKernel.execute_cell_input = _execute_as_jupyter


def _notebook(nodeid: str) -> str | None:
    path = nodeid.split("::", 1)[0]
    return path if path.endswith(".ipynb") else None


def _is_nbval_cell(item) -> bool:
    return (
        _notebook(item.nodeid) is not None
        and hasattr(item, "cell")
        and hasattr(item, "options")
    )


def pytest_collection_modifyitems(items):
    for item in items:
        if _is_nbval_cell(item) and "skip-execution" in item.cell.metadata.get(
            "tags", []
        ):
            item.options["skip"] = True


def pytest_runtest_logreport(report):
    nb = _notebook(report.nodeid)
    if nb is not None:
        _spent[nb] += report.duration


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item):
    nb = _notebook(item.nodeid)
    if nb in _over_budget:
        pytest.skip(
            f"not run: {nb} used up its {BUDGET_S:.0f} s budget in {_over_budget[nb]}"
        )


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item):
    if not _is_nbval_cell(item) or item.options.get("skip"):
        return (yield)
    from nbval.plugin import NbCellError

    nb = _notebook(item.nodeid)
    remaining = BUDGET_S - _spent[nb]
    where = f"Cell {item.cell_num}"
    message = (
        f"{nb} ran past {BUDGET_S:.0f} s in total at {where}: "
        f"make it faster ({BUDGET_TEXT})"
    )
    if remaining <= 0:
        _over_budget[nb] = where
        raise NbCellError(item.cell_num, message + " (cell not run)", item.cell.source)
    option = item.config.option
    cell_timeout = option.nbval_cell_timeout
    option.nbval_cell_timeout = min(
        cell_timeout, remaining
    )  # nbval interrupts at the budget
    start = time.perf_counter()
    try:
        return (yield)
    except Exception as exc:
        if _spent[nb] + time.perf_counter() - start >= BUDGET_S - 1:
            _over_budget[nb] = where
            raise NbCellError(
                item.cell_num,
                message,
                item.cell.source,
                getattr(exc, "inner_traceback", None),
            ) from exc
        raise
    finally:
        option.nbval_cell_timeout = cell_timeout


def pytest_terminal_summary(terminalreporter):
    if not _spent:
        return
    tr = terminalreporter
    ranked = sorted(_spent.items(), key=lambda kv: -kv[1])
    total = sum(_spent.values())
    tr.write_sep(
        "=", f"{min(SLOWEST_SHOWN, len(ranked))} slowest notebooks (wall time)"
    )
    for nb, seconds in ranked[:SLOWEST_SHOWN]:
        flag = ""
        if nb in _over_budget:
            flag = f"  OVER THE {BUDGET_S:.0f} s LIMIT"
        elif seconds > TARGET_S:
            flag = f"  over the {TARGET_S:.0f} s target"
        tr.write_line(f"{seconds:7.1f} s  {nb}{flag}")
    tr.write_line(
        f"{total:7.1f} s  for {len(ranked)} notebooks, {total / len(ranked):.1f} s on "
        f"average ({BUDGET_TEXT})"
    )
