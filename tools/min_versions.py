"""Write ``constraints-min.txt``: every declared lower bound of the package, as an exact pin.

pyproject.toml declares lower bounds only, so that Colab's and a reader's own transformers,
tokenizers, numpy and pandas are reused. ``make test-min`` installs the package with these pins
(``pip install -c constraints-min.txt -e ".[hf,test]"``) and runs the unit tests, so each bound
is one that the tests have passed with. pyproject.toml stays the single source of the bounds:
this file is derived from it, and ``tests/test_min_versions.py`` checks that it is up to date.

- The requirements read are ``[project] dependencies`` and the extras the unit tests need
  (``hf`` and ``test``; ``book`` and ``lab`` only build and browse the book).
- Each must state a ``>=`` bound; it becomes ``name==bound``.
- torch is the exception: it is pinned to the build CI installs (constraints.txt's ``torch==``),
  the CPU wheel on this machine's disk, instead of its lower bound.

Usage:  python tools/min_versions.py            (write constraints-min.txt)
        python tools/min_versions.py --check    (exit 1 if it is out of date)
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

import tomllib

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = ROOT / "pyproject.toml"
CONSTRAINTS = ROOT / "constraints.txt"
OUTPUT = ROOT / "constraints-min.txt"
EXTRAS = ("hf", "test")
PINNED = "torch"  # pinned to constraints.txt's version, not to its lower bound

# name [extras] specifiers [; marker]
_REQUIREMENT = re.compile(
    r"^\s*(?P<name>[A-Za-z0-9][A-Za-z0-9._-]*)\s*(?:\[[^\]]*\])?\s*(?P<spec>[^;]*?)\s*"
    r"(?:;\s*(?P<marker>.+?))?\s*$"
)


def _normalize(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def lower_bound(requirement: str) -> tuple[str, str, str | None]:
    """(name, lower bound, marker) of a requirement such as ``"torch>=2.5"``."""
    m = _REQUIREMENT.match(requirement)
    if m is None:
        raise ValueError(f"cannot read the requirement {requirement!r}")
    bounds = [s.strip()[2:].strip() for s in m["spec"].split(",") if s.strip().startswith(">=")]
    if len(bounds) != 1:
        raise ValueError(f"{requirement!r} must state exactly one lower bound (>=)")
    return m["name"], bounds[0], m["marker"]


def pinned_version(name: str, constraints: str) -> str:
    """The version that ``constraints`` (a pip constraints file's text) pins ``name`` to."""
    for line in constraints.splitlines():
        m = re.match(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)\s*==\s*([^\s;#]+)", line)
        if m and _normalize(m[1]) == _normalize(name):
            return m[2]
    raise ValueError(f"constraints.txt pins no {name}")


def render(pyproject: str, constraints: str, extras: tuple[str, ...] = EXTRAS) -> str:
    """The text of constraints-min.txt for the given pyproject.toml and constraints.txt texts."""
    project = tomllib.loads(pyproject)["project"]
    optional = project.get("optional-dependencies", {})
    groups = [("dependencies", project.get("dependencies", []))]
    for extra in extras:
        if extra not in optional:
            raise ValueError(f"pyproject.toml has no extra {extra!r}")
        groups.append((f"[{extra}]", optional[extra]))
    lines = [
        "# Written by tools/min_versions.py from pyproject.toml's lower bounds: do not edit,",
        "# change the bound in pyproject.toml and run  python tools/min_versions.py",
        f'# make test-min: pip install -c constraints-min.txt -e ".[{",".join(extras)}]"',
        f"# {PINNED} is the build CI installs (constraints.txt), not its lower bound.",
    ]
    seen: dict[str, str] = {}
    for title, requirements in groups:
        lines.append(f"# {title}")
        for requirement in requirements:
            name, bound, marker = lower_bound(requirement)
            if _normalize(name) == _normalize(PINNED):
                bound = pinned_version(PINNED, constraints)
            key = _normalize(name)
            if key in seen:
                if seen[key] != bound:
                    raise ValueError(f"{name} has two lower bounds: {seen[key]} and {bound}")
                continue
            seen[key] = bound
            lines.append(f"{name}=={bound}" + (f"; {marker}" if marker else ""))
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if the file is out of date")
    args = parser.parse_args(argv)
    text = render(PYPROJECT.read_text(encoding="utf-8"), CONSTRAINTS.read_text(encoding="utf-8"))
    current = OUTPUT.read_text(encoding="utf-8") if OUTPUT.exists() else None
    if args.check:
        if current != text:
            print(f"{OUTPUT.name} is out of date: python tools/min_versions.py", file=sys.stderr)
            return 1
        return 0
    if current != text:
        OUTPUT.write_text(text, encoding="utf-8")
        print(f"wrote {OUTPUT.name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
