"""Exercises that grade the reader's answer.

An exercise in a notebook is three cells: the reader's cell (a placeholder such as
``kv_llama = None``), a **check cell** that grades whatever that cell left behind, and the
solution in a dropdown (the student edition removes it). The check cell defines a function
decorated with :func:`exercise`; the decorator runs it at once and prints what it found::

    @exercise("ex-11-1")
    def check_kv_llama():
        answered(kv_llama=kv_llama)  # "set `kv_llama` in the cell above" while it is None
        check("KV cache of Llama-3.2-1B", kv_llama == 1_073_741_824, "2 (K and V) x layers x ...")

With the placeholder it prints ``ex-11-1: not yet. KV cache of Llama-3.2-1B: ...`` and the hint,
without raising, so *Run all* goes on to the next exercise. The solution ends by calling
``check_kv_llama()`` again, which then prints ``ex-11-1: passed``. Inside the function,
:func:`check` and :func:`check_close` raise :class:`CheckFailed` with the hint; outside an
exercise they raise as assertions do.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable


class CheckFailed(AssertionError):
    pass


# The last result of every exercise run in this process: label -> passed. An instructor who runs a
# student's notebook reads it (``from slmlab.checks import results``).
results: dict[str, bool] = {}


def check(name: str, ok: bool, hint: str = "") -> bool:
    """Print ``name: passed`` when ``ok``; otherwise raise with the hint that helps fix it."""
    if ok:
        print(f"{name}: passed")
        return True
    raise CheckFailed(f"{name}: {hint}".strip().rstrip(":"))


def check_close(
    name: str, got: object, expected: float, rtol: float = 1e-3, atol: float = 1e-6
) -> bool:
    """:func:`check` that ``got`` is a number within ``atol + rtol * |expected|``."""
    try:
        value = float(got)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise CheckFailed(f"{name}: expected a number, got {got!r}") from None
    tolerance = atol + rtol * abs(float(expected))
    ok = math.isfinite(value) and abs(value - float(expected)) <= tolerance
    return check(name, ok, f"got {value:.6g}, expected {float(expected):.6g} (rtol={rtol}).")


def answered(**answers: object) -> None:
    """Raise :class:`CheckFailed` naming each answer the reader's cell still leaves at ``None``."""
    missing = [name for name, value in answers.items() if value is None]
    if missing:
        names = " and ".join(f"`{name}`" for name in missing)
        raise CheckFailed(f"set {names} in the cell above (still None).")


def grade(label: str, checks: Callable[[], object]) -> bool:
    """Run an exercise's checks; print ``label: passed`` or ``label: not yet.`` with the reason.

    Never raises for a wrong or missing answer (a :class:`CheckFailed`, a placeholder that raises
    ``NotImplementedError``, or an answer of the wrong type or shape that makes the checks raise):
    the reader sees what is wrong and *Run all* continues. Returns whether every check passed.
    """
    try:
        checks()
    except CheckFailed as failed:
        return _report(label, False, str(failed))
    except NotImplementedError:
        return _report(label, False, "the function still raises NotImplementedError: write it.")
    except Exception as error:  # the answer has the wrong type or shape
        return _report(label, False, f"checking your answer raised {type(error).__name__}: {error}")
    return _report(label, True)


def exercise(label: str) -> Callable[[Callable[[], object]], Callable[[], bool]]:
    """Decorator for an exercise's check function: grade it now, and again at every call."""

    def decorate(checks: Callable[[], object]) -> Callable[[], bool]:
        @functools.wraps(checks)
        def run() -> bool:
            return grade(label, checks)

        run.label = label  # type: ignore[attr-defined]
        run()
        return run

    return decorate


def _report(label: str, passed: bool, reason: str = "") -> bool:
    results[label] = passed
    print(f"{label}: passed" if passed else f"{label}: not yet. {reason}")
    return passed
