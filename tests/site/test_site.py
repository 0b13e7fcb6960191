"""The built book, checked the way a reader sees it: in a real (headless) browser.

The book renders the outputs stored in the notebooks and executes nothing (``_config.yml``:
``execute_notebooks: "off"``; ``make notebooks`` stores the outputs, nbval checks them). So first
every notebook of the table of contents must have been executed and saved with its outputs — a
notebook committed without them would render as code only, and the session fails at once,
naming it and the command that fixes it. Then the site is built once per session with warnings
as errors (``jupyter-book build . -W --keep-going``, a few minutes at most), served from
``_build/html`` on a free local port, and Debian's Chromium drives it through selenium. Checks:
every page of the table of contents loads with its title; every notebook page shows its stored
figures and tables; no broken internal links or anchors; no missing images; the search page
finds results; an exercise solution opens on click; every notebook page has an "Open in Colab"
link; no page overflows a phone screen. Screenshots go to ``artifacts/screenshots/``. A second
test builds the student edition (from the same stored outputs) and checks that it has the
exercises but none of the solutions.

Run:  python -m pytest -q -m site tests/site
Reuse an existing build while working on the tests:  SLM_SITE_REUSE_BUILD=1 python -m pytest ...
"""

from __future__ import annotations

import functools
import http.server
import json
import os
import re
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest
import yaml

pytestmark = pytest.mark.site

ROOT = Path(__file__).resolve().parents[2]
HTML = ROOT / "_build" / "html"
STUDENT_HTML = ROOT / "_build" / "student" / "_build" / "html"
SHOTS = ROOT / "artifacts" / "screenshots"
BUILD_TIMEOUT = 600  # seconds: a build renders stored outputs and executes nothing (target: 5 min)
# Cells whose outputs the book does not show (myst-nb tags).
REMOVED_OUTPUT_TAGS = {"remove-cell", "remove-output"}


def colab_prefix() -> str:
    """Where a notebook's "Open in Colab" link points, less the notebook's path: made from
    _config.yml (repository.url, branch, path_to_book; launch_buttons.colab_url), the one place
    that says where the book's code lives."""
    config = yaml.safe_load((ROOT / "_config.yml").read_text(encoding="utf-8"))
    repo = config["repository"]
    slug = repo["url"].rstrip("/").removesuffix(".git").removeprefix("https://github.com/")
    colab = (config.get("launch_buttons") or {}).get("colab_url")
    colab = (colab or "https://colab.research.google.com").rstrip("/")
    book = (repo.get("path_to_book") or "").strip("/")
    return f"{colab}/github/{slug}/blob/{repo.get('branch') or 'main'}/" + (book and f"{book}/")


COLAB_PREFIX = colab_prefix()


# ----------------------------------------------------------------------------- helpers
def jupyter_book() -> list[str]:
    exe = Path(sys.executable).with_name("jupyter-book")
    if exe.exists():
        return [str(exe)]
    found = shutil.which("jupyter-book")
    if found is None:
        pytest.fail("jupyter-book is not installed: pip install -e '.[book]'")
    return [found]


def run_build(extra_args: list[str], env_extra: dict[str, str] | None = None) -> float:
    """Run a jupyter-book build from the repository root; fail with the log's tail on error."""
    env = {**os.environ, **(env_extra or {})}
    start = time.perf_counter()
    proc = subprocess.run(
        [*jupyter_book(), "build", ".", "-W", "--keep-going", *extra_args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=BUILD_TIMEOUT,
    )
    elapsed = time.perf_counter() - start
    log = proc.stdout + proc.stderr
    # Sphinx's own messages ("path:line: WARNING: ...");
    # not the kernel's "[IPKernelApp] WARNING |" logs.
    warnings = [
        line for line in log.splitlines() if re.search(r"\b(WARNING|ERROR|CRITICAL|SEVERE):", line)
    ]
    if proc.returncode != 0 or warnings:
        tail = "\n".join(log.splitlines()[-60:])
        pytest.fail(
            f"jupyter-book build {' '.join(extra_args)} failed (exit {proc.returncode}, "
            f"{len(warnings)} warning/error lines):\n"
            + "\n".join(warnings[:30])
            + "\n--- log tail ---\n"
            + tail
        )
    return elapsed


def toc_files() -> list[str]:
    """Every file listed in _toc.yml, in reading order, without suffix."""
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text(encoding="utf-8"))
    files = [toc["root"]]

    def walk(entries):
        for entry in entries or []:
            if "file" in entry:
                files.append(entry["file"])
            walk(entry.get("sections"))
            walk(entry.get("chapters"))

    for part in toc.get("parts", []):
        walk(part.get("chapters"))
    walk(toc.get("chapters"))
    return files


def source_of(doc: str) -> Path:
    for suffix in (".md", ".ipynb"):
        if (ROOT / (doc + suffix)).exists():
            return ROOT / (doc + suffix)
    raise FileNotFoundError(f"{doc} from _toc.yml has no .md or .ipynb source")


def expected_title(doc: str) -> str:
    """The first H1 of the page's source, as plain text."""
    src = source_of(doc)
    if src.suffix == ".ipynb":
        nb = json.loads(src.read_text(encoding="utf-8"))
        lines = [
            line
            for cell in nb["cells"]
            if cell["cell_type"] == "markdown"
            for line in "".join(cell["source"]).splitlines()
        ]
    else:
        lines = src.read_text(encoding="utf-8").splitlines()
    for line in lines:
        if line.startswith("# "):
            return re.sub(r"[`*_]", "", line[2:]).strip()
    raise AssertionError(f"{src} has no '# Title' line")


def is_notebook(doc: str) -> bool:
    return source_of(doc).suffix == ".ipynb"


def notebook_json(doc: str) -> dict:
    return json.loads(source_of(doc).read_text(encoding="utf-8"))


def code_source(cell: dict) -> str:
    src = cell.get("source", "")
    return "".join(src) if isinstance(src, list) else src


def unexecuted_cells(nb: dict) -> list[int]:
    """Code cells that would run (code, no skip-execution tag) but were not stored executed."""
    return [
        i
        for i, cell in enumerate(nb["cells"])
        if cell["cell_type"] == "code"
        and code_source(cell).strip()
        and "skip-execution" not in cell.get("metadata", {}).get("tags", [])
        and cell.get("execution_count") is None
    ]


def notebooks_without_outputs() -> list[str]:
    """One line per notebook of the table of contents that was not stored with its outputs."""
    problems = []
    for doc in toc_files():
        if not is_notebook(doc):
            continue
        nb = notebook_json(doc)
        missing = unexecuted_cells(nb)
        n_code = sum(cell["cell_type"] == "code" for cell in nb["cells"])
        if missing:
            what = "no stored outputs" if len(missing) == n_code else "unexecuted cells"
            problems.append(
                f"{doc}.ipynb: {what} ({len(missing)} of {n_code} code cells never executed, "
                f"e.g. cell {missing[0]}) -> run  make notebooks NB={doc}.ipynb  and commit it"
            )
    return problems


def stored_figures_and_tables(nb: dict) -> tuple[int, int]:
    """How many PNG figures and HTML tables the page of ``nb`` must show from its outputs."""
    figures = tables = 0
    for cell in nb["cells"]:
        if cell["cell_type"] != "code":
            continue
        if REMOVED_OUTPUT_TAGS & set(cell.get("metadata", {}).get("tags", [])):
            continue
        for out in cell.get("outputs", []):
            data = out.get("data", {})
            if "application/vnd.jupyter.widget-view+json" in data:
                continue  # rendered as a widget (its state is not stored), not as its fallback
            html = data.get("text/html", "")
            html = "".join(html) if isinstance(html, list) else html
            if "<table" in html:
                tables += 1
            elif "image/png" in data:
                figures += 1
    return figures, tables


@functools.cache
def ids_in(path: Path) -> frozenset[str]:
    text = path.read_text(encoding="utf-8", errors="replace")
    return frozenset(re.findall(r'\bid="([^"]+)"', text))


# ----------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="session")
def built_site() -> Path:
    problems = notebooks_without_outputs()
    if problems:
        pytest.fail(
            "the book renders the outputs stored in its notebooks and executes none of them, so "
            "these pages would show code without results:\n  " + "\n  ".join(problems),
            pytrace=False,
        )
    if os.environ.get("SLM_SITE_REUSE_BUILD") == "1" and (HTML / "index.html").exists():
        return HTML
    elapsed = run_build([])
    print(f"\nbook built in {elapsed:.0f} s with 0 warnings")
    assert (HTML / "index.html").exists(), "the build finished but wrote no _build/html/index.html"
    return HTML


@pytest.fixture(scope="session")
def server(built_site):
    handler = functools.partial(_QuietHandler, directory=str(built_site))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/"
    httpd.shutdown()
    httpd.server_close()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):  # keep pytest output clean
        pass


@pytest.fixture(scope="session")
def browser(headless_chrome):
    driver = headless_chrome(window_size="1280,900", page_load_timeout=60)
    yield driver
    driver.quit()


def load(browser, url: str) -> None:
    from selenium.webdriver.support.ui import WebDriverWait

    browser.get(url)
    WebDriverWait(browser, 30).until(
        lambda d: d.execute_script("return document.readyState") == "complete"
    )


def screenshot(browser, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    browser.save_screenshot(str(SHOTS / f"{name}.png"))


# ----------------------------------------------------------------------------- tests
def test_every_toc_page_loads_with_title_links_and_images(browser, server, built_site):
    problems: list[str] = []
    docs = toc_files()
    assert len(docs) >= 15, f"_toc.yml lists only {len(docs)} pages"
    for doc in docs:
        page = built_site / f"{doc}.html"
        if not page.exists():
            problems.append(f"{doc}: no {page.relative_to(ROOT)} in the build")
            continue
        load(browser, server + f"{doc}.html")
        title = expected_title(doc)
        h1 = browser.execute_script(
            "const h = document.querySelector('main h1, article h1, h1');"
            "return h ? h.innerText : '';"
        )
        h1 = re.sub(r"\s*[#¶]\s*$", "", h1 or "").strip()
        if h1 != title:
            problems.append(f"{doc}: page heading {h1!r}, expected {title!r}")
        if title not in browser.title:
            problems.append(f"{doc}: <title> {browser.title!r} does not contain {title!r}")

        # Missing images: every <img> finished loading with a real size.
        broken = browser.execute_script(
            "return Array.from(document.images)"
            ".filter(i => !(i.complete && i.naturalWidth > 0)).map(i => i.src);"
        )
        problems += [f"{doc}: image did not load: {src}" for src in broken]

        # Internal links: the target file exists, and so does the #anchor when there is one.
        hrefs = browser.execute_script(
            "return Array.from(document.querySelectorAll('a[href]')).map(a => a.href);"
        )
        for href in hrefs:
            if not href.startswith(server):
                continue
            parts = urlsplit(href)
            rel = unquote(parts.path).lstrip("/") or "index.html"
            target = built_site / rel
            if target.is_dir():
                target = target / "index.html"
            if not target.exists():
                problems.append(f"{doc}: broken link {href}")
            elif (
                parts.fragment
                and target.suffix == ".html"
                and unquote(parts.fragment) not in ids_in(target)
            ):
                problems.append(f"{doc}: link to a missing anchor {href}")
    assert not problems, "site problems:\n" + "\n".join(problems)


def test_notebook_pages_show_their_stored_figures_and_tables(built_site):
    """Each notebook page has at least as many images and tables as its stored outputs hold."""
    problems = []
    notebooks = [doc for doc in toc_files() if is_notebook(doc)]
    for doc in notebooks:
        figures, tables = stored_figures_and_tables(notebook_json(doc))
        page = (built_site / f"{doc}.html").read_text(encoding="utf-8")
        article = page[page.find("<main") :] if "<main" in page else page
        shown_figures, shown_tables = article.count("<img"), article.count("<table")
        if shown_figures < figures:
            problems.append(f"{doc}: {shown_figures} images on the page, {figures} stored figures")
        if shown_tables < tables:
            problems.append(f"{doc}: {shown_tables} tables on the page, {tables} stored tables")
        if figures + tables == 0:
            problems.append(f"{doc}: no stored figure or table at all")
    assert not problems, "notebook pages missing their stored outputs:\n" + "\n".join(problems)


def test_screenshots_of_key_pages(browser, server):
    for name, doc in [
        ("preface", "book/00-preface/index"),
        ("architectures", "book/03-architectures/index"),
        ("notebook-11", "notebooks/11-slm-landscape"),
        ("course", "book/course/index"),
    ]:
        load(browser, server + f"{doc}.html")
        screenshot(browser, name)
    assert len(list(SHOTS.glob("*.png"))) >= 4


def test_search_finds_results(browser, server):
    from selenium.webdriver.support.ui import WebDriverWait

    load(browser, server + "search.html?q=quantization")
    try:
        WebDriverWait(browser, 30).until(
            lambda d: (
                d.execute_script("return document.querySelectorAll('ul.search li').length") > 0
            )
        )
    finally:
        screenshot(browser, "search-quantization")
    found = browser.execute_script(
        "return Array.from(document.querySelectorAll('ul.search li a'))"
        ".map(a => a.getAttribute('href'));"
    )
    assert any("06-compression" in href for href in found), (
        f"search for 'quantization' returned {found[:10]}"
    )


def test_exercise_solution_opens_on_click(browser, server):
    load(browser, server + "book/02-foundations/index.html")
    sol = browser.find_element("css selector", "div.solution.dropdown")
    body = sol.find_element("css selector", ":scope > :not(.admonition-title)")
    assert "toggle-hidden" in sol.get_attribute("class"), "the solution should start folded"
    assert not body.is_displayed(), "a folded solution's text is visible"
    button = sol.find_element("css selector", "button.toggle-button")  # the chevron a reader clicks
    browser.execute_script("arguments[0].scrollIntoView({block: 'center'});", button)
    button.click()
    time.sleep(0.5)
    assert "toggle-hidden" not in sol.get_attribute("class"), (
        "clicking the title did not open the solution"
    )
    assert body.is_displayed(), "the opened solution's text is not visible"
    screenshot(browser, "solution-open")


def test_every_notebook_page_has_open_in_colab(browser, server):
    notebooks = [doc for doc in toc_files() if is_notebook(doc)]
    assert notebooks, "no notebook pages in _toc.yml"
    for doc in notebooks:
        load(browser, server + f"{doc}.html")
        links = browser.execute_script(
            "return Array.from(document.querySelectorAll('a.slm-colab-link'))"
            ".filter(a => a.offsetParent !== null).map(a => [a.innerText, a.href]);"
        )
        assert links, f"{doc}: no visible 'Open in Colab' link"
        text, href = links[0]
        assert "Open in Colab" in text
        assert href == COLAB_PREFIX + f"{doc}.ipynb", f"{doc}: Colab link points to {href}"
        launch = browser.execute_script(
            "return document.querySelectorAll('a[href*=\"colab.research.google.com\"]').length;"
        )
        assert launch >= 2, f"{doc}: the theme's Colab launch button is missing"


def test_phone_viewport_has_no_horizontal_overflow(browser, server):
    browser.execute_cdp_cmd(
        "Emulation.setDeviceMetricsOverride",
        {"width": 390, "height": 844, "deviceScaleFactor": 2, "mobile": True},
    )
    try:
        overflowing = []
        for doc in toc_files():
            load(browser, server + f"{doc}.html")
            width = browser.execute_script(
                "return [document.documentElement.scrollWidth, window.innerWidth];"
            )
            if width[0] > width[1] + 1:
                overflowing.append(f"{doc}: page is {width[0]} px wide on a {width[1]} px screen")
        load(browser, server + "book/00-preface/index.html")
        screenshot(browser, "phone-preface")
        load(browser, server + "notebooks/11-slm-landscape.html")
        screenshot(browser, "phone-notebook-11")
    finally:
        browser.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})
    assert not overflowing, "horizontal overflow on a phone:\n" + "\n".join(overflowing)


def test_student_edition_has_exercises_but_no_solutions(built_site):
    """make student-book: same pages, solutions removed; both render the stored outputs."""
    elapsed = run_build(["--path-output", "_build/student"], {"SLM_STUDENT_BUILD": "1"})
    print(f"\nstudent edition built in {elapsed:.0f} s")
    exercise_pages = 0
    for doc in toc_files():
        normal = (built_site / f"{doc}.html").read_text(encoding="utf-8")
        student_page = STUDENT_HTML / f"{doc}.html"
        assert student_page.exists(), f"student edition lacks {doc}.html"
        student = student_page.read_text(encoding="utf-8")
        n_ex = normal.count('class="exercise admonition"')
        assert student.count('class="exercise admonition"') == n_ex, f"{doc}: exercises lost"
        assert 'class="solution' not in student, (
            f"{doc}: a solution survived in the student edition"
        )
        if n_ex:
            exercise_pages += 1
            assert 'class="solution' in normal, (
                f"{doc}: the normal edition has exercises but no solutions"
            )
    assert exercise_pages >= 10
