"""Low-rank factorization: one matrix (SVD, ASVD, SVD-LLM) checked against Eckart-Young and the
whitened error identity; the model driver on TinyLM and a transformers Llama; bad input."""

import pytest
import torch
from helpers import correlated_inputs, tiny_llama

from slmlab import TinyLM, TinyLMConfig
from slmlab.calibration import hessian_from_inputs, output_error
from slmlab.lowrank import (
    LowRankLinear,
    break_even_rank,
    energy_rank,
    factorization_report,
    factorize,
    scaled_factors,
    svd_factors,
    truncation_error,
    whitened_factors,
    whitened_singular_values,
)


def _weight(out=48, inp=64, seed=0):
    return torch.randn(out, inp, generator=torch.Generator().manual_seed(seed))


def _tiny_model(seed=0):
    torch.manual_seed(seed)
    cfg = TinyLMConfig(
        vocab_size=96, d_model=64, n_layer=2, n_head=4, n_kv_head=2, block_size=64, d_ff=128
    )
    return TinyLM(cfg).eval()


def _calib(n=16, t=32, vocab=96, seed=0):
    return torch.randint(0, vocab, (n, t), generator=torch.Generator().manual_seed(seed))


# ----------------------------------------------------------------------------- one matrix
def test_break_even_rank_by_hand():
    assert break_even_rank(192, 192) == 95  # 96 * 384 = 192 * 192: equal, not fewer
    assert break_even_rank(192, 512) == 139  # 139 * 704 = 97,856 < 98,304 <= 140 * 704
    for i, o in [(64, 48), (5, 7), (1, 1)]:
        r = break_even_rank(i, o)
        assert r * (i + o) < i * o <= (r + 1) * (i + o)


def test_full_rank_reproduces_the_weight():
    w = _weight()
    H = hessian_from_inputs(correlated_inputs(512, 64))
    for up, down in (
        svd_factors(w, 48),
        scaled_factors(w, 48, torch.rand(64) + 0.5),
        whitened_factors(w, 48, H),
    ):
        torch.testing.assert_close(up @ down, w, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("rank", [1, 7, 24])
def test_eckart_young_error_is_the_discarded_spectrum(rank):
    w = _weight()
    up, down = svd_factors(w, rank)
    err = float(((w.double() - (up @ down).double()) ** 2).sum())
    assert err == pytest.approx(truncation_error(w, rank), rel=1e-4)
    # no other rank-r matrix does better: here, SVD-LLM's at the same rank
    H = hessian_from_inputs(correlated_inputs(512, 64))
    u2, d2 = whitened_factors(w, rank, H)
    assert float(((w - u2 @ d2) ** 2).sum()) >= err * (1 - 1e-6)


@pytest.mark.parametrize("rank", [4, 16, 32])
def test_svd_llm_output_error_is_its_discarded_spectrum_and_beats_svd(rank):
    w = _weight()
    x = correlated_inputs(2048, 64, outliers=8.0)
    H = hessian_from_inputs(x)
    up, down = whitened_factors(w, rank, H)
    s = whitened_singular_values(w, H)
    # tr((W - Ŵ) H (W - Ŵ)ᵀ) = sum of the discarded s^2 (SVD-LLM's theorem)
    d = (w - up @ down).double()
    trace = float(torch.einsum("ij,jk,ik->", d, H.double(), d))
    assert trace == pytest.approx(float((s[rank:] ** 2).sum()), rel=1e-3)
    plain = svd_factors(w, rank)
    scaled = scaled_factors(w, rank, x.abs().mean(0) ** 0.5)
    e_llm = output_error(w, up @ down, H)
    e_svd = output_error(w, plain[0] @ plain[1], H)
    e_asvd = output_error(w, scaled[0] @ scaled[1], H)
    assert e_llm < e_asvd < e_svd  # activation-aware beats plain on outlier-heavy inputs


def test_energy_rank_by_hand():
    s = torch.tensor([3.0, 2.0, 1.0, 1.0])  # s^2 = 9, 4, 1, 1 of 15
    assert energy_rank(s, 0.6) == 1  # 9/15 = 0.6 exactly
    assert energy_rank(s, 0.61) == 2
    assert energy_rank(s, 14 / 15) == 3
    assert energy_rank(s, 1.0) == 4
    with pytest.raises(ValueError, match=r"\(0, 1\]"):
        energy_rank(s, 0.0)


def test_bad_ranks_and_scales_are_refused():
    w = _weight()
    for r in (0, 49, 2.5, True):
        with pytest.raises(ValueError, match="from 1 to 48"):
            svd_factors(w, r)
    with pytest.raises(ValueError, match="positive"):
        scaled_factors(w, 4, torch.zeros(64))
    with pytest.raises(ValueError, match="hessian"):
        whitened_factors(w, 4, torch.eye(48))


def test_low_rank_linear_is_its_factors():
    up, down = svd_factors(_weight(), 8)
    bias = torch.randn(48)
    layer = LowRankLinear.from_factors(up, down, bias)
    x = torch.randn(5, 64)
    torch.testing.assert_close(layer(x), x @ (up @ down).T + bias)
    torch.testing.assert_close(layer.dequantize(), up @ down)
    assert sum(p.numel() for p in layer.parameters()) == 8 * (64 + 48) + 48


# ----------------------------------------------------------------------------- the model
def _full_ranks(model):
    from slmlab.surgery import find_linears

    return {n: min(m.in_features, m.out_features) for n, m in find_linears(model).items()}


@pytest.mark.parametrize("method", ["svd", "asvd", "svd_llm"])
def test_full_rank_factorization_keeps_the_logits(method):
    model, calib = _tiny_model(), _calib()
    low = factorize(model, method, rank=_full_ranks(model), calib=calib)
    x = _calib(2, 16, seed=1)
    with torch.no_grad():
        torch.testing.assert_close(low(x), model(x), atol=2e-4, rtol=1e-4)
    assert all(isinstance(m, LowRankLinear) for n, m in low.named_modules() if n.endswith("proj"))
    assert not any(isinstance(m, LowRankLinear) for m in model.modules())  # a copy


def test_lower_rank_loses_more():
    model, calib = _tiny_model(), _calib()
    x = _calib(4, 32, seed=2)

    def kl(m):
        with torch.no_grad():
            p, q = model(x).log_softmax(-1), m(x).log_softmax(-1)
        return float((p.exp() * (p - q)).sum(-1).mean())

    by_rank = [kl(factorize(model, "svd", rank=r)) for r in (24, 12, 4)]
    assert by_rank[0] < by_rank[1] < by_rank[2]
    # (which method loses least is the trained model's question: notebook-level, not here, where
    # random weights and random tokens give SVD-LLM no structure to exploit)
    assert kl(factorize(model, "svd_llm", rank=4, calib=calib)) > by_rank[0]


def test_energy_picks_per_layer_ranks_and_the_report_counts_them():
    model = _tiny_model()
    low = factorize(model, "svd", energy=0.5)
    rows = factorization_report(low)
    assert len(rows) == 2 * 7  # q, k, v, o, gate, up, down per block
    assert all(1 <= r["rank"] <= min(r["shape"]) for r in rows)
    assert len({r["rank"] for r in rows}) > 1  # the spectra differ, so the ranks do
    for r in rows:
        assert r["params"] == r["rank"] * sum(r["shape"])
        assert r["smaller"] == (r["params"] < r["dense_params"])
    assert {r["rank"] for r in factorization_report(factorize(model, energy=1.0))} == {32, 64}
    assert {r["rank"] for r in factorization_report(factorize(model, rank=0.5))} == {16, 32}


def test_bad_input_is_refused_and_the_model_left_unchanged():
    model = _tiny_model()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    bad = [
        (dict(method="svd", rank=33), "k_proj .* from 1 to 32"),
        (dict(method="svd", rank=0), "from 1 to"),
        (dict(method="svd"), "exactly one"),
        (dict(method="svd", rank=4, energy=0.5), "exactly one"),
        (dict(method="svd", energy=1.5), r"\(0, 1\]"),
        (dict(method="svd", rank=1.5), "share of full rank"),
        (dict(method="svd", rank={"blocks.0.attn.q_proj": 4}), "one entry per chosen layer"),
        (dict(method="svd_llm", rank=4), "calib="),
        (dict(method="qr", rank=4), "unknown method"),
        (dict(method="asvd", rank=4, calib=_calib(), beta=1), "unknown option"),
    ]
    for kw, message in bad:
        with pytest.raises(ValueError, match=message):
            factorize(model, **kw)
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert not any(isinstance(m, LowRankLinear) for m in model.modules())


def test_a_transformers_llama_factorizes_too():
    model = tiny_llama()
    x = _calib(2, 16, seed=3)
    low = factorize(model, "svd_llm", rank=_full_ranks(model), calib=_calib())
    with torch.no_grad():
        torch.testing.assert_close(low(x).logits, model(x).logits, atol=2e-4, rtol=1e-4)
    assert len(factorization_report(low)) == 14
