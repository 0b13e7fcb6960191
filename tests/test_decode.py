"""The lean decode step computes exactly what TinyLM.forward computes, for every configuration."""

import itertools

import pytest
import torch
from helpers import greedy_by_recomputation

from slmlab import TinyLM, TinyLMConfig
from slmlab.models.decoder import Decoder, unsupported
from slmlab.models.layers import Attention, KVCache, apply_rope, rope_cos_sin, rope_matrix

CONFIGS = list(
    itertools.product(
        ["swiglu", "gelu", "relu"],
        ["rmsnorm", "layernorm"],
        ["rope", "learned", "none"],
        [4, 2, 1],
        [False, True],
    )
)


def make(**kw):
    base = dict(vocab_size=97, block_size=64, n_layer=2, n_head=4, n_kv_head=2, d_model=32)
    base.update(kw)
    torch.manual_seed(0)
    m = TinyLM(TinyLMConfig(**base)).eval()
    with torch.no_grad():  # move every weight (norm gains, biases too) away from its initial value
        for p in m.parameters():
            p.add_(0.05 * torch.randn_like(p))
    return m


@pytest.mark.parametrize("packed", [True, False], ids=["packed", "in-place"])
@pytest.mark.parametrize("ffn,norm,pos,n_kv_head,bias", CONFIGS)
def test_decoder_logits_equal_forward(ffn, norm, pos, n_kv_head, bias, packed, monkeypatch):
    """Both ways of building a step: small projections packed (copied, stacked, norm gains folded)
    as the base model's are, and all read in place as a hub-sized model's large ones are."""
    if not packed:
        monkeypatch.setattr("slmlab.models.decoder.PACK_MAX_ELEMENTS", 0)
    m = make(ffn=ffn, norm=norm, pos=pos, n_kv_head=n_kv_head, bias=bias, tie_embeddings=bias)
    ids = torch.randint(0, 97, (2, 20))
    full = m(ids)
    dec, cache = Decoder(m), KVCache(m.config, 2, 64, "cpu", torch.float32)
    # a prompt, single tokens, then a chunk after cached positions (the masked case)
    got = (
        [dec(ids[:, :12], cache)]
        + [dec(ids[:, t : t + 1], cache) for t in range(12, 17)]
        + [dec(ids[:, 17:], cache)]
    )
    want = [full[:, 11]] + [full[:, t] for t in range(12, 17)] + [full[:, 19]]
    torch.testing.assert_close(torch.stack(got, 1), torch.stack(want, 1), atol=1e-5, rtol=1e-5)
    assert cache.pos == 20


def test_rope_matrix_is_apply_rope():
    cos, sin = rope_cos_sin(torch.arange(50), 16, 10000.0, torch.float32)
    x = torch.randn(3, 16)
    for p in (0, 7, 49):
        torch.testing.assert_close(x @ rope_matrix(cos[p], sin[p]), apply_rope(x, cos[p], sin[p]))


def test_generate_uses_the_decoder_and_matches_the_module_path(monkeypatch):
    m = make()
    prompt = torch.randint(0, 97, (2, 5))
    calls = []
    original = Decoder.__call__
    monkeypatch.setattr(Decoder, "__call__", lambda self, *a: calls.append(1) or original(self, *a))
    fast = m.generate(prompt, 70, temperature=0)  # 75 > block_size 64: the window slides once
    # the prompt, then one step per new token but the last, which is never fed back (one of the
    # steps re-fills the slid window)
    assert len(calls) == 1 + 69
    monkeypatch.setattr("slmlab.models.generation.unsupported", lambda model: "forced")
    slow = m.generate(prompt, 70, temperature=0)
    assert torch.equal(fast, slow)


def test_models_the_decoder_cannot_run_fall_back_to_forward():
    m = make()
    assert unsupported(m) is None
    m.train()
    assert "training" in unsupported(m)
    m.eval()
    h = m.blocks[0].attn.register_forward_hook(lambda *a: None)
    assert "hooks" in unsupported(m)
    with pytest.raises(ValueError, match="hooks"):
        Decoder(m)
    prompt = torch.randint(0, 97, (1, 5))
    out = m.generate(prompt, 8, temperature=0)  # runs through forward, hooks and all
    h.remove()
    assert torch.equal(out, m.generate(prompt, 8, temperature=0))

    class SlidingAttention(
        Attention
    ):  # a later chapter's variant: only its forward knows what it does
        pass

    m.blocks[1].attn.__class__ = SlidingAttention
    assert "replaced" in unsupported(m)


def test_replaced_projections_keep_their_forward_inside_the_decoder():
    """A quantized model decodes through the lean step too: its layers run their own forward,
    unstacked."""
    from slmlab.quant import quantize

    m = make()
    q = quantize(m, "rtn", bits=4, group_size=8)
    assert type(q.blocks[0].attn.q_proj) is not torch.nn.Linear and unsupported(q) is None
    ids = torch.randint(0, 97, (2, 20))
    dec, cache = Decoder(q), KVCache(q.config, 2, 64, "cpu", torch.float32)
    got = [dec(ids[:, :12], cache)] + [dec(ids[:, t : t + 1], cache) for t in range(12, 20)]
    want = q(ids)
    torch.testing.assert_close(torch.stack(got, 1), want[:, 11:20], atol=1e-5, rtol=1e-5)
    m.blocks[1].ffn.down_proj = torch.nn.Sequential(m.blocks[1].ffn.down_proj)  # any module will do
    torch.testing.assert_close(
        Decoder(m)(ids, KVCache(m.config, 2, 64, "cpu", torch.float32)),
        m(ids)[:, -1],
        atol=1e-5,
        rtol=1e-5,
    )


def test_decoder_does_not_touch_the_model_weights():
    m = make()
    before = {k: v.clone() for k, v in m.state_dict().items()}
    m.generate(torch.randint(0, 97, (1, 5)), 10, temperature=0)
    assert all(torch.equal(before[k], v) for k, v in m.state_dict().items())


def test_decoding_leaves_nothing_that_breaks_training_afterwards():
    """The plain model steps under inference_mode; whatever it caches (RoPE tables) must still serve
    autograd."""
    m = make()
    m._rope = None
    m.generate(torch.randint(0, 97, (1, 5)), 4, temperature=0)
    assert m._rope is not None and not m._rope[0].is_inference()
    m.train()
    ids = torch.randint(0, 97, (2, 9))
    m.loss(ids[:, :-1], ids[:, 1:]).backward()
    assert m.blocks[0].attn.q_proj.weight.grad is not None


def test_only_models_of_our_own_modules_step_under_inference_mode():
    from slmlab.quant import quantize

    m = make()
    assert Decoder(m).mode is torch.inference_mode
    # foreign layers may cache state
    assert Decoder(quantize(m, "rtn", bits=4, group_size=8)).mode is torch.no_grad


# -------------------------------------------------------------- the support table, by config values
def test_the_support_table_lists_every_config_field_and_choice():
    """A field added to TinyLMConfig makes generation fall back to forward (correct, but slower)
    until the decoder's author adds it to SUPPORTED: this test is the reminder."""
    import dataclasses

    from slmlab.models.config import CHOICES
    from slmlab.models.decoder import SUPPORTED

    assert set(SUPPORTED) == {f.name for f in dataclasses.fields(TinyLMConfig)}
    for name, choices in CHOICES.items():
        assert set(SUPPORTED[name]) <= set(choices), name


@pytest.mark.parametrize(
    "variant",
    [
        dict(pos="alibi"),
        dict(norm_position="post"),
        dict(window=4),
        dict(qk_norm=True),
        dict(n_experts=2, top_k=1),
    ],
)
def test_a_variant_the_decoder_does_not_run_falls_back_to_forward_and_says_why(variant):
    """The architecture chapter's variants decode through TinyLM.forward (explicitly: unsupported
    names the field), with the same tokens as recomputing the whole sequence."""
    torch.manual_seed(0)
    m = TinyLM(TinyLMConfig(vocab_size=97, block_size=32, n_layer=2, d_model=32, **variant))
    m.eval()
    (name,) = [k for k in variant if k != "top_k"]
    assert name in unsupported(m)
    prompt = torch.randint(0, 97, (1, 5))
    out = m.generate(prompt, 6, temperature=0)
    ids = greedy_by_recomputation(m, prompt, 6)
    assert torch.equal(out, ids)


def test_a_config_field_the_decoder_does_not_know_falls_back_to_forward(monkeypatch):
    import dataclasses

    @dataclasses.dataclass
    class SinkConfig(TinyLMConfig):  # a later switch: keys that every query keeps seeing
        attention_sinks: int = 4

    m = make()
    prompt = torch.randint(0, 97, (1, 5))
    want = m.generate(prompt, 6, temperature=0)
    m.config = SinkConfig(**m.config.to_dict())
    for b in m.blocks:
        b.attn.c = m.config
    assert "attention_sinks" in unsupported(m) and "SUPPORTED" in unsupported(m)
    with pytest.raises(ValueError, match="attention_sinks"):
        Decoder.for_model(m)
    monkeypatch.setattr(
        Decoder, "__call__", lambda *a: pytest.fail("the decoder ran an unknown config")
    )
    assert torch.equal(
        m.generate(prompt, 6, temperature=0), want
    )  # forward ran (and ignores the field)


def test_an_attribute_set_on_the_config_counts_as_an_unknown_field():
    m = make()
    m.config.attention_sink = True  # monkeypatched onto one config object
    assert "attention_sink" in unsupported(m)
    del m.config.attention_sink
    assert unsupported(m) is None


def test_a_value_outside_the_table_falls_back_to_forward(monkeypatch):
    """Values are checked one by one: drop "gelu" from the table and a gelu model runs through
    forward."""
    from slmlab.models import decoder

    m = make(ffn="gelu")
    monkeypatch.setitem(decoder.SUPPORTED, "ffn", ("swiglu", "relu"))
    assert "ffn='gelu'" in unsupported(m)
    prompt = torch.randint(0, 97, (1, 5))
    monkeypatch.setattr(
        Decoder, "__call__", lambda *a: pytest.fail("the decoder ran an unsupported value")
    )
    assert m.generate(prompt, 4, temperature=0).shape == (1, 9)


def test_the_any_marker_admits_every_value():
    from slmlab.models.decoder import ANY, SUPPORTED

    assert 0.1 in ANY and None in ANY and repr(ANY) == "ANY"
    assert (
        SUPPORTED["dropout"] is ANY
    )  # dropout is the identity in eval mode: any rate decodes alike
    m = make(dropout=0.3)
    assert unsupported(m) is None
    ids = torch.randint(0, 97, (1, 9))
    torch.testing.assert_close(
        Decoder(m)(ids, KVCache(m.config, 1, 64, "cpu", torch.float32)),
        m(ids)[:, -1],
        atol=1e-5,
        rtol=1e-5,
    )


def test_replaced_embedding_dropout_or_global_hooks_fall_back():
    m = make(pos="learned")
    m.pos_embed.__class__ = type("ScaledEmbedding", (torch.nn.Embedding,), {})
    assert "replaced" in unsupported(m)
    m = make()
    m.blocks[0].drop = torch.nn.Identity()
    assert "replaced" in unsupported(m)
    m = make()
    h = torch.nn.modules.module.register_module_forward_hook(lambda *a: None)
    try:
        assert "hooks" in unsupported(m)
    finally:
        h.remove()
    assert unsupported(m) is None
