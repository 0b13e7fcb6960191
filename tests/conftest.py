import os

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
