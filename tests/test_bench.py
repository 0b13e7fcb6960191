"""The benchmark runs end to end and reports every ratio
(it never asserts speed: machines are noisy)."""

import math

import pytest

pytestmark = pytest.mark.slow


def test_bench_quick_reports_every_ratio(capsys):
    from slmlab.__main__ import main

    assert main(["bench", "--quick"]) == 0
    out = capsys.readouterr().out
    for label in (
        "training tokens/s",
        "decode tokens/s",
        "tied embedding",
        "of this machine's fp32 matmul",
        "no implementation of this model can train more than",
        "greedy decode: the same tokens",
    ):
        assert label in out, out


def test_bench_report_fields():
    from slmlab.models import TinyLMConfig
    from slmlab.runtime.bench import run

    cfg = TinyLMConfig(
        vocab_size=256, block_size=64, n_layer=1, n_head=2, n_kv_head=1, d_model=32, d_ff=64
    )
    r = run(cfg, batch=2, seq=32, new_tokens=8, reps=1, matmul_n=128)
    for key in ("train_speedup", "decode_speedup", "tied_step_slowdown", "train_flops_fraction"):
        assert math.isfinite(r[key]) and r[key] > 0, (key, r[key])
    assert set(r["train_tokens_per_s"]) == {"tinylm", "transformers"}
    assert 0 < r["train_kernel_share"] < 1


def test_kernel_share_counts_matrix_products():
    import torch

    from slmlab.runtime.bench import kernel_share

    a = torch.randn(256, 256)
    assert kernel_share(lambda: a @ a) > 0.9  # nothing but a product
    assert kernel_share(lambda: (a.exp() + 1).sum()) == 0


def tiny_hub_config(tmp_path):
    """SmolLM2-135M's config.json with 1 layer and a 512-token vocabulary: the checkpoint mode's
    path, fast."""
    import json
    from pathlib import Path

    d = json.loads(
        (Path(__file__).parent / "fixtures/hf_configs/smollm2-135m/config.json").read_text()
    )
    d.update(num_hidden_layers=1, vocab_size=512)
    path = tmp_path / "config.json"
    path.write_text(json.dumps(d))
    return path


def test_bench_of_a_config_reports_first_and_repeated_generate(tmp_path, capsys):
    from slmlab.__main__ import main

    config = str(tiny_hub_config(tmp_path))
    assert main(["bench", "--config", config, "--new-tokens", "3", "5", "--reps", "1"]) == 0
    out = capsys.readouterr().out
    for label in (
        "first call (cold)",
        "repeated (median of 1)",
        "greedy generate: the same tokens from both",
        "(3 and 5 new tokens)",
        "built once per model",
    ):
        assert label in out, out
    assert "training tokens/s" not in out  # the checkpoint mode measures generate only


def test_bench_of_a_checkpoint_report_fields(tmp_path):
    from slmlab.runtime.bench import run_checkpoint, write_random_checkpoint

    ckpt = write_random_checkpoint(tiny_hub_config(tmp_path), tmp_path / "ckpt")
    r = run_checkpoint(ckpt, new_tokens=(4,), reps=1)
    g = r["generate"][4]
    assert g["same_tokens"] and set(g["first_s"]) == set(g["repeated_s"]) == {
        "tinylm",
        "transformers",
    }
    for key in ("first_speedup", "repeated_speedup"):
        assert math.isfinite(g[key]) and g[key] > 0
    assert r["decoder_build_s"] > 0 and r["parameters"] > 0
