"""The shared plumbing every technique stands on: slmlab.lm, slmlab.surgery, slmlab.calibration,
and the one offline check."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from slmlab import TinyLM, TinyLMConfig, to_hf
from slmlab.calibration import InputStats, collect_input_stats, run_blocks
from slmlab.lm import eval_mode, lm_loss, logits, window_kl, window_nll, window_perplexity
from slmlab.quant import QuantLinear, hessian_from_inputs
from slmlab.surgery import (
    find_blocks,
    find_linears,
    is_linear_like,
    linear_layers,
    model_nbytes,
    set_module,
)
from slmlab.utils import hub_offline_reason


@pytest.fixture
def model(tiny_config):
    torch.manual_seed(0)
    return TinyLM(tiny_config).eval()


# ----------------------------------------------------------------------------- lm
def test_lm_loss_is_cross_entropy_and_ignores_masked_targets():
    torch.manual_seed(0)
    z = torch.randn(2, 3, 5)
    y = torch.tensor([[1, -100, 4], [0, 2, -100]])
    keep = y != -100
    by_hand = -(z.log_softmax(-1).gather(-1, y.clamp(min=0)[..., None])[..., 0])[keep].mean()
    assert torch.allclose(lm_loss(z, y), by_hand)
    assert torch.allclose(lm_loss(z, y, reduction="sum"), by_hand * keep.sum())


def test_logits_of_tinylm_and_transformers_agree(model):
    x = torch.randint(0, model.config.vocab_size, (2, 9))
    assert torch.allclose(logits(model, x), logits(to_hf(model), x), atol=1e-5)


def test_eval_mode_restores_each_models_mode(model):
    other = TinyLM(model.config)
    model.train()
    other.eval()
    with eval_mode(model, other):
        assert not model.training and not other.training
    assert model.training and not other.training
    with pytest.raises(RuntimeError), eval_mode(model):
        raise RuntimeError("the mode is restored on errors too")
    assert model.training


def test_window_nll_perplexity_and_kl_by_hand(model):
    w = torch.randint(0, model.config.vocab_size, (3, 12))
    z = model(w[:, :-1]).log_softmax(-1)
    nll = -z.gather(-1, w[:, 1:, None]).sum().item()
    total, n = window_nll(model, w, batch_size=2)
    assert n == 3 * 11 and total == pytest.approx(nll, rel=1e-5)
    assert window_perplexity(model, w) == pytest.approx(math.exp(nll / n), rel=1e-5)
    assert window_kl(model, model, w) == pytest.approx(0.0, abs=1e-7)
    with pytest.raises(ValueError, match="T >= 2"):
        window_nll(model, torch.zeros(3, 1, dtype=torch.long))


# ----------------------------------------------------------------------------- surgery
class Wrapper(nn.Module):
    """A wrapping layer as peft writes them: the wrapped layer is kept as ``base``."""

    def __init__(self, base):
        super().__init__()
        self.base = base
        self.in_features, self.out_features = base.in_features, base.out_features
        self.weight = base.weight

    def forward(self, x):
        return self.base(x)


def test_linear_like_layers_include_quantized_and_wrapped_ones(model):
    names = list(find_linears(model))
    assert names[0] == "blocks.0.attn.q_proj" and "lm_head" not in names
    q = QuantLinear.from_linear(model.blocks[0].attn.q_proj, 4, 16, False)
    assert is_linear_like(q) and not isinstance(q, nn.Linear)
    set_module(model, "blocks.0.attn.q_proj", q)
    set_module(model, "blocks.0.attn.k_proj", Wrapper(model.blocks[0].attn.k_proj))
    found = find_linears(model)
    assert (
        list(found) == names
    )  # same names, in the same order: the quantized layer and the wrapper
    assert found["blocks.0.attn.q_proj"] is q
    assert "blocks.0.attn.k_proj.base" not in linear_layers(
        model
    )  # the outer layer, not what it wraps
    assert not is_linear_like(nn.Embedding(4, 3)) and not is_linear_like(model.blocks[0].attn_norm)


def test_find_blocks_and_bytes(model):
    assert find_blocks(model)[0] == "blocks" and find_blocks(to_hf(model))[0] == "model.layers"
    assert model_nbytes(model) == 4 * sum(p.numel() for p in model.parameters())
    tied = TinyLM(TinyLMConfig(**{**model.config.to_dict(), "tie_embeddings": True}))
    assert model_nbytes(tied) == 4 * sum(
        p.numel() for p in tied.parameters()
    )  # the shared matrix once


# ----------------------------------------------------------------------------- calibration
def test_input_stats_by_hand():
    torch.manual_seed(0)
    xs = [torch.randn(2, 5, 4), torch.randn(3, 4)]
    st = InputStats(4, absmean=True, absmax=True)
    for x in xs:
        st.add(x)
    allx = torch.cat([x.reshape(-1, 4) for x in xs])
    assert st.n == 13
    assert torch.allclose(st.H, hessian_from_inputs(allx), atol=1e-6)
    assert torch.allclose(st.absmean, allx.abs().mean(0), atol=1e-6)
    assert torch.equal(st.absmax, allx.abs().amax(0))
    only = InputStats(4, hessian=False, absmax=True)
    only.add(allx)
    assert only.H is None and only.absmean is None and torch.equal(only.absmax, st.absmax)


def test_collect_input_stats_shares_one_input_between_layers(model):
    w = torch.randint(0, model.config.vocab_size, (2, 16))
    layers = {n: m for n, m in find_linears(model).items() if n.startswith("blocks.0.attn")}
    seen = {}
    h = model.blocks[0].attn.q_proj.register_forward_pre_hook(
        lambda m, a: seen.setdefault("x", a[0])
    )
    stats = collect_input_stats(layers, lambda: model(w), absmax=True)
    h.remove()
    assert (
        stats["blocks.0.attn.q_proj"]
        is stats["blocks.0.attn.k_proj"]
        is stats["blocks.0.attn.v_proj"]
    )
    assert stats["blocks.0.attn.o_proj"] is not stats["blocks.0.attn.q_proj"]
    assert torch.allclose(
        stats["blocks.0.attn.q_proj"].H, hessian_from_inputs(seen["x"]), atol=1e-6
    )
    with pytest.raises(RuntimeError, match="saw no calibration input"):
        collect_input_stats({"lm_head": model.lm_head, "unused": nn.Linear(4, 4)}, lambda: model(w))


def test_run_blocks_visits_every_block_in_order(model):
    w = torch.randint(0, model.config.vocab_size, (4, 16))
    targets = find_linears(model)
    order = []
    run_blocks(model, w, targets, lambda layers, run: order.append(sorted(layers)), batch_size=2)
    assert [names[0].split(".")[1] for names in order] == ["0", "1"]
    assert sum(len(n) for n in order) == len(targets)


# ----------------------------------------------------------------------------- the offline check
@pytest.mark.parametrize(
    "value,offline",
    [
        ("1", True),
        ("true", True),
        ("ON", True),
        ("yes", True),
        ("0", False),
        ("no", False),
        ("false", False),
        ("", False),
    ],
)
def test_one_offline_check_reads_the_variable_as_huggingface_hub_does(monkeypatch, value, offline):
    monkeypatch.setenv("HF_HUB_OFFLINE", value)
    monkeypatch.setenv("SLMLAB_HUB_HOST", "127.0.0.1")  # a closed port: unreachable, and fast
    reason = hub_offline_reason()
    assert reason is not None  # offline either way here: by the variable or by the unreachable host
    assert ("HF_HUB_OFFLINE" in reason) == offline
    try:
        from huggingface_hub import constants

        assert constants._is_true(value) == offline
    except (ImportError, AttributeError):  # pragma: no cover - an older huggingface_hub
        pass


def test_the_model_and_corpus_loaders_share_the_offline_check(monkeypatch):
    from slmlab.data import load_text_dataset
    from slmlab.hf import OfflineError, resolve_hf_path

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(OfflineError, match="HF_HUB_OFFLINE=1 is set"):
        resolve_hf_path("org/model")
    with pytest.raises(ConnectionError, match="HF_HUB_OFFLINE=1 is set"):
        load_text_dataset("tinystories")


def test_logits_returns_plain_tensors_for_other_modules():
    lin = nn.Linear(3, 2)
    x = torch.randn(4, 3)
    assert torch.equal(logits(lin, x), lin(x))
    assert F.softmax(logits(lin, x), -1).shape == (4, 2)


def test_reference_comparison_equals_the_window_functions(model):
    from slmlab.lm import ReferenceComparison

    torch.manual_seed(1)
    other = TinyLM(model.config).eval()
    w = torch.randint(0, model.config.vocab_size, (5, 12))
    compare = ReferenceComparison(model, w, batch_size=2)
    got = compare(other)
    assert got["ppl"] == pytest.approx(window_perplexity(other, w), rel=1e-5)
    assert got["kl"] == pytest.approx(window_kl(other, model, w), rel=1e-4)
    assert compare(model)["kl"] == pytest.approx(0.0, abs=1e-7)


def test_dequantize_model_equals_quantize_unpacked(model):
    from slmlab.quant import dequantize_model, quantize

    x = torch.randint(0, model.config.vocab_size, (2, 10))
    packed = quantize(model, "rtn", bits=4, group_size=16)
    plain = dequantize_model(packed)
    assert all(type(m) is nn.Linear for m in find_linears(plain, skip=()).values())
    assert torch.allclose(
        plain(x), quantize(model, "rtn", bits=4, group_size=16, pack=False)(x), atol=1e-6
    )
    assert torch.allclose(plain(x), packed(x), atol=1e-5)
