"""Multi-head latent attention: the absorbed decoding form equals the expanded one, the latent
cache holds what the formula says (and not what the heads would need), bad shapes are refused,
and DeepSeek-V3's attention in transformers computes the same logits and reads back."""

import pytest
import torch
from helpers import greedy_by_recomputation

from slmlab import TinyLM, TinyLMConfig
from slmlab.models import kv_cache_bytes, kv_cache_bytes_per_token, num_params
from slmlab.models.estimates import param_breakdown
from slmlab.models.mla import LatentCache

BASE = dict(vocab_size=97, block_size=64, n_layer=2, n_head=4, d_model=32, d_ff=48)


def make(seed=0, **kw):
    torch.manual_seed(seed)
    model = TinyLM(TinyLMConfig(**{**BASE, "mla_kv_rank": 12, **kw})).eval()
    with torch.no_grad():  # norms start at 1: give them values a twin could get wrong
        for name, p in model.named_parameters():
            if "norm" in name:
                p.copy_(1 + 0.3 * torch.randn_like(p))
    return model


def prefill_in_chunks(model, x, absorb: bool):
    for block in model.blocks:
        block.attn.absorb = absorb
    cache = LatentCache(model.config, x.shape[0], x.shape[1], "cpu", torch.float32)
    with torch.no_grad():
        parts = [model(x[:, a:b], cache) for a, b in [(0, 7), (7, 8), (8, 15), (15, 20)]]
    return torch.cat(parts, dim=1)


@pytest.mark.parametrize("q_rank", [None, 16])
def test_absorbed_and_expanded_attention_equal_recomputation(q_rank):
    m = make(mla_q_rank=q_rank)
    x = torch.randint(0, 97, (2, 20))
    with torch.no_grad():
        full = m(x)
    assert (prefill_in_chunks(m, x, absorb=True) - full).abs().max() < 1e-5
    assert (prefill_in_chunks(m, x, absorb=False) - full).abs().max() < 1e-5


def test_the_absorbed_form_attends_over_one_latent_head():
    """The query absorbed through W_uk scores a latent exactly as the query scores the expanded
    key: q . (c W_uk^T) == (q W_uk) . c, by hand for one head."""
    m = make()
    attn = m.blocks[0].attn
    w_uk, _ = attn.up_weights()  # (H, head_dim, r)
    q, c = torch.randn(8), torch.randn(12)
    key = w_uk[1] @ c  # head 1's key from the latent
    assert torch.allclose(q @ key, (q @ w_uk[1]) @ c, atol=1e-6)


def test_the_latent_cache_holds_rank_plus_rope_dims_per_token_and_layer():
    m = make(mla_rope_dim=6)
    c = m.config
    cache = LatentCache(c, 3, 40, "cpu", torch.float32)
    assert cache.nbytes() == 3 * 40 * c.n_layer * (12 + 6) * 4
    assert cache.nbytes() == kv_cache_bytes(c, 40, "fp32", batch=3)
    assert kv_cache_bytes_per_token(c, 16) == c.n_layer * (12 + 6) * 2


def test_the_latent_cache_does_not_grow_with_the_heads():
    sizes = {
        h: kv_cache_bytes_per_token(TinyLMConfig(**{**BASE, "n_head": h, "mla_kv_rank": 12}), 16)
        for h in (1, 2, 4, 8)
    }
    mha = {h: kv_cache_bytes_per_token(TinyLMConfig(**{**BASE, "n_head": h}), 16) for h in sizes}
    assert len(set(mha.values())) == 1  # MHA: 2 * d_model per layer, however it is split
    # MLA: rank + rope_dim per layer; the rope part shrinks with the head, the latent stays
    rope = {h: TinyLMConfig(**{**BASE, "n_head": h, "mla_kv_rank": 12}).mla_rope_dim for h in sizes}
    assert all(sizes[h] == BASE["n_layer"] * (12 + rope[h]) * 2 for h in sizes)


def test_num_params_counts_the_latent_projections_and_norms():
    for kw in (dict(), dict(mla_q_rank=16), dict(mla_rope_dim=8, tie_embeddings=True)):
        m = make(**kw)
        assert num_params(m.config) == sum(p.numel() for p in m.parameters())
        norms = sum(p.numel() for n, p in m.named_parameters() if "norm" in n)
        assert param_breakdown(m.config)["norms"] == norms


def test_generation_uses_the_latent_cache_and_equals_greedy_recomputation():
    from slmlab.models import cache_class

    m = make(mla_q_rank=16)
    assert cache_class(m.config) is LatentCache
    prompt = torch.randint(0, 97, (2, 5))
    out = m.generate(prompt, 10, temperature=0)
    ids = greedy_by_recomputation(m, prompt, 10)
    assert torch.equal(out, ids)


@pytest.mark.parametrize(
    "kw,match",
    [
        (dict(mla_kv_rank=33), "wider than d_model"),
        (dict(mla_kv_rank=12, mla_q_rank=40), "wider than d_model"),
        (dict(mla_kv_rank=0), "integer >= 1"),
        (dict(mla_q_rank=8), "set mla_kv_rank"),
        (dict(mla_kv_rank=12, mla_rope_dim=3), "even"),
        (dict(mla_kv_rank=12, pos="alibi"), "pos='rope'"),
        (dict(mla_kv_rank=12, n_kv_head=2), "n_kv_head"),
        (dict(mla_kv_rank=12, window=4), "window"),
        (dict(mla_kv_rank=12, qk_norm=True), "QK-norm"),
    ],
)
def test_bad_latent_configs_are_refused(kw, match):
    with pytest.raises(ValueError, match=match):
        TinyLMConfig(**{**BASE, **kw})


def test_the_latent_cache_needs_an_mla_config():
    with pytest.raises(ValueError, match="mla_kv_rank"):
        LatentCache(TinyLMConfig(**BASE), 1, 8, "cpu", torch.float32)


def test_the_deepseek_twin_is_exact_in_float64_and_reads_back(tmp_path):
    from slmlab.hf import from_hf, to_hf

    m = make(mla_q_rank=16).double()
    hf = to_hf(m)
    assert type(hf).__name__ == "DeepseekV3ForCausalLM"
    x = torch.randint(0, 97, (2, 24))
    with torch.no_grad():
        assert (hf(x).logits - m(x)).abs().max() < 1e-12
    hf.float().save_pretrained(tmp_path)
    back = from_hf(tmp_path)
    assert (back.config.mla_kv_rank, back.config.mla_q_rank) == (12, 16)
    with torch.no_grad():
        assert torch.allclose(back(x), m.float()(x), atol=1e-6)


def test_deepseek_generate_equals_ours():
    from slmlab.hf import to_hf

    m = make()
    prompt = torch.randint(0, 97, (1, 6))
    theirs = to_hf(m).generate(prompt, max_new_tokens=10, do_sample=False)
    assert torch.equal(theirs, m.generate(prompt, 10, temperature=0))


@pytest.mark.parametrize(
    "change,match",
    [
        (dict(first_k_dense_replace=1), "experts"),
        (dict(rope_interleave=True), "interleave"),
        (dict(v_head_dim=4), "v_head_dim"),
    ],
)
def test_deepseek_configs_tinylm_cannot_express_are_refused(change, match):
    from slmlab.hf import config_from_hf, hf_config

    d = {**hf_config(make().config).to_dict(), **change}
    with pytest.raises(ValueError, match=match):
        config_from_hf(d)


def test_latent_attention_with_experts_has_no_twin():
    from slmlab.hf import to_hf

    with pytest.raises(ValueError, match="DeepSeek-V3's mixture"):
        to_hf(make(n_experts=2, top_k=1))
