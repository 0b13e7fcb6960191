import itertools
import json
from pathlib import Path

import pytest
import torch
from helpers import greedy_by_recomputation

from slmlab import (
    TinyLM,
    TinyLMConfig,
    flops_per_token,
    kv_cache_bytes_per_token,
    num_params,
    weight_bytes,
)
from slmlab.models import KVCache, sample_next

VARIANTS = list(
    itertools.product(
        ["swiglu", "gelu", "relu"], ["rmsnorm", "layernorm"], ["rope", "learned", "none"]
    )
)


def make(**kw):
    base = dict(vocab_size=97, block_size=64, n_layer=2, n_head=4, n_kv_head=2, d_model=32)
    base.update(kw)
    torch.manual_seed(0)
    return TinyLM(TinyLMConfig(**base)).eval()


@pytest.mark.parametrize("ffn,norm,pos", VARIANTS)
def test_shapes_and_param_count(ffn, norm, pos):
    for tie, bias in [(False, False), (True, True)]:
        m = make(ffn=ffn, norm=norm, pos=pos, tie_embeddings=tie, bias=bias)
        assert m(torch.randint(0, 97, (3, 11))).shape == (3, 11, 97)
        assert sum(p.numel() for p in m.parameters()) == num_params(m.config)


@pytest.mark.parametrize("pos", ["rope", "learned", "none"])
def test_causality(pos):
    """Changing a later token never changes the logits at earlier positions."""
    m = make(pos=pos)
    x = torch.randint(0, 97, (2, 20))
    y = x.clone()
    y[:, 12:] = torch.randint(0, 97, (2, 8))
    torch.testing.assert_close(m(x)[:, :12], m(y)[:, :12])
    assert not torch.allclose(m(x)[:, 12:], m(y)[:, 12:])


@pytest.mark.parametrize("ffn,norm,pos", VARIANTS[::4])
def test_kv_cache_generation_equals_full_recomputation(ffn, norm, pos):
    m = make(ffn=ffn, norm=norm, pos=pos)
    prompt = torch.randint(0, 97, (2, 7))
    out = m.generate(prompt, 20, temperature=0)
    ref = greedy_by_recomputation(m, prompt, 20)
    assert torch.equal(out, ref)


def test_cached_logits_match_full_forward():
    m = make()
    x = torch.randint(0, 97, (2, 30))
    cache = KVCache(m.config, 2, 64, "cpu", torch.float32)
    parts = [
        m(x[:, :10], cache),
        m(x[:, 10:11], cache),
        m(x[:, 11:30], cache),
    ]  # prefill, 1 token, a chunk
    torch.testing.assert_close(torch.cat(parts, 1), m(x), atol=1e-5, rtol=1e-5)


def test_generation_beyond_block_size_slides_the_window():
    m = make(block_size=16)
    out = m.generate(torch.zeros(1, 4, dtype=torch.long), 40, temperature=0)
    assert out.shape == (1, 44)


def test_gqa_with_as_many_kv_heads_as_heads_is_mha():
    """GQA with n_kv_head == n_head is MHA: same parameters, same outputs, and GQA equals MHA
    with each K/V head's weights repeated for its group."""
    mha = make(n_kv_head=4)
    x = torch.randint(0, 97, (2, 15))
    gqa = make(n_kv_head=2)
    mha2 = make(n_kv_head=4)
    sd = gqa.state_dict()
    hd = gqa.config.head_dim
    for k, v in list(sd.items()):
        if k.endswith(("k_proj.weight", "v_proj.weight")):  # (2*hd, d) -> repeat each kv head twice
            sd[k] = v.view(2, hd, -1).repeat_interleave(2, dim=0).reshape(4 * hd, -1)
    mha2.load_state_dict(sd)
    torch.testing.assert_close(gqa(x), mha2(x), atol=1e-5, rtol=1e-5)
    assert mha.config.n_kv_head == mha.config.n_head
    assert num_params(gqa.config) < num_params(mha.config)


def test_mqa_and_gqa_shrink_the_kv_cache():
    mha, gqa, mqa = (TinyLMConfig(n_head=8, d_model=128, n_kv_head=k) for k in (8, 2, 1))
    assert kv_cache_bytes_per_token(mha, 32) == 2 * 4 * 128 * 4
    assert (
        kv_cache_bytes_per_token(mha, 32)
        == 4 * kv_cache_bytes_per_token(gqa, 32)
        == 8 * kv_cache_bytes_per_token(mqa, 32)
    )


def test_estimates():
    c = TinyLMConfig(
        vocab_size=1000, d_model=64, n_layer=2, n_head=4, ffn="gelu", ffn_ratio=4, pos="learned"
    )
    # per layer: attention 4*64*64, MLP 2*64*256, two RMSNorm 2*64;
    # + final norm, embeddings, head, positions
    expected = 2 * (4 * 64 * 64 + 2 * 64 * 256 + 2 * 64) + 64 + 1000 * 64 * 2 + 256 * 64
    assert num_params(c) == expected
    assert num_params(c, non_embedding=True) == 2 * (4 * 64 * 64 + 2 * 64 * 256 + 2 * 64) + 64
    assert weight_bytes(c, bits=16) == expected * 2
    fwd = flops_per_token(c, context=128)
    assert fwd == 2 * (num_params(c, True) + 1000 * 64) + 2 * 2 * 128 * 64
    assert flops_per_token(c, 128, training=True) == 3 * fwd


def test_sampling():
    logits = torch.tensor([[0.0, 1.0, 5.0, 2.0]])
    assert sample_next(logits, 0).item() == 2
    g = torch.Generator().manual_seed(0)
    assert {sample_next(logits, 1.0, top_k=1, generator=g).item() for _ in range(20)} == {2}
    draws = {sample_next(logits, 1.0, top_k=2, generator=g).item() for _ in range(200)}
    assert draws == {2, 3}
    p = torch.softmax(logits, -1)[0]  # top-p keeps the smallest set reaching the mass
    draws = {
        sample_next(logits, 1.0, top_p=float(p[2]) + 0.01, generator=g).item() for _ in range(200)
    }
    assert draws == {2, 3}
    with pytest.raises(ValueError, match="temperature"):
        sample_next(logits, -1)
    with pytest.raises(ValueError, match="top_p"):
        sample_next(logits, 1.0, top_p=1.5)


def test_sampling_is_seeded_and_streaming_matches_generate():
    m = make()
    prompt = torch.randint(0, 97, (1, 5))
    a = m.generate(
        prompt, 15, temperature=0.8, top_p=0.9, generator=torch.Generator().manual_seed(1)
    )
    b = m.generate(
        prompt, 15, temperature=0.8, top_p=0.9, generator=torch.Generator().manual_seed(1)
    )
    assert torch.equal(a, b)
    streamed = [t.item() for t in m.stream(prompt, 15, temperature=0)]
    assert streamed == m.generate(prompt, 15, temperature=0)[0, 5:].tolist()


def test_generate_stops_at_eos():
    m = make()
    prompt = torch.randint(0, 97, (1, 5))
    first = m.generate(prompt, 1, temperature=0)[0, -1].item()
    assert m.generate(prompt, 30, temperature=0, eos_id=first).shape[1] == 6


@pytest.mark.parametrize(
    "kw,match",
    [
        (dict(d_model=30, n_head=4), "not divisible by n_head"),
        (dict(n_head=4, n_kv_head=3), "does not divide n_head"),
        (dict(ffn="geglu"), "ffn="),
        (dict(norm="batchnorm"), "norm="),
        (dict(pos="sinusoidal"), "pos="),
        (dict(norm_position="sandwich"), "norm_position="),
        (dict(n_layer=0), "positive integer"),
        (dict(window=0), "window must be None"),
        (dict(window=2.5), "window must be None"),
        (dict(n_experts=4, top_k=5), "top_k=5 experts per token"),
        (dict(n_experts=4, top_k=0), "top_k=0 experts per token"),
        (dict(n_experts=-1), "n_experts must be a whole number"),
        (dict(router_aux_loss_coef=-0.1), "router_aux_loss_coef"),
        (dict(dropout=1.5), "dropout"),
    ],
)
def test_bad_config_errors(kw, match):
    with pytest.raises(ValueError, match=match):
        TinyLMConfig(**kw)


def test_unknown_option_names():
    with pytest.raises(ValueError, match=r"Unknown TinyLMConfig option\(s\) \['n_heads'\]"):
        TinyLMConfig.from_dict({"n_heads": 4})


def test_empty_prompt_is_rejected():
    with pytest.raises(ValueError, match="at least one token"):
        make().generate(torch.zeros(1, 0, dtype=torch.long), 3)


def test_bfloat16_forward_and_generate():
    m = make().to(torch.bfloat16)
    out = m.generate(torch.randint(0, 97, (1, 4)), 5, temperature=0)
    assert out.shape == (1, 9)


def test_config_reads_a_saved_config_json_and_refuses_a_transformers_one(tmp_path):
    cfg = TinyLMConfig(vocab_size=64, d_model=32, n_head=2, n_layer=1, block_size=16)
    TinyLM(cfg).save_pretrained(tmp_path)
    assert json.loads((tmp_path / "config.json").read_text())["model_type"] == "slmlab-tinylm"
    assert TinyLMConfig.from_json(tmp_path / "config.json") == cfg
    with pytest.raises(ValueError, match=r"'llama' config, not a TinyLM one.*from_hf"):
        TinyLMConfig.from_dict({"model_type": "llama", "hidden_size": 32})


def test_config_states_one_ffn_width():
    """``d_ff`` overrides ``ffn_ratio``: a saved config states only the width that is used."""
    explicit = TinyLMConfig(d_model=64, n_head=4, d_ff=160)
    assert "ffn_ratio" not in explicit.to_dict() and explicit.hidden_dim == 160
    assert TinyLMConfig.from_dict(explicit.to_dict()) == explicit
    assert TinyLMConfig(d_model=64, n_head=4, ffn_ratio=2.5).to_dict()["ffn_ratio"] == 2.5
    for name in ("base", "small"):
        path = Path(__file__).parents[1] / "data" / "reference" / name / "config.json"
        shipped = json.loads(path.read_text("utf-8"))
        assert "d_ff" in shipped and "ffn_ratio" not in shipped, name
