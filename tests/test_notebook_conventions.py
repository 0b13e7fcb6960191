"""Every notebook follows the book's conventions (DESIGN.md): these run in a second, before nbval
executes the notebooks themselves."""
import json
from pathlib import Path

import pytest

NOTEBOOKS = sorted((Path(__file__).parent.parent / "notebooks").glob("[0-9][0-9]-*.ipynb"))


def cells(nb_path):
    return json.loads(nb_path.read_text(encoding="utf-8"))["cells"]


def source(cell):
    return "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]


def test_there_are_notebooks():
    assert NOTEBOOKS, "no notebooks found in notebooks/"


@pytest.mark.parametrize("nb", NOTEBOOKS, ids=lambda p: p.name)
def test_first_cell_is_the_colab_setup(nb):
    first = cells(nb)[0]
    assert first["cell_type"] == "code"
    src = source(first)
    assert '"google.colab" in sys.modules' in src and "pip" in src and "git" in src, (
        f"{nb.name}: the first cell must be the Colab set-up cell (see CONTRIBUTING in the book preface)")


@pytest.mark.parametrize("nb", NOTEBOOKS, ids=lambda p: p.name)
def test_structure(nb):
    cs = cells(nb)
    meta = json.loads(nb.read_text(encoding="utf-8"))["metadata"]
    assert meta.get("kernelspec", {}).get("name") == "python3", f"{nb.name}: kernel must be python3"
    titles = [c for c in cs if c["cell_type"] == "markdown" and source(c).lstrip().startswith("# ")]
    assert len(titles) == 1, f"{nb.name}: exactly one H1 title"
    hidden_asserts = [c for c in cs if c["cell_type"] == "code" and "remove-cell" in c.get("metadata", {}).get("tags", [])
                      and "assert" in source(c)]
    assert hidden_asserts, f"{nb.name}: its claims must be asserted in a cell tagged remove-cell"
    md = "\n".join(source(c) for c in cs if c["cell_type"] == "markdown")
    assert "{exercise}" in md and "{solution-start}" in md and "{solution-end}" in md, f"{nb.name}: exercises with solutions"
    assert ":class: dropdown" in md, f"{nb.name}: solutions are dropdowns"
    code = "\n".join(source(c) for c in cs if c["cell_type"] == "code")
    if "matplotlib" in code:
        assert "use_style()" in code, f"{nb.name}: plots use the book's style (slmlab.plotting.use_style)"


@pytest.mark.parametrize("nb", NOTEBOOKS, ids=lambda p: p.name)
def test_stored_without_outputs(nb):
    for c in cells(nb):
        if c["cell_type"] == "code":
            assert not c.get("outputs") and c.get("execution_count") is None, (
                f"{nb.name}: clear outputs before committing (the book executes notebooks)")
