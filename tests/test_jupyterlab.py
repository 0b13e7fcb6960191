"""The reader's local path, as the README and the preface give it: ``jupyter lab notebooks/``.

The test starts the virtual environment's JupyterLab headless on loopback (a free port, a random
token, ``--no-browser``), serving a temporary copy of ``notebooks/``, so nothing — checkpoints,
saved outputs, workspaces — is written into the repository. (The notebooks run with cwd
``notebooks/`` and import the editable ``slmlab``, which finds ``data/`` by its own location, so
a copy anywhere works.) Jupyter's config, data and runtime dirs point into the temporary dir too:
the user's own settings and kernels do not leak in. Debian's Chromium then opens
``11-slm-landscape.ipynb`` through selenium and does what a reader does: Edit -> Clear Outputs
of All Cells, Run -> Run All Cells, through the menus. Checks: every code cell ran (a number in
its prompt) with no error, the kernel went back to idle, the printed ``device:`` line, the
matplotlib figures and the tables appeared, and the ipywidgets explorer rendered live (its
controls, and the figure its callback draws in the kernel). The server is shut down through
its API at the end (also on failure), and any process it left behind is killed.

Run:  python -m pytest -q tests/test_jupyterlab.py
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

pytestmark = [pytest.mark.site, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"
NOTEBOOK = "11-slm-landscape.ipynb"
SERVER_START_TIMEOUT = 90  # s: a cold JupyterLab start on a busy 2-core machine
UI_TIMEOUT = 120  # s: the notebook opens, the kernel starts, a menu reacts (60 s was too short
# on a loaded 2-core CI machine: rendering 46 code cells took longer once)
RUN_TIMEOUT = 150  # s: notebook 11 runs in ~10-30 s; the nbval budget for one notebook is 180 s


# ----------------------------------------------------------------------------- helpers
def jupyter_lab() -> Path:
    for exe in (
        ROOT / ".venv" / "bin" / "jupyter-lab",
        Path(sys.executable).with_name("jupyter-lab"),
    ):
        if exe.exists():
            return exe
    pytest.fail(
        "JupyterLab is not installed in the venv: pip install -c constraints.txt -e '.[lab]'"
    )


def api(url: str, token: str, method: str = "GET", timeout: float = 10) -> dict | list:
    req = urllib.request.Request(
        url,
        method=method,
        headers={"Authorization": f"token {token}"},
        data=b"" if method == "POST" else None,
    )
    with urllib.request.urlopen(req, timeout=timeout) as resp:
        body = resp.read()
    return json.loads(body) if body else {}


def jupyter_files(path: Path) -> set[str]:
    """What a Jupyter server writes next to notebooks: checkpoints, saved workspaces."""
    return {str(p.relative_to(path)) for p in path.rglob(".ipynb_checkpoints")}


def code_cells(nb_path: Path) -> list[dict]:
    nb = json.loads(nb_path.read_text(encoding="utf-8"))
    return [c for c in nb["cells"] if c["cell_type"] == "code"]


def source(cell: dict) -> str:
    src = cell.get("source", "")
    return "".join(src) if isinstance(src, list) else src


# ----------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def lab(headless_chrome, tmp_path_factory):
    """A JupyterLab server on 127.0.0.1 serving a temporary copy of notebooks/."""
    psutil = pytest.importorskip("psutil")
    base = tmp_path_factory.mktemp("jupyterlab")
    root = base / "notebooks"
    shutil.copytree(
        NOTEBOOKS,
        root,
        ignore=shutil.ignore_patterns(".ruff_cache", "__pycache__", ".ipynb_checkpoints"),
    )
    # The reader's defaults, minus what a test must not depend on: the news/update toast that
    # asks a question and would fetch a web page, and the user's own Jupyter config and kernels.
    settings = base / "user-settings"
    notification = (
        settings / "@jupyterlab" / "apputils-extension" / "notification.jupyterlab-settings"
    )
    notification.parent.mkdir(parents=True)
    notification.write_text(json.dumps({"fetchNews": "false", "checkForUpdates": False}))
    runtime = base / "runtime"
    env = {
        **os.environ,
        "JUPYTER_CONFIG_DIR": str(base / "config"),
        "JUPYTER_DATA_DIR": str(base / "data"),
        "JUPYTER_RUNTIME_DIR": str(runtime),
        "JUPYTER_PREFER_ENV_PATH": "1",
        "IPYTHONDIR": str(base / "ipython"),
        "HF_HUB_OFFLINE": "1",
        "TOKENIZERS_PARALLELISM": "false",
    }
    env.pop("MPLBACKEND", None)  # the kernel's inline backend, as for a reader (not Agg)
    token = secrets.token_hex(24)
    env["JUPYTER_TOKEN"] = token  # not on the command line
    log_path = base / "jupyterlab.log"
    cmd = [
        str(jupyter_lab()),
        "--no-browser",
        "--ip=127.0.0.1",
        "--port=0",  # the OS picks a free port; the server's runtime file says which
        "--ServerApp.port_retries=0",
        f"--ServerApp.root_dir={root}",
        f"--LabApp.user_settings_dir={settings}",
        f"--LabApp.workspaces_dir={base / 'workspaces'}",
        "--ServerApp.open_browser=False",
    ]
    if os.geteuid() == 0:  # CI containers run as root; JupyterLab refuses that without this
        cmd.append("--allow-root")
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            cmd,
            cwd=root,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )

    def log_tail() -> str:
        return "\n".join(log_path.read_text(errors="replace").splitlines()[-40:])

    server = psutil.Process(proc.pid)
    seen: dict[int, psutil.Process] = {}  # the server's descendants (kernels), for the teardown

    def remember_children():
        try:
            for child in server.children(recursive=True):
                seen.setdefault(child.pid, child)
        except psutil.Error:
            pass

    url = None
    try:
        info_file = runtime / f"jpserver-{proc.pid}.json"
        deadline = time.monotonic() + SERVER_START_TIMEOUT
        while True:
            if proc.poll() is not None:
                pytest.fail(f"jupyter lab exited with {proc.returncode} on start:\n{log_tail()}")
            if url is None and info_file.exists():
                try:
                    info = json.loads(info_file.read_text())
                    url = f"http://127.0.0.1:{info['port']}/"
                except (json.JSONDecodeError, KeyError):
                    pass  # being written
            if url is not None:
                try:
                    api(url + "api/status", token, timeout=5)
                    break
                except (urllib.error.URLError, OSError):
                    pass
            if time.monotonic() > deadline:
                pytest.fail(
                    f"jupyter lab did not answer within {SERVER_START_TIMEOUT} s:\n{log_tail()}"
                )
            time.sleep(0.25)  # polling a process that has no readiness signal

        yield {
            "url": url,
            "token": token,
            "root": root,
            "log": log_tail,
            "remember": remember_children,
            "kernels": lambda: api(url + "api/kernels", token),
        }
    finally:
        remember_children()
        if url is not None and proc.poll() is None:
            try:  # the clean way: the server shuts its kernels down, then exits
                api(url + "api/shutdown", token, method="POST", timeout=10)
            except (urllib.error.URLError, OSError):
                pass
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, 15)
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, 9)
                proc.wait(timeout=10)
        left = [p for p in seen.values() if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
        for p in left:
            p.kill()
        assert not left, f"jupyter lab left processes behind: {[p.pid for p in left]}"


@pytest.fixture
def browser(headless_chrome):
    driver = headless_chrome(window_size="1400,1000", page_load_timeout=UI_TIMEOUT)
    try:
        yield driver
    finally:
        driver.quit()


# ----------------------------------------------------------------------------- the test
STATE_JS = """
const panel = document.querySelector('.jp-NotebookPanel:not(.lm-mod-hidden)');
if (!panel) return null;
const indicator = panel.querySelector('.jp-Notebook-ExecutionIndicator');
return {
    kernel: indicator ? indicator.getAttribute('data-status') : null,
    // textContent, not innerText: off-screen cells are not laid out (content-visibility).
    cells: Array.from(panel.querySelectorAll('.jp-Notebook .jp-CodeCell')).map(c => ({
        prompt: (c.querySelector('.jp-InputArea-prompt') || {}).textContent || '',
        outputs: c.querySelectorAll('.jp-OutputArea-output').length,
        text: Array.from(c.querySelectorAll('.jp-OutputArea-output'))
            .map(o => o.textContent).join('\\n').slice(-1500),
    })),
};
"""


def test_notebook_11_runs_in_jupyterlab_with_live_widgets(lab, browser, tmp_path):
    from selenium.common.exceptions import TimeoutException
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as EC
    from selenium.webdriver.support.ui import WebDriverWait

    checkpoints_before = jupyter_files(NOTEBOOKS)
    cells = code_cells(lab["root"] / NOTEBOOK)  # the served copy (others may edit the original)
    runnable = [bool(source(c).strip()) for c in cells]  # JupyterLab skips empty code cells
    shown = [
        any(
            set(o.get("data", {"text/plain": ""})) - {"application/papermill.record/text/plain"}
            for o in c.get("outputs", [])
        )
        for c in cells
    ]  # cells whose stored outputs show something (not only myst-nb glue records)
    stored_images = sum(
        "image/png" in o.get("data", {}) for c in cells for o in c.get("outputs", [])
    )
    timings: dict[str, float] = {}
    t0 = time.monotonic()

    def state() -> dict:
        return browser.execute_script(STATE_JS) or {"kernel": None, "cells": []}

    def fail(what: str):
        shot = tmp_path / "jupyterlab-failure.png"
        try:
            browser.save_screenshot(str(shot))
            prompts = [c["prompt"] for c in state()["cells"]]
        except Exception as exc:  # the browser itself is gone: report what is known
            prompts = f"(unavailable: {exc!r})"
        pytest.fail(
            f"{what}\nscreenshot: {shot}\nprompts: {prompts}\n--- server log ---\n{lab['log']()}",
            pytrace=False,
        )

    def wait(condition, what: str, timeout: float = UI_TIMEOUT):
        try:
            return WebDriverWait(browser, timeout, poll_frequency=0.5).until(condition)
        except TimeoutException:
            fail(f"timed out after {timeout} s waiting for {what}")

    def kernel_idle(_=None) -> bool:
        """Idle in the notebook's toolbar and in the server's own view of its one kernel."""
        if state()["kernel"] != "idle":
            return False
        kernels = lab["kernels"]()
        return (
            len(kernels) == 1
            and kernels[0]["execution_state"] == "idle"
            and kernels[0]["connections"] > 0
        )

    def menu(menu_name: str, label: str) -> None:
        """Open a menu of the menu bar and click one of its items, by the labels a reader reads."""
        bar_item = wait(
            EC.element_to_be_clickable(
                (
                    By.XPATH,
                    "//li[contains(@class,'lm-MenuBar-item')][.//div[contains(@class,"
                    f"'lm-MenuBar-itemLabel')][normalize-space()='{menu_name}']]",
                )
            ),
            f"the {menu_name} menu",
        )
        bar_item.click()
        item = wait(
            EC.element_to_be_clickable(
                (
                    By.XPATH,
                    "//div[contains(@class,'lm-Menu')]//li[contains(@class,'lm-Menu-item')]"
                    "[not(contains(@class,'lm-mod-disabled'))][.//div[contains(@class,"
                    f"'lm-Menu-itemLabel')][normalize-space()='{label}']]",
                )
            ),
            f"{menu_name} -> {label} (enabled)",
        )
        item.click()

    # Open the notebook as the README's command does (lab/tree/<file> is what a click in the
    # file browser opens); it starts its kernel (python3, the venv's ipykernel) on its own.
    browser.get(f"{lab['url']}lab/tree/{NOTEBOOK}?token={lab['token']}")
    wait(
        lambda d: len(state()["cells"]) == len(cells),
        f"{NOTEBOOK} to open with its {len(cells)} code cells",
    )
    timings["open"] = time.monotonic() - t0
    wait(kernel_idle, "the notebook's kernel to start and be idle")
    timings["kernel"] = time.monotonic() - t0
    lab["remember"]()

    # The stored outputs first go, so that every output checked below comes from this run.
    menu("Edit", "Clear Outputs of All Cells")
    wait(
        lambda d: not any(c["outputs"] or c["prompt"].strip("[]: ") for c in state()["cells"]),
        "Clear Outputs of All Cells to empty every output and prompt",
    )

    menu("Run", "Run All Cells")
    started = time.monotonic()
    # Run All marks every cell it will run [*] at once and numbers each when it is done; after
    # an error it unmarks the rest. So the run is over when no [*] is left and a cell is numbered.
    wait(
        lambda d: any("*" in c["prompt"] or c["prompt"].strip("[]: ") for c in state()["cells"]),
        "Run All Cells to start",
    )
    wait(
        lambda d: not any("*" in c["prompt"] for c in state()["cells"]) and kernel_idle(),
        f"Run All Cells to finish ({sum(runnable)} cells)",
        timeout=RUN_TIMEOUT,
    )
    timings["run"] = time.monotonic() - started
    lab["remember"]()

    done = state()["cells"]
    not_run = [
        i for i, c in enumerate(done) if runnable[i] and not c["prompt"].strip("[]: ").isdigit()
    ]
    if not_run:
        last = max(
            (i for i, c in enumerate(done) if c["prompt"].strip("[]: ").isdigit()), default=None
        )
        detail = done[last]["text"] if last is not None else ""
        fail(
            f"Run All Cells stopped: code cells {not_run[:10]} did not run; the output of the "
            f"last cell that ran (code cell {last}):\n{detail}"
        )
    empty = [i for i, c in enumerate(done) if shown[i] and not c["outputs"]]
    assert not empty, (
        f"code cells {empty} show outputs in the stored notebook but none in JupyterLab"
    )

    texts = [c["text"] for c in done]
    assert any(line.startswith("device:") for t in texts for line in t.splitlines()), (
        "the set-up cell's 'device: ...' line is missing"
    )
    images = browser.execute_script(
        "return Array.from(document.querySelectorAll('.jp-Notebook .jp-RenderedImage img'))"
        ".filter(i => i.complete && i.naturalWidth > 0).length;"
    )
    assert images >= stored_images, (
        f"{images} figures rendered; the stored notebook has {stored_images}"
    )
    tables = browser.find_elements(By.CSS_SELECTOR, ".jp-Notebook .jp-RenderedHTMLCommon table")
    assert len(tables) >= 5, f"only {len(tables)} tables rendered"

    # The explorer: ipywidgets' interact() with a SelectMultiple, two dropdowns and a slider.
    # Its figure and table are drawn by the callback in the kernel and sent back over the
    # widget comms, so the figure inside the widget proves the widget runtime works end to end.
    widget = wait(
        EC.presence_of_element_located(
            (By.CSS_SELECTOR, ".jp-Notebook .jupyter-widgets.widget-interact")
        ),
        "the ipywidgets explorer",
    )
    assert widget.find_elements(By.CSS_SELECTOR, ".widget-select-multiple select option"), (
        "the explorer has no model list"
    )
    assert len(widget.find_elements(By.CSS_SELECTOR, ".widget-dropdown select")) >= 2, (
        "the explorer lacks its device and bits dropdowns"
    )
    assert widget.find_elements(By.CSS_SELECTOR, ".widget-slider"), "no context slider"
    wait(
        lambda d: widget.find_elements(By.CSS_SELECTOR, ".widget-output .jp-RenderedImage img"),
        "the explorer's figure (drawn by its callback in the kernel)",
    )
    assert not any("Error displaying widget" in c["text"] for c in state()["cells"]), (
        "a widget failed to display"
    )
    assert jupyter_files(NOTEBOOKS) == checkpoints_before, "JupyterLab wrote into the repository"
    print(
        f"\nJupyterLab: notebook open {timings['open']:.1f} s, "
        f"kernel idle {timings['kernel']:.1f} s, "
        f"Run All Cells {timings['run']:.1f} s ({sum(runnable)} cells), {images} figures, "
        f"{len(tables)} tables, widget rendered"
    )
