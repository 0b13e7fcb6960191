"""Build the project's SLM tables (slm_zoo.csv, ondevice_runs.csv) from the survey's published
facts.

Inputs
  * the survey's companion files (Lu et al., arXiv 2409.15790; TinyLLMLeaderBoard@087631a):
    SLM.json (model table) and data.json (on-device runs). They are reference material read
    at build time, never copied: pass their folder with ``--survey DIR`` (default: the team's
    ../shared/reference/slm_survey next to the repository, or $SLM_SURVEY_DIR);
  * data/zoo/hf_configs.json: architecture keys of each model's public config.json.

Outputs (written atomically, sorted by release month then name)
  * data/zoo/slm_zoo.csv       one row per model, the project's own columns and units;
  * data/zoo/ondevice_runs.csv one row per (model, phone) llama.cpp INT4 run.

Every cleaning rule and every correction is in this file, with its reason; README.md lists them.
Run:  python data/zoo/build_zoo.py [--survey DIR]
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import math
import os
import re
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
SURVEY_REF = "Lu et al. 2024 (arXiv 2409.15790), TinyLLMLeaderBoard@087631a"

# ----------------------------------------------------------------------------- columns
ZOO_COLUMNS = [
    "name",
    "hub_id",
    "organisation",
    "release",
    "is_baseline",
    "instruct",
    "model_type",
    "params_b",
    "n_layer",
    "d_model",
    "n_head",
    "n_kv_head",
    "head_dim",
    "d_ff",
    "attention",
    "ffn_type",
    "ffn_ratio",
    "activation",
    "norm",
    "position",
    "tied_embeddings",
    "vocab_size",
    "context_length",
    "training_tokens",
    "dataset_tokens",
    "data_families",
    "data_open",
    "score_commonsense",
    "score_problem_solving",
    "score_math",
    "arch_notes",
    "calc_note",
    "source",
]
RUN_COLUMNS = [
    "model",
    "arch_hub_id",
    "arch_note",
    "device",
    "quantization",
    "runtime",
    "memory_gb",
    "prefill_tokens",
    "prefill_ms_per_token",
    "prefill_tok_s",
    "decode_tokens",
    "decode_ms_per_token",
    "decode_tok_s",
    "score_winogrande",
    "score_hellaswag",
    "score_mmlu",
    "source",
]

# --------------------------------------------------------------------------- fixes to names and ids
# survey "Model" -> (short name, hub id). Only rows whose Model is not a plain hub id are listed.
NAME_FIXES = {
    "TinyLlama/TinyLlama-1.1B-intermediate-step-1431k-3T": ("TinyLlama-1.1B", None),
    "Llama-3.2-3B": ("Llama-3.2-3B", "meta-llama/Llama-3.2-3B"),  # survey omits the organisation
    "Llama-3.2-1B": ("Llama-3.2-1B", "meta-llama/Llama-3.2-1B"),
    "Llama-7B [For Baseline]": ("LLaMA-7B", "luodian/llama-7b-hf"),  # hub id from the survey's Link
    "Llama-2-7B [For Baseline]": ("Llama-2-7B", "NousResearch/Llama-2-7b-hf"),
    # the survey labels these "7B", but its Link (and the model) is the 8B one
    "Llama-3-7B [For Baseline]": ("Llama-3-8B", "meta-llama/Meta-Llama-3-8B"),
    "Llama-3.1-7B [For Baseline]": ("Llama-3.1-8B", "meta-llama/Meta-Llama-3.1-8B"),
}
ORG_FIXES = {"Facebook": "Meta", "DataBricks": "Databricks", "": "Meta"}

# Corrections of survey facts, each with its reason. (hub id, column) -> (value, reason)
CORRECTIONS = {
    ("luodian/llama-7b-hf", "release"): (
        "2023-02",
        "release month missing in the survey; LLaMA was released in Feb 2023 (Touvron et al.)",
    ),
    ("meta-llama/Meta-Llama-3-8B", "params_b"): (
        8.03,
        "survey says 7B; the model is Llama-3-8B (8.03B parameters)",
    ),
    ("meta-llama/Meta-Llama-3.1-8B", "params_b"): (
        8.03,
        "survey says 7B; the model is Llama-3.1-8B (8.03B parameters)",
    ),
    ("luodian/llama-7b-hf", "params_b"): (6.74, "LLaMA-7B has 6.74B parameters (its config)"),
    ("NousResearch/Llama-2-7b-hf", "params_b"): (
        6.74,
        "Llama-2-7B has 6.74B parameters (its config)",
    ),
    ("stabilityai/stablelm-zephyr-3b", "context_length"): (
        4096,
        "survey says 1024; its config (stablelm-3b-4e1t architecture) has 4096 positions",
    ),
    ("stabilityai/stablelm-zephyr-3b", "training_tokens"): (
        4.0e12,
        "survey says 400B; the base model stablelm-3b-4e1t saw 4 epochs of 1T tokens (its model "
        "card)",
    ),
    ("stabilityai/stablelm-zephyr-3b", "dataset_tokens"): (
        1.0e12,
        "base model stablelm-3b-4e1t: 1T-token dataset, 4 epochs (its model card)",
    ),
    ("microsoft/Phi-3.5-mini-instruct", "context_length"): (
        131072,
        "survey says 262144; the model card and config say 128K (131072)",
    ),
    ("microsoft/Phi-3.5-mini-instruct", "training_tokens"): (
        3.4e12,
        "missing in the survey; model card: 3.4T tokens",
    ),
    ("Qwen/Qwen2.5-0.5B", "training_tokens"): (
        18e12,
        "missing in the survey; Qwen2.5 report: up to 18T tokens",
    ),
    ("Qwen/Qwen2.5-1.5B", "training_tokens"): (
        18e12,
        "missing in the survey; Qwen2.5 report: up to 18T tokens",
    ),
    ("Qwen/Qwen2.5-3B", "training_tokens"): (
        18e12,
        "missing in the survey; Qwen2.5 report: up to 18T tokens",
    ),
    ("meta-llama/Llama-3.2-1B", "training_tokens"): (
        9e12,
        "missing in the survey; Meta's model card: up to 9T tokens",
    ),
    ("meta-llama/Llama-3.2-3B", "training_tokens"): (
        9e12,
        "missing in the survey; Meta's model card: up to 9T tokens",
    ),
    ("luodian/llama-7b-hf", "training_tokens"): (
        1.0e12,
        "baseline: 1T tokens (Touvron et al. 2023)",
    ),
    ("NousResearch/Llama-2-7b-hf", "training_tokens"): (
        2.0e12,
        "baseline: 2T tokens (Llama 2 paper)",
    ),
    ("meta-llama/Meta-Llama-3-8B", "training_tokens"): (
        15e12,
        "baseline: over 15T tokens (Meta's model card)",
    ),
    ("meta-llama/Meta-Llama-3.1-8B", "training_tokens"): (
        15e12,
        "baseline: over 15T tokens (Meta's model card)",
    ),
}
for _hub in (
    "Qwen/Qwen1.5-0.5B",
    "Qwen/Qwen1.5-1.8B",
    "Qwen/Qwen1.5-4B",
    "Qwen/Qwen2-0.5B",
    "Qwen/Qwen2-1.5B",
):
    CORRECTIONS[(_hub, "context_length")] = (
        32768,
        "survey writes 32000 for '32K'; the model card's 32K context is 32768 tokens",
    )

# Architecture facts for models that have no entry in hf_configs.json (no uniform config, or not
# confirmed). hub id -> {column: value}, with the reason in "why".
NO_CONFIG_FACTS = {
    "apple/OpenELM-270M": {
        "norm": "rmsnorm",
        "position": "rope",
        "tied_embeddings": True,
        "why": (
            "layer-wise scaling: heads and FFN width change from layer to layer "
            "(Mehta et al. 2024); RMSNorm, RoPE, shared input/output embeddings"
        ),
    },
    "apple/OpenELM-450M": {
        "norm": "rmsnorm",
        "position": "rope",
        "tied_embeddings": True,
        "why": (
            "layer-wise scaling: heads and FFN width change from layer to layer "
            "(Mehta et al. 2024); RMSNorm, RoPE, shared input/output embeddings"
        ),
    },
    "apple/OpenELM-1_1B": {
        "norm": "rmsnorm",
        "position": "rope",
        "tied_embeddings": True,
        "why": (
            "layer-wise scaling: heads and FFN width change from layer to layer "
            "(Mehta et al. 2024); RMSNorm, RoPE, shared input/output embeddings"
        ),
    },
    "apple/OpenELM-3B": {
        "norm": "rmsnorm",
        "position": "rope",
        "tied_embeddings": True,
        "why": (
            "layer-wise scaling: heads and FFN width change from layer to layer "
            "(Mehta et al. 2024); RMSNorm, RoPE, shared input/output embeddings"
        ),
    },
    "MBZUAI/MobiLlama-1B": {
        "norm": "rmsnorm",
        "position": "rope",
        "why": (
            "one FFN shared by all layers (Thawakar et al. 2024): "
            "the per-layer formula does not apply; Llama-style blocks (RMSNorm, RoPE)"
        ),
    },
    "MBZUAI/MobiLlama-05B": {
        "norm": "rmsnorm",
        "position": "rope",
        "why": (
            "one FFN shared by all layers (Thawakar et al. 2024): "
            "the per-layer formula does not apply; Llama-style blocks (RMSNorm, RoPE)"
        ),
    },
    "mtgv/MobileLLaMA-1.4B-Base": {
        "norm": "rmsnorm",
        "position": "rope",
        "why": "KV-head count not confirmed (survey: GQA); Llama-style blocks (RMSNorm, RoPE)",
    },
    "openbmb/MiniCPM-2B-128k": {
        "norm": "rmsnorm",
        "position": "rope",
        "tied_embeddings": True,
        "why": (
            "KV-head count of the 128k variant not confirmed (survey: GQA); Llama-style blocks, "
            "shared embeddings (Hu et al. 2024)"
        ),
    },
    "openbmb/MiniCPM3-4B": {
        "norm": "rmsnorm",
        "position": "rope",
        "why": (
            "multi-head latent attention (MLA): the KV cache stores a compressed latent, "
            "not per-head keys and values"
        ),
    },
    "google/recurrentgemma-2b": {
        "norm": "rmsnorm",
        "position": "rope",
        "tied_embeddings": True,
        "why": (
            "Griffin: recurrent blocks plus local attention over a 2048-token window; "
            "not a pure transformer"
        ),
    },
    "tensoropera/Fox-1-1.6B": {
        "norm": "rmsnorm",
        "position": "rope",
        "why": (
            "KV-head count and FFN width not confirmed; Llama-style decoder (RMSNorm, RoPE) per "
            "its model card"
        ),
    },
    "h2oai/h2o-danube3-500m-base": {
        "norm": "rmsnorm",
        "position": "rope",
        "why": "embedding tying not confirmed; Llama-style decoder (RMSNorm, RoPE)",
    },
    "TRI-ML/DCLM-1B": {
        "norm": "layernorm",
        "position": "rope",
        "why": (
            "open_lm checkpoint (no transformers config.json); "
            "open_lm blocks use a gain-only LayerNorm, RoPE and SwiGLU"
        ),
    },
}

# ------------------------------------------------------------------------ vocabularies of free text
ACTIVATIONS = {
    "relu": "relu",
    "gelu": "gelu",
    "gelu_new": "gelu_tanh",
    "gelu_pytorch_tanh": "gelu_tanh",
    "gelu_tanh": "gelu_tanh",
    "silu": "silu",
    "swish": "silu",
}
DATA_FAMILIES = [  # (regex on the survey's TrainingDatasets text, canonical family)
    (r"closed|cloed", "closed"),
    (r"roberta", "RoBERTa corpus"),
    (r"\bpile\b", "The Pile"),
    (r"reddit", "Reddit"),
    (r"wudao", "ROOTS"),
    (r"refinedweb", "RefinedWeb"),
    (r"redpajama", "RedPajama"),
    (r"slimpajama", "SlimPajama"),
    (r"starcoder", "StarCoder data"),
    (r"culturax", "CulturaX"),
    (r"dolma", "Dolma"),
    (r"fineweb-edu", "FineWeb-Edu"),
    (r"python-edu", "Python-Edu"),
    (r"cosmopedia", "Cosmopedia"),
    (r"\bdclm\b", "DCLM-Baseline"),
    (r"webtext", "WebText"),
]
# BLOOM was trained on ROOTS (BigScience), not WuDaoCorpora as the survey's row says: mapped above.


def _num(s):
    """A survey string as a float; '', 'None', '-' -> nan."""
    s = str(s).strip()
    if s in ("", "None", "-", "nan"):
        return math.nan
    return float(s)


def parse_params(s: str) -> float:
    """'125M' -> 0.125, '1.1B' -> 1.1 (billions)."""
    m = re.fullmatch(r"\s*([\d.]+)\s*([MB])\s*", s)
    if not m:
        raise ValueError(f"cannot read parameter count {s!r}")
    return float(m.group(1)) * (1e-3 if m.group(2) == "M" else 1.0)


def parse_tokens(s: str) -> tuple[float, float]:
    """Survey TrainingTokens text -> (tokens seen in training, dataset size in tokens).

    '3000B' -> (3e12, nan); '6T' -> (6e12, nan); '300B/207B Dataset' -> (3e11, 2.07e11);
    '180B Token Dataset' -> (1.8e11, 1.8e11); '350B Dataset & 0.5B Finetune' -> (3.5e11, 3.5e11)."""
    s = s.strip()
    if not s:
        return math.nan, math.nan
    nums = re.findall(r"([\d.]+)\s*([BT])", s)
    if not nums:
        raise ValueError(f"cannot read training tokens {s!r}")
    vals = [float(v) * (1e9 if u == "B" else 1e12) for v, u in nums]
    if "/" in s:
        return vals[0], vals[1]
    if "Dataset" in s:  # a single number that is the dataset size, seen once
        return vals[0], vals[0]
    return vals[0], math.nan


def parse_context(s: str) -> float:
    """'2048' -> 2048; '128k' -> 131072; '4096/128000' -> 4096 (the row is the 4k model)."""
    s = s.strip().lower()
    if not s:
        return math.nan
    if "/" in s:
        s = s.split("/")[0]
    if s.endswith("k"):
        return float(s[:-1]) * 1024
    return float(s)


def data_families(text: str) -> str:
    low = text.lower()
    fams = [fam for pat, fam in DATA_FAMILIES if re.search(pat, low)]
    return "; ".join(dict.fromkeys(fams))


# ----------------------------------------------------------------------- architecture from a config
def config_facts(cfg: dict) -> dict:
    """The table's architecture columns read from a config.json dict
    (via slmlab.zoo, one parser)."""
    sys.path.insert(0, str(REPO))
    from slmlab.zoo import arch_from_hf

    a = arch_from_hf(cfg)
    return {
        "model_type": a.model_type,
        "n_layer": a.n_layer,
        "d_model": a.d_model,
        "n_head": a.n_head,
        "n_kv_head": a.n_kv_head,
        "head_dim": a.head_dim,
        "d_ff": a.d_ff,
        "attention": a.attention,
        "ffn_type": "gated" if a.gated else "non-gated",
        "ffn_ratio": a.d_ff / a.d_model,
        "norm": "rmsnorm" if a.norm == "rmsnorm" else "layernorm",
        "position": a.pos,
        "tied_embeddings": a.tie_embeddings,
        "vocab_size": a.vocab_size,
        "context_length": a.context,
        "activation": a.activation,
    }


def build_zoo(survey: list[dict], configs: dict) -> list[dict]:
    rows = []
    for r in survey:
        model = r["Model"].strip()
        name, hub = NAME_FIXES.get(model, (model.split("/")[-1], model))
        hub = hub or model
        notes = []
        row = dict.fromkeys(ZOO_COLUMNS, "")
        org = r["affiliation"].strip()
        row.update(
            name=name,
            hub_id=hub,
            organisation=ORG_FIXES.get(org, org),
            release=r["ReleaseDate"].strip().replace(".", "-"),
            is_baseline="[For Baseline]" in model,
            instruct=r["Type"].strip().lower() == "instruct",
            params_b=parse_params(r["Parameters"]),
            n_layer=_num(r["LayerNumber"]),
            d_model=_num(r["HiddenSize"]),
            attention=r["AttentionType"].strip(),
            activation=ACTIVATIONS.get(r["Activation"].strip(), ""),
            vocab_size=_num(r["VocabularySize"]),
            context_length=parse_context(r["MaxContextWindow"]),
            data_families=data_families(r["TrainingDatasets"]),
            score_commonsense=round(_num(r["Commonsensereasoning"]), 6),
            score_problem_solving=round(_num(r["Problemsolving"]), 6),
            score_math=round(
                _num(r["Math"]) / 100.0, 6
            ),  # the survey gives Math in percent, the two others as fractions
            arch_notes="; ".join(
                x
                for x in (r["ArchitectureInnovation"].strip(), r["TrainingInnovations"].strip())
                if x
            ),
        )
        heads = r["HeadNum"].strip()
        if re.fullmatch(r"\d+", heads):
            row["n_head"] = int(heads)
        elif heads:
            row["arch_notes"] = "; ".join(
                x for x in (row["arch_notes"], f"{heads} query heads per layer") if x
            )
        ratio = _num(r["FFNratio"])
        row["ffn_ratio"] = ratio if ratio > 0 else math.nan  # OpenELM: 0 means "changes per layer"
        row["training_tokens"], row["dataset_tokens"] = parse_tokens(r["TrainingTokens"])
        row["data_open"] = "" if not row["data_families"] else row["data_families"] != "closed"
        if row["activation"] == "silu" or hub.startswith("google/"):  # SwiGLU, or Gemma's GeGLU
            row["ffn_type"] = "gated"
        elif row["activation"]:
            row["ffn_type"] = "non-gated"

        src = [f"survey table ({SURVEY_REF})"]
        if hub in configs:
            facts = config_facts(configs[hub])
            for col, val in facts.items():
                old = row[col]
                if col == "activation" and old:
                    # the survey's activation name is finer (gelu vs gelu_tanh) than the FFN kind
                    continue
                if (
                    col == "context_length"
                    and not (isinstance(old, float) and math.isnan(old))
                    and old != ""
                ):
                    # keep the survey's (trained) context; corrections below fix known defects
                    continue
                if col == "attention" and old and old != val:
                    notes.append(
                        f"attention: survey says {old}, config has {facts['n_kv_head']} KV heads "
                        f"for {facts['n_head']} heads -> {val}"
                    )
                if (
                    col == "ffn_ratio"
                    and not math.isnan(row["ffn_ratio"])
                    and abs(row["ffn_ratio"] - val) > 0.06
                ):
                    notes.append(
                        f"ffn_ratio: survey {row['ffn_ratio']:.3g}, config intermediate/hidden = "
                        f"{val:.3g}"
                    )
                if (
                    col in ("vocab_size", "n_layer", "d_model", "n_head")
                    and old != ""
                    and not (isinstance(old, float) and math.isnan(old))
                    and old != val
                ):
                    notes.append(f"{col}: survey {old:g}, config {val}")
                row[col] = val
            src.append(f"architecture: config.json of {hub} (data/zoo/hf_configs.json)")
            row["calc_note"] = ""
        else:
            extra = NO_CONFIG_FACTS.get(hub)
            if extra is None:
                raise SystemExit(
                    f"build_zoo: {hub} has neither a config in hf_configs.json nor an entry in "
                    "NO_CONFIG_FACTS"
                )
            for col in ("norm", "position", "tied_embeddings"):
                if col in extra:
                    row[col] = extra[col]
            if row["attention"] == "MHA" and row["n_head"] != "":
                row["n_kv_head"] = row["n_head"]
            elif row["attention"] == "MQA":
                row["n_kv_head"] = 1
            if row["n_head"] != "" and not math.isnan(row["d_model"]):
                row["head_dim"] = int(row["d_model"]) // int(row["n_head"])
            row["calc_note"] = extra["why"]
            src.append(f"norm/position/tying: {extra['why']}")
        for (h, col), (val, why) in CORRECTIONS.items():
            if h == hub:
                row[col] = val
                notes.append(f"{col}: {why}")
        if notes:
            src.append("corrections: " + " | ".join(notes))
        row["source"] = "; ".join(src)
        rows.append(row)
    rows.sort(key=lambda x: (x["release"], x["name"].lower()))
    return rows


# ----------------------------------------------------------------------------- on-device runs
RUN_ARCH = {  # survey run name -> (hub id of the architecture in hf_configs.json, note)
    "LLaMA 7B": ("luodian/llama-7b-hf", ""),
    "LLaMA 2 7B": ("NousResearch/Llama-2-7b-hf", ""),
    "Vicuna 7B": (
        "NousResearch/Llama-2-7b-hf",
        "vicuna-7B-v1.5 is a Llama-2-7B fine-tune (same architecture)",
    ),
    "Koala 7B": ("luodian/llama-7b-hf", "Koala-7B is a LLaMA-7B fine-tune (same architecture)"),
    "Pygmalion/Metharme 7B": (
        "NousResearch/Llama-2-7b-hf",
        "Pygmalion-2-7B is a Llama-2-7B fine-tune (same architecture)",
    ),
    "WizardLM 7B": (
        "luodian/llama-7b-hf",
        "WizardLM-7B-V1.0 is a LLaMA-7B fine-tune (one extra vocabulary token)",
    ),
    "Vigogne (French) 7B": (
        "mistralai/Mistral-7B-v0.1",
        "Vigostral-7B is a Mistral-7B fine-tune (same architecture)",
    ),
    "Baichuan 1-7B": ("baichuan-inc/Baichuan-7B", ""),
    "Baichuan 2-7B": ("baichuan-inc/Baichuan2-7B-Base", ""),
    "Bloom 7B": ("bigscience/bloom-7b1", ""),
    "Bloom 560m": ("bigscience/bloom-560m", ""),
    "Bloom 1.1B": ("bigscience/bloom-1b1", ""),
    "Yi models 6B": ("01-ai/Yi-6B", ""),
    "StableLM-3b-4e1t 3B": ("stabilityai/stablelm-3b-4e1t", ""),
    "Deepseek LLM 7B": ("deepseek-ai/deepseek-llm-7b-base", ""),
    "Qwen 1.5 0.5B": ("Qwen/Qwen1.5-0.5B", ""),
    "Qwen 1.5 1.8B": ("Qwen/Qwen1.5-1.8B", ""),
    "Qwen 1.5 4B": ("Qwen/Qwen1.5-4B", ""),
    "Qwen 1.5 7B": ("Qwen/Qwen1.5-7B", ""),
    "Qwen 1.8B": ("Qwen/Qwen-1_8B", ""),
    "Qwen 7B": ("Qwen/Qwen-7B", ""),
}


def parse_latency(s: str) -> tuple[float, float, float, float]:
    """'a/b/c/d' -> (first, tokens, ms per token, tokens per second)."""
    a, b, c, d = (float(x) for x in s.split("/"))
    return a, b, c, d


def build_runs(runs: list[dict], configs: dict) -> list[dict]:
    out = []
    for r in runs:
        name = re.sub(r"\s+", " ", r["name"]).strip()
        hub, note = RUN_ARCH.get(name, ("", "architecture not in data/zoo/hf_configs.json"))
        if hub and hub not in configs:
            raise SystemExit(
                f"build_runs: {name} maps to {hub}, which has no config in hf_configs.json"
            )
        _, p_tok, p_ms, p_tps = parse_latency(r["prefilling_latency"])
        first, d_tok, d_ms, d_tps = parse_latency(r["decoding_latency"])
        # data.json's decoding strings repeat tokens/s in the first field (not a total time):
        # check and drop it
        if abs(first - d_tps) > 0.02 or abs(1000.0 / d_ms - d_tps) > 0.02 * d_tps:
            raise SystemExit(
                f"build_runs: unexpected decoding_latency {r['decoding_latency']!r} for {name}"
            )
        perf = r.get("performance") or {}
        out.append(
            dict(
                model=name,
                arch_hub_id=hub,
                arch_note=note,
                device=r["device"].strip(),
                quantization=r["quantization"].strip(),
                runtime=", ".join(r.get("tags") or []),
                memory_gb=float(r["memory"]),
                prefill_tokens=p_tok,
                prefill_ms_per_token=p_ms,
                prefill_tok_s=p_tps,
                decode_tokens=d_tok,
                decode_ms_per_token=d_ms,
                decode_tok_s=d_tps,
                score_winogrande=round(_num(perf.get("wino", "")) / 100, 6),
                score_hellaswag=round(_num(perf.get("hellaswag", "")) / 100, 6),
                score_mmlu=round(_num(perf.get("mmlu", "")) / 100, 6),
                source=f"survey on-device measurements, May 2024 ({SURVEY_REF}, data.json)",
            )
        )
    out.sort(key=lambda x: (x["model"].lower(), x["device"]))
    return out


# ----------------------------------------------------------------------------- writing
def _fmt(v):
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float):
        if math.isnan(v):
            return ""
        if v.is_integer() and abs(v) < 1e7:
            return str(int(v))
        return repr(v)
    return str(v)


def write_csv(path: Path, columns: list[str], rows: list[dict]) -> None:
    sys.path.insert(0, str(REPO))
    from slmlab.utils import atomic_write_text

    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(columns)
    for row in rows:
        w.writerow([_fmt(row[c]) for c in columns])
    atomic_write_text(path, buf.getvalue())


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0].replace("\n", " "))
    default = os.environ.get(
        "SLM_SURVEY_DIR", str(REPO.parent / "shared" / "reference" / "slm_survey")
    )
    ap.add_argument(
        "--survey", default=default, help="folder with the survey's SLM.json and data.json"
    )
    ap.add_argument("--out", default=str(HERE), help="output folder (default: data/zoo)")
    args = ap.parse_args(argv)
    survey_dir = Path(args.survey)
    for f in ("SLM.json", "data.json"):
        if not (survey_dir / f).is_file():
            raise SystemExit(
                f"build_zoo: {survey_dir / f} not found. Pass --survey DIR, the folder holding the "
                "survey's companion SLM.json and data.json (TinyLLMLeaderBoard@087631a)."
            )
    configs = {
        k: v
        for k, v in json.loads((HERE / "hf_configs.json").read_text(encoding="utf-8")).items()
        if not k.startswith("_")
    }
    zoo = build_zoo(json.loads((survey_dir / "SLM.json").read_text(encoding="utf-8")), configs)
    runs = build_runs(json.loads((survey_dir / "data.json").read_text(encoding="utf-8")), configs)
    out = Path(args.out)
    write_csv(out / "slm_zoo.csv", ZOO_COLUMNS, zoo)
    write_csv(out / "ondevice_runs.csv", RUN_COLUMNS, runs)
    print(
        f"wrote {len(zoo)} models to {out / 'slm_zoo.csv'} and {len(runs)} runs to "
        f"{out / 'ondevice_runs.csv'}"
    )


if __name__ == "__main__":
    main()
