"""Mamba layers (``mixer="mamba"``): the scan and the convolution by hand and in pieces, the
constant-size state cache, the size formulas, and the twin, transformers' ``MambaForCausalLM``
(its slow PyTorch path: no CUDA kernels here), within 1e-5 in float32.

transformers computes its scan in float32 whatever the model's dtype (``B.float()``,
``A_log.float()``), so the twin is checked in float32, not float64 as DeepSeek-V3's is."""

import math

import pytest
import torch
from helpers import greedy_by_recomputation, through_the_cache

from slmlab import TinyLM, TinyLMConfig
from slmlab.models import cache_class, flops_per_token, kv_cache_bytes, num_params, state_bytes
from slmlab.models.decoder import unsupported
from slmlab.models.mamba import SSMCache, causal_conv, selective_scan

BASE = dict(
    vocab_size=61, block_size=32, n_layer=2, d_model=24, n_head=1, mixer="mamba", pos="none"
)


def make(seed=0, **kw):
    torch.manual_seed(seed)
    model = TinyLM(TinyLMConfig(**{**BASE, **kw})).eval()
    with torch.no_grad():  # move every weight off its initial value, norms and A, D included
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    return model


# ---------------------------------------------------------------------------- the recurrence
def test_the_scan_by_hand():
    """One channel, one state number: h_t = exp(delta_t a) h_{t-1} + delta_t b_t x_t,
    y_t = c_t h_t + d x_t, worked out step by step."""
    x = torch.tensor([[[1.0], [2.0], [-1.0]]])
    delta = torch.tensor([[[0.5], [1.0], [0.25]]])
    a, d = -2.0, 0.5
    b = torch.tensor([[[1.0], [0.5], [2.0]]])
    c = torch.tensor([[[2.0], [1.0], [-1.0]]])
    y, h = selective_scan(x, delta, torch.tensor([[a]]), b, c, torch.tensor([d]))
    want, state = [], 0.0
    for t in range(3):
        dt, xt = delta[0, t, 0].item(), x[0, t, 0].item()
        state = math.exp(dt * a) * state + dt * b[0, t, 0].item() * xt
        want.append(c[0, t, 0].item() * state + d * xt)
    assert torch.allclose(y[0, :, 0], torch.tensor(want), atol=1e-6)
    assert math.isclose(h.item(), state, rel_tol=1e-6)


def test_the_scan_in_pieces_equals_the_scan_at_once():
    g = torch.Generator().manual_seed(0)
    x, delta = torch.randn(2, 9, 5, generator=g), torch.rand(2, 9, 5, generator=g)
    A, D = -torch.rand(5, 3, generator=g), torch.randn(5, generator=g)
    B, C = torch.randn(2, 9, 3, generator=g), torch.randn(2, 9, 3, generator=g)
    whole, last = selective_scan(x, delta, A, B, C, D)
    first, h = selective_scan(x[:, :4], delta[:, :4], A, B[:, :4], C[:, :4], D)
    rest, h = selective_scan(x[:, 4:], delta[:, 4:], A, B[:, 4:], C[:, 4:], D, h)
    assert torch.allclose(torch.cat([first, rest], 1), whole, atol=1e-6)
    assert torch.allclose(h, last, atol=1e-6)


def test_the_causal_convolution_equals_torch_conv1d_and_continues_from_its_past():
    conv = torch.nn.Conv1d(6, 6, 4, groups=6, padding=3)
    x = torch.randn(2, 6, 10)
    want = conv(x)[..., :10]  # padded both sides, the first 10 outputs are the causal ones
    y, _ = causal_conv(x, conv.weight, conv.bias, None)
    assert torch.allclose(y, want, atol=1e-6)
    a, past = causal_conv(x[..., :7], conv.weight, conv.bias, None)
    b, _ = causal_conv(x[..., 7:], conv.weight, conv.bias, past)
    assert torch.allclose(torch.cat([a, b], -1), want, atol=1e-6)
    assert torch.equal(past, x[..., 4:7])  # the last k - 1 inputs


# ------------------------------------------------------------------------------- the cache
@pytest.mark.parametrize("kw", [{}, {"block_repeat": 2}, {"ssm_conv": 2, "ssm_state": 5}])
def test_decoding_through_the_state_equals_recomputation(kw):
    m = make(**kw)
    x = torch.randint(0, 61, (2, 19))
    assert cache_class(m.config) is SSMCache
    with torch.no_grad():
        assert torch.allclose(through_the_cache(m, x, [1, 8, 9]), m(x), atol=1e-5)
    out = m.generate(x[:, :3], 10, temperature=0)
    ids = greedy_by_recomputation(m, x[:, :3], 10)
    assert torch.equal(out, ids)


def test_the_state_does_not_grow_with_the_context_and_matches_the_formula():
    m = make()
    c = m.config
    sizes = {n: SSMCache(c, 1, n, "cpu", torch.float32).nbytes() for n in (8, 4096)}
    per_layer = c.ssm_inner * (c.ssm_state + c.ssm_conv - 1)
    assert sizes[8] == sizes[4096] == state_bytes(c, 32) == c.n_layer * per_layer * 4
    assert kv_cache_bytes(c, 10, 32) == kv_cache_bytes(c, 10_000, 32) == state_bytes(c, 32)
    attention = TinyLMConfig(vocab_size=61, n_layer=2, d_model=24, n_head=2)
    assert state_bytes(attention, 32) == 0


def test_generation_runs_past_block_size():
    m = make()
    out = m.generate(torch.randint(0, 61, (1, 30)), 20, temperature=0)  # block_size is 32
    assert out.shape == (1, 50)


def test_the_lean_decoder_leaves_mamba_to_forward():
    assert "mixer" in unsupported(make())


# ------------------------------------------------------------------------------ size formulas
@pytest.mark.parametrize("kw", [{}, {"bias": True}, {"ssm_expand": 3, "ssm_dt_rank": 4}])
def test_num_params_counts_the_tensors(kw):
    m = make(**kw)
    assert num_params(m.config) == sum(p.numel() for p in m.parameters())
    assert m.config.dt_rank == kw.get("ssm_dt_rank", math.ceil(24 / 16))


def test_flops_do_not_depend_on_the_context():
    c = make().config
    assert flops_per_token(c, 16) == flops_per_token(c, 16_000)
    weights = num_params(c, non_embedding=True) - c.d_model  # minus the final norm
    scan = 2 * 3 * c.n_layer * c.ssm_inner * c.ssm_state
    assert flops_per_token(c) == 2 * (weights + c.d_model + c.vocab_size * c.d_model) + scan


def test_the_initial_state_space_follows_mamba():
    mixer = TinyLM(TinyLMConfig(**BASE)).blocks[0].mixer
    assert torch.allclose(-mixer.A_log.exp()[0], -torch.arange(1.0, 17.0))  # S4D-real
    assert torch.equal(mixer.D, torch.ones(48))
    dt = torch.nn.functional.softplus(mixer.dt_proj.bias)
    assert dt.min() >= 1e-3 * 0.999 and dt.max() <= 0.1 * 1.001


def test_training_reaches_the_state_space_parameters():
    m = make().train()
    x = torch.randint(0, 61, (2, 12))
    m.loss(x[:, :-1], x[:, 1:]).backward()
    mixer = m.blocks[0].mixer
    for p in (mixer.A_log, mixer.D, mixer.dt_proj.bias, mixer.conv1d.weight):
        assert p.grad is not None and p.grad.abs().sum() > 0


# ------------------------------------------------------------------------------------ configs
@pytest.mark.parametrize(
    "kw, match",
    [
        (dict(pos="rope"), "no attention scores"),
        (dict(pos="alibi"), "no attention scores"),
        (dict(window=4), "window"),
        (dict(n_experts=2), "no FFN"),
        (dict(qk_norm=True), "queries and keys"),
        (dict(norm_position="post"), "mixer"),
        (dict(ssm_state=0), "ssm_state"),
        (dict(ssm_dt_rank=0), "ssm_dt_rank"),
        (dict(mixer="rnn"), "mixer"),
    ],
)
def test_bad_mamba_configs_are_refused(kw, match):
    with pytest.raises(ValueError, match=match):
        TinyLMConfig(**{**BASE, **kw})


def test_the_state_cache_needs_a_mamba_config():
    with pytest.raises(ValueError, match="mixer"):
        SSMCache(TinyLMConfig(vocab_size=61, n_layer=1, d_model=24), 1, 8, "cpu", torch.float32)


# ------------------------------------------------------------------------ transformers' twin
@pytest.mark.parametrize("kw", [{}, {"ssm_state": 8, "ssm_conv": 3, "ssm_expand": 3}])
def test_mamba_for_causal_lm_computes_the_same_and_reads_back(kw, tmp_path):
    from slmlab.hf import config_from_hf, from_hf, to_hf

    m = make(**kw)
    hf = to_hf(m)
    assert type(hf).__name__ == "MambaForCausalLM"
    x = torch.randint(0, 61, (2, 20))
    with torch.no_grad():
        assert (hf(x).logits - m(x)).abs().max() < 1e-5
    greedy = hf.generate(x[:, :4], max_new_tokens=10, do_sample=False)
    assert torch.equal(greedy, m.generate(x[:, :4], 10, temperature=0))
    hf.save_pretrained(tmp_path)
    back = from_hf(tmp_path)
    mine = m.config
    for field in ("n_layer", "d_model", "ssm_state", "ssm_expand", "ssm_conv", "dt_rank", "mixer"):
        assert getattr(config_from_hf(tmp_path), field) == getattr(mine, field)
    with torch.no_grad():
        assert torch.equal(back(x), m(x))


@pytest.mark.parametrize(
    "kw, match", [(dict(norm="layernorm"), "rmsnorm"), (dict(block_repeat=2), "block_repeat")]
)
def test_mamba_variants_without_a_twin_are_refused(kw, match):
    from slmlab.hf import to_hf

    with pytest.raises(ValueError, match=match):
        to_hf(make(**kw))


# ------------------------------------------------------------------ the compression chapter's tools
def test_weight_quantization_reaches_the_mixers_projections():
    from slmlab.quant import quantize

    m = make(d_model=32)
    x = torch.randint(0, 61, (1, 16))
    with torch.no_grad():
        before = m(x)
    q = quantize(m, "rtn", bits=8, group_size=None)  # dt_proj reads only dt_rank = 2 inputs
    mixer = q.blocks[0].mixer
    assert all(type(getattr(mixer, n)).__name__ != "Linear" for n in ("in_proj", "out_proj"))
    with torch.no_grad():
        assert (q(x) - before).abs().max() < 0.05 * before.abs().max()


def test_the_quantized_kv_cache_refuses_a_state_space_model():
    from slmlab.quant.kv_cache import QuantizedKVCache

    with pytest.raises(ValueError, match="fixed-size state"):
        QuantizedKVCache(make().config, 1, 8, "cpu", torch.float32)
