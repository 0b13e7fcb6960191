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
- **Output after a cell.** nbval waits 5 s for each output message after a cell has
  replied; here 60 s, so a busy machine does not fail a cell that finished.
- **Numbers within a tolerance.** Two CPUs (AVX-512 on one machine, AMX on another) sum
  the same matrix product in different orders, so a float printed to four digits can
  differ in its last digits between the machine that stored a notebook and the one that
  tests it, and an algorithm that rounds (GPTQ) can amplify that. Where a stored and a
  fresh text output differ only in their numbers, each pair of numbers must agree within
  ``REL_TOL`` (relative) or ``LAST_DIGITS`` units of the last digit printed, or both lie
  below ``ABS_TOL`` (float noise); anything
  else (words, the count of numbers, a number that moved more) still fails, and the
  notebooks' hidden cells assert their claims on the computed values themselves.
- **cpu-dependent.** A cell whose output follows a training run inside the notebook
  (notebook 21 trains a model, 64 fine-tunes one) prints what that run's trajectory
  gives, and two CPUs (AVX2 and AVX-512 kernels) round the same steps differently, so
  the generated texts and the last items of a 16-item probe differ beyond any numeric
  tolerance. Such cells are tagged ``cpu-dependent``: they run, and must not raise, but
  their output is not compared; the notebook's hidden cells assert the claims those
  outputs show, on the values computed in this run.
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

import copy
import os
import re
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


REL_TOL = 0.01  # two numbers within 1% of each other agree
LAST_DIGITS = 2  # or within 2 units of the last digit printed ("-0.2%" vs "-0.1%")
ABS_TOL = 1e-6  # or both below 1e-6: float noise (a KL of 9.5e-09 vs 1.2e-08)
_NUMBER = re.compile(r"[-+]?(?:\d[\d,]*(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?")


def _decimals(number: str) -> int:
    """Digits after the point, counting the exponent: "3.0317" -> 4, "1.5e-06" -> 7."""
    mantissa, _, exponent = number.lower().partition("e")
    places = len(mantissa.partition(".")[2])
    return places - int(exponent or 0)


def numbers_agree(stored: str, fresh: str) -> bool:
    """True when two texts differ only in numbers that agree within the tolerance."""
    skeleton = lambda text: re.sub(r"\s+", " ", _NUMBER.sub("#", text))  # noqa: E731
    if stored == fresh:
        return True
    if skeleton(stored) != skeleton(fresh):
        return False
    for a, b in zip(_NUMBER.findall(stored), _NUMBER.findall(fresh)):
        if a == b:
            continue
        try:
            x, y = float(a.replace(",", "")), float(b.replace(",", ""))
        except ValueError:
            return False
        unit = 10.0 ** -max(_decimals(a), _decimals(b))
        if max(abs(x), abs(y)) < ABS_TOL:
            continue
        if abs(x - y) > max(REL_TOL * max(abs(x), abs(y)), LAST_DIGITS * unit):
            return False
    return True


def _as_text(value) -> str | None:
    if isinstance(value, list):
        value = "".join(value)
    return value if isinstance(value, str) else None


def _compare_within_tolerance(self, test, ref, skip_compare=None):
    """nbval's compare_outputs, after replacing each fresh text that agrees with the
    stored one within the numeric tolerance by the stored text."""
    test = copy.deepcopy(test)
    for fresh, stored in zip(test, ref):
        if fresh.get("output_type") != stored.get("output_type"):
            continue
        pairs = []
        if "text" in fresh and fresh.get("name") == stored.get("name"):
            pairs.append((fresh, stored, "text"))
        for mime in set(fresh.get("data", {})) & set(stored.get("data", {})):
            if not mime.startswith("image/"):  # text, HTML and glued values
                pairs.append((fresh["data"], stored["data"], mime))
        for new, old, key in pairs:
            a, b = _as_text(old.get(key)), _as_text(new.get(key))
            if a is not None and b is not None and a != b:
                if numbers_agree(self.sanitize(a), self.sanitize(b)):
                    new[key] = old[key]
    return _nbval_compare_outputs(self, test, ref, skip_compare)


_nbval_compare_outputs = None


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

        from nbval.plugin import IPyNbCell

        global _nbval_compare_outputs
        if _nbval_compare_outputs is None:
            _nbval_compare_outputs = IPyNbCell.compare_outputs
            IPyNbCell.compare_outputs = _compare_within_tolerance


def _notebook(nodeid: str) -> str | None:
    path = nodeid.split("::", 1)[0]
    return path if path.endswith(".ipynb") else None


def _is_nbval_cell(item) -> bool:
    return (
        _notebook(item.nodeid) is not None
        and hasattr(item, "cell")
        and hasattr(item, "options")
    )


# nbval waits at most 5 s for each output message once a cell has replied; a cell that
# streamed many progress-bar updates on a busy CI machine failed there (notebook 64,
# "Timeout of 5 seconds exceeded waiting for output") although it had finished.
OUTPUT_TIMEOUT_S = 60.0
# the tag of a cell whose output follows an in-notebook training run (not compared)
CPU_DEPENDENT = "cpu-dependent"


def pytest_collection_modifyitems(items):
    for item in items:
        if not _is_nbval_cell(item):
            continue
        item.output_timeout = OUTPUT_TIMEOUT_S
        tags = item.cell.metadata.get("tags", [])
        if CPU_DEPENDENT in tags:
            item.options["check"] = False
        if "skip-execution" in tags:
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
