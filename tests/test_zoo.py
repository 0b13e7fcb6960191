"""slmlab.zoo: the SLM table's integrity and the calculator against hand-computed values of real
models."""

from __future__ import annotations

import itertools
import json
import math
import os
from pathlib import Path

import pandas as pd
import pytest

from slmlab import models as core
from slmlab import zoo
from slmlab.hf import OfflineError, config_from_hf
from slmlab.models import TinyLMConfig

FIX = Path(__file__).parent / "fixtures" / "hf_configs"
QWEN2, SMOL2, PHI2, GPT2 = (FIX / n for n in ("qwen2-0.5b", "smollm2-135m", "phi-2", "gpt2"))


@pytest.fixture(scope="module")
def table():
    return zoo.load_zoo()


# ------------------------------------------------------------------------ hand-computed real models
def test_qwen2_0_5b_gqa_by_hand():
    a = zoo.arch_from_hf(QWEN2)  # a save_pretrained-style directory
    assert (a.attention, a.n_head, a.n_kv_head, a.head_dim) == ("GQA", 14, 2, 64)
    d, kv, V, L, F = 896, 2 * 64, 151936, 24, 4864
    emb = V * d  # 136,134,656; tied, so no separate LM head
    attn = (d * d + d) + 2 * (d * kv + kv) + d * d  # q, k, v carry biases in Qwen2, o does not
    ffn = 3 * d * F  # gate, up, down
    norms = (2 * L + 1) * d
    b = zoo.param_breakdown(a)
    assert b == {
        "embeddings": emb,
        "attention": L * attn,
        "ffn": L * ffn,
        "norms": norms,
        "lm_head": 0,
        "total": 494_032_768,
    }
    assert zoo.num_params(a) == 494_032_768  # the count published on the model card
    assert zoo.num_params(a, non_embedding=True) == 494_032_768 - emb
    assert zoo.kv_cache_bytes_per_token(a, "fp16") == 2 * L * 2 * 64 * 2 == 12_288
    assert zoo.kv_cache_bytes(a, 32768, 16) == 12_288 * 32768
    assert zoo.weight_bytes(a, "fp16") == 2 * 494_032_768
    assert zoo.weight_bytes(a, "int4") == 494_032_768 // 2
    assert zoo.weight_bytes(a, "q4_0") == int(494_032_768 * 4.5 / 8)
    assert zoo.flops_per_token(a, 1000) == 2 * (494_032_768 - emb + V * d) + 2 * L * 1000 * d
    # tied: the shared matrix is read whole as the LM head at every decoded token
    assert zoo.decode_weight_params(a) == 494_032_768
    assert (
        a.to_tinylm() is None
    )  # q/k/v-only biases: TinyLM's single `bias` switch cannot express them


def test_phi2_mha_by_hand():
    a = zoo.arch_from_hf(PHI2 / "config.json")  # a config.json path
    assert (a.attention, a.n_kv_head, a.head_dim) == ("MHA", 32, 80)
    d, V, L, F = 2560, 51200, 32, 10240
    attn = 4 * (d * d + d)  # q, k, v, dense, all with bias
    ffn = (d * F + F) + (F * d + d)  # fc1, fc2 with bias, GELU (not gated)
    norms = (L * 1 + 1) * 2 * d  # one LayerNorm per parallel block + the final one, weight and bias
    head = V * d + V  # untied, with a bias
    b = zoo.param_breakdown(a)
    assert b == {
        "embeddings": V * d,
        "attention": L * attn,
        "ffn": L * ffn,
        "norms": norms,
        "lm_head": head,
        "total": 2_779_683_840,
    }
    assert zoo.kv_cache_bytes_per_token(a, 16) == 2 * L * 32 * 80 * 2 == 327_680
    # untied: only one embedding row is read per decoded token
    assert zoo.decode_weight_params(a) == 2_779_683_840 - V * d
    assert zoo.flops_per_token(a, 0) == 2 * (2_779_683_840 - V * d - head + V * d)
    assert a.to_tinylm() is None  # one norm per block and an LM-head bias


def test_gpt2_maps_exactly_to_tinylm():
    a = zoo.arch_from_hf(json.loads((GPT2 / "config.json").read_text()))  # a dict
    cfg = a.to_tinylm()
    assert cfg is not None and (cfg.pos, cfg.norm, cfg.ffn, cfg.bias, cfg.tie_embeddings) == (
        "learned",
        "layernorm",
        "gelu",
        True,
        True,
    )
    d, V, L = 768, 50257, 12
    b = zoo.param_breakdown(a)
    assert b["embeddings"] == V * d + 1024 * d
    assert b["attention"] == L * (4 * d * d + 4 * d)
    assert b["ffn"] == L * (2 * d * 4 * d + 4 * d + d)
    assert b["norms"] == (2 * L + 1) * 2 * d
    assert b["total"] == core.num_params(cfg) == zoo.num_params(a) == 124_439_808
    assert zoo.flops_per_token(a, 1024) == core.flops_per_token(cfg, 1024)


def test_smollm2_agrees_with_config_from_hf():
    a = zoo.arch_from_hf(SMOL2)
    ours, theirs = a.to_tinylm(), config_from_hf(SMOL2)
    for f in (
        "vocab_size",
        "n_layer",
        "n_head",
        "n_kv_head",
        "d_model",
        "hidden_dim",
        "ffn",
        "norm",
        "pos",
        "tie_embeddings",
        "bias",
    ):
        assert getattr(ours, f) == getattr(theirs, f), f
    d, kv, L = 576, 3 * 64, 30
    assert zoo.param_breakdown(a)["attention"] == L * (2 * d * d + 2 * d * kv)
    assert zoo.num_params(a) == core.num_params(theirs) == 134_515_008
    assert (
        zoo.kv_cache_bytes_per_token(a, 16)
        == core.kv_cache_bytes_per_token(theirs, 16)
        == 2 * L * kv * 2
    )


def test_roofline_by_hand():
    a = zoo.arch_from_hf(QWEN2)
    jetson = zoo.get_device("Jetson Orin NX 16GB")
    assert jetson.bandwidth_gbs == 102.4
    b0 = 494_032_768 * 4 / 8  # int4 weights, empty cache
    assert zoo.decode_tokens_per_s(a, jetson, context=0, bits="int4") == pytest.approx(102.4e9 / b0)
    b1 = b0 + 12_288 * 1000  # + fp16 KV cache of 1000 tokens, read once per token
    assert zoo.decode_tokens_per_s(a, "jetson orin nx 16gb", context=1000) == pytest.approx(
        102.4e9 / b1
    )
    # more context, fewer bits: monotone
    assert zoo.decode_tokens_per_s(a, jetson, 4096) < zoo.decode_tokens_per_s(a, jetson, 1024)
    assert zoo.decode_tokens_per_s(a, jetson, 1024, bits="fp16") < zoo.decode_tokens_per_s(
        a, jetson, 1024, bits="int4"
    )


def test_tokens_per_param():
    assert zoo.tokens_per_param(2e10, 1e9) == 20 == zoo.CHINCHILLA_TOKENS_PER_PARAM
    # Cerebras-GPT was trained compute-optimally by design: ~20 tokens per parameter
    d = zoo.derive_zoo()
    cerebras = d[d["name"].str.startswith("Cerebras")]
    assert len(cerebras) == 5 and cerebras["tokens_per_param"].between(19, 21).all()


# --------------------------------------------------------------------- agreement with slmlab.models
GRID = list(
    itertools.product(
        ("swiglu", "gelu", "relu"),
        ("rmsnorm", "layernorm"),
        ("rope", "learned", "none"),
        (True, False),
        (True, False),
        (1, 2, 4),
    )
)


@pytest.mark.parametrize("ffn,norm,pos,tie,bias,kv", GRID)
def test_one_formula_counts_what_tinylm_allocates(ffn, norm, pos, tie, bias, kv):
    """slmlab.models.estimates is the one set of formulas (zoo uses it): checked against the tensors
    a TinyLM of every configuration allocates, and against the by-hand FLOPs and KV-cache counts."""
    from slmlab.models import TinyLM

    c = TinyLMConfig(
        vocab_size=97,
        block_size=33,
        n_layer=3,
        n_head=4,
        n_kv_head=kv,
        d_model=32,
        ffn=ffn,
        ffn_ratio=2.5,
        norm=norm,
        pos=pos,
        tie_embeddings=tie,
        bias=bias,
    )
    m = TinyLM(c)
    a = zoo.Arch.from_tinylm(c)
    total = sum(p.numel() for p in m.parameters())
    body = (
        total
        - c.vocab_size * c.d_model * (1 if tie else 2)
        - (c.block_size * c.d_model if pos == "learned" else 0)
    )
    assert zoo.param_breakdown(a)["total"] == core.num_params(c) == zoo.num_params(c) == total
    assert zoo.num_params(a, non_embedding=True) == core.num_params(c, non_embedding=True) == body
    assert (
        core.flops_per_token(c, 17)
        == zoo.flops_per_token(a, 17)
        == 2 * (body + c.vocab_size * c.d_model) + 2 * 3 * 17 * 32
    )
    assert core.flops_per_token(c, 17, training=True) == 3 * core.flops_per_token(c, 17)
    assert (
        zoo.kv_cache_bytes_per_token(a, 16)
        == core.kv_cache_bytes_per_token(c, 16)
        == 2 * 3 * kv * 8 * 2
    )
    assert a.to_tinylm() == TinyLMConfig(**{**c.to_dict(), "ffn_ratio": 4.0, "d_ff": c.hidden_dim})


def test_breakdown_matches_instantiated_tinylm():
    from slmlab.models import TinyLM

    c = TinyLMConfig(
        vocab_size=64,
        block_size=16,
        n_layer=2,
        n_head=4,
        n_kv_head=2,
        d_model=32,
        tie_embeddings=True,
    )
    m = TinyLM(c)
    assert zoo.num_params(c) == sum(p.numel() for p in m.parameters())


def _transformers_count(config: dict) -> int:
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    cfg = AutoConfig.for_model(**config)
    with torch.device("meta"):  # shapes only: no memory, no weights
        m = AutoModelForCausalLM.from_config(cfg)
    return sum(p.numel() for p in m.parameters())


@pytest.mark.parametrize("folder", [QWEN2, SMOL2, PHI2, GPT2], ids=lambda p: p.name)
def test_fixture_counts_match_transformers(folder):
    cfg = json.loads((folder / "config.json").read_text())
    assert zoo.num_params(zoo.arch_from_hf(cfg)) == _transformers_count(cfg)


@pytest.mark.slow
def test_every_shipped_config_matches_transformers():
    for hub, cfg in zoo.load_configs().items():
        if cfg["model_type"] in (
            "qwen",
            "baichuan",
            "minicpm",
        ):  # remote-code models: no transformers class
            continue
        assert zoo.num_params(zoo.arch_from_hf(cfg)) == _transformers_count(cfg), hub


# ----------------------------------------------------------------------------- the table
def test_table_shape_and_keys(table):
    assert len(table) == 72 and table["name"].is_unique and table["hub_id"].is_unique
    assert table["is_baseline"].sum() == 4
    assert list(table.columns[:4]) == ["name", "hub_id", "organisation", "release"]
    assert (table["source"].str.len() > 20).all()
    assert (table["organisation"] == table["organisation"].str.strip()).all()


def test_table_units(table):
    assert table["release"].str.fullmatch(r"\d{4}-\d{2}").all()
    assert table["released"].between("2019-01-01", "2024-12-31").all()
    assert table["params_b"].between(0.1, 9).all()  # billions
    t = table["training_tokens"].dropna()
    assert len(t) >= 60 and (t >= 1e9).all() and (t <= 2e13).all()  # tokens, not billions of tokens
    assert (table["context_length"] >= 1024).all()
    for col in ("score_commonsense", "score_problem_solving", "score_math"):
        s = table[col].dropna()
        assert len(s) >= 40 and s.between(0, 1).all(), col  # one unit: fractions
    assert table["score_math"].max() < 0.7  # percent would show up as values above 1


def test_table_no_missing_facts(table):
    arch = table[~table["is_baseline"]]
    for col in (
        "n_layer",
        "d_model",
        "attention",
        "activation",
        "norm",
        "position",
        "vocab_size",
        "context_length",
        "ffn_type",
    ):
        assert arch[col].notna().all(), col
    with_cfg = table[table["calc_note"].isna()]
    assert set(with_cfg["hub_id"]) == set(zoo.load_configs()) & set(table["hub_id"])
    for col in ("n_head", "n_kv_head", "head_dim", "d_ff", "ffn_ratio", "tied_embeddings"):
        assert with_cfg[col].notna().all(), col
    assert (table[table["calc_note"].notna()]["calc_note"].str.len() > 10).all()


def test_table_consistency(table):
    assert set(table["attention"]) <= {"MHA", "GQA", "MQA", "MLA"}
    assert set(table["norm"]) == {"layernorm", "rmsnorm"}
    assert set(table["position"]) <= {"learned", "rope", "alibi"}
    assert set(table["activation"]) <= {"relu", "gelu", "gelu_tanh", "silu"}
    k = table.dropna(subset=["n_kv_head", "n_head"])
    assert ((k["attention"] == "MHA") == (k["n_kv_head"] == k["n_head"])).all()
    assert ((k["attention"] == "MQA") == (k["n_kv_head"] == 1)).all()
    f = table.dropna(subset=["d_ff"])
    assert ((f["ffn_ratio"] - f["d_ff"] / f["d_model"]).abs() < 1e-9).all()
    assert (table.loc[table["activation"] == "silu", "ffn_type"] == "gated").all()


def test_calculator_matches_stated_sizes(table):
    d = zoo.derive_zoo(table).set_index("name")["params_rel_diff"].dropna()
    # names that round down: Gemma-2B is 2.51B, Gemma-2-2B 2.61B, Llama-3.2-1B 1.24B,
    # MiniCPM-1B 1.36B
    nominal = {"gemma-2b", "gemma-2-2b", "Llama-3.2-1B", "MiniCPM-1B-sft-bf16"}
    assert len(d) >= 55
    assert d.drop(list(nominal)).abs().max() < 0.1
    assert d[list(nominal)].between(0.2, 0.4).all()


def test_ondevice_runs_table():
    runs = zoo.load_ondevice_runs()
    assert len(runs) == 108 and runs["device"].nunique() == 4
    assert (
        (1000 / runs["decode_ms_per_token"] - runs["decode_tok_s"]).abs()
        < 0.02 * runs["decode_tok_s"]
    ).all()
    scores = runs[["score_winogrande", "score_hellaswag", "score_mmlu"]].to_numpy().ravel()
    scores = scores[~pd.isna(scores)]
    assert len(scores) > 200 and ((scores >= 0) & (scores <= 1)).all()
    assert all(zoo.get_device(d) for d in runs["device"].unique())
    cmp = zoo.ondevice_comparison(runs)
    assert len(cmp) == 4 * runs.loc[runs["arch_hub_id"].notna(), "model"].nunique()
    assert (cmp["fraction of bound"] < 1).all()  # the roofline is an upper bound on every phone


def test_tables_rebuild_identically(tmp_path):
    survey = Path(
        os.environ.get(
            "SLM_SURVEY_DIR", Path(zoo.__file__).parents[2] / "shared/reference/slm_survey"
        )
    )
    if not (survey / "SLM.json").is_file():
        pytest.skip("the survey's reference files are not on this machine")
    import subprocess
    import sys

    build = Path(zoo.__file__).parents[1] / "data" / "zoo" / "build_zoo.py"
    subprocess.run(
        [sys.executable, str(build), "--survey", str(survey), "--out", str(tmp_path)],
        check=True,
        capture_output=True,
    )
    for f in ("slm_zoo.csv", "ondevice_runs.csv"):
        assert (tmp_path / f).read_text() == (zoo.zoo_dir() / f).read_text(), (
            f"{f} is stale: rerun build_zoo.py"
        )


# ----------------------------------------------------------------------------- lookups and errors
def test_lookup_by_name_hub_id_and_tinylm(table):
    assert zoo.get_arch("qwen2-0.5b") == zoo.get_arch("Qwen/Qwen2-0.5B")
    assert zoo.num_params("Qwen2-0.5B") == zoo.num_params(QWEN2)
    c = TinyLMConfig()
    assert zoo.num_params(c) == core.num_params(c)
    e = zoo.estimate("TinyLlama-1.1B", context=2048, device="Meizu 18 Pro")
    assert e["attention"] == "GQA" and e["kv_bytes"] == 22_528 * 2048 and e["fits"]
    assert e["tokens_per_param"] == pytest.approx(3e12 / 1_100_048_384)
    t = zoo.memory_table(["Qwen2-0.5B", "phi-2"], "Xiaomi 14", bits="int4", context=2048)
    assert list(t.index) == ["Qwen2-0.5B", "phi-2"]
    assert t.loc["phi-2", "KV cache (GB)"] == pytest.approx(327_680 * 2048 / 1e9)
    parts = t[["embeddings (GB)", "attention (GB)", "FFN (GB)", "LM head (GB)"]].sum(axis=1)
    assert ((t["weights (GB)"] - parts) < 0.01).all()  # the rest is norms


def test_unknown_name_suggests_close_matches():
    with pytest.raises(zoo.UnknownModelError) as e:
        zoo.get_arch("Qwen2-0.6B")
    assert "Qwen2-0.5B" in str(e.value) and "not in the zoo table" in str(e.value)
    with pytest.raises(KeyError, match="Did you mean"):
        zoo.find_model("SmolLM-135")


def test_offline_hub_id_fails_fast_and_clearly(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(OfflineError, match="offline") as e:
        zoo.get_arch("Qwen/Qwen2-0.6B")
    assert "Qwen/Qwen2-0.5B" in str(e.value)  # and the table's close matches
    with pytest.raises(OfflineError):
        zoo.arch_from_hf("HuggingFaceTB/SmolLM2-360M")


def test_other_bad_inputs(tmp_path):
    with pytest.raises(ValueError, match="layer-wise scaling"):
        zoo.get_arch("OpenELM-270M")
    with pytest.raises(ValueError, match="model_type 'falcon'"):
        zoo.arch_from_hf({"model_type": "falcon", "hidden_size": 64})
    with pytest.raises(ValueError, match="none of"):
        zoo.arch_from_hf({"model_type": "llama", "hidden_size": 64})
    with pytest.raises(FileNotFoundError, match="config.json"):
        zoo.arch_from_hf(tmp_path)  # a directory without config.json
    with pytest.raises(KeyError, match="Jetson Orin NX 16GB"):
        zoo.get_device("Jetson Orin")
    with pytest.raises(ValueError, match="unknown precision"):
        zoo.weight_bytes(QWEN2, "int3")
    with pytest.raises(ValueError, match="context"):
        zoo.kv_cache_bytes(QWEN2, -1, "fp16")
    with pytest.raises(FileNotFoundError, match="build_zoo.py"):
        zoo.load_zoo(tmp_path / "missing.csv")


def test_bits_and_kv_quantization():
    a = zoo.get_arch("phi-2")
    assert zoo.kv_cache_bytes(a, 2048, "int8") * 2 == zoo.kv_cache_bytes(a, 2048, "fp16")
    assert zoo.bits_of("q4_0") == 4.5 and zoo.bits_of(3) == 3.0
    assert not math.isnan(zoo.estimate(a, device="A100 80GB SXM")["decode_tok_s"])
    assert isinstance(zoo.derive_zoo(), pd.DataFrame)
