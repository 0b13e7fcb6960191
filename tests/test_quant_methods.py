"""slmlab.quant methods: GPTQ, AWQ, LLM.int8, SmoothQuant/W8A8, KV cache, QAT,
and quantize()'s errors."""

import pytest
import torch
import torch.nn as nn
from helpers import correlated_inputs

from slmlab import TinyLM, TinyLMConfig
from slmlab.calibration import windows_from_ids
from slmlab.lm import window_perplexity
from slmlab.quant import (
    Int8Linear,
    QuantLinear,
    W8A8Linear,
    awq_quantize_weight,
    awq_search_scale,
    fake_quantize,
    fake_quantize_ste,
    gptq_quantize_weight,
    hessian_from_inputs,
    output_error,
    quantize,
    quantized_kv_cache,
    smoothing_factors,
    ste_round,
)
from slmlab.quant.kv_cache import cache_nbytes
from slmlab.surgery import find_blocks, find_linears


def _tiny_model(seed=0, **kw):
    torch.manual_seed(seed)
    cfg = dict(vocab_size=96, d_model=64, n_layer=2, n_head=4, block_size=64, d_ff=128)
    cfg.update(kw)
    return TinyLM(TinyLMConfig(**cfg)).eval()


def _correlated_inputs(n=2048, d=128, seed=0):
    return correlated_inputs(n, d, seed)


# ----------------------------------------------------------------------------- GPTQ
def test_gptq_beats_rtn_on_layer_output_error():
    torch.manual_seed(0)
    W = torch.randn(64, 128) * 0.05
    X = _correlated_inputs()
    H = hessian_from_inputs(X)
    for bits in (3, 4):
        qt, _ = gptq_quantize_weight(W, H, bits, group_size=32)
        e_gptq = output_error(W, qt.dequantize(), H)
        e_rtn = output_error(W, fake_quantize(W, bits, False, 32), H)
        assert e_gptq < 0.7 * e_rtn, (bits, e_gptq, e_rtn)
        qt_ao, _ = gptq_quantize_weight(W, H, bits, group_size=32, act_order=True)
        assert output_error(W, qt_ao.dequantize(), H) < e_rtn


def test_gptq_lazy_batch_updates_change_nothing():
    # updating the rest of the matrix once per block of columns is only a re-ordering of the
    # same arithmetic
    torch.manual_seed(0)
    W = torch.randn(32, 128) * 0.05
    H = hessian_from_inputs(_correlated_inputs(d=128))
    a, _ = gptq_quantize_weight(W, H, 4, group_size=32, blocksize=128)
    b, _ = gptq_quantize_weight(W, H, 4, group_size=32, blocksize=1)
    assert (a.codes != b.codes).float().mean() < 0.002  # a rare tie may round the other way
    assert torch.allclose(a.dequantize(), b.dequantize(), atol=0.02)


def test_gptq_with_diagonal_hessian_is_rtn():
    # uncorrelated inputs: nothing to compensate,
    # GPTQ reduces to round-to-nearest (per-channel grid)
    W = torch.randn(16, 64) * 0.1
    H = torch.diag(torch.rand(64) + 0.5)
    qt, _ = gptq_quantize_weight(W, H, 4, group_size=None, percdamp=0.0)
    assert torch.allclose(qt.dequantize(), fake_quantize(W, 4, False, None), atol=1e-6)


def test_gptq_singular_hessian_is_damped():
    W = torch.randn(8, 32)
    X = torch.randn(4, 32)  # 4 tokens < 32 inputs: rank-deficient Hessian
    X[:, 3] = 0  # a dead input
    qt, _ = gptq_quantize_weight(W, hessian_from_inputs(X), 4, group_size=16)
    assert torch.isfinite(qt.dequantize()).all()


# ----------------------------------------------------------------------------- AWQ
def test_awq_search_never_worse_than_rtn_and_helps_with_salient_channels():
    torch.manual_seed(0)
    W = torch.randn(64, 128) * 0.05
    X = _correlated_inputs()
    s, alpha, errors = awq_search_scale(W, X, 3, 32)
    assert len(errors) == 21 and min(errors) <= errors[0]  # errors[0] is alpha=0: plain RTN
    assert alpha > 0 and min(errors) < 0.9 * errors[0]
    qt, s, info = awq_quantize_weight(W, X, 3, 32)
    W_hat = qt.dequantize() / s
    e_awq = (X @ (W_hat - W).t()).pow(2).mean()
    e_rtn = (X @ (fake_quantize(W, 3, False, 32) - W).t()).pow(2).mean()
    assert e_awq < e_rtn


# -------------------------------------------------------------------- LLM.int8 / W8A8 / SmoothQuant
def test_llm_int8_outlier_columns_rescue_the_other_features():
    torch.manual_seed(0)
    lin = nn.Linear(128, 32)
    x = torch.randn(64, 128)
    x[:, 5] *= 40  # an outlier feature dimension
    y = lin(x).detach()
    err = {}
    for thr in (0.0, 6.0):
        layer = Int8Linear.from_linear(lin, threshold=thr)
        err[thr] = ((layer(x) - y).norm() / y.norm()).item()
    assert layer.last_outlier_cols >= 1
    assert err[6.0] < err[0.0] / 3


@pytest.mark.parametrize("kernel", [None, "int_mm", "float"])
@pytest.mark.parametrize("k", [33, 1024, 1100])  # 1100: past float32's exact width
def test_int8_matmul_is_exact(kernel, k):
    from slmlab.quant.llm_int8 import int8_matmul

    torch.manual_seed(k)
    a = torch.full((7, k), -128, dtype=torch.int8)  # the largest products
    a[1:] = torch.randint(-128, 128, (6, k), dtype=torch.int8)
    b = torch.full((k, 5), -128, dtype=torch.int8)
    b[:, 1:] = torch.randint(-128, 128, (k, 4), dtype=torch.int8)
    assert torch.equal(int8_matmul(a, b, kernel).long(), a.long() @ b.long())


def test_int8_matmul_rejects_an_unknown_kernel():
    from slmlab.quant.llm_int8 import int8_matmul

    a = torch.zeros(2, 3, dtype=torch.int8)
    with pytest.raises(ValueError, match="unknown int8 kernel"):
        int8_matmul(a, a.t(), "vnni")


@pytest.mark.parametrize("make", ["llm_int8", "w8a8"])
def test_int8_layers_give_the_same_output_on_either_kernel(make):
    from slmlab.quant import Int8Linear, W8A8Linear

    torch.manual_seed(0)
    lin = nn.Linear(64, 48)
    x = torch.randn(2, 9, 64)
    x[..., 3] *= 20  # an outlier column for LLM.int8()
    layer = Int8Linear.from_linear(lin) if make == "llm_int8" else W8A8Linear.from_linear(lin)
    outs = []
    for kernel in ("int_mm", "float"):
        layer.kernel = kernel
        outs.append(layer(x))
    assert torch.equal(outs[0], outs[1])


def test_w8a8_matches_its_float_simulation():
    torch.manual_seed(0)
    lin = nn.Linear(64, 16)
    layer = W8A8Linear.from_linear(lin)
    x = torch.randn(3, 10, 64)
    xs = x.reshape(-1, 64)
    sx = xs.abs().amax(1, keepdim=True) / 127
    x_hat = torch.round(xs / sx) * sx
    expected = (x_hat @ layer.dequantize().t() + lin.bias).reshape(3, 10, 16)
    assert torch.allclose(layer(x), expected, atol=1e-5)


def test_smoothing_is_an_exact_rescaling():
    torch.manual_seed(0)
    lin = nn.Linear(64, 16)
    act = torch.rand(64) * 10
    s = smoothing_factors(act, lin.weight, 0.5)
    w_abs = lin.weight.detach().abs().amax(0)
    assert torch.allclose(s, act.sqrt() / w_abs.sqrt(), rtol=1e-5)
    # after smoothing, max|x_j / s_j| = max|W_j s_j|: the difficulty is split evenly at alpha = 0.5
    assert torch.allclose(act / s, w_abs * s, rtol=1e-4)
    layer = W8A8Linear.from_linear(lin, smooth=s)
    w = lin.weight.detach()
    assert (
        (layer.dequantize() - w).norm() / w.norm()
    ) < 0.02  # the smoothing is undone exactly; only int8 rounding remains
    with pytest.raises(ValueError, match="alpha"):
        smoothing_factors(act, lin.weight, 1.5)


def test_smoothquant_beats_naive_w8a8_with_outlier_channels():
    torch.manual_seed(0)
    lin = nn.Linear(128, 64)
    x = torch.randn(512, 128)
    x[:, [3, 50, 90]] *= 30  # systematic outlier channels (the SmoothQuant observation)
    y = lin(x).detach()
    naive = W8A8Linear.from_linear(lin)
    smooth = W8A8Linear.from_linear(lin, smooth=smoothing_factors(x.abs().amax(0), lin.weight, 0.5))
    e_naive = (naive(x) - y).pow(2).mean()
    e_smooth = (smooth(x) - y).pow(2).mean()
    assert e_smooth < e_naive / 2


# ----------------------------------------------------------------------------- quantize() on models
@pytest.fixture(scope="module")
def model_and_windows():
    m = _tiny_model()
    ids = torch.randint(0, 96, (4000,), generator=torch.Generator().manual_seed(1))
    return m, windows_from_ids(ids, 16, 32, seed=0), windows_from_ids(ids, 8, 32, seed=1)


@pytest.mark.parametrize(
    "method,kw",
    [
        ("rtn", dict(bits=4, group_size=32)),
        ("nf4", {}),
        ("fp16", {}),
        ("gptq", dict(bits=4, group_size=32)),
        ("gptq", dict(bits=3, group_size=None, act_order=True)),
        ("awq", dict(bits=4, group_size=32)),
        ("llm_int8", {}),
        ("w8a8", {}),
        ("smoothquant", dict(alpha=0.5)),
        ("qat", dict(bits=3, group_size=32, steps=3)),
    ],
)
def test_quantize_every_method_returns_a_working_copy(model_and_windows, method, kw):
    m, calib, ev = model_and_windows
    before = {k: v.clone() for k, v in m.state_dict().items()}
    q = quantize(m, method, calib=calib, **kw)
    assert all(
        torch.equal(before[k], v) for k, v in m.state_dict().items()
    )  # the input model is untouched
    assert q.quant_info["method"] == method and q.quant_info["seconds"] >= 0
    ppl_f, ppl_q = window_perplexity(m, ev), window_perplexity(q, ev)
    assert (
        abs(ppl_q / ppl_f - 1) < 0.05
    )  # a random tiny model barely notices; trained-model claims live in the notebooks
    assert not isinstance(q.lm_head, (QuantLinear, Int8Linear, W8A8Linear))  # skipped by default
    n_q = sum(isinstance(x, (QuantLinear, Int8Linear, W8A8Linear)) for x in q.modules())
    assert n_q == 2 * 7


def test_pack_false_gives_the_same_function(model_and_windows):
    m, calib, ev = model_and_windows
    packed = quantize(m, "awq", bits=4, group_size=32, calib=calib)
    plain = quantize(m, "awq", bits=4, group_size=32, calib=calib, pack=False)
    assert all(type(x) is not QuantLinear for x in plain.modules())
    assert torch.allclose(packed(ev), plain(ev), atol=1e-4)


def test_quantize_transformers_model_like_tinylm(model_and_windows):
    pytest.importorskip("transformers")
    from slmlab import to_hf

    m, calib, ev = model_and_windows
    hf = to_hf(m)
    assert find_blocks(hf)[0] == "model.layers" and find_blocks(m)[0] == "blocks"
    for method in ("gptq", "awq"):
        q_ours = quantize(m, method, bits=4, group_size=32, calib=calib)
        q_hf = quantize(hf, method, bits=4, group_size=32, calib=calib)
        assert torch.allclose(q_ours(ev), q_hf(ev).logits, atol=1e-3), method


def test_quantize_errors(model_and_windows):
    m, calib, _ = model_and_windows
    with pytest.raises(
        ValueError, match=r"unsupported bit width 5; supported bit widths are \(2, 3, 4, 8\)"
    ):
        quantize(m, "rtn", bits=5)
    with pytest.raises(
        ValueError, match=r"group_size=48 does not divide the input dimension 64.*\[16, 32, 64\]"
    ):
        quantize(m, "gptq", bits=4, group_size=48, calib=calib)
    with pytest.raises(ValueError, match="calibration set is empty"):
        quantize(m, "gptq", bits=4, calib=torch.zeros(0, 32, dtype=torch.long))
    with pytest.raises(ValueError, match="needs a calibration set"):
        quantize(m, "awq", bits=4)
    with pytest.raises(ValueError, match="has no linear layers"):
        quantize(nn.Sequential(nn.Embedding(4, 4), nn.ReLU()), "rtn")
    with pytest.raises(ValueError, match="no linear layer of TinyLM is left"):
        quantize(m, "rtn", include=["nothing*"])
    with pytest.raises(ValueError, match="unknown quantization method"):
        quantize(m, "gtpq")
    with pytest.raises(TypeError, match="unknown option"):
        quantize(m, "rtn", alpha=0.5)
    with pytest.raises(ValueError, match="supports bits in"):
        quantize(m, "llm_int8", bits=4)


def test_find_linears_skip_and_include(model_and_windows):
    m = model_and_windows[0]
    assert "lm_head" not in find_linears(m) and "lm_head" in find_linears(m, skip=())
    assert list(find_linears(m, include=["*down_proj"])) == [
        "blocks.0.ffn.down_proj",
        "blocks.1.ffn.down_proj",
    ]


def test_quantize_plain_mlp_without_blocks():
    torch.manual_seed(0)
    mlp = nn.Sequential(nn.Linear(32, 64), nn.ReLU(), nn.Linear(64, 8))
    x = torch.randn(256, 32)
    y = mlp(x).detach()
    err = {
        m: ((quantize(mlp, m, bits=3, group_size=16, calib=x)(x) - y).norm() / y.norm()).item()
        for m in ("rtn", "gptq")
    }
    assert err["gptq"] < err["rtn"] < 0.3


# ----------------------------------------------------------------------------- KV cache
def test_quantized_kv_cache_logits_and_memory():
    m = _tiny_model(n_layer=2, d_model=128, n_head=2, block_size=128)  # head_dim 64
    ids = torch.randint(0, 96, (2, 100))
    ref = m(ids)
    for bits, tol in ((8, 0.02), (4, 0.3)):
        for axis in ("channel", "token"):
            cls = quantized_kv_cache(bits, group_size=32, key_axis=axis, residual=32)
            cache = cls(m.config, 2, 128, "cpu", torch.float32)
            out = m(ids, cache)
            rel = ((out - ref).norm() / ref.norm()).item()
            assert rel < tol, (bits, axis, rel)
    full = cache_nbytes(m.config, 1024)
    assert cache_nbytes(m.config, 1024, quantized_kv_cache(8, key_axis="token")) < full / 3.5
    assert cache_nbytes(m.config, 1024, quantized_kv_cache(4, key_axis="token")) < full / 6


def test_kivi_chunks_give_the_same_keys_streamed_or_at_once():
    m = _tiny_model(
        block_size=128, n_layer=1
    )  # one layer: keys depend on the tokens only, not on earlier attention
    cls = quantized_kv_cache(4, group_size=16, key_axis="channel", residual=8)
    ids = torch.randint(0, 96, (1, 40))
    a = cls(m.config, 1, 128, "cpu", torch.float32)
    logits_once = m(ids, a)[:, -1]
    b = cls(m.config, 1, 128, "cpu", torch.float32)
    m(ids[:, :13], b)
    for t in range(13, 40):
        last = m(ids[:, t : t + 1], b)[:, -1]
    assert torch.allclose(logits_once, last, atol=1e-4)


def test_generate_with_quantized_kv_cache():
    m = _tiny_model(block_size=64)
    ids = torch.randint(0, 96, (1, 5))
    ref = m.generate(ids, 20, temperature=0)
    out = m.generate(ids, 20, temperature=0, cache_cls=quantized_kv_cache(8))
    assert out.shape == ref.shape and (out == ref).float().mean() > 0.8
    with pytest.raises(ValueError, match="does not divide head_dim"):
        quantized_kv_cache(4, group_size=12)(m.config, 1, 16, "cpu", torch.float32)
    with pytest.raises(ValueError, match="supported"):
        quantized_kv_cache(3)


# ----------------------------------------------------------------------------- QAT
def test_straight_through_estimator_passes_gradients():
    x = torch.tensor([0.2, 1.7, -0.6], requires_grad=True)
    y = ste_round(x)
    y.sum().backward()
    assert y.tolist() == [0.0, 2.0, -1.0] and x.grad.tolist() == [1.0, 1.0, 1.0]
    w = torch.randn(8, 32, requires_grad=True)
    wq = fake_quantize_ste(w, 3, 16)
    assert torch.allclose(wq, fake_quantize(w.detach(), 3, False, 16))
    (wq * torch.arange(32.0)).sum().backward()
    assert torch.equal(w.grad, torch.arange(32.0).expand(8, 32))


def test_qat_lowers_the_quantized_loss(model_and_windows):
    m, calib, _ = model_and_windows
    ptq = quantize(m, "rtn", bits=2, group_size=32)
    qat = quantize(m, "qat", bits=2, group_size=32, calib=calib, steps=30, lr=3e-3)
    assert window_perplexity(qat, calib) < window_perplexity(ptq, calib)


def test_qat_finetune_takes_the_steps_of_the_plain_qat_loop(model_and_windows):
    """qat_finetune runs on slmlab.train.fit; its trajectory is the loop it had before, written out
    here (AdamW, warm-up then cosine to 10% of lr, clipping at 1, the s-th draw of a seeded
    generator)."""
    import math

    import torch.nn.functional as F

    from slmlab.quant import prepare_qat, qat_finetune
    from slmlab.quant.qat import strip_qat

    m, calib, _ = model_and_windows
    steps, warmup, lr = 12, 3, 3e-3
    latent, losses = qat_finetune(
        m, calib, bits=3, group_size=32, steps=steps, batch_size=4, lr=lr, warmup=warmup, seed=1
    )
    q = prepare_qat(m, 3, 32).train()
    params = [p for p in q.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=0.0, betas=(0.9, 0.95))
    gen = torch.Generator().manual_seed(1)
    ref = []
    for step in range(steps):
        cos = 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * (step - warmup) / (steps - warmup)))
        for g in opt.param_groups:
            g["lr"] = lr * ((step + 1) / warmup if step < warmup else cos)
        batch = calib[torch.randint(0, calib.shape[0], (4,), generator=gen)]
        loss = F.cross_entropy(q(batch[:, :-1]).flatten(0, 1), batch[:, 1:].flatten())
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        ref.append(loss.item())
    assert losses == ref
    for (k, a), b in zip(latent.state_dict().items(), q.state_dict().values(), strict=True):
        assert torch.equal(a, b), k
    # the caller's RNG moves only as far as building the layers moves it (their overwritten initial
    # weights), as before: the training's per-step seeding does not leak out
    torch.manual_seed(5)
    qat_finetune(m, calib, bits=3, group_size=32, steps=2, warmup=1)
    after = torch.get_rng_state()
    torch.manual_seed(5)
    strip_qat(prepare_qat(m, 3, 32))
    assert torch.equal(after, torch.get_rng_state())


def test_qat_refuses_a_warmup_longer_than_the_run(model_and_windows):
    from slmlab.quant import qat_finetune

    m, calib, _ = model_and_windows
    before = {k: v.clone() for k, v in m.state_dict().items()}
    with pytest.raises(ValueError, match=r"warm-up of 10 steps is longer than the run \(steps=5\)"):
        qat_finetune(m, calib, bits=3, group_size=32, steps=5, warmup=10)
    assert all(torch.equal(before[k], v) for k, v in m.state_dict().items())
    same, losses = qat_finetune(
        m, calib, bits=3, group_size=32, steps=0
    )  # no fine-tune: the model as it is
    assert losses == [] and all(torch.equal(before[k], v) for k, v in same.state_dict().items())
    q = quantize(
        m, "qat", bits=3, group_size=32, calib=calib, steps=2
    )  # quantize shortens its default warm-up
    assert q.quant_info["final_train_loss"] is not None


def test_window_kl_is_zero_on_itself_and_matches_a_hand_computation():
    import copy

    import torch.nn.functional as F

    from slmlab.lm import window_kl

    m = _tiny_model()
    windows = torch.randint(0, 96, (3, 17), generator=torch.Generator().manual_seed(0))
    assert window_kl(m, m, windows) == pytest.approx(0.0, abs=1e-7)
    other = copy.deepcopy(m)
    with torch.no_grad():
        other.lm_head.weight.mul_(1.5)
    p, q = F.log_softmax(m(windows[:, :-1]), -1), F.log_softmax(other(windows[:, :-1]), -1)
    hand = F.kl_div(q, p, log_target=True, reduction="sum").item() / windows[:, :-1].numel()
    assert window_kl(other, m, windows, batch_size=2) == pytest.approx(hand, rel=1e-5) and hand > 0
