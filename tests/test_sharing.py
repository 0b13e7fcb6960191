"""Block-wise weight sharing (MobileLLM's immediate repeat): each block's weights run
``block_repeat`` times in a row. It is a deeper model with tied layers: it equals a TinyLM of
``n_layer * block_repeat`` blocks whose consecutive blocks hold the same weights, its cache keeps
one place per run, and ``block_repeat=1`` is the plain TinyLM."""

import pytest
import torch
from helpers import greedy_by_recomputation

from slmlab import TinyLM, TinyLMConfig
from slmlab.models import KVCache, flops_per_token, kv_cache_bytes, num_params

BASE = dict(vocab_size=97, block_size=64, n_layer=2, n_head=4, n_kv_head=2, d_model=32, d_ff=48)


def make(seed=0, **kw):
    torch.manual_seed(seed)
    return TinyLM(TinyLMConfig(**{**BASE, **kw})).eval()


def unrolled(shared: TinyLM) -> TinyLM:
    """The plain TinyLM of n_layer * block_repeat blocks, block i*k+r a copy of shared block i."""
    c = shared.config
    deep = TinyLM(TinyLMConfig(**{**c.to_dict(), "n_layer": c.depth, "block_repeat": 1}))
    state = {k: v for k, v in shared.state_dict().items() if not k.startswith("blocks.")}
    for k, v in shared.state_dict().items():
        if k.startswith("blocks."):
            i, rest = k.split(".", 2)[1:]
            for run in range(c.block_repeat):
                state[f"blocks.{int(i) * c.block_repeat + run}.{rest}"] = v
    deep.load_state_dict(state)
    return deep.eval()


def test_one_repeat_is_the_plain_model():
    a, b = make(), make(block_repeat=1)
    x = torch.randint(0, 97, (2, 12))
    assert torch.equal(a(x), b(x))


@pytest.mark.parametrize("repeat", [2, 3])
def test_repeating_a_block_equals_a_deeper_model_with_copied_blocks(repeat):
    shared = make(block_repeat=repeat)
    x = torch.randint(0, 97, (2, 16))
    with torch.no_grad():
        assert torch.allclose(shared(x), unrolled(shared)(x), atol=1e-6)


def test_the_cache_keeps_one_place_per_run_and_equals_recomputation():
    m = make(block_repeat=2)
    x = torch.randint(0, 97, (2, 20))
    cache = KVCache(m.config, 2, 20, "cpu", torch.float32)
    assert len(cache.k) == 4  # 2 blocks x 2 runs
    with torch.no_grad():
        parts = [m(x[:, a:b], cache) for a, b in [(0, 8), (8, 9), (9, 20)]]
        assert torch.allclose(torch.cat(parts, dim=1), m(x), atol=1e-5)
    prompt = x[:, :4]
    ids = greedy_by_recomputation(m, prompt, 8)
    assert torch.equal(m.generate(prompt, 8, temperature=0), ids)


def test_sharing_keeps_the_parameters_and_multiplies_cache_and_compute():
    plain, shared = make(), make(block_repeat=2)
    assert num_params(shared.config) == num_params(plain.config)
    assert num_params(shared.config) == sum(p.numel() for p in shared.parameters())
    cache = KVCache(shared.config, 1, 10, "cpu", torch.float32)
    assert cache.nbytes() == kv_cache_bytes(shared.config, 10, 32)
    assert kv_cache_bytes(shared.config, 10, 32) == 2 * kv_cache_bytes(plain.config, 10, 32)
    deep = TinyLMConfig(**{**BASE, "n_layer": 4})
    assert flops_per_token(shared.config) == flops_per_token(deep)  # the compute of 4 layers


def test_a_shared_block_gets_the_gradient_of_both_runs():
    shared = make(block_repeat=2).train()
    deep = unrolled(shared).train()
    x = torch.randint(0, 97, (2, 12))
    shared.loss(x[:, :-1], x[:, 1:]).backward()
    deep.loss(x[:, :-1], x[:, 1:]).backward()
    g = shared.blocks[1].ffn.down_proj.weight.grad
    g_runs = deep.blocks[2].ffn.down_proj.weight.grad + deep.blocks[3].ffn.down_proj.weight.grad
    assert torch.allclose(g, g_runs, atol=1e-6)


@pytest.mark.parametrize("bad", [0, -1, 1.5, True])
def test_bad_repeats_are_refused(bad):
    with pytest.raises(ValueError, match="block_repeat"):
        TinyLMConfig(**BASE, block_repeat=bad)


def test_no_transformers_twin_and_a_clear_error():
    from slmlab.hf import to_hf

    with pytest.raises(ValueError, match="block_repeat"):
        to_hf(make(block_repeat=2))


def test_saved_shared_model_reloads(tmp_path):
    m = make(block_repeat=2)
    m.save_pretrained(tmp_path)
    back = TinyLM.from_pretrained(tmp_path)
    x = torch.randint(0, 97, (1, 9))
    assert back.config.block_repeat == 2 and torch.equal(back(x), m(x))
