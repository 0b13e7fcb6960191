"""Immediate feedback for exercises: ``check(...)`` prints "passed" or says what is wrong."""

from __future__ import annotations


class CheckFailed(AssertionError):
    pass


def check(name: str, ok: bool, hint: str = "") -> bool:
    """Print ``name: passed`` when ``ok``; otherwise raise with the hint that helps fix it."""
    if ok:
        print(f"{name}: passed")
        return True
    raise CheckFailed(f"{name}: not yet. {hint}".strip())


def check_close(
    name: str, got: float, expected: float, rtol: float = 1e-3, atol: float = 1e-6
) -> bool:
    ok = abs(float(got) - float(expected)) <= atol + rtol * abs(float(expected))
    return check(name, ok, f"got {float(got):.6g}, expected {float(expected):.6g} (rtol={rtol}).")
