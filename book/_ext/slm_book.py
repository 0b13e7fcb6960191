"""Sphinx extension for this book.

Two jobs, both small:

1. Every page built from a notebook (``*.ipynb``) gets a visible "Open in Colab" link under
   its title, next to the theme's launch button, pointing at the same notebook on GitHub:
   ``https://colab.research.google.com/github/<owner>/<repo>/blob/<branch>/<path>``.
2. The student edition (``make student-book``, or ``SLM_STUDENT_BUILD=1``) removes every
   exercise solution from the pages, including the cells between ``solution-start`` and
   ``solution-end`` of gated solutions.

   Why not just sphinx-exercise's ``hide_solutions: true``? With gated solutions that option
   drops only the ``solution-start`` marker: the cells between start and end (the worked
   code) would still be shown. So we let sphinx-exercise merge each gated solution into one
   solution node as usual and remove those nodes just before the page is written.
"""

from __future__ import annotations

import os
from pathlib import Path

from docutils import nodes
from sphinx.application import Sphinx
from sphinx.util import logging

logger = logging.getLogger(__name__)

COLAB_CLASS = "slm-colab-link"
DEFAULT_COLAB = "https://colab.research.google.com"


def _truthy(value: str | None) -> bool:
    return (value or "").strip().lower() in {"1", "true", "yes", "on"}


def colab_url(app: Sphinx, docname: str) -> str | None:
    """The Colab URL of the notebook behind ``docname``, or None if the page is not a notebook.

    Everything comes from ``_config.yml``, which jupyter-book hands to the theme as
    ``repository_url`` (``repository.url``), ``repository_branch`` (``repository.branch``) and
    ``path_to_docs`` (``repository.path_to_book``: where the book's root lies in the repository),
    and ``launch_buttons.colab_url`` (unless ``slm_colab_url`` is set)."""
    source = Path(app.env.doc2path(docname))
    if source.suffix != ".ipynb":
        return None
    opts = app.config.html_theme_options or {}
    repo_url = (opts.get("repository_url") or "").rstrip("/").removesuffix(".git")
    if not repo_url.startswith("https://github.com/"):
        return None
    branch = opts.get("repository_branch") or "main"
    book_path = (opts.get("path_to_docs") or "").strip("/")
    rel = source.relative_to(Path(app.srcdir)).as_posix()
    path = f"{book_path}/{rel}" if book_path else rel
    launch = opts.get("launch_buttons") or {}
    base = (app.config.slm_colab_url or launch.get("colab_url") or DEFAULT_COLAB).rstrip("/")
    return f"{base}/github/{repo_url[len('https://github.com/') :]}/blob/{branch}/{path}"


def add_colab_link(app: Sphinx, doctree: nodes.document) -> None:
    """Insert an "Open in Colab" paragraph right after the page title of notebook pages."""
    url = colab_url(app, app.env.docname)
    if url is None:
        return
    link = nodes.reference("", "", refuri=url, classes=[COLAB_CLASS])
    link += nodes.Text("Open in Colab")
    para = nodes.paragraph("", "", classes=["slm-colab"])
    para += link
    para += nodes.Text(" — run this notebook in your browser (the first cell installs slmlab).")
    section = next(iter(doctree.findall(nodes.section)), None)
    if section is not None and section.children and isinstance(section[0], nodes.title):
        section.insert(1, para)
    else:
        doctree.insert(0, para)


def remove_solutions(app: Sphinx, doctree: nodes.document, docname: str) -> None:
    """Student edition: drop every (merged) solution before the page is written."""
    if not app.config.slm_student_build:
        return
    from sphinx_exercise.nodes import solution_end_node, solution_node, solution_start_node

    removed = 0
    for kind in (solution_node, solution_start_node, solution_end_node):
        for node in list(doctree.findall(kind)):
            node.parent.remove(node)
            removed += 1
    if removed:
        logger.verbose("slm_book: removed %d solution(s) from %s", removed, docname)


def setup(app: Sphinx) -> dict:
    # "": launch_buttons.colab_url of _config.yml, else DEFAULT_COLAB.
    app.add_config_value("slm_colab_url", "", "html")
    app.add_config_value(
        "slm_student_build", _truthy(os.environ.get("SLM_STUDENT_BUILD")), "env", [bool]
    )
    app.add_css_file("slm-book.css")
    app.connect("doctree-read", add_colab_link)
    app.connect("doctree-resolved", remove_solutions)
    return {"version": "1.0", "parallel_read_safe": True, "parallel_write_safe": True}
