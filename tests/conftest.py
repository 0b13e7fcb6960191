import os
from pathlib import Path

import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # the test suite never reaches a hub
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))


@pytest.fixture
def tiny_config():
    from slmlab import TinyLMConfig

    return TinyLMConfig(vocab_size=97, block_size=64, n_layer=2, n_head=4, n_kv_head=2, d_model=32)


@pytest.fixture(scope="session")
def toy_text(tmp_path_factory):
    """A small deterministic text file for training tests (no corpus generator needed)."""
    import random

    rng = random.Random(0)
    words = (
        "the cat dog bird sat ran flew on a mat hill tree big small red blue happy sad and then"
    ).split()
    text = "\n".join(" ".join(rng.choice(words) for _ in range(10)) + "." for _ in range(4000))
    path = tmp_path_factory.mktemp("toy") / "toy.txt"
    path.write_text(text, encoding="utf-8")
    return path


# Debian's chromium and chromium-driver (.ci/run installs them); other builds: set these variables.
CHROMIUM = Path(os.environ.get("SLM_CHROMIUM", "/usr/bin/chromium"))
CHROMEDRIVER = Path(os.environ.get("SLM_CHROMEDRIVER", "/usr/bin/chromedriver"))
CHROMIUM_FLAGS = (
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
)


@pytest.fixture(scope="session")
def headless_chrome(tmp_path_factory):
    """``headless_chrome(window_size, page_load_timeout)`` starts a selenium driver of headless
    Chromium with a fresh profile (the caller quits it); skips the test where Chromium,
    chromedriver or selenium is missing."""
    if not CHROMIUM.exists() or not CHROMEDRIVER.exists():
        pytest.skip(
            f"headless Chromium not found ({CHROMIUM}, {CHROMEDRIVER}): install Debian's "
            "'chromium' and 'chromium-driver' packages (.ci/run does this) to run the browser tests"
        )
    webdriver = pytest.importorskip("selenium.webdriver", reason="pip install selenium")
    from selenium.webdriver.chrome.service import Service

    def start(window_size: str = "1280,900", page_load_timeout: float = 60):
        options = webdriver.ChromeOptions()
        options.binary_location = str(CHROMIUM)
        profile = tmp_path_factory.mktemp("chromium-profile")
        for flag in (*CHROMIUM_FLAGS, f"--window-size={window_size}", f"--user-data-dir={profile}"):
            options.add_argument(flag)
        driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
        driver.set_page_load_timeout(page_load_timeout)
        return driver

    return start
