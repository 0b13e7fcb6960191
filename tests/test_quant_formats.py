"""slmlab.quant.formats and packing: quantizers, NF4, float casts, bit packing, QuantLinear,
save/load."""

import pytest
import torch

from slmlab import TinyLM, TinyLMConfig
from slmlab.lm import window_perplexity
from slmlab.quant import (
    NF4_CODEBOOK,
    QuantLinear,
    cast_roundtrip,
    check_bits,
    check_group_size,
    fake_quantize,
    fake_quantize_nf4,
    load_quantized,
    nf4_codebook_from_normal,
    pack_bits,
    quantize,
    quantize_tensor,
    save_quantized,
    saved_nbytes,
    unpack_bits,
)
from slmlab.quant.formats import qrange
from slmlab.surgery import model_nbytes


def _weight(rows=32, cols=128, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(rows, cols, generator=g) * 0.05


@pytest.mark.parametrize("bits", [2, 3, 4, 8])
@pytest.mark.parametrize("symmetric", [True, False])
def test_rtn_codes_in_range_and_error_bounded(bits, symmetric):
    w = _weight()
    qt = quantize_tensor(w, bits, symmetric, group_size=32)
    lo, hi = qrange(bits, symmetric)
    assert int(qt.codes.min()) >= lo and int(qt.codes.max()) <= hi
    assert qt.scale.shape == (32, 4)
    # round-to-nearest: every weight is within half a step of its dequantized value
    err = (qt.dequantize() - w).abs().reshape(32, 4, 32)
    assert bool((err <= qt.scale.unsqueeze(-1) / 2 + 1e-7).all())


def test_symmetric_uses_the_expected_levels():
    assert (
        qrange(4, True) == (-7, 7)
        and qrange(4, False) == (0, 15)
        and qrange(8, True) == (-127, 127)
    )
    w = torch.tensor([[-1.0, -0.5, 0.0, 0.25, 1.0, 0.75, -0.25, 0.5]])
    wq = fake_quantize(w, 8, True)
    assert (
        wq[0, 2] == 0 and wq[0, 0] == -1 and wq[0, 4] == 1
    )  # absmax: zero and the extremes are exact
    assert (wq - w).abs().max() <= 1 / 127 / 2 + 1e-7
    assert fake_quantize(w, 2, True).unique().numel() <= 3  # symmetric 2-bit: {-s, 0, s}


def test_finer_granularity_has_lower_error_with_an_outlier():
    w = _weight(64, 256)
    w[5, 17] = 2.0  # one large weight stretches the range of whatever shares its scale
    errs = {
        g: (fake_quantize(w, 4, False, gs, g) - w).pow(2).mean().item()
        for g, gs in [("tensor", None), ("channel", None), ("group", 32)]
    }
    assert errs["group"] < errs["channel"] < errs["tensor"]


def test_more_bits_less_error():
    w = _weight()
    errs = [(fake_quantize(w, b, False, 32) - w).pow(2).mean().item() for b in (2, 3, 4, 8)]
    assert errs == sorted(errs, reverse=True)
    assert errs[-1] < errs[0] / 1000


def test_bad_bits_and_group_size_errors():
    with pytest.raises(
        ValueError, match=r"unsupported bit width 5; supported bit widths are \(2, 3, 4, 8\)"
    ):
        check_bits(5)
    with pytest.raises(
        ValueError,
        match=r"group_size=48 does not divide the input dimension 128.*\[16, 32, 64, 128\]",
    ):
        check_group_size(128, 48)
    with pytest.raises(ValueError, match="positive integer"):
        check_group_size(128, 0)
    with pytest.raises(ValueError, match="2-D"):
        quantize_tensor(torch.zeros(4), 4)


def test_nf4_codebook_is_the_normal_quantiles():
    derived = nf4_codebook_from_normal()
    assert derived.shape == (16,) and float(derived[7]) == 0.0
    assert torch.allclose(derived, NF4_CODEBOOK, atol=2e-7)
    # NF4 beats 4-bit absmax integers on normally distributed weights (what it was designed for)
    w = _weight(64, 256)
    e_nf4 = (fake_quantize_nf4(w, 64) - w).pow(2).mean()
    e_int = (fake_quantize(w, 4, True, 64) - w).pow(2).mean()
    assert e_nf4 < e_int


def test_float_casts():
    w = torch.tensor([1.0 + 2**-9, 70000.0, 1e-30])
    fp16, bf16 = cast_roundtrip(w, "fp16"), cast_roundtrip(w, "bf16")
    assert fp16[0] == w[0] and bf16[0] != w[0]  # fp16 keeps 10 mantissa bits, bf16 only 7
    assert torch.isinf(fp16[1]) and torch.isfinite(
        bf16[1]
    )  # fp16 overflows above 65504, bf16 has fp32's range
    with pytest.raises(ValueError, match="unknown float format"):
        cast_roundtrip(w, "fp8")


@pytest.mark.parametrize("bits", [2, 3, 4, 8])
def test_pack_unpack_roundtrip(bits):
    codes = torch.randint(0, 2**bits, (37, 11))
    packed = pack_bits(codes, bits)
    assert (
        packed.dtype == torch.uint8 and packed.numel() == (37 * 11 + 3) // 8 * bits
    )  # padded to 8 codes
    assert torch.equal(unpack_bits(packed, bits, codes.numel()).reshape(37, 11).long(), codes)
    with pytest.raises(ValueError, match="must lie in"):
        pack_bits(torch.tensor([2**bits]), bits)


def test_four_bit_packing_is_two_per_byte_high_nibble_first():
    assert pack_bits(torch.tensor([1, 2, 15, 0, 0, 0, 0, 0]), 4).tolist() == [0x12, 0xF0, 0, 0]


@pytest.mark.parametrize(
    "fmt,bits,gs,sym",
    [
        ("int", 4, 32, False),
        ("int", 3, 64, True),
        ("int", 8, None, True),
        ("int", 2, 32, False),
        ("nf4", 4, 64, False),
        ("fp16", 16, None, False),
    ],
)
def test_quantlinear_matches_simulated_weights(fmt, bits, gs, sym):
    lin = torch.nn.Linear(128, 48)
    q = QuantLinear.from_linear(lin, bits, gs, sym, fmt=fmt)
    w = lin.weight.detach()
    expected = {
        "int": lambda: fake_quantize(w, bits, sym, gs),
        "nf4": lambda: fake_quantize_nf4(w, 64),
        "fp16": lambda: cast_roundtrip(w, "fp16"),
    }[fmt]()
    # scales are stored in float16: a relative difference of at most 2^-11 per weight
    assert torch.allclose(q.dequantize(), expected, rtol=1e-3, atol=1e-6)
    x = torch.randn(5, 128)
    assert torch.allclose(q(x), x @ q.dequantize().t() + lin.bias, atol=1e-5)


def _tiny_model(seed=0, **kw):
    torch.manual_seed(seed)
    cfg = dict(vocab_size=96, d_model=64, n_layer=2, n_head=4, block_size=64, d_ff=128)
    cfg.update(kw)
    return TinyLM(TinyLMConfig(**cfg)).eval()


def test_real_storage_is_smaller(tmp_path):
    m = _tiny_model()
    q = quantize(m, "rtn", bits=4, group_size=32)
    lin_bytes = sum(
        mod.weight.numel() * 4
        for n, mod in m.named_modules()
        if isinstance(mod, torch.nn.Linear) and n != "lm_head"
    )
    saved = model_nbytes(m) - model_nbytes(q)
    # 4 bits + an fp16 scale and a uint8 zero per 32 weights = 4.75 bits instead of 32
    assert saved == pytest.approx(lin_bytes * (1 - 4.75 / 32), rel=1e-6)
    save_quantized(q, tmp_path / "q4")
    assert saved_nbytes(tmp_path / "q4") < model_nbytes(m) * 0.75


@pytest.mark.parametrize(
    "method,kw",
    [
        ("rtn", dict(bits=3, group_size=32)),
        ("nf4", {}),
        ("llm_int8", {}),
        ("w8a8", {}),
        ("rtn", dict(bits=8, symmetric=True)),
        ("bf16", {}),
    ],
)
def test_save_load_roundtrip(tmp_path, method, kw):
    m = _tiny_model(tie_embeddings=(method == "nf4"))
    q = quantize(m, method, **kw)
    save_quantized(q, tmp_path / "m")
    assert not any(p.name.endswith(".tmp") for p in tmp_path.iterdir())
    r = load_quantized(tmp_path / "m")
    ids = torch.randint(0, 96, (2, 16))
    assert torch.equal(q(ids), r(ids))
    assert r.quant_info["method"] == method


def test_save_load_transformers_model(tmp_path):
    pytest.importorskip("transformers")
    from slmlab import to_hf

    hf = to_hf(_tiny_model())
    q = quantize(hf, "rtn", bits=4, group_size=32)
    save_quantized(q, tmp_path / "hfq")
    r = load_quantized(tmp_path / "hfq")
    ids = torch.randint(0, 96, (2, 16))
    assert torch.allclose(q(ids).logits, r(ids).logits, atol=1e-6)


def test_load_errors(tmp_path):
    from slmlab.checkpoint import CheckpointError

    with pytest.raises(CheckpointError, match="quant_config.json"):
        load_quantized(tmp_path)
    with pytest.raises(ValueError, match="no quantized layers"):
        save_quantized(_tiny_model(), tmp_path / "x")


def test_window_perplexity_of_uniform_model_is_vocab_size():
    m = _tiny_model()
    for p in m.lm_head.parameters():
        torch.nn.init.zeros_(p)
    assert window_perplexity(m, torch.randint(0, 96, (3, 9))) == pytest.approx(96, rel=1e-5)
