"""The from-scratch quantizers agree with the library: bitsandbytes (NF4, LLM.int8) directly and
through transformers' BitsAndBytesConfig, on this CPU.

Tolerances (measured on this machine, bitsandbytes 0.50, transformers 5):

* NF4: codes (packed bytes), absmax and dequantized weights are *identical* to
  ``bitsandbytes.functional.quantize_4bit/dequantize_4bit(quant_type="nf4", blocksize=64)``.
* LLM.int8 vs ``bnb.nn.Linear8bitLt(has_fp16_weights=False, threshold=6.0)``: bitsandbytes
  casts inputs and weights to float16 before quantizing. On float16-representable inputs the
  outputs agree to 1e-4 relative (measured ~2e-5); on float32 inputs a few int8 codes differ by
  one step, and the outputs differ by less than 0.5% of the output norm (measured ~0.3%), less
  than either's own quantization error (~1%), which agree within 5% of each other.
* Through transformers (``to_hf`` -> ``save_pretrained`` ->
  ``from_pretrained(quantization_config=..., device_map="cpu")``): perplexity of our
  ``quantize(m, "llm_int8")`` / ``quantize(m, "nf4")`` matches bitsandbytes' within 0.5%
  (measured: <0.05%). The NF4 weights are identical; the remaining difference is bitsandbytes'
  CPU kernel, which multiplies in bfloat16 when the CPU supports it.
"""

import logging
import math

import pytest
import torch

bnb = pytest.importorskip("bitsandbytes")
import bitsandbytes.functional as BF  # noqa: E402

from slmlab import TinyLM, TinyLMConfig  # noqa: E402
from slmlab.calibration import windows_from_ids  # noqa: E402
from slmlab.lm import window_perplexity  # noqa: E402
from slmlab.quant import Int8Linear, dequantize_nf4, pack_bits, quantize, quantize_nf4  # noqa: E402

logging.getLogger("bitsandbytes").setLevel(logging.ERROR)


def _weight(rows=256, cols=768, seed=0):
    g = torch.Generator().manual_seed(seed)
    w = torch.randn(rows, cols, generator=g) * 0.02
    w[3, 5] = 0.5  # an outlier weight
    return w


@pytest.mark.parametrize("blocksize", [64, 128])
def test_nf4_identical_to_bitsandbytes(blocksize):
    w = _weight()
    q_bnb, state = BF.quantize_4bit(w, quant_type="nf4", blocksize=blocksize)
    codes, absmax = quantize_nf4(w, blocksize)
    assert torch.equal(absmax, state.absmax)
    assert torch.equal(pack_bits(codes, 4), q_bnb.reshape(-1))  # same codes, same byte layout
    assert torch.equal(dequantize_nf4(codes, absmax, blocksize), BF.dequantize_4bit(q_bnb, state))


def _bnb_int8(lin):
    ref = bnb.nn.Linear8bitLt(
        lin.in_features,
        lin.out_features,
        bias=lin.bias is not None,
        has_fp16_weights=False,
        threshold=6.0,
    )
    ref.load_state_dict(lin.state_dict())
    return ref.to("cpu").eval()  # .to() quantizes; eval() selects the int8 inference path on CPU


def _inputs(scale, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(4, 32, 768, generator=g) * scale
    x[..., 7] *= 8  # an outlier feature dimension: goes through the fp path
    return x


def test_llm_int8_agrees_with_bitsandbytes_on_fp16_inputs():
    lin = torch.nn.Linear(768, 256)
    with torch.no_grad():
        lin.weight.copy_(_weight().half().float())
        lin.bias.copy_(lin.bias.half().float())
    ref, ours = _bnb_int8(lin), Int8Linear.from_linear(lin, threshold=6.0)
    assert torch.equal(ref.weight.data, ours.weight_t.t())  # identical int8 weights
    for scale in (1.0, 3.0):
        x = _inputs(scale).half().float()
        with torch.no_grad():
            y_ref, y_ours = ref(x), ours(x)
        assert ours.last_outlier_cols >= 1
        assert ((y_ref - y_ours).norm() / y_ref.norm()) < 1e-4


def test_llm_int8_agrees_with_bitsandbytes_on_fp32_inputs():
    lin = torch.nn.Linear(768, 256)
    with torch.no_grad():
        lin.weight.copy_(_weight())
    ref, ours = _bnb_int8(lin), Int8Linear.from_linear(lin, threshold=6.0)
    assert (
        ref.weight.data.int() - ours.weight_t.t().int()
    ).abs().max() <= 1  # fp16 rounding flips a few codes
    for scale in (1.0, 3.0):
        x = _inputs(scale)
        with torch.no_grad():
            y_ref, y_ours, y = ref(x), ours(x), lin(x)
        assert ((y_ref - y_ours).norm() / y.norm()) < 5e-3
        e_ref, e_ours = (
            ((y_ref - y).norm() / y.norm()).item(),
            ((y_ours - y).norm() / y.norm()).item(),
        )
        assert e_ours == pytest.approx(e_ref, rel=0.05)


@pytest.fixture(scope="module")
def tiny_hf_dir(tmp_path_factory):
    pytest.importorskip("transformers")
    pytest.importorskip("accelerate")
    from slmlab import to_hf

    torch.manual_seed(0)
    # a large init makes the random model's outputs sensitive to weight errors
    m = TinyLM(
        TinyLMConfig(
            vocab_size=256, d_model=64, n_layer=2, n_head=4, block_size=64, d_ff=128, init_std=0.1
        )
    ).eval()
    d = tmp_path_factory.mktemp("hf_tiny")
    to_hf(m).save_pretrained(d)
    ev = windows_from_ids(
        torch.randint(0, 256, (5000,), generator=torch.Generator().manual_seed(1)), 8, 64
    )
    return m, d, ev


@pytest.mark.parametrize("kind", ["int8", "nf4"])
def test_transformers_bitsandbytes_loading_matches_ours(tiny_hf_dir, kind):
    from transformers import AutoModelForCausalLM, BitsAndBytesConfig

    m, d, ev = tiny_hf_dir
    if kind == "int8":
        cfg, ours = BitsAndBytesConfig(load_in_8bit=True), quantize(m, "llm_int8")
    else:
        cfg, ours = (
            BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4"),
            quantize(m, "nf4"),
        )
    hf_q = AutoModelForCausalLM.from_pretrained(d, quantization_config=cfg, device_map="cpu").eval()
    layer = hf_q.model.layers[0].self_attn.q_proj
    assert type(layer).__name__ == ("Linear8bitLt" if kind == "int8" else "Linear4bit")
    ppl_float, ppl_bnb, ppl_ours = (
        window_perplexity(m, ev),
        window_perplexity(hf_q, ev),
        window_perplexity(ours, ev),
    )
    assert math.isfinite(ppl_bnb) and ppl_bnb != ppl_float  # it really is quantized
    assert ppl_ours == pytest.approx(ppl_bnb, rel=5e-3)
