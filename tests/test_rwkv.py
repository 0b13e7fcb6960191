"""RWKV layers (``mixer="rwkv"``): the weighted average by hand, against its unstabilised
formula and in pieces, the token shift, the constant-size cache, the size formulas, and the
twin, transformers' ``RwkvForCausalLM`` (its CPU path), within 1e-5 in float32.

Found on the way (transformers 5.23): ``RwkvForCausalLM``'s one-token step with a state
broadcasts the token shift across the batch (``hidden * mix + shifted * (1 - mix)`` with
``hidden`` (B, 1, d) and ``shifted`` (B, d) gives (B, B, d)), so its cached ``generate`` is wrong
for a batch of more than one sequence; its full forward and its batch-of-one generation agree with
TinyLM's, and those are what is compared here."""

import math

import pytest
import torch
from helpers import greedy_by_recomputation, through_the_cache

from slmlab import TinyLM, TinyLMConfig
from slmlab.models import cache_class, kv_cache_bytes, num_params, state_bytes
from slmlab.models.decoder import unsupported
from slmlab.models.rwkv import RWKVCache, token_shift, wkv

BASE = dict(vocab_size=61, block_size=32, n_layer=2, d_model=24, n_head=1, d_ff=40)
BASE.update(mixer="rwkv", pos="none", norm="layernorm", bias=True)


def make(seed=0, **kw):
    torch.manual_seed(seed)
    model = TinyLM(TinyLMConfig(**{**BASE, **kw})).eval()
    with torch.no_grad():  # move every weight off its initial value, norms and mixes included
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    return model


# --------------------------------------------------------------------- the weighted average
def test_wkv_by_hand():
    """One channel over two tokens, w = exp(decay), u = bonus:
    out_0 = v_0; out_1 = (e^{k_0} v_0 + e^{u + k_1} v_1) / (e^{k_0} + e^{u + k_1})."""
    decay, bonus = torch.tensor([0.0]), torch.tensor([0.5])
    k, v = torch.tensor([[[1.0], [2.0]]]), torch.tensor([[[3.0], [-1.0]]])
    out, (num, den, exp) = wkv(decay, bonus, k, v)
    a, b = math.exp(1.0), math.exp(0.5 + 2.0)
    assert torch.allclose(out[0, :, 0], torch.tensor([3.0, (a * 3 - b) / (a + b)]))
    # after two tokens: e^{-w} e^{k_0} v_0 + e^{k_1} v_1 (w = e^0 = 1), kept as num * e^exp
    want = math.exp(-1 + 1.0) * 3 + math.exp(2.0) * -1
    assert math.isclose((num * exp.exp()).item(), want, rel_tol=1e-5)


def test_wkv_equals_its_unstabilised_formula():
    g = torch.Generator().manual_seed(0)
    k, v = torch.randn(2, 7, 5, generator=g), torch.randn(2, 7, 5, generator=g)
    decay, bonus = torch.randn(5, generator=g), torch.randn(5, generator=g)
    out, _ = wkv(decay, bonus, k, v)
    w = decay.exp()
    for t in range(7):
        i = torch.arange(t)
        weights = torch.exp(-(t - 1 - i)[:, None] * w + k[:, :t])  # (2, t, 5)
        now = torch.exp(bonus + k[:, t])
        want = ((weights * v[:, :t]).sum(1) + now * v[:, t]) / (weights.sum(1) + now)
        assert torch.allclose(out[:, t], want, atol=1e-5)


def test_wkv_in_pieces_equals_wkv_at_once_and_survives_large_keys():
    g = torch.Generator().manual_seed(1)
    k, v = 40 * torch.randn(1, 9, 4, generator=g), torch.randn(1, 9, 4, generator=g)
    decay, bonus = torch.randn(4, generator=g), torch.randn(4, generator=g)
    whole, _ = wkv(decay, bonus, k, v)
    first, state = wkv(decay, bonus, k[:, :5], v[:, :5])
    rest, _ = wkv(decay, bonus, k[:, 5:], v[:, 5:], state)
    assert torch.isfinite(whole).all()  # e^40 would overflow float32's sums without the exponent
    assert torch.allclose(torch.cat([first, rest], 1), whole, atol=1e-5)


def test_token_shift():
    x = torch.arange(6.0).reshape(1, 3, 2)
    assert token_shift(x, None).tolist() == [[[0, 0], [0, 1], [2, 3]]]
    assert token_shift(x, torch.tensor([[9.0, 8.0]])).tolist() == [[[9, 8], [0, 1], [2, 3]]]


# ------------------------------------------------------------------------------- the cache
@pytest.mark.parametrize("kw", [{}, {"block_repeat": 2}, {"n_layer": 1}])
def test_decoding_through_the_state_equals_recomputation(kw):
    m = make(**kw)
    x = torch.randint(0, 61, (2, 17))
    assert cache_class(m.config) is RWKVCache
    with torch.no_grad():
        assert torch.allclose(through_the_cache(m, x, [1, 6, 7]), m(x), atol=1e-5)
    out = m.generate(x[:, :3], 9, temperature=0)
    ids = greedy_by_recomputation(m, x[:, :3], 9)
    assert torch.equal(out, ids)


def test_the_state_is_five_numbers_per_channel_and_layer_at_any_context():
    c = make().config
    cache = RWKVCache(c, 3, 8, "cpu", torch.float32)
    assert cache.nbytes() == RWKVCache(c, 3, 4096, "cpu", torch.float32).nbytes()
    assert cache.nbytes() == 3 * state_bytes(c, 32) == 3 * c.n_layer * 5 * c.d_model * 4
    assert kv_cache_bytes(c, 5, 32) == kv_cache_bytes(c, 50_000, 32) == state_bytes(c, 32)


def test_the_lean_decoder_leaves_rwkv_to_forward():
    assert "mixer" in unsupported(make())


@pytest.mark.parametrize("kw", [{}, {"tie_embeddings": True, "d_ff": 64}, {"norm": "rmsnorm"}])
def test_num_params_counts_the_tensors(kw):
    m = make(**kw)
    assert num_params(m.config) == sum(p.numel() for p in m.parameters())


def test_the_first_layer_normalises_the_embeddings_once():
    m = make(block_repeat=2)
    assert m.blocks[0].pre_norm is not None and m.blocks[1].pre_norm is None
    seen = []
    m.blocks[0].pre_norm.register_forward_hook(lambda *a: seen.append(1))
    m(torch.randint(0, 61, (1, 5)))
    assert len(seen) == 1  # in the first run of block 0, not in its repeat


def test_training_reaches_decay_bonus_and_mixes():
    m = make().train()
    x = torch.randint(0, 61, (2, 12))
    m.loss(x[:, :-1], x[:, 1:]).backward()
    tm, cm = m.blocks[1].time_mix, m.blocks[1].channel_mix
    for p in (tm.time_decay, tm.time_first, tm.time_mix_value, cm.time_mix_receptance):
        assert p.grad is not None and p.grad.abs().sum() > 0


@pytest.mark.parametrize(
    "kw, match",
    [
        (dict(pos="rope"), "no attention scores"),
        (dict(window=4), "window"),
        (dict(n_experts=2), "experts"),
        (dict(ffn_scale=(0.5, 1.0)), "ffn_scale"),
    ],
)
def test_bad_rwkv_configs_are_refused(kw, match):
    with pytest.raises(ValueError, match=match):
        TinyLMConfig(**{**BASE, **kw})


def test_the_rwkv_cache_needs_an_rwkv_config():
    with pytest.raises(ValueError, match="mixer"):
        RWKVCache(TinyLMConfig(vocab_size=61, n_layer=1, d_model=24), 1, 8, "cpu", torch.float32)


# ------------------------------------------------------------------------ transformers' twin
@pytest.mark.parametrize("kw", [{}, {"tie_embeddings": True, "n_layer": 3}])
def test_rwkv_for_causal_lm_computes_the_same_and_reads_back(kw, tmp_path):
    from slmlab.hf import config_from_hf, from_hf, to_hf

    m = make(**kw)
    hf = to_hf(m)
    assert type(hf).__name__ == "RwkvForCausalLM"
    x = torch.randint(0, 61, (2, 20))
    with torch.no_grad():
        assert (hf(x).logits - m(x)).abs().max() < 1e-5
    one = x[:1, :4]  # a batch of one: see the module docstring for larger batches
    greedy = hf.generate(one, max_new_tokens=10, do_sample=False)
    assert torch.equal(greedy, m.generate(one, 10, temperature=0))
    hf.save_pretrained(tmp_path)
    read = config_from_hf(tmp_path)
    for field in ("n_layer", "d_model", "hidden_dim", "mixer", "norm", "bias", "tie_embeddings"):
        assert getattr(read, field) == getattr(m.config, field)
    with torch.no_grad():
        assert torch.equal(from_hf(tmp_path)(x), m(x))


@pytest.mark.parametrize(
    "kw, match",
    [
        (dict(norm="rmsnorm"), "layernorm"),
        (dict(bias=False), "layernorm"),
        (dict(norm_eps=1e-6), "norm_eps"),
        (dict(n_layer=1), "n_layer >= 2"),
        (dict(block_repeat=2), "block_repeat"),
    ],
)
def test_rwkv_variants_without_a_twin_are_refused(kw, match):
    from slmlab.hf import to_hf

    with pytest.raises(ValueError, match=match):
        to_hf(make(**kw))
