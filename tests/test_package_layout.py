"""The package's shape, read from its sources: imports point down, no cycles, modules stay readable.

Every ``import`` and ``from ... import`` of slmlab's modules is read with ``ast`` — at the top of a
module or inside a function alike (a lazy import still ties two modules together) — and resolved to
the module it names. The floors of the design notes (ground, floor 1, floor 2) must hold: a module
imports only from its own floor or below, and the graph has no cycle.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "slmlab"
MAX_LINES = 500  # "no module over ~500 lines unless one idea needs it"
LONG_ON_PURPOSE = {}  # module -> why it is longer (none today)

# The floors, bottom up. A module may import from its own floor or any floor below.
FLOORS = [
    {"utils", "checks", "plotting", "tokenizer", "timing", "lm", "surgery", "checkpoint"},  # ground
    {
        "models",
        "data",
        "calibration",
        "hf",
        "hf_config",
        "hf_recurrent",
        "zoo",
        "devices",
    },  # floor 1
    {
        "train",
        "quant",
        "prune",
        "lowrank",
        "evaluate",
        "runtime",
    },  # floor 2: one package per technique family
    {"reference", "__main__", "__init__"},  # the top: commands and the package's front door
]


def module_name(path: Path) -> str:
    rel = path.relative_to(PACKAGE).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__" and len(parts) > 1:
        parts = parts[:-1]
    return ".".join(parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def imports_of(name: str, path: Path, known: set[str]) -> set[str]:
    """The slmlab modules ``name`` imports (resolved to the longest known module name)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    is_pkg = path.name == "__init__.py"
    here = name.split(".") if is_pkg else name.split(".")[:-1]
    if name == "__init__":
        here = []
    found = set()
    for node in ast.walk(tree):
        targets = []
        if isinstance(node, ast.Import):
            targets = [a.name[len("slmlab.") :] for a in node.names if a.name.startswith("slmlab.")]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = here[: len(here) - (node.level - 1)] if node.level > 1 else here
                mod = ".".join(base + ([node.module] if node.module else []))
            elif node.module and node.module.startswith("slmlab"):
                mod = node.module[len("slmlab.") :] if node.module != "slmlab" else ""
            else:
                continue
            # `from pkg import sub` imports the module pkg.sub;
            # `from pkg import name` imports pkg itself
            targets = [
                f"{mod}.{a.name}" if f"{mod}.{a.name}".strip(".") in known else mod
                for a in node.names
            ]
            targets = [t.strip(".") for t in targets if t.strip(".")]
        for t in targets:
            parts = t.split(".")
            for k in range(len(parts), 0, -1):
                cand = ".".join(parts[:k])
                if cand in known and cand != name:
                    found.add(cand)
                    break
    return found


def graph() -> dict[str, set[str]]:
    mods = modules()
    known = set(mods)
    return {n: imports_of(n, p, known) for n, p in mods.items()}


def floor_of(name: str) -> int:
    top = name.split(".")[0]
    for i, floor in enumerate(FLOORS):
        if top in floor:
            return i
    raise AssertionError(
        f"slmlab/{name.replace('.', '/')}.py is on no floor: add it to FLOORS in {__file__}"
    )


def test_every_module_is_on_a_floor():
    for name in modules():
        floor_of(name)


def test_imports_point_down():
    wrong = []
    for name, deps in graph().items():
        for dep in deps:
            if floor_of(dep) > floor_of(name):
                wrong.append(
                    f"{name} (floor {floor_of(name)}) imports {dep} (floor {floor_of(dep)})"
                )
    assert not wrong, "imports that point up:\n" + "\n".join(sorted(wrong))


def test_no_import_cycles():
    g = graph()
    # a package's __init__ re-exports its modules: an edge from a module to its own package's
    # __init__ would be a cycle through the front door, and is reported like any other.
    state, stack, cycles = {}, [], []

    def visit(n):
        state[n] = "open"
        stack.append(n)
        for d in sorted(g.get(n, ())):
            if state.get(d) == "open":
                cycles.append(stack[stack.index(d) :] + [d])
            elif d not in state:
                visit(d)
        stack.pop()
        state[n] = "done"

    for n in sorted(g):
        if n not in state:
            visit(n)
    assert not cycles, "import cycles:\n" + "\n".join(" -> ".join(c) for c in cycles)


def test_cycle_detector_sees_lazy_imports(tmp_path):
    """The reader of imports counts an import inside a function
    (the kind that hid model.py's cycle)."""
    src = tmp_path / "mod.py"
    src.write_text("def f():\n    from ..models import TinyLM\n    return TinyLM\n")
    assert imports_of("runtime.mod", src, {"models", "runtime.mod"}) == {"models"}


@pytest.mark.parametrize("name", sorted(modules()))
def test_modules_stay_readable(name):
    lines = len(modules()[name].read_text(encoding="utf-8").splitlines())
    limit = LONG_ON_PURPOSE.get(name, (MAX_LINES, ""))[0] if name in LONG_ON_PURPOSE else MAX_LINES
    assert lines <= limit, f"slmlab/{name}: {lines} lines; split it by idea (limit {limit})"
