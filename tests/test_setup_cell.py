"""The Colab set-up cell and the one place that says where the book's code lives.

``_config.yml``'s ``repository.url`` and ``branch`` are that place. ``tools/setup_cell.py``
renders cell 0 of every notebook (the set-up cell) and the preface's clone block from them; the
book's "Open in Colab" links read them when the book is built.

Fast tests: every notebook's cell 0 is the rendered cell and the preface's block agrees
(``python tools/setup_cell.py`` fixes both); the repository's address is written nowhere else
in the repository; the cell is ruff-clean at the notebooks' width, does nothing outside Colab,
and fails with a message that says what to do when the repository cannot be cloned; the sync
tool rewrites a fork's copy and then leaves it alone.

The slow test meets the cell as a Colab user does: a fresh virtual environment with torch (Colab
ships it) and a stub ``google.colab`` module, and a clone of this repository's HEAD standing in
for the remote (a ``file://`` URL substituted for ``repository.url``). Every notebook's cell 0
runs there in its own Python process from a "content" folder (Colab's ``/content``): the first
clones and installs slmlab, printing nothing; the others install nothing again. Then slmlab
imports from the clone and the base reference model runs a forward pass, in the process that ran
the cell (as the notebook's next cell does) and in a new one (after a restart). A repository
that is not a Python project makes pip fail with the same helpful message.
"""

from __future__ import annotations

import fnmatch
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _load_tool():
    spec = importlib.util.spec_from_file_location("setup_cell", ROOT / "tools" / "setup_cell.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


setup_cell = _load_tool()
NOTEBOOKS = sorted(ROOT.glob(setup_cell.NOTEBOOK_GLOB))
REPO = setup_cell.repository(ROOT)
CELL = setup_cell.render_setup_cell(ROOT)
FIX = "run  python tools/setup_cell.py  (it renders them from _config.yml)"


def cell_0(nb: Path) -> dict:
    return json.loads(nb.read_text(encoding="utf-8"))["cells"][0]


def git(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    """git in ``cwd`` (no default: the tests change nothing in this repository)."""
    return subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, check=True)


def stub_colab(directory: Path) -> Path:
    """A ``google.colab`` that imports: Colab's kernels have it in sys.modules from the start."""
    package = directory / "google" / "colab"  # no google/__init__.py: google stays a namespace
    package.mkdir(parents=True, exist_ok=True)
    (package / "__init__.py").write_text('"""Stand-in for Colab\'s module."""\n')
    return directory


def in_colab(cell: str) -> str:
    """``cell`` as Colab's kernel runs it: with google.colab imported."""
    return "import google.colab  # noqa: F401\n" + cell


def clean_env(**extra: str) -> dict[str, str]:
    drop = {"VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP", "SLMLAB_DATA"}
    env = {k: v for k, v in os.environ.items() if k not in drop}
    return {**env, "PYTHONNOUSERSITE": "1", "TOKENIZERS_PARALLELISM": "false", **extra}


# ----------------------------------------------------------------------------- in sync
def test_there_are_notebooks():
    assert NOTEBOOKS, f"no {setup_cell.NOTEBOOK_GLOB} found"


@pytest.mark.parametrize("nb", NOTEBOOKS, ids=lambda p: p.name)
def test_cell_0_is_the_rendered_setup_cell(nb):
    cell = cell_0(nb)
    rendered = cell["cell_type"] == "code" and setup_cell.source_of(cell) == CELL
    assert rendered, (
        f"{nb.name}: cell 0 is not the Colab set-up cell rendered from _config.yml: {FIX}"
    )
    assert setup_cell.SETUP_TAG in cell["metadata"].get("tags", []), f"{nb.name}: {FIX}"
    assert not cell.get("outputs"), f"{nb.name}: the set-up cell stores outputs"


def test_sync_check_passes():
    """``--check``: the notebooks' cell 0 and the preface's clone block agree with _config.yml."""
    proc = subprocess.run(
        [sys.executable, str(ROOT / "tools" / "setup_cell.py"), "--check"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.mark.parametrize("nb", NOTEBOOKS, ids=lambda p: p.name)
def test_notebooks_keep_their_layout_when_rewritten(nb):
    """The tool writes notebooks as tools/execute_notebooks.py does: nothing but cell 0 changes."""
    text = nb.read_text(encoding="utf-8")
    assert setup_cell.dumps_notebook(json.loads(text)) == text, (
        f"{nb.name} is not laid out as tools/execute_notebooks.py writes notebooks"
    )


def repository_files() -> list[Path]:
    """The repository's files (tracked, and new ones git does not ignore), as they are now."""
    try:
        top = git("rev-parse", "--show-toplevel", cwd=ROOT).stdout.strip()
        listed = git("ls-files", "-z", "--cached", "--others", "--exclude-standard", cwd=ROOT)
        listed = listed.stdout
    except (OSError, subprocess.CalledProcessError):
        pytest.skip(f"{ROOT} is not a git checkout")
    if Path(top).resolve() != ROOT:
        pytest.skip(f"{ROOT} is not the top of its git checkout")
    paths = (ROOT / name for name in dict.fromkeys(listed.split("\0")) if name)
    return [p for p in paths if p.is_file()]


def test_the_repository_address_is_written_only_in_config():
    """Only _config.yml says where the code lives; the generated places the sync check covers
    (notebooks' cell 0, marked Markdown blocks) repeat it. A GitHub or Colab link that names the
    repository (``owner/name``) anywhere else is a copy that a fork would have to find."""
    needle = REPO.slug
    covered = {p.resolve() for p in setup_cell.default_paths(ROOT)}
    problems = []
    for path in repository_files():
        rel = path.relative_to(ROOT).as_posix()
        data = path.read_bytes()
        if needle.encode() not in data or rel == setup_cell.CONFIG:
            continue
        text = data.decode("utf-8", errors="replace")
        if fnmatch.fnmatch(rel, setup_cell.NOTEBOOK_GLOB):
            nb = json.loads(text)
            rest = {"cells": nb["cells"][1:], "metadata": nb.get("metadata")}
            if needle in json.dumps(rest, ensure_ascii=False):
                problems.append(f"{rel}: outside cell 0 (the generated set-up cell)")
            if needle in json.dumps(nb["cells"][0].get("outputs", []), ensure_ascii=False):
                problems.append(f"{rel}: in cell 0's outputs")
            continue
        if path.suffix == ".md" and path.resolve() in covered:
            text = strip_marked_blocks(text)
        for number, line in enumerate(text.splitlines(), 1):
            if needle in line:
                problems.append(f"{rel}:{number}: {line.strip()[:90]}")
    assert not problems, (
        f"{needle} is written outside _config.yml (repository.url) and the places "
        "tools/setup_cell.py generates from it: read it from _config.yml, or put it in a "
        f"{setup_cell.BEGIN} ... {setup_cell.END} block\n" + "\n".join(problems)
    )


def strip_marked_blocks(text: str) -> str:
    out, inside = [], False
    for line in text.splitlines(keepends=True):
        if line.strip() == setup_cell.BEGIN:
            inside = True
        elif line.strip() == setup_cell.END:
            inside = False
        elif not inside:
            out.append(line)
    return "".join(out)


# ----------------------------------------------------------------------------- the cell itself
def ruff() -> str:
    exe = Path(sys.executable).with_name("ruff")
    found = str(exe) if exe.exists() else shutil.which("ruff")
    if found is None:
        pytest.skip("ruff is not installed (pip install -e '.[test]')")
    return found


@pytest.mark.parametrize("command", [["format", "--check"], ["check"]], ids=" ".join)
def test_the_cell_is_ruff_clean_at_the_notebooks_width(command):
    """As ``ruff`` sees it in a notebook (notebooks/ruff.toml: 88 columns)."""
    proc = subprocess.run(
        [ruff(), *command, "--stdin-filename", "notebooks/_colab_setup_cell.py", "-"],
        input=CELL + "\n",
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert max(len(line) for line in CELL.splitlines()) <= 88


def test_the_cell_does_nothing_outside_colab(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-c", CELL], cwd=tmp_path, capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout + proc.stderr == ""
    assert list(tmp_path.iterdir()) == [], "the cell made files outside Colab"


def test_a_wrong_repository_url_says_what_to_do(tmp_path):
    wrong = (tmp_path / "no-such-repository").as_uri()
    content = tmp_path / "content"
    content.mkdir()
    proc = subprocess.run(
        [sys.executable, "-c", in_colab(CELL.replace(REPO.url, wrong))],
        cwd=content,
        capture_output=True,
        text=True,
        timeout=120,
        env=clean_env(PYTHONPATH=str(stub_colab(tmp_path / "stub"))),
    )
    assert proc.returncode != 0
    assert "fatal:" in proc.stdout, f"git's error is not shown:\n{proc.stdout}"
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("RuntimeError: Colab set-up failed: git clone"), proc.stderr
    assert wrong in last and "Check REPO_URL and BRANCH" in last and "Restart" in last, last
    assert list(content.iterdir()) == [], "a failed clone left a folder behind"


# ----------------------------------------------------------------------------- the sync tool
def test_the_sync_tool_rewrites_a_fork_and_then_leaves_it_alone(tmp_path, capsys):
    """A fork sets repository.url and branch; the tool rewrites exactly cell 0 and the clone
    lines, writes nothing when run again, and --check then passes."""
    fork = tmp_path / "fork"
    for path in [ROOT / setup_cell.CONFIG, *setup_cell.default_paths(ROOT)]:
        target = fork / path.relative_to(ROOT)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, target)
    config = fork / setup_cell.CONFIG
    config.write_text(
        config.read_text(encoding="utf-8")
        .replace(f"url: {REPO.url}", "url: https://github.com/alice/tiny-lms")
        .replace(f"branch: {REPO.branch}", "branch: course-2026"),
        encoding="utf-8",
    )
    assert setup_cell.main([], root=fork) == 0
    new_cell = setup_cell.render_setup_cell(fork)
    assert '"https://github.com/alice/tiny-lms"' in new_cell and '"course-2026"' in new_cell
    assert 'Path("tiny-lms")' in new_cell
    for nb in sorted(fork.glob(setup_cell.NOTEBOOK_GLOB)):
        old = json.loads((ROOT / nb.relative_to(fork)).read_text(encoding="utf-8"))
        new = json.loads(nb.read_text(encoding="utf-8"))
        assert setup_cell.source_of(new["cells"][0]) == new_cell
        assert new["cells"][1:] == old["cells"][1:] and new["metadata"] == old["metadata"]
        assert {k: v for k, v in new["cells"][0].items() if k != "source"} == {
            k: v for k, v in old["cells"][0].items() if k != "source"
        }
    preface = (fork / setup_cell.PREFACE).read_text(encoding="utf-8")
    block = preface[preface.index(setup_cell.BEGIN) : preface.index(setup_cell.END)]
    assert (
        "git clone --branch course-2026 https://github.com/alice/tiny-lms\ncd tiny-lms\n" in block
    )
    assert REPO.slug not in preface

    stamps = {p: p.stat().st_mtime_ns for p in fork.rglob("*") if p.is_file()}
    capsys.readouterr()
    assert setup_cell.main([], root=fork) == 0
    assert capsys.readouterr().out == "", "a second run rewrote files"
    assert stamps == {p: p.stat().st_mtime_ns for p in fork.rglob("*") if p.is_file()}
    assert setup_cell.main(["--check"], root=fork) == 0
    assert setup_cell.out_of_sync(root=fork) == []


def test_the_sync_tool_marks_an_unmarked_clone_block_and_inserts_a_missing_cell():
    page = "# P\n\n```bash\ngit clone https://example.org/old/repo\ncd repo\nmake book\n```\n"
    new, note = setup_cell.synced_markdown(page, "git clone https://x.org/a/b", "cd b")
    assert note and new == (
        f"# P\n\n{setup_cell.BEGIN}\n```bash\ngit clone https://x.org/a/b\ncd b\nmake book\n"
        f"```\n{setup_cell.END}\n"
    )
    again, note = setup_cell.synced_markdown(new, "git clone https://x.org/a/b", "cd b")
    assert again == new and note is None
    with pytest.raises(ValueError):
        setup_cell.synced_markdown("# no clone here\n", "git clone x", "cd x")

    nb = {
        "cells": [{"cell_type": "markdown", "id": "a", "metadata": {}, "source": "# T"}],
        "metadata": {},
        "nbformat": 4,
        "nbformat_minor": 5,
    }
    text, note = setup_cell.synced_notebook(setup_cell.dumps_notebook(nb), CELL)
    cells = json.loads(text)["cells"]
    assert note and len(cells) == 2 and setup_cell.source_of(cells[0]) == CELL
    assert cells[0]["metadata"]["tags"] == [setup_cell.SETUP_TAG] and cells[1] == nb["cells"][0]


# ----------------------------------------------------------------------------- as in Colab
PROBE = """
import json
import torch
import slmlab

model, tok = slmlab.load_reference("base")
ids = torch.tensor([tok.encode("Once upon a time, there was a")])
with torch.no_grad():
    logits = model(ids)
print(json.dumps({
    "slmlab": slmlab.__file__,
    "torch": torch.__version__,
    "tokens": ids.shape[1],
    "shape": list(logits.shape),
    "finite": bool(torch.isfinite(logits).all()),
}))
"""
DONE = "@@ set-up cell done @@"


def run_python(python: Path, code: str, cwd: Path, timeout: float):
    start = time.perf_counter()
    proc = subprocess.run(
        [str(python), "-c", code],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=clean_env(),
    )
    return proc, time.perf_counter() - start


def split_at_done(proc) -> tuple[str, str]:
    """What the cell printed, and what the code after it printed (the probe's JSON line)."""
    out, _, after = proc.stdout.partition(DONE + "\n")
    err, _, _ = proc.stderr.partition(DONE + "\n")
    return out + err, after


def check_probe(line: str, clone: Path, torch_version: str) -> dict:
    probe = json.loads(line.strip().splitlines()[-1])
    assert Path(probe["slmlab"]).resolve().is_relative_to(clone.resolve()), probe
    assert probe["torch"] == torch_version, "the set-up cell replaced the preinstalled torch"
    assert probe["shape"][:2] == [1, probe["tokens"]] and probe["finite"], probe
    return probe


def installed_slmlab(site: Path) -> dict[str, int]:
    """The files pip wrote for slmlab, with their modification times (a reinstall renews them)."""
    files = [*site.glob("slmlab-*.dist-info/*"), *site.glob("__editable__*slmlab*")]
    return {str(p): p.stat().st_mtime_ns for p in files}


@pytest.mark.slow
def test_every_setup_cell_in_a_fresh_colab_like_environment(tmp_path, capsys):
    if shutil.which("git") is None:
        pytest.skip("git is not installed")
    try:
        head = git("rev-parse", "HEAD", cwd=ROOT).stdout.strip()
        top = Path(git("rev-parse", "--show-toplevel", cwd=ROOT).stdout.strip()).resolve()
    except (OSError, subprocess.CalledProcessError):
        pytest.skip(f"{ROOT} is not a git checkout: no HEAD to stand in for the remote")
    if top != ROOT:
        pytest.skip(f"{ROOT} is not the top of its git checkout")
    cells = {nb.name: setup_cell.source_of(cell_0(nb)) for nb in NOTEBOOKS}
    stale = [name for name, cell in cells.items() if cell != CELL]
    assert not stale, f"cell 0 of {stale} is not the rendered set-up cell: {FIX}"
    times: dict[str, float] = {}

    # The stand-in remote: this repository's HEAD, on the branch _config.yml names.
    remote = tmp_path / "remote.git"
    git("clone", "--quiet", "--bare", str(ROOT), str(remote), cwd=tmp_path)
    git("update-ref", f"refs/heads/{REPO.branch}", head, cwd=remote)
    url = remote.as_uri()

    # Colab's runtime: a Python with torch, and google.colab.
    venv = tmp_path / "venv"
    start = time.perf_counter()
    python = venv / "bin" / "python"
    for step in (
        [sys.executable, "-m", "venv", str(venv)],
        [str(python), "-m", "pip", "install", "-q", "--upgrade", "pip"],
        [str(python), "-m", "pip", "install", "-q", "torch==2.13.0"],  # the CPU build
    ):
        proc = subprocess.run(step, capture_output=True, text=True, timeout=1200, env=clean_env())
        assert proc.returncode == 0, f"{' '.join(step)} failed:\n{proc.stdout}{proc.stderr}"
    times["venv + torch"] = time.perf_counter() - start
    site = Path(
        subprocess.run(
            [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    )
    stub_colab(site)
    torch_version = subprocess.run(
        [str(python), "-c", "import torch; print(torch.__version__)"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()

    # A repository that pip cannot install: the cell shows pip's error and what to do.
    broken = tmp_path / "not-a-python-project"
    git("init", "--quiet", "--initial-branch", REPO.branch, str(broken), cwd=tmp_path)
    author = ["-c", "user.name=t", "-c", "user.email=t@t"]
    git(*author, "commit", "--quiet", "--allow-empty", "-m", "empty", cwd=broken)
    broken_content = tmp_path / "content-broken"
    broken_content.mkdir()
    proc, times["failing pip"] = run_python(
        python, in_colab(CELL.replace(REPO.url, broken.as_uri())), broken_content, 600
    )
    assert proc.returncode != 0
    assert "ERROR" in proc.stdout, f"pip's error is not shown:\n{proc.stdout}"
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("RuntimeError: Colab set-up failed: ") and "pip install" in last, last
    assert "Check REPO_URL and BRANCH" in last, last

    # Every notebook's set-up cell, each in a new process, as a notebook's kernel.
    content = tmp_path / "content"
    content.mkdir()
    clone = content / REPO.name
    first = None
    for name, cell in cells.items():
        code = in_colab(cell.replace(REPO.url, url))
        if first is None:  # the notebook's next cells run in the same kernel: import, load, run
            code += f"\nprint({DONE!r}, flush=True)\nprint({DONE!r}, file=sys.stderr)\n{PROBE}"
        proc, times[name] = run_python(python, code, content, 1800)
        printed, after = split_at_done(proc)
        assert proc.returncode == 0, f"{name}: the set-up cell failed:\n{proc.stdout}{proc.stderr}"
        assert printed.strip() == "", f"{name}: the set-up cell is not quiet:\n{printed}"
        if first is None:
            assert (clone / "pyproject.toml").is_file() and (clone / "data").is_dir()
            assert git("rev-parse", "HEAD", cwd=clone).stdout.strip() == head
            check_probe(after, clone, torch_version)
            first, installed = name, installed_slmlab(site)
            clone_id = (clone / ".git").stat().st_ino
            assert installed, "pip installed no slmlab"
        else:
            assert installed_slmlab(site) == installed, f"{name}: the cell reinstalled slmlab"
            assert (clone / ".git").stat().st_ino == clone_id, f"{name}: the cell cloned again"

    # A new kernel after a restart: slmlab imports through the editable install.
    proc, times["new kernel: load + forward"] = run_python(python, PROBE, content, 600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    check_probe(proc.stdout, clone, torch_version)

    with capsys.disabled():
        print("\nColab set-up cell, fresh environment (seconds):")
        for what, seconds in times.items():
            print(f"  {seconds:7.1f}  {what}")
