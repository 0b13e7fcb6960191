"""The architecture chapter's variants of TinyLM: sliding-window attention and its ring-buffer
cache, ALiBi, QK-norm, post-norm, ReLU², mixture of experts, latent attention (more of MLA in
tests/test_mla.py), Mamba and RWKV layers (more in tests/test_mamba.py, tests/test_rwkv.py).

For each: the cache gives what recomputation gives, the degenerate case is the base model, the
size formulas match the tensors, and where transformers has the architecture (Mistral, Qwen3,
Mixtral, DeepSeek-V3, Mamba, RWKV) the logits agree within 1e-4 in float32."""

import pytest
import torch
from helpers import greedy_by_recomputation, through_the_cache

from slmlab import TinyLM, TinyLMConfig
from slmlab.models import KVCache, active_params, kv_cache_bytes, num_params
from slmlab.models.masks import alibi_slopes, attention_mask, visible
from slmlab.models.moe import load_balancing_loss, route
from slmlab.models.sliding_window import SlidingWindowCache

BASE = dict(vocab_size=97, block_size=64, n_layer=2, n_head=4, n_kv_head=2, d_model=32, d_ff=48)
VARIANTS = {
    "window": dict(window=5),
    "alibi": dict(pos="alibi"),
    "qk_norm": dict(qk_norm=True),
    "post_norm": dict(norm_position="post"),
    "relu2": dict(ffn="relu2"),
    "moe": dict(n_experts=4, top_k=2),
    "moe_window": dict(n_experts=3, top_k=1, window=6),
    "alibi_window": dict(pos="alibi", window=7),
    "mla": dict(n_kv_head=None, mla_kv_rank=12),
    "mla_q_rank": dict(n_kv_head=None, mla_kv_rank=12, mla_q_rank=16, mla_rope_dim=6),
    "mamba": dict(mixer="mamba", pos="none"),  # more of Mamba in tests/test_mamba.py
    "mamba_learned_bias": dict(mixer="mamba", pos="learned", bias=True, ssm_state=4),
    "rwkv": dict(mixer="rwkv", pos="none", norm="layernorm", bias=True),  # tests/test_rwkv.py
    "rwkv_rmsnorm": dict(mixer="rwkv", pos="none"),
}


def make(seed=0, **kw):
    torch.manual_seed(seed)
    return TinyLM(TinyLMConfig(**{**BASE, **kw})).eval()


def randomize_norms(model):
    # norms start at 1: give their gains values, so a twin that skipped one would differ
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "norm" in name:
                p.copy_(1 + 0.3 * torch.randn_like(p))
    return model


# ------------------------------------------------------------------------------- masks and ALiBi
def test_alibi_slopes_are_the_papers_geometric_sequence():
    assert torch.allclose(alibi_slopes(8), torch.tensor([2.0**-k for k in range(1, 9)]))
    # 6 heads: the 4 slopes of 4 heads, then every other slope of 8 heads
    want = [2**-2, 2**-4, 2**-6, 2**-8, 2**-1, 2**-3]
    assert torch.allclose(alibi_slopes(6), torch.tensor(want))
    with pytest.raises(ValueError):
        alibi_slopes(0)


@pytest.mark.parametrize("n_head", [1, 4, 6, 12])
def test_alibi_slopes_equal_bloom(n_head):
    """Library twin: transformers' BLOOM builds slope * key position, (B * heads, 1, S)."""
    from transformers.models.bloom.modeling_bloom import build_alibi_tensor

    alibi = build_alibi_tensor(torch.ones(1, 3), n_head, torch.float32)
    assert torch.allclose(alibi[:, 0, 1], alibi_slopes(n_head), rtol=1e-6)


def test_masks_by_hand():
    q, k = torch.arange(2, 5), torch.arange(5)  # queries at 2, 3, 4 over keys 0..4
    causal = visible(q, k, None)
    assert causal.tolist() == [[1, 1, 1, 0, 0], [1, 1, 1, 1, 0], [1, 1, 1, 1, 1]]
    window = visible(q, k, 2)  # itself and one before
    assert window.tolist() == [[0, 1, 1, 0, 0], [0, 0, 1, 1, 0], [0, 0, 0, 1, 1]]
    bias = attention_mask(q, k, None, torch.tensor([0.5]))
    assert bias[0, 2].tolist() == [-2.0, -1.5, -1.0, -0.5, 0.0]
    assert bias[0, 0, 3] == float("-inf")


def test_alibi_extrapolates_past_block_size():
    """No position table: ALiBi (and no positions) run on sequences longer than block_size."""
    m = make(pos="alibi")
    x = torch.randint(0, 97, (1, 100))  # block_size is 64
    assert m(x).shape == (1, 100, 97)


# -------------------------------------------------------------- caches equal recomputation
@pytest.mark.parametrize("name", sorted(VARIANTS))
def test_prefill_in_chunks_through_the_cache_equals_the_full_forward(name):
    m = randomize_norms(make(**VARIANTS[name]))
    x = torch.randint(0, 97, (2, 23))
    assert torch.allclose(through_the_cache(m, x, [9, 10, 17]), m(x), atol=1e-5)


@pytest.mark.parametrize("name", sorted(VARIANTS))
def test_generate_equals_greedy_recomputation(name):
    m = randomize_norms(make(**VARIANTS[name]))
    prompt = torch.randint(0, 97, (2, 4))
    out = m.generate(prompt, 12, temperature=0)
    ids = greedy_by_recomputation(m, prompt, 12)
    assert torch.equal(out, ids)


# ----------------------------------------------------------------- the sliding window's ring
def test_the_ring_buffer_stays_at_window_size_however_long_the_context():
    c = TinyLMConfig(**{**BASE, "window": 8})
    sizes = {n: SlidingWindowCache(c, 1, n, "cpu", torch.float32).nbytes() for n in (8, 64, 4096)}
    assert len(set(sizes.values())) == 1
    assert sizes[8] == kv_cache_bytes(c, 4096, "fp32")  # the formula caps the context too
    assert KVCache(c, 1, 64, "cpu", torch.float32).nbytes() == 8 * sizes[8]


def test_sliding_window_generation_runs_past_block_size_without_refilling():
    m = make(window=6, block_size=16)
    prompt = torch.randint(0, 97, (1, 5))
    out = m.generate(prompt, 40, temperature=0)  # 45 positions, block_size 16
    ids = greedy_by_recomputation(m, prompt, 40)
    assert torch.equal(out, ids)  # forward with the window sees what the ring kept


def test_the_ring_holds_the_last_positions_in_their_slots():
    c = TinyLMConfig(**{**BASE, "window": 4})
    cache = SlidingWindowCache(c, 1, 100, "cpu", torch.float32)
    for T in (3, 1, 5, 2):
        k = torch.arange(cache.pos, cache.pos + T, dtype=torch.float32).view(1, 1, T, 1)
        k = k.expand(1, c.n_kv_head, T, c.head_dim)
        for layer in range(c.n_layer):
            keys, _ = cache.update(layer, k, k)
            assert keys[0, 0, :, 0].tolist() == cache.key_positions(T).tolist()
        cache.advance(T)
    assert sorted(cache.slot_pos.tolist()) == [7, 8, 9, 10]
    assert cache.slot_pos.tolist() == [8, 9, 10, 7]  # position p in slot p % 4


def test_ring_cache_needs_a_window():
    with pytest.raises(ValueError, match="needs a config with a window"):
        SlidingWindowCache(TinyLMConfig(**BASE), 1, 8, "cpu", torch.float32)


# ---------------------------------------------------------------------------- degenerate cases
def _same_weights(variant, base):
    variant.load_state_dict(base.state_dict())
    return variant


def test_a_window_as_long_as_the_context_is_full_attention():
    base = make()
    x = torch.randint(0, 97, (2, 30))
    windowed = _same_weights(make(window=30), base)
    assert torch.allclose(windowed(x), base(x), atol=1e-6)
    assert not torch.allclose(_same_weights(make(window=29), base)(x), base(x), atol=1e-4)


def test_one_expert_is_the_dense_ffn_of_its_weights():
    base = make()
    moe = make(n_experts=1, top_k=1)
    sd = {}
    for k, v in base.state_dict().items():
        sd[k.replace(".ffn.", ".ffn.experts.0.")] = v
    for i in range(BASE["n_layer"]):
        sd[f"blocks.{i}.ffn.router.weight"] = moe.blocks[i].ffn.router.weight
    moe.load_state_dict(sd)
    x = torch.randint(0, 97, (2, 20))
    assert torch.allclose(moe(x), base(x), atol=1e-6)


# --------------------------------------------------------------------------- mixture of experts
def test_routing_by_hand():
    logits = torch.tensor([[2.0, 1.0, 0.0, -1.0]])
    probs, experts, weights = route(logits, 2)
    p = logits.softmax(-1)
    assert experts.tolist() == [[0, 1]]
    assert torch.allclose(weights, (p[:, :2] / p[:, :2].sum()).float())
    assert torch.allclose(probs, p)


def test_load_balancing_loss_is_one_when_uniform_and_n_experts_when_collapsed():
    n, e = 64, 4
    uniform = torch.zeros(n, e)  # probabilities 1/4 each
    experts = torch.arange(n).remainder(e)[:, None]  # a quarter of the tokens each
    assert load_balancing_loss(uniform.softmax(-1), experts).item() == pytest.approx(1.0)
    collapsed = torch.full((n, e), -30.0)
    collapsed[:, 0] = 30.0
    probs = collapsed.softmax(-1)
    assert load_balancing_loss(probs, torch.zeros(n, 1, dtype=torch.long)).item() == pytest.approx(
        e, rel=1e-6
    )


@pytest.mark.parametrize("top_k", [1, 2, 3])
def test_load_balancing_loss_equals_mixtral_on_one_layer(top_k):
    """Library twin. Per layer, as Switch defines it (TinyLM.aux_loss sums the layers'; Mixtral's
    function pools the layers' counts before multiplying, which is the same for one layer)."""
    from transformers.models.mixtral.modeling_mixtral import load_balancing_loss_func

    torch.manual_seed(top_k)
    logits = 2 * torch.randn(40, 5)
    probs, experts, _ = route(logits, top_k)
    theirs = load_balancing_loss_func((logits,), 5, top_k)
    assert torch.allclose(load_balancing_loss(probs, experts), theirs, atol=1e-6)


def test_the_model_loss_adds_the_weighted_balance_loss_and_reports_the_load():
    m = make(n_experts=4, top_k=2, router_aux_loss_coef=0.5)
    x = torch.randint(0, 97, (2, 16))
    y = torch.randint(0, 97, (2, 16))
    from slmlab.lm import lm_loss
    from slmlab.train.losses import causal_lm_loss

    total = m.loss(x, y)
    layers = [b.ffn for b in m.blocks]
    aux = 0.5 * sum(f.last_aux_loss for f in layers)
    assert torch.allclose(total, lm_loss(m(x), y) + aux)
    assert all(int(f.last_load.sum()) == 2 * 16 * 2 for f in layers)  # tokens x top_k
    loss, metrics = causal_lm_loss(m, (x, y))
    assert torch.allclose(loss, total) and torch.allclose(metrics["aux_loss"], aux)
    assert make().aux_loss().item() == 0.0
    assert causal_lm_loss(make(), (x, y))[1] == {}


def test_moe_trains_its_router():
    m = make(n_experts=4, top_k=2).train()
    x = torch.randint(0, 97, (4, 16))
    m.loss(x, x).backward()
    assert all(b.ffn.router.weight.grad.abs().sum() > 0 for b in m.blocks)


# -------------------------------------------------------------------------------- size formulas
@pytest.mark.parametrize("name", sorted(VARIANTS))
def test_num_params_counts_the_tensors(name):
    m = make(**VARIANTS[name])
    assert num_params(m.config) == sum(p.numel() for p in m.parameters())


def test_active_params_leave_out_the_idle_experts():
    m = make(n_experts=4, top_k=1)
    one_expert = sum(p.numel() for p in m.blocks[0].ffn.experts[0].parameters())
    assert active_params(m.config) == num_params(m.config) - 3 * one_expert * BASE["n_layer"]
    assert active_params(make().config) == num_params(make().config)


# ----------------------------------------------------------------------- transformers' twins
TWINS = {
    "mistral": dict(window=5),
    "qwen3": dict(qk_norm=True),
    "mixtral": dict(n_experts=4, top_k=2),
    "mixtral_window": dict(n_experts=3, top_k=1, window=6),
    "deepseek_v3": dict(n_kv_head=None, mla_kv_rank=12),
    "deepseek_v3_q_rank": dict(n_kv_head=None, mla_kv_rank=12, mla_q_rank=16, mla_rope_dim=6),
    "mamba": dict(mixer="mamba", pos="none"),
    "mamba_bias_tied": dict(mixer="mamba", pos="none", bias=True, tie_embeddings=True),
    "rwkv": dict(mixer="rwkv", pos="none", norm="layernorm", bias=True),
}


@pytest.mark.parametrize("name", sorted(TWINS))
def test_logits_equal_the_transformers_twin(name):
    from slmlab.hf import to_hf, twin_architecture

    m = randomize_norms(make(**TWINS[name]))
    hf = to_hf(m)
    assert type(hf).__name__.lower().startswith(twin_architecture(m.config).replace("_", ""))
    x = torch.randint(0, 97, (2, 24))
    with torch.no_grad():
        assert (hf(x).logits - m(x)).abs().max() < 1e-4


def test_the_sliding_window_twin_differs_from_full_attention():
    """The comparison above is not vacuous: past the window, Mistral's logits differ from a
    Llama's with the same weights."""
    from slmlab.hf import to_hf

    m = make(window=5)
    full = _same_weights(make(), m)
    x = torch.randint(0, 97, (1, 24))
    with torch.no_grad():
        assert (to_hf(m)(x).logits - full(x)).abs().max() > 1e-3


def test_from_hf_reads_qwen3_and_mistral_windows(tmp_path):
    from slmlab.hf import from_hf, to_hf

    for kw in (dict(qk_norm=True), dict(window=5)):
        m = randomize_norms(make(**kw))
        to_hf(m).save_pretrained(tmp_path / str(kw))
        back = from_hf(tmp_path / str(kw))
        assert back.config.qk_norm == m.config.qk_norm and back.config.window == m.config.window
        x = torch.randint(0, 97, (1, 20))
        assert torch.allclose(back(x), m(x), atol=1e-5)


@pytest.mark.parametrize(
    "kw,match",
    [
        (dict(pos="alibi"), "Llama's block"),
        (dict(norm_position="post"), "Llama's block"),
        (dict(ffn="relu2"), "Llama's block"),
        (dict(qk_norm=True, window=4), "QK-norm"),
        (dict(qk_norm=True, n_experts=2), "QK-norm"),
    ],
)
def test_variants_without_a_twin_are_refused_clearly(kw, match):
    from slmlab.hf import to_hf

    with pytest.raises(ValueError, match=match):
        to_hf(make(**kw))


def test_relu2_equals_transformers_activation():
    from transformers.activations import ACT2FN

    from slmlab.models.ffn import ACTIVATIONS

    x = torch.randn(100)
    assert torch.allclose(ACTIVATIONS["relu2"](x), ACT2FN["relu2"](x))


def test_post_norm_normalises_the_residual_stream():
    m = make(norm_position="post")
    x = torch.randint(0, 97, (1, 10))
    seen = []
    m.blocks[0].register_forward_hook(lambda mod, args, out: seen.append(out))
    m(x)
    rms = seen[0].pow(2).mean(-1).sqrt()
    assert torch.allclose(rms, torch.ones_like(rms), atol=1e-3)  # RMSNorm with unit gains


def test_saved_variants_reload(tmp_path):
    for name, kw in VARIANTS.items():
        m = randomize_norms(make(**kw))
        m.save_pretrained(tmp_path / name)
        back = TinyLM.from_pretrained(tmp_path / name)
        x = torch.randint(0, 97, (1, 12))
        assert torch.equal(back(x), m(x)), name
