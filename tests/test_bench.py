"""The benchmark runs end to end and reports every ratio (it never asserts speed: machines are noisy)."""
import math

import pytest

pytestmark = pytest.mark.slow


def test_bench_quick_reports_every_ratio(capsys):
    from slmlab.__main__ import main

    assert main(["bench", "--quick"]) == 0
    out = capsys.readouterr().out
    for label in ("training tokens/s", "decode tokens/s", "tied embedding", "of this machine's fp32 matmul",
                  "no implementation of this model can train more than", "greedy decode: the same tokens"):
        assert label in out, out


def test_bench_report_fields():
    from slmlab.runtime.bench import run
    from slmlab.models import TinyLMConfig

    cfg = TinyLMConfig(vocab_size=256, block_size=64, n_layer=1, n_head=2, n_kv_head=1, d_model=32, d_ff=64)
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
