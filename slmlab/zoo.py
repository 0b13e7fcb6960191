"""The SLM landscape as data: the model-zoo table and a calculator for size, memory and speed.

``load_zoo()`` reads ``data/zoo/slm_zoo.csv``, the project's cleaned table of the open SLMs
studied by Lu et al. (arXiv 2409.15790). The calculator works on an :class:`Arch`: the few
numbers of a decoder-only transformer that fix its size. Get one from

* a row of the table:          ``get_arch("Qwen2-0.5B")``
* a transformers config.json:  ``arch_from_hf(dict | path | "org/name")`` (hub ids need a network)
* the project's own model:     ``Arch.from_tinylm(TinyLMConfig(...))``

and derive, with one formula each:

=============================  ===================================================================
``param_breakdown(arch)``      embeddings, attention, FFN, norms, LM head (tied or not), total
``weight_bytes(arch, "int4")`` weights at fp16 / int8 / int4 (or llama.cpp's q8_0 / q4_0)
``kv_cache_bytes(arch, T)``    keys and values of all layers for T tokens
``flops_per_token(arch, T)``   forward matmul FLOPs per token (Kaplan et al. convention)
``decode_tokens_per_s``        memory-bandwidth roofline: every decoded token streams the weights it
                               uses (all layers and the LM head) and the whole KV cache once
``tokens_per_param``           training tokens / parameters, vs Chinchilla's ~20
=============================  ===================================================================

The formulas are :mod:`slmlab.models.estimates`, the same ones TinyLM's own size is computed
with (they count the extra terms real models have: Qwen2's q/k/v-only biases, Phi's parallel
block with one norm and an LM-head bias, Gemma's head_dim, BLOOM's embedding norm, OPT-350m's
projected embeddings); the functions here take anything :func:`get_arch` reads — a zoo name, a
config.json, a TinyLMConfig or an Arch — and the tests check the counts against the tensors
transformers allocates.
"""

from __future__ import annotations

import difflib
import json
import os
from functools import lru_cache
from pathlib import Path

import pandas as pd

from .devices import DEVICES, GB, Device, get_device  # noqa: F401  (the calculator's devices)
from .hf_config import SUPPORTED_MODEL_TYPES as SUPPORTED_MODEL_TYPES  # config.json's families
from .hf_config import arch_from_hf
from .models import TinyLMConfig, estimates
from .models.estimates import BITS, NORM_PARAMS, Arch, bits_of  # noqa: F401  (part of the calculator)
from .utils import data_dir

# Hoffmann et al. 2022: compute-optimal ~20 training tokens per parameter
CHINCHILLA_TOKENS_PER_PARAM = 20.0


# ----------------------------------------------------------------------------- the tables
def zoo_dir() -> Path:
    return data_dir() / "zoo"


_BOOL_COLUMNS = ("is_baseline", "instruct", "tied_embeddings", "data_open")
_INT_COLUMNS = (
    "n_layer",
    "d_model",
    "n_head",
    "n_kv_head",
    "head_dim",
    "d_ff",
    "vocab_size",
    "context_length",
)


def load_zoo(path: str | os.PathLike | None = None) -> pd.DataFrame:
    """The cleaned SLM table as a DataFrame (one row per model; units in data/zoo/README.md).

    Adds two derived columns: ``released`` (the first day of the release month, a Timestamp)
    and ``half`` (e.g. "2023H2")."""
    path = Path(path) if path is not None else zoo_dir() / "slm_zoo.csv"
    if not path.is_file():
        raise FileNotFoundError(
            f"{path} not found: the zoo table ships in data/zoo/ (rebuild it with "
            "`python data/zoo/build_zoo.py`), or set $SLMLAB_DATA to the folder holding zoo/."
        )
    df = pd.read_csv(path, keep_default_na=False, na_values=[""])
    for c in _BOOL_COLUMNS:
        df[c] = (
            df[c].map({True: True, False: False, "true": True, "false": False}).astype("boolean")
        )
    for c in _INT_COLUMNS:
        df[c] = df[c].astype("Int64")
    df["released"] = pd.to_datetime(df["release"], format="%Y-%m")
    df["half"] = (
        df["released"].dt.year.astype(str) + "H" + ((df["released"].dt.month > 6) + 1).astype(str)
    )
    return df


def load_ondevice_runs(path: str | os.PathLike | None = None) -> pd.DataFrame:
    """The survey's llama.cpp INT4 runs on four phones (data/zoo/ondevice_runs.csv)."""
    path = Path(path) if path is not None else zoo_dir() / "ondevice_runs.csv"
    return pd.read_csv(path, keep_default_na=False, na_values=[""])


def load_runtime_findings(path: str | os.PathLike | None = None) -> pd.DataFrame:
    """Headline runtime numbers of the survey (data/zoo/survey_runtime_findings.csv)."""
    path = Path(path) if path is not None else zoo_dir() / "survey_runtime_findings.csv"
    return pd.read_csv(path, keep_default_na=False, na_values=[""])


@lru_cache(maxsize=4)
def _configs(path: str) -> dict:
    d = json.loads(Path(path).read_text(encoding="utf-8"))
    return {k: v for k, v in d.items() if not k.startswith("_")}


def load_configs() -> dict[str, dict]:
    """Hub id -> the architecture keys of its config.json (data/zoo/hf_configs.json)."""
    return dict(_configs(str(zoo_dir() / "hf_configs.json")))


class UnknownModelError(KeyError):
    def __str__(self):  # KeyError would print the message in quotes
        return str(self.args[0])


def _suggest(name: str, zoo: pd.DataFrame) -> list[str]:
    names = list(zoo["name"]) + list(zoo["hub_id"])
    lower = {n.lower(): n for n in names}
    close = difflib.get_close_matches(str(name).lower(), list(lower), n=4, cutoff=0.5)
    return list(dict.fromkeys(lower[c] for c in close))


def find_model(name: str, zoo: pd.DataFrame | None = None) -> pd.Series:
    """The table row whose name or hub id is ``name`` (case-insensitive)."""
    zoo = load_zoo() if zoo is None else zoo
    key = str(name).strip().lower()
    hit = zoo[(zoo["name"].str.lower() == key) | (zoo["hub_id"].str.lower() == key)]
    if len(hit):
        return hit.iloc[0]
    close = _suggest(name, zoo)
    raise UnknownModelError(
        f"{name!r} is not in the zoo table ({len(zoo)} models, data/zoo/slm_zoo.csv)."
        + (f" Did you mean {', '.join(repr(c) for c in close)}?" if close else "")
        + " For another model pass its config.json (a dict or a path), "
        "or its hub id 'org/name' when online."
    )


def get_arch(model) -> Arch:
    """An Arch from a zoo name or hub id, a config dict/path, a hub id (online),
    a TinyLMConfig or an Arch."""
    if isinstance(model, Arch):
        return model
    if isinstance(model, TinyLMConfig):
        return Arch.from_tinylm(model)
    if isinstance(model, dict) or hasattr(model, "to_dict"):
        return arch_from_hf(model)
    if Path(model).exists():
        return arch_from_hf(model)
    zoo = load_zoo()
    try:
        row = find_model(model, zoo)
    except UnknownModelError:
        if "/" not in str(model):
            raise
        from .hf import OfflineError

        try:  # not in the table: a hub id, read from the hub when online
            return arch_from_hf(model, name=str(model))
        except OfflineError as e:
            close = _suggest(model, zoo)
            hint = (
                f" Models in the zoo table with similar names: {', '.join(close)}." if close else ""
            )
            raise OfflineError(f"{e}{hint}") from e
    cfg = load_configs().get(row["hub_id"])
    if cfg is None:
        raise ValueError(
            f"{row['name']}: the calculator has no uniform config for it ({row['calc_note']}). "
            "Pass its config.json instead if you have one."
        )
    return arch_from_hf(cfg, name=row["name"])


# ----------------------------------------------------------------------------- the derivations
def param_breakdown(model) -> dict[str, int]:
    """Parameters per component (see :func:`slmlab.models.param_breakdown`) of any model
    :func:`get_arch` reads: a zoo name, a config, a TinyLMConfig or an Arch."""
    return estimates.param_breakdown(get_arch(model))


def num_params(model, non_embedding: bool = False) -> int:
    """Total parameters (or without embeddings and LM head): :func:`slmlab.models.num_params`."""
    return estimates.num_params(get_arch(model), non_embedding)


def weight_bytes(model, bits: float | str) -> int:
    """Bytes of all weights at ``bits`` per weight (e.g. 16, "int8", "int4", "q4_0")."""
    return estimates.weight_bytes(get_arch(model), bits)


def decode_weight_params(model) -> int:
    """Weights read to decode one token: :func:`slmlab.models.estimates.decode_weight_params`."""
    return estimates.decode_weight_params(get_arch(model))


def kv_cache_bytes_per_token(model, bits: float | str) -> int:
    """Keys and values of every layer for one token:
    :func:`slmlab.models.kv_cache_bytes_per_token`."""
    return estimates.kv_cache_bytes_per_token(get_arch(model), bits)


def kv_cache_bytes(model, context: int, bits: float | str, batch: int = 1) -> int:
    """KV-cache bytes for ``context`` tokens (and ``batch`` sequences)."""
    return estimates.kv_cache_bytes(get_arch(model), context, bits, batch)


def flops_per_token(model, context: int | None = None, training: bool = False) -> int:
    """Matmul FLOPs per token at ``context`` tokens: :func:`slmlab.models.flops_per_token`."""
    return estimates.flops_per_token(get_arch(model), context, training)


def tokens_per_param(training_tokens: float, params: float) -> float:
    """Training tokens per parameter; compare with CHINCHILLA_TOKENS_PER_PARAM (~20)."""
    return float(training_tokens) / float(params)


def decode_bytes_per_token(
    model, context: int, bits: float | str = "int4", kv_bits: float | str = "fp16"
) -> int:
    """Bytes moved from memory to decode one token with ``context`` tokens already cached."""
    return int(decode_weight_params(model) * bits_of(bits) / 8) + kv_cache_bytes(
        model, context, kv_bits
    )


def decode_tokens_per_s(
    model,
    device: str | Device,
    context: int = 2048,
    bits: float | str = "int4",
    kv_bits: float | str = "fp16",
) -> float:
    """Roofline upper bound on decode speed: decoding one token (batch 1) streams every weight it
    uses and the whole KV cache from memory once, so tokens/s <= bandwidth / bytes per token.
    Real runtimes reach a fraction of it (compute, dequantization, caches, scheduling)."""
    dev = get_device(device)
    return dev.bandwidth_gbs * GB / decode_bytes_per_token(model, context, bits, kv_bits)


def estimate(
    model,
    context: int = 2048,
    device: str | Device | None = None,
    bits: float | str = "int4",
    kv_bits: float | str = "fp16",
    training_tokens: float | None = None,
) -> dict:
    """Everything the chapter derives for one model,
    as a flat dict (numbers in parameters, bytes, FLOPs)."""
    a = get_arch(model)
    b = param_breakdown(a)
    out = {
        "name": a.name,
        "attention": a.attention,
        "params": num_params(a),
        **{f"params_{k}": v for k, v in b.items() if k != "total"},
        "weights_fp16_bytes": weight_bytes(a, "fp16"),
        "weights_int8_bytes": weight_bytes(a, "int8"),
        "weights_int4_bytes": weight_bytes(a, "int4"),
        "kv_bytes_per_token": kv_cache_bytes_per_token(a, kv_bits),
        "context": context,
        "kv_bytes": kv_cache_bytes(a, context, kv_bits),
        "flops_per_token": flops_per_token(a, context),
    }
    if training_tokens is None and isinstance(model, str):
        try:
            training_tokens = find_model(model)["training_tokens"]
        except UnknownModelError:
            training_tokens = None
    if training_tokens is not None and not pd.isna(training_tokens):
        out["tokens_per_param"] = tokens_per_param(training_tokens, out["params"])
    if device is not None:
        dev = get_device(device)
        out["device"] = dev.name
        out["decode_tok_s"] = decode_tokens_per_s(a, dev, context, bits, kv_bits)
        out["fits"] = (weight_bytes(a, bits) + out["kv_bytes"]) <= dev.memory_gb * GB
    return out


def memory_table(
    models,
    device: str | Device = "Meizu 18 Pro",
    bits: float | str = "int4",
    context: int = 2048,
    kv_bits: float | str = "fp16",
) -> pd.DataFrame:
    """The explorer's table: memory breakdown (GB) and roofline decode speed of ``models`` on
    ``device``."""
    dev = get_device(device)
    w = bits_of(bits) / 8
    rows = []
    for m in [models] if isinstance(models, (str, Arch, dict)) else models:
        a = get_arch(m)
        b = param_breakdown(a)
        kv = kv_cache_bytes(a, context, kv_bits) / GB
        weights = weight_bytes(a, bits) / GB
        rows.append(
            {
                "model": a.name,
                "attention": a.attention,
                "params (B)": num_params(a) / 1e9,
                "embeddings (GB)": b["embeddings"] * w / GB,
                "attention (GB)": b["attention"] * w / GB,
                "FFN (GB)": b["ffn"] * w / GB,
                "LM head (GB)": b["lm_head"] * w / GB,
                "weights (GB)": weights,
                "KV cache (GB)": kv,
                "total (GB)": weights + kv,
                "fits": weights + kv <= dev.memory_gb,
                "decode tok/s (bound)": decode_tokens_per_s(a, dev, context, bits, kv_bits),
            }
        )
    return pd.DataFrame(rows).set_index("model")


def derive_zoo(zoo: pd.DataFrame | None = None, context: int = 2048) -> pd.DataFrame:
    """Calculator columns for every table row that has a config (others get NaN): exact parameter
    count, its deviation from the stated size, KV bytes per token, LM-head share of decode bytes,
    tokens per parameter."""
    zoo = load_zoo() if zoo is None else zoo
    configs = load_configs()
    rows = []
    for _, r in zoo.iterrows():
        out = {"name": r["name"]}
        cfg = configs.get(r["hub_id"])
        if cfg is not None:
            a = arch_from_hf(cfg, name=r["name"])
            n = num_params(a)
            head = a.vocab_size * (a.embed_dim or a.d_model)
            out.update(
                params_calc=n,
                params_rel_diff=n / (r["params_b"] * 1e9) - 1,
                kv_bytes_per_token=kv_cache_bytes_per_token(a, "fp16"),
                kv_mb_at_context=kv_cache_bytes(a, context, "fp16") / 1e6,
                embedding_share=(param_breakdown(a)["embeddings"] + param_breakdown(a)["lm_head"])
                / n,
                lm_head_decode_share=head / decode_weight_params(a),
            )
        if not pd.isna(r["training_tokens"]):
            out["tokens_per_param"] = tokens_per_param(
                r["training_tokens"], out.get("params_calc", r["params_b"] * 1e9)
            )
        rows.append(out)
    return zoo[["name"]].merge(pd.DataFrame(rows), on="name", how="left")


def ondevice_comparison(
    runs: pd.DataFrame | None = None,
    context: int = 512,
    bits: float | str = "q4_0",
    kv_bits: float | str = "fp16",
) -> pd.DataFrame:
    """The calculator next to the survey's llama.cpp INT4 runs: predicted memory (weights at
    ``bits`` + KV cache for ``context`` tokens) vs measured, and roofline decode speed vs measured.

    Assumptions (state them when you quote the numbers): q4_0 = 4.5 bits per weight; the KV cache
    is fp16 and sized for llama.cpp's default context of 512 tokens; measured memory is in GB as
    data.json says."""
    runs = load_ondevice_runs() if runs is None else runs
    configs = load_configs()
    rows = []
    for _, r in runs[runs["arch_hub_id"].notna()].iterrows():
        a = arch_from_hf(configs[r["arch_hub_id"]], name=r["arch_hub_id"])
        weights = weight_bytes(a, bits) / GB
        kv = kv_cache_bytes(a, context, kv_bits) / GB
        bound = decode_tokens_per_s(a, r["device"], context=context, bits=bits, kv_bits=kv_bits)
        rows.append(
            {
                "model": r["model"],
                "device": r["device"],
                "vocab_size": a.vocab_size,
                "params (B)": num_params(a) / 1e9,
                "weights (GB)": weights,
                "KV (GB)": kv,
                "predicted (GB)": weights + kv,
                "measured (GB)": r["memory_gb"],
                "measured / predicted": r["memory_gb"] / (weights + kv),
                "unexplained (GB)": r["memory_gb"] - (weights + kv),
                "decode bound (tok/s)": bound,
                "decode measured (tok/s)": r["decode_tok_s"],
                "fraction of bound": r["decode_tok_s"] / bound,
            }
        )
    return pd.DataFrame(rows)


def show_source(obj) -> None:
    """Print the source of a slmlab function (the code a notebook shows is the code that runs)."""
    import inspect

    print(inspect.getsource(obj))


__all__ = [
    "CHINCHILLA_TOKENS_PER_PARAM",
    "UnknownModelError",
    "load_zoo",
    "load_ondevice_runs",
    "load_runtime_findings",
    "load_configs",
    "find_model",
    "get_arch",
    "arch_from_hf",
    "param_breakdown",
    "num_params",
    "weight_bytes",
    "decode_weight_params",
    "kv_cache_bytes_per_token",
    "kv_cache_bytes",
    "flops_per_token",
    "tokens_per_param",
    "decode_bytes_per_token",
    "decode_tokens_per_s",
    "estimate",
    "memory_table",
    "derive_zoo",
    "ondevice_comparison",
]
