"""constraints-min.txt is what tools/min_versions.py makes of pyproject.toml's lower bounds.

``make test-min`` runs the unit tests with those pins; this test keeps the file from drifting
away from pyproject.toml, the single source of the bounds.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

pytest.importorskip("tomllib")  # Python 3.11+

ROOT = Path(__file__).resolve().parents[1]


def _tool():
    spec = importlib.util.spec_from_file_location("min_versions", ROOT / "tools/min_versions.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_constraints_min_is_what_the_tool_writes():
    tool = _tool()
    expected = tool.render(
        (ROOT / "pyproject.toml").read_text(encoding="utf-8"),
        (ROOT / "constraints.txt").read_text(encoding="utf-8"),
    )
    assert (ROOT / "constraints-min.txt").read_text(encoding="utf-8") == expected, (
        "constraints-min.txt is out of date: python tools/min_versions.py"
    )


PYPROJECT = """
[project]
dependencies = ["torch>=2.5", "numpy>=1.24,<3", "tqdm >= 4.60 ; python_version < '3.12'"]
[project.optional-dependencies]
hf = ["accelerate>=0.30", "numpy>=1.24"]
test = ["pytest[testing]>=8.0"]
book = ["jupyter-book>=1.0.4,<2"]
"""


def test_every_lower_bound_becomes_a_pin_and_torch_the_ci_build():
    text = _tool().render(PYPROJECT, "numpy==2.4.6\ntorch==2.13.0\n")
    pins = [line for line in text.splitlines() if not line.startswith("#")]
    assert pins == [
        "torch==2.13.0",
        "numpy==1.24",
        "tqdm==4.60; python_version < '3.12'",
        "accelerate==0.30",
        "pytest==8.0",
    ]


@pytest.mark.parametrize("requirement", ["torch", "numpy<3", "numpy>=1.24,>=1.25"])
def test_a_requirement_without_one_lower_bound_is_refused(requirement):
    with pytest.raises(ValueError, match="lower bound"):
        _tool().lower_bound(requirement)


def test_two_different_bounds_for_one_package_are_refused():
    pyproject = PYPROJECT.replace('"numpy>=1.24"]', '"numpy>=1.26"]')
    with pytest.raises(ValueError, match="two lower bounds"):
        _tool().render(pyproject, "torch==2.13.0\n")
