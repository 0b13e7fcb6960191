"""Layer-wise scaling (OpenELM): the number of heads and the FFN width change linearly with depth.
Constant factors of 1 are the plain TinyLM; the schedule, the shapes, the size formulas and the
cache are checked by hand; the cache equals recomputation; configs that cannot work are refused."""

import pytest
import torch
from helpers import greedy_by_recomputation

from slmlab import TinyLM, TinyLMConfig
from slmlab.models import KVCache, as_arch, kv_cache_bytes, num_params
from slmlab.models.config import layer_scales, scaled_heads

BASE = dict(vocab_size=97, block_size=64, n_layer=4, n_head=4, n_kv_head=2, d_model=32, d_ff=48)
SCALED = dict(head_scale=(0.5, 1.5), ffn_scale=(0.5, 2.0))


def make(seed=0, **kw):
    torch.manual_seed(seed)
    return TinyLM(TinyLMConfig(**{**BASE, **kw})).eval()


def test_factors_of_one_are_the_plain_model():
    x = torch.randint(0, 97, (2, 12))
    assert torch.equal(make()(x), make(head_scale=(1, 1), ffn_scale=(1.0, 1.0))(x))


def test_the_schedule_by_hand():
    assert layer_scales(4, (0.5, 1.5)) == pytest.approx([0.5, 5 / 6, 7 / 6, 1.5])
    assert layer_scales(1, (0.5, 2.0)) == [0.5] and layer_scales(3, None) == [1.0] * 3
    # whole GQA groups of 2 query heads per KV head, at least one group
    assert [scaled_heads(4, 2, s) for s in (0.1, 0.5, 1.0, 1.5)] == [(2, 1), (2, 1), (4, 2), (6, 3)]


def test_each_layer_has_its_heads_and_width():
    m = make(**SCALED)
    heads = [(b.attn.n_head, b.attn.n_kv_head) for b in m.blocks]
    assert heads == [(2, 1), (4, 2), (4, 2), (6, 3)]
    assert [b.ffn.up_proj.out_features for b in m.blocks] == [24, 48, 72, 96]
    head_dim = 32 // 4  # fixed: layers differ in how many heads, not how wide
    assert [b.attn.q_proj.out_features for b in m.blocks] == [h * head_dim for h, _ in heads]
    assert [b.attn.k_proj.out_features for b in m.blocks] == [kv * head_dim for _, kv in heads]


def test_size_and_cache_formulas_count_every_layer():
    m = make(**SCALED)
    assert num_params(m.config) == sum(p.numel() for p in m.parameters())
    cache = KVCache(m.config, 1, 10, "cpu", torch.float32)
    assert [k.shape[1] for k in cache.k] == [1, 2, 2, 3]
    assert cache.nbytes() == kv_cache_bytes(m.config, 10, 32) == 10 * 2 * (1 + 2 + 2 + 3) * 8 * 4
    assert as_arch(m.config).to_tinylm() == m.config


def test_the_cache_equals_recomputation():
    m = make(**SCALED, pos="alibi")  # ALiBi's slopes follow each layer's heads
    x = torch.randint(0, 97, (2, 20))
    cache = KVCache(m.config, 2, 20, "cpu", torch.float32)
    with torch.no_grad():
        parts = [m(x[:, a:b], cache) for a, b in [(0, 8), (8, 9), (9, 20)]]
        assert torch.allclose(torch.cat(parts, dim=1), m(x), atol=1e-5)
    prompt = x[:, :3]
    ids = greedy_by_recomputation(m, prompt, 6)
    assert torch.equal(m.generate(prompt, 6, temperature=0), ids)


@pytest.mark.parametrize(
    "kw,match",
    [
        (dict(head_scale=(0.5,)), "two factors"),
        (dict(ffn_scale=(0.0, 1.0)), "positive"),
        (dict(head_scale="wide"), "two factors"),
        (dict(head_scale=(0.5, 1.0), n_kv_head=None, mla_kv_rank=8), "layer-wise heads"),
    ],
)
def test_bad_scales_are_refused(kw, match):
    with pytest.raises(ValueError, match=match):
        TinyLMConfig(**{**BASE, **kw})


def test_no_twin_and_no_quantized_cache_for_varying_heads():
    from slmlab.hf import to_hf
    from slmlab.quant.kv_cache import QuantizedKVCache

    m = make(**SCALED)
    with pytest.raises(ValueError, match="OpenELM"):
        to_hf(m)
    with pytest.raises(ValueError, match="head_scale"):
        QuantizedKVCache(m.config, 1, 8, "cpu", torch.float32)


def test_saved_scaled_model_reloads(tmp_path):
    m = make(**SCALED)
    m.save_pretrained(tmp_path)
    back = TinyLM.from_pretrained(tmp_path)
    x = torch.randint(0, 97, (1, 9))
    assert back.config.head_scale == (0.5, 1.5) and torch.equal(back(x), m(x))
