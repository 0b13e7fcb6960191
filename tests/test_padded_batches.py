"""Prompts of different lengths in one batch: left-padded generation and the shared-context
log-likelihoods both give what each prompt alone gives (up to the order of float sums)."""

import pytest
import torch

from slmlab import TinyLM, TinyLMConfig
from slmlab.evaluate import items as probe_items
from slmlab.evaluate import scoring
from slmlab.evaluate.shared_context import shared_context_loglikelihoods
from slmlab.models.layers import KVCache, padded_causal_mask


def make(**kw):
    base = dict(vocab_size=61, block_size=48, n_layer=2, n_head=4, n_kv_head=2, d_model=32)
    base.update(kw)
    torch.manual_seed(0)
    m = TinyLM(TinyLMConfig(**base)).eval()
    with torch.no_grad():  # sharper logits than at initialization: fewer near-ties in argmax
        for p in m.parameters():
            p.mul_(3.0)
    return m


def left_padded(prompts, fill=5):
    width = max(len(p) for p in prompts)
    pad = [width - len(p) for p in prompts]
    x = torch.tensor([[fill] * k + p for k, p in zip(pad, prompts)])
    return x, torch.tensor(pad)


PROMPTS = [[3, 9, 4], [7, 1, 2, 8, 8, 6, 5], [11], [2, 4, 6, 8, 10, 12, 14, 16, 18, 20]]


def test_padded_causal_mask_by_hand():
    # row 0: 2 pads, 1 cached real key; row 1: no padding; two new queries at slots 3 and 4
    m = padded_causal_mask(torch.tensor([2, 0]), past=3, T=2)
    assert m.shape == (2, 1, 2, 5)
    assert m[0, 0].int().tolist() == [[0, 0, 1, 1, 0], [0, 0, 1, 1, 1]]
    assert m[1, 0].int().tolist() == [[1, 1, 1, 1, 0], [1, 1, 1, 1, 1]]
    # a padding query sees only itself (never an empty row, whose softmax would be NaN)
    first = padded_causal_mask(torch.tensor([2]), past=0, T=3)[0, 0]
    assert first.int().tolist() == [[1, 0, 0], [0, 1, 0], [0, 0, 1]]


@pytest.mark.parametrize("pos", ["rope", "learned", "none"])
def test_padded_generation_equals_each_prompt_alone(pos):
    model = make(pos=pos)
    x, pad = left_padded(PROMPTS)
    got = model.generate(x, 12, temperature=0.0, pad=pad)[:, x.shape[1] :]
    for row, p in enumerate(PROMPTS):
        alone = model.generate(torch.tensor([p]), 12, temperature=0.0)[0, len(p) :]
        assert got[row].tolist() == alone.tolist(), (pos, row)


@pytest.mark.parametrize("pos", ["rope", "learned"])
def test_padded_prefill_logits_equal_forward(pos):
    from slmlab.models.decoder import Decoder

    model = make(pos=pos)
    x, pad = left_padded(PROMPTS, fill=0)
    cache = KVCache(model.config, len(PROMPTS), x.shape[1] + 3, "cpu", torch.float32)
    with torch.no_grad():
        last = Decoder.for_model(model)(x, cache, pad)
        nxt = torch.tensor([[1], [2], [3], [4]])
        after = Decoder.for_model(model)(nxt, cache, pad)
        for row, p in enumerate(PROMPTS):
            full = model(torch.tensor([p + [row + 1]]))[0]
            torch.testing.assert_close(last[row], full[-2], atol=1e-5, rtol=1e-5)
            torch.testing.assert_close(after[row], full[-1], atol=1e-5, rtol=1e-5)


def test_bad_padding_is_refused_and_the_model_left_as_it_was():
    model = make()
    x, pad = left_padded(PROMPTS)
    model.train()
    with pytest.raises(ValueError, match="one count per row"):
        model.generate(x, 3, temperature=0.0, pad=pad[:2])
    assert model.training  # generation restores the mode it found, after an error too
    with pytest.raises(ValueError, match="at least one real"):
        model.generate(x, 3, temperature=0.0, pad=torch.full((4,), x.shape[1]))
    with pytest.raises(ValueError, match="cannot slide"):
        model.generate(x, 48, temperature=0.0, pad=pad)
    moe = make(n_experts=2, top_k=1)
    with pytest.raises(ValueError, match="lean decoder"):
        moe.generate(x, 3, temperature=0.0, pad=pad)
    assert not moe.training


def test_kv_cache_select_rows_repeats_rows():
    model = make()
    cache = KVCache(model.config, 2, 4, "cpu", torch.float32)
    cache.k[0][1].fill_(7.0)
    cache.select_rows(torch.tensor([1, 1, 0]))
    assert cache.k[0].shape[0] == 3 and cache.v[1].shape[0] == 3
    assert bool((cache.k[0][:2] == 7.0).all()) and bool((cache.k[0][2] == 0.0).all())


def whole_sequence(model, requests):
    """Reference: each context + continuation as one forward pass."""
    out = []
    with torch.no_grad():
        for ctx, cont in requests:
            seq = torch.tensor([ctx + cont])
            logp = torch.log_softmax(model(seq[:, :-1])[0], -1)[len(ctx) - 1 :]
            target = torch.tensor(cont)
            ll = logp.gather(-1, target[:, None]).sum().item()
            out.append((ll, bool((logp.argmax(-1) == target).all())))
    return out


def test_shared_context_equals_whole_sequences():
    model = make()
    # three contexts (of 1, 3 and 7 tokens), continuations of 1 to 4 tokens, one repeated
    requests = [
        ([3, 9, 4], [1]),
        ([3, 9, 4], [2, 5, 5, 1]),
        ([7, 1, 2, 8, 8, 6, 5], [4, 4]),
        ([11], [9, 8, 7]),
        ([3, 9, 4], [1]),
        ([7, 1, 2, 8, 8, 6, 5], [30]),
    ]
    want = whole_sequence(model, requests)
    for batch_size in (1, 2, 32):  # a context with more continuations than a batch holds, too
        got = shared_context_loglikelihoods(model, requests, batch_size=batch_size)
        for (a, ga), (b, gb) in zip(got, want):
            assert a == pytest.approx(b, abs=1e-4)
            assert ga == gb
    # a greedy continuation is recognised as one
    greedy = model.generate(torch.tensor([[3, 9, 4]]), 3, temperature=0.0)[0, 3:].tolist()
    assert shared_context_loglikelihoods(model, [([3, 9, 4], greedy)])[0][1]


def test_shared_context_bad_requests():
    model = make()
    with pytest.raises(ValueError, match="empty"):
        shared_context_loglikelihoods(model, [([1, 2], [])])
    with pytest.raises(ValueError, match="block_size"):
        shared_context_loglikelihoods(model, [([1] * 40, [2] * 10)])
    with pytest.raises(ValueError, match="lean decoder"):
        shared_context_loglikelihoods(make(n_experts=2, top_k=1), [([1], [2])])


class CharTokenizer:
    """One id per character; id 0 is the end-of-text token."""

    eos_id = 0
    vocab_size = 61

    def encode(self, text):
        return [1 + (ord(ch) % 60) for ch in text]

    def decode(self, ids):
        return "".join(chr(ord("a") + i % 26) for i in ids)


def test_greedy_generate_padded_batches_equal_one_by_one():
    model, tok = make(), CharTokenizer()
    prompts = ["ab", "hello there", "x", "a longer prompt", "ab"]
    batched = scoring.greedy_generate(model, tok, prompts, max_new_tokens=8, stop=())
    alone = scoring.greedy_generate(model, tok, prompts, max_new_tokens=8, stop=(), batch_size=1)
    assert batched == alone


def test_loglikelihood_of_a_too_long_request_falls_back_to_whole_sequences():
    model, tok = make(), CharTokenizer()
    long = "abcdefghij" * 6  # 60 characters: past block_size, so its last tokens are kept
    short = scoring.loglikelihood(model, tok, [("ab", " c"), (long, " xyz")])
    alone = scoring.loglikelihood(model, tok, [(long, " xyz")])
    assert short[1][0] == pytest.approx(alone[0][0], abs=1e-5)


def test_probe_items_are_made_once_and_handed_out_as_copies():
    a = probe_items.math_items(12, seed=3)
    a[0]["prompt"] = "changed"
    b = probe_items.math_items(12, seed=3)
    assert b[0]["prompt"] != "changed"
    assert [it["answer"] for it in b[1:]] == [it["answer"] for it in a[1:]]
