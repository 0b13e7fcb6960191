"""The quantization chapter's claims, checked on the shipped base model
(slow; skipped until it is shipped).

GPTQ and AWQ move the predictions (KL to the float model) less than RTN at 4 and 3 bits; W8 RTN
stays within 1% of the float perplexity; SmoothQuant W8A8 beats naive W8A8; QAT beats post-training
quantization at 3 and 2 bits; an int8 KV cache costs (almost) nothing and beats int4.
"""

import math

import pytest
import torch
import torch.nn.functional as F

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def base():
    from slmlab import reference

    if "base" not in reference.available():
        pytest.skip("the reference model 'base' is not shipped yet (data/reference/base)")
    model, tok = reference.load_reference("base")
    try:
        from slmlab.data import corpus_text
    except ImportError:
        pytest.skip("slmlab.data.corpus_text is not available")
    from slmlab.calibration import windows_from_ids

    calib = windows_from_ids(tok.encode(corpus_text("train", 300_000)), 32, 128, seed=0)
    evals = windows_from_ids(tok.encode(corpus_text("val", 300_000)), 64, 128, seed=1)
    train = windows_from_ids(tok.encode(corpus_text("train", 2_000_000)), 2000, 128, seed=2)
    return model.eval(), calib, evals, train


def _ppl(model, windows):
    from slmlab.lm import window_perplexity

    return window_perplexity(model, windows)


def test_w8_rtn_within_one_percent(base):
    from slmlab.quant import quantize

    m, _, ev, _ = base
    assert _ppl(quantize(m, "rtn", bits=8, symmetric=True), ev) < 1.01 * _ppl(m, ev)


@pytest.mark.parametrize("bits", [4, 3])
def test_gptq_and_awq_move_the_predictions_less_than_rtn(base, bits):
    """Measured as KL to the float model: on this model perplexity at 3-4 bits moves by well under
    1%, within the noise of the evaluation text (3-bit RTN even scored below float once)."""
    from slmlab.lm import window_kl
    from slmlab.quant import quantize

    m, calib, ev, _ = base
    kl = {
        meth: window_kl(quantize(m, meth, bits=bits, group_size=64, calib=calib), m, ev)
        for meth in ("rtn", "gptq", "awq")
    }
    assert kl["gptq"] < kl["rtn"] and kl["awq"] < kl["rtn"], kl


def test_smoothquant_beats_naive_w8a8(base):
    from slmlab.quant import quantize

    m, calib, ev, _ = base
    naive = _ppl(quantize(m, "w8a8"), ev)
    smooth = _ppl(quantize(m, "smoothquant", alpha=0.5, calib=calib), ev)
    assert smooth < naive


@pytest.mark.parametrize("bits", [3, 2])
def test_qat_beats_ptq_at_low_bits(base, bits):
    from slmlab.quant import quantize

    m, calib, ev, train = base
    ptq = min(
        _ppl(quantize(m, meth, bits=bits, group_size=64, calib=calib), ev)
        for meth in ("rtn", "gptq")
    )
    qat = _ppl(quantize(m, "qat", bits=bits, group_size=64, calib=train, steps=150), ev)
    assert qat < ptq


@torch.no_grad()
def test_kv_cache_int8_nearly_free_int4_costs_more(base):
    from slmlab.quant import quantized_kv_cache

    m, _, ev, _ = base

    def ppl_with(cls):
        tot, n = 0.0, 0
        for b in ev.split(16):
            cache = cls(m.config, b.shape[0], b.shape[1], "cpu", torch.float32)
            logits = m(b[:, :-1], cache)
            tot += F.cross_entropy(
                logits.reshape(-1, logits.shape[-1]), b[:, 1:].reshape(-1), reduction="sum"
            ).item()
            n += b[:, 1:].numel()
        return math.exp(tot / n)

    ref = _ppl(m, ev)
    p8, p4 = ppl_with(quantized_kv_cache(8)), ppl_with(quantized_kv_cache(4))
    # perplexity itself is too blunt to order them on this model; its distance to the float
    # cache's is not
    assert p8 < 1.01 * ref and abs(p8 - ref) < abs(p4 - ref)
