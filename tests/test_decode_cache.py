"""The lean decoder is built once per model and rebuilt whenever what it was built from changed.

Every test that changes a model checks the decoder against ``forward`` afterwards: a stale decoder
would still run, with the old weights, so equality with forward is what shows it was rebuilt."""

import copy
import gc
import pickle
import weakref

import pytest
import torch
from test_decode import make  # the same perturbed tiny TinyLM the decoder tests use

from slmlab.models import decoder as decoder_module
from slmlab.models.decoder import Decoder, forget
from slmlab.models.layers import KVCache

IDS = torch.randint(0, 97, (2, 12), generator=torch.Generator().manual_seed(3))


def decoded(m):
    """Logits of the decoder generation would use now,
    for a prompt and two single tokens after it."""
    dec, cache = Decoder.for_model(m), KVCache(m.config, 2, 64, m.device, m.embed.weight.dtype)
    return torch.stack(
        [dec(IDS[:, :10], cache), dec(IDS[:, 10:11], cache), dec(IDS[:, 11:], cache)], 1
    )


def assert_equals_forward(m):
    full = m(IDS)
    torch.testing.assert_close(decoded(m), full[:, 9:12], atol=1e-5, rtol=1e-5)


def builds_during(fn) -> int:
    before = Decoder.builds
    fn()
    return Decoder.builds - before


def test_packing_happens_once_across_generate_calls():
    m = make()
    prompt = torch.randint(0, 97, (1, 5))
    assert builds_during(lambda: m.generate(prompt, 8, temperature=0)) == 1
    assert builds_during(lambda: m.generate(prompt, 8, temperature=0)) == 0
    assert builds_during(lambda: list(m.stream(prompt, 3, temperature=0))) == 0
    assert Decoder.for_model(m) is Decoder.for_model(m)


@pytest.mark.parametrize("packed", [True, False], ids=["packed", "in-place"])
def test_an_optimizer_step_rebuilds_the_decoder(packed, monkeypatch):
    if not packed:
        monkeypatch.setattr(decoder_module, "PACK_MAX_ELEMENTS", 0)
    m = make(tie_embeddings=True)
    assert_equals_forward(m)
    m.train()
    opt = torch.optim.AdamW(m.parameters(), lr=1e-2)
    m.loss(IDS[:, :-1], IDS[:, 1:]).backward()
    opt.step()
    m.eval()
    assert builds_during(lambda: assert_equals_forward(m)) == 1


def test_load_state_dict_and_copy_rebuild_the_decoder():
    m, other = make(), make(bias=False)
    with torch.no_grad():
        for p in other.parameters():
            p.mul_(1.5)
    assert_equals_forward(m)
    m.load_state_dict(other.state_dict())
    want = other(IDS)[:, 9:12]
    assert (
        builds_during(lambda: torch.testing.assert_close(decoded(m), want, atol=1e-5, rtol=1e-5))
        == 1
    )
    with torch.no_grad():
        m.blocks[1].ffn_norm.weight.copy_(
            torch.linspace(0.5, 2, 32)
        )  # a gain folded into a packed copy
    assert builds_during(lambda: assert_equals_forward(m)) == 1


def test_a_dtype_change_rebuilds_the_decoder():
    m = make()
    assert_equals_forward(m)
    m.to(torch.float64)
    assert builds_during(lambda: assert_equals_forward(m)) == 1
    assert decoded(m).dtype == torch.float64
    m.to(torch.float32)
    assert builds_during(lambda: assert_equals_forward(m)) == 1


def test_replaced_parameters_and_modules_rebuild_the_decoder():
    from slmlab.quant.packing import QuantLinear

    m = make()
    assert_equals_forward(m)
    m.blocks[0].attn.k_proj.weight = torch.nn.Parameter(
        torch.randn(16, 32)
    )  # a new parameter object
    assert builds_during(lambda: assert_equals_forward(m)) == 1
    m.blocks[1].attn.q_proj = QuantLinear.from_linear(
        m.blocks[1].attn.q_proj, 4, 8, True
    )  # quantized
    assert builds_during(lambda: assert_equals_forward(m)) == 1
    assert Decoder.for_model(m).mode is torch.no_grad
    m.blocks[1].ffn.down_proj = torch.nn.Sequential(
        m.blocks[1].ffn.down_proj
    )  # same weights, a new module
    assert builds_during(lambda: assert_equals_forward(m)) == 1


def test_a_changed_config_value_or_eps_is_seen():
    m = make()
    assert_equals_forward(m)
    m.config.rope_theta = 500.0  # read at step time from the model's RoPE tables
    m._rope = None
    assert_equals_forward(m)
    m.blocks[0].attn_norm.eps = 1e-2  # read at step time
    assert_equals_forward(m)


def test_writes_through_data_need_forget():
    """``.data`` bypasses the version counter: nothing can see such a write,
    so forget() is the way."""
    m = make()
    assert_equals_forward(m)
    m.blocks[0].attn.q_proj.weight.data.mul_(2)
    assert builds_during(lambda: decoded(m)) == 0  # stale: documented
    forget(m)
    assert builds_during(lambda: assert_equals_forward(m)) == 1


def test_the_kept_decoder_stays_out_of_the_model():
    m = make()
    m.generate(torch.randint(0, 97, (1, 5)), 4, temperature=0)
    keys = set(m.state_dict())
    assert not any("decoder" in k.lower() for k in keys) and not any(
        isinstance(v, Decoder) for v in vars(m).values()
    )
    twin = copy.deepcopy(m)
    with torch.no_grad():
        twin.lm_head.weight.mul_(-1)
    assert_equals_forward(twin)  # the copy has its own decoder, of its own weights
    assert_equals_forward(m)
    assert Decoder.for_model(twin) is not Decoder.for_model(m)
    assert_equals_forward(pickle.loads(pickle.dumps(m)))


def test_a_kept_decoder_does_not_keep_its_model_alive():
    m = make()
    m.generate(torch.randint(0, 97, (1, 5)), 4, temperature=0)
    dec, gone = Decoder.for_model(m), weakref.ref(m)
    del m
    gc.collect()
    assert gone() is None and all(kept is not dec for kept in decoder_module._DECODERS.values())
    with pytest.raises(RuntimeError, match="no longer exists"):
        _ = dec.model


def test_a_decoder_built_under_inference_mode_serves_no_grad_and_training_later():
    m = make()
    with torch.inference_mode():
        m.generate(torch.randint(0, 97, (1, 5)), 4, temperature=0)
    dec = Decoder.for_model(m)
    assert not any(t.is_inference() for t in [dec.rotate_half])
    with torch.no_grad():
        assert_equals_forward(m)
    m.train()
    m.loss(IDS[:, :-1], IDS[:, 1:]).backward()
    assert m.lm_head.weight.grad is not None


def test_a_model_made_under_inference_mode_is_decoded_but_not_kept():
    """Inference tensors have no version counter, so a change could not be seen: build per call."""
    with torch.inference_mode():
        m = make()
        assert builds_during(lambda: assert_equals_forward(m)) == 1
        assert builds_during(lambda: assert_equals_forward(m)) == 1
        assert m not in decoder_module._DECODERS


def test_generate_allocates_only_the_cache_it_fills():
    sizes = []

    class Recording(KVCache):
        def __init__(self, config, batch_size, max_len, device, dtype):
            sizes.append(max_len)
            super().__init__(config, batch_size, max_len, device, dtype)

    m = make()
    out = m.generate(torch.randint(0, 97, (1, 5)), 8, temperature=0, cache_cls=Recording)
    assert sizes == [5 + 8 - 1] and out.shape == (1, 13)  # the last token is never fed back
    sizes.clear()
    slid = m.generate(
        torch.randint(0, 97, (1, 5)), 70, temperature=0, cache_cls=Recording
    )  # slides at 64
    assert sizes[0] == 64 and len(sizes) == 2 and slid.shape == (1, 75)
    assert m.generate(torch.randint(0, 97, (1, 5)), 0, temperature=0).shape == (1, 5)
