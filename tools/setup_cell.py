"""Keep every place that says where the book's code lives in sync with ``_config.yml``.

``_config.yml``'s ``repository.url`` and ``repository.branch`` are the one source: the theme's
buttons and the "Open in Colab" links (``book/_ext/slm_book.py``) read them when the book is
built, and this script writes them into the two places that cannot read them at run time:

- cell 0 of every notebook, the Colab set-up cell (tagged ``hide-cell``): in Colab it clones the
  repository (its ``data/`` holds the shipped reference models) into ``./<repo name>`` (Colab's
  working directory is ``/content``), installs it with ``pip install -e <clone>[hf]`` quietly,
  and on failure prints the end of git's or pip's output and what to do; elsewhere it does
  nothing. ``render_setup_cell()`` is its source;
- the ``git clone`` + ``cd`` lines of the block between ``<!-- repository: clone -->`` and
  ``<!-- /repository -->`` in the preface (the rest of that block is left as it is). When the
  preface has no such markers yet, they are put around its fenced block that runs ``git clone``.

A fork changes ``repository`` in ``_config.yml`` and runs this script; ``tests/test_setup_cell.py``
fails while anything is out of sync, or while the repository's address is written anywhere else.

Files are rewritten only when their content changes, atomically, and notebooks keep the layout
``tools/execute_notebooks.py`` writes (one-space JSON indent, UTF-8, a final newline).

Usage:  python tools/setup_cell.py [--check] [FILE.ipynb | FILE.md ...]
        (default: notebooks/NN-*.ipynb and the preface; --check changes nothing and exits 1,
        naming each file that is out of sync)
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
CONFIG = "_config.yml"
NOTEBOOK_GLOB = "notebooks/[0-9][0-9]-*.ipynb"  # as tools/execute_notebooks.py and the tests
PREFACE = "book/00-preface/index.md"
BEGIN = "<!-- repository: clone -->"
END = "<!-- /repository -->"
SETUP_TAG = "hide-cell"
SETUP_MARK = '"google.colab" in sys.modules'  # how a set-up cell is recognised
SETUP_CELL_ID = "colab-setup"  # the id of a set-up cell this script inserts

SETUP_CELL = """\
# Colab set-up: clone the book's code and data, install slmlab. Does nothing elsewhere.
import subprocess
import sys
from importlib.util import find_spec
from pathlib import Path

REPO_URL = @URL@
BRANCH = @BRANCH@


def _run(*cmd):
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        print("\\n".join((done.stdout + done.stderr).splitlines()[-20:]))
        raise RuntimeError(
            f"Colab set-up failed: {' '.join(cmd)} (its output ends above). Check "
            "REPO_URL and BRANCH in this cell, then Runtime > Restart session and run "
            f"the cell again. Still failing? Report it at {REPO_URL}/issues"
        )


if "google.colab" in sys.modules:
    _clone = Path(@FOLDER@).resolve()
    if not _clone.is_dir():
        _run("git", "clone", "--depth", "1", "--branch", BRANCH, REPO_URL, str(_clone))
    if find_spec("slmlab") is None:  # not installed in this runtime yet
        _run(sys.executable, "-m", "pip", "install", "-q", "-e", f"{_clone}[hf]")
    sys.path.insert(0, str(_clone))  # importable now, without restarting the kernel"""


@dataclass(frozen=True)
class Repository:
    """``_config.yml``'s ``repository`` section."""

    url: str
    branch: str
    path_to_book: str

    @property
    def name(self) -> str:
        """The repository's name, the folder ``git clone`` makes: ``slm-book``."""
        return self.url.rstrip("/").rsplit("/", 1)[-1].removesuffix(".git")

    @property
    def slug(self) -> str:
        """``owner/name``: how GitHub and Colab links name the repository."""
        return re.sub(r"^[a-z+]+://[^/]*/", "", self.url).removesuffix(".git")


def repository(root: Path = ROOT) -> Repository:
    """Where the book's code lives, from ``_config.yml``."""
    config = yaml.safe_load((Path(root) / CONFIG).read_text(encoding="utf-8")) or {}
    repo = config.get("repository") or {}
    url = str(repo.get("url") or "").strip().rstrip("/")
    if not url:
        raise SystemExit(f"{CONFIG} has no repository.url: the set-up cell needs it")
    branch = str(repo.get("branch") or "main").strip()
    for value in (url, branch):
        if any(c.isspace() or c in "\"'\\" for c in value):
            raise SystemExit(f"{CONFIG}: {value!r} is not a plain URL or branch name")
    return Repository(url, branch, str(repo.get("path_to_book") or "").strip("/"))


def render_setup_cell(root: Path = ROOT) -> str:
    """The source of the Colab set-up cell, cell 0 of every notebook (no final newline)."""
    repo = repository(root)
    return (
        SETUP_CELL.replace("@URL@", json.dumps(repo.url))
        .replace("@BRANCH@", json.dumps(repo.branch))
        .replace("@FOLDER@", json.dumps(repo.name))
    )


def render_clone_lines(root: Path = ROOT) -> tuple[str, str]:
    """The preface's ``git clone`` and ``cd`` lines."""
    repo = repository(root)
    branch = "" if repo.branch == "main" else f"--branch {repo.branch} "
    return f"git clone {branch}{repo.url}", f"cd {repo.name}"


# ------------------------------------------------------------------------------- notebooks
def dumps_notebook(nb: dict) -> str:
    """A notebook as ``tools/execute_notebooks.py`` (and nbformat) lays it out on disk."""
    return json.dumps(nb, indent=1, ensure_ascii=False) + "\n"


def source_of(cell: dict) -> str:
    src = cell.get("source", "")
    return "".join(src) if isinstance(src, list) else src


def is_setup_cell(cell: dict) -> bool:
    return cell.get("cell_type") == "code" and SETUP_MARK in source_of(cell)


def synced_notebook(text: str, cell_source: str) -> tuple[str, str | None]:
    """``text`` with cell 0 set to ``cell_source``; and a note when a set-up cell was inserted."""
    nb = json.loads(text)
    cells = nb["cells"]
    lines = cell_source.splitlines(keepends=True)
    note = None
    if not cells or not is_setup_cell(cells[0]):
        ids = {c.get("id") for c in cells}
        cell_id = SETUP_CELL_ID if SETUP_CELL_ID not in ids else f"{SETUP_CELL_ID}-0"
        cells.insert(
            0,
            {
                "cell_type": "code",
                "execution_count": None,
                "id": cell_id,
                "metadata": {"tags": [SETUP_TAG]},
                "outputs": [],
                "source": lines,
            },
        )
        note = "no set-up cell: one is inserted as cell 0 (then run make notebooks NB=...)"
    else:
        cell = cells[0]
        cell["source"] = lines if isinstance(cell.get("source"), list) else cell_source
        tags = cell.setdefault("metadata", {}).setdefault("tags", [])
        if SETUP_TAG not in tags:
            tags.append(SETUP_TAG)
    return dumps_notebook(nb), note


# ------------------------------------------------------------------------------- markdown
FENCE = re.compile(r"^\s*(`{3,}|~{3,})")


def _wrap_clone_fence(lines: list[str]) -> list[str] | None:
    """Put BEGIN/END around the first fenced block that runs ``git clone``, or None."""
    start = None
    for i, line in enumerate(lines):
        m = FENCE.match(line)
        if m is None:
            continue
        if start is None:
            start, fence = i, m.group(1)
        elif line.strip().startswith(fence[0] * len(fence)) and not line.strip().strip(fence[0]):
            if any(lines[j].strip().startswith("git clone ") for j in range(start + 1, i)):
                indent = lines[start][: len(lines[start]) - len(lines[start].lstrip())]
                return [
                    *lines[:start],
                    f"{indent}{BEGIN}\n",
                    *lines[start : i + 1],
                    f"{indent}{END}\n",
                    *lines[i + 1 :],
                ]
            start = None
    return None


def synced_markdown(text: str, clone: str, cd: str) -> tuple[str, str | None]:
    """``text`` with the ``git clone``/``cd`` lines of its marked block set; a note, or raise."""
    lines = text.splitlines(keepends=True)
    note = None
    if not any(line.strip() == BEGIN for line in lines):
        wrapped = _wrap_clone_fence(lines)
        if wrapped is None:
            raise ValueError(f"no {BEGIN} ... {END} block and no fenced block runs git clone")
        lines, note = wrapped, f"no {BEGIN} ... {END} markers yet: put around its git clone block"
    out: list[str] = []
    inside = found_clone = expect_cd = False
    cd_indent = ""
    for line in lines:
        stripped = line.strip()
        indent = line[: len(line) - len(line.lstrip())]
        newline = line[len(line.rstrip("\r\n")) :] or "\n"
        if stripped == BEGIN:
            if inside:
                raise ValueError(f"{BEGIN} inside a block")
            inside, found_clone = True, False
        elif stripped == END:
            if not inside:
                raise ValueError(f"{END} without {BEGIN}")
            if not found_clone:
                raise ValueError(f"a {BEGIN} block without a `git clone` line")
            if expect_cd:
                out.append(f"{cd_indent}{cd}\n")
            inside = expect_cd = False
        elif inside and expect_cd:
            expect_cd = False
            if stripped.startswith("cd "):
                out.append(f"{indent}{cd}{newline}")
                continue
            out.append(f"{cd_indent}{cd}\n")
        elif inside and stripped.startswith("git clone ") and not found_clone:
            found_clone, expect_cd, cd_indent = True, True, indent
            out.append(f"{indent}{clone}{newline}")
            continue
        out.append(line)
    if inside:
        raise ValueError(f"{BEGIN} without {END}")
    return "".join(out), note


# ------------------------------------------------------------------------------- files
def write_atomically(path: Path, text: str, expected_old: str) -> None:
    """Replace ``path`` by ``text`` in one rename; refuse if it changed since it was read."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, path.stat().st_mode & 0o7777)
        if path.read_text(encoding="utf-8") != expected_old:
            raise RuntimeError(f"{path} changed while it was being synced: run again")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def default_paths(root: Path = ROOT) -> list[Path]:
    """The notebooks, the preface, and any other page of ``book/`` (or README) with a block."""
    root = Path(root)
    pages = [root / PREFACE] + [
        p
        for p in [*sorted((root / "book").glob("**/*.md")), root / "README.md"]
        if p != root / PREFACE and p.is_file() and BEGIN in p.read_text(encoding="utf-8")
    ]
    return [*sorted(root.glob(NOTEBOOK_GLOB)), *pages]


def synced(path: Path, root: Path = ROOT) -> tuple[str, str, str | None]:
    """``(old text, synced text, note)`` of one notebook or Markdown file."""
    old = path.read_text(encoding="utf-8")
    if path.suffix == ".ipynb":
        new, note = synced_notebook(old, render_setup_cell(root))
    elif path.suffix == ".md":
        new, note = synced_markdown(old, *render_clone_lines(root))
    else:
        raise ValueError("not a notebook (.ipynb) or Markdown (.md) file")
    return old, new, note


def out_of_sync(paths: list[Path] | None = None, root: Path = ROOT) -> list[str]:
    """A line for each file that differs from what ``_config.yml`` says; [] when all agree."""
    problems = []
    for path in paths or default_paths(root):
        name = _name(path, root)
        try:
            old, new, note = synced(path, root)
        except (OSError, ValueError) as err:
            problems.append(f"{name}: {err}")
            continue
        if new != old:
            what = "cell 0 (the Colab set-up cell)" if path.suffix == ".ipynb" else "clone block"
            problems.append(f"{name}: {note or what + ' differs from ' + CONFIG}")
    return problems


def _name(path: Path, root: Path) -> str:
    path = Path(path).resolve()
    root = Path(root).resolve()
    return path.relative_to(root).as_posix() if path.is_relative_to(root) else str(path)


def main(argv: list[str] | None = None, root: Path = ROOT) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("paths", nargs="*", type=Path, help="notebooks and Markdown files")
    parser.add_argument("--check", action="store_true", help="change nothing; exit 1 if stale")
    args = parser.parse_args(argv)
    paths = [p.resolve() for p in args.paths] or default_paths(root)
    if args.check:
        problems = out_of_sync(paths, root)
        if problems:
            print(f"out of sync with {CONFIG} (repository.url, branch):", file=sys.stderr)
            for line in problems:
                print(f"  {line}", file=sys.stderr)
            print("fix:  python tools/setup_cell.py", file=sys.stderr)
            return 1
        print(f"{len(paths)} files in sync with {CONFIG}")
        return 0
    failed = 0
    for path in paths:
        name = _name(path, root)
        try:
            old, new, note = synced(path, root)
            if new != old:
                write_atomically(path, new, old)
                print(f"updated {name}" + (f" ({note})" if note else ""))
        except (OSError, ValueError, RuntimeError) as err:
            print(f"{name}: {err}", file=sys.stderr)
            failed += 1
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
