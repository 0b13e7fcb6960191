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

Where an Arch is exactly a :class:`slmlab.model.TinyLMConfig` (Llama-style, GPT-2-style), the
estimators of :mod:`slmlab.model` are used (``num_params``, ``flops_per_token``,
``kv_cache_bytes_per_token``); the extra terms real models have (Qwen2's q/k/v-only biases,
Phi's parallel block with one norm and an LM-head bias, Gemma's head_dim, BLOOM's embedding
norm, OPT-350m's projected embeddings) are counted here, and the tests check that both agree
wherever both apply.
"""
from __future__ import annotations

import difflib
import json
import os
from dataclasses import asdict, dataclass
from functools import lru_cache
from pathlib import Path

import pandas as pd

from . import model as _model
from .model import TinyLMConfig
from .utils import data_dir

CHINCHILLA_TOKENS_PER_PARAM = 20.0  # Hoffmann et al. 2022: compute-optimal ~20 training tokens per parameter

# Bits per weight. fp16/int8/int4 are the bare number formats; llama.cpp's q8_0 and q4_0 store blocks of
# 32 weights with one fp16 scale, i.e. 8 + 16/32 = 8.5 and 4 + 16/32 = 4.5 bits per weight.
BITS = {"fp32": 32.0, "fp16": 16.0, "bf16": 16.0, "int8": 8.0, "q8_0": 8.5, "int4": 4.0, "q4_0": 4.5}

GB = 1e9  # decimal gigabytes, like the device specifications (GB/s)


# ----------------------------------------------------------------------------- devices
@dataclass(frozen=True)
class Device:
    name: str
    bandwidth_gbs: float  # peak DRAM bandwidth, GB/s (1e9 bytes per second)
    memory_gb: float  # DRAM size, GB
    kind: str = ""


DEVICES: dict[str, Device] = {d.name: d for d in [
    # NVIDIA Jetson Orin NX 16GB module datasheet: 128-bit LPDDR5, 102.4 GB/s. (Lu et al. measured on it.)
    Device("Jetson Orin NX 16GB", 102.4, 16, "edge board"),
    # Meizu 18 Pro: Snapdragon 888, LPDDR5-6400 on 4x16-bit channels = 6400e6 * 8 B = 51.2 GB/s; 8 GB base model.
    Device("Meizu 18 Pro", 51.2, 8, "phone"),
    # Xiaomi 14: Snapdragon 8 Gen 3, LPDDR5X-9600 on 4x16-bit channels = 76.8 GB/s; 8 GB base model.
    Device("Xiaomi 14", 76.8, 8, "phone"),
    # Xiaomi 12S: Snapdragon 8+ Gen 1, LPDDR5-6400, 51.2 GB/s; 8 GB base model.
    Device("Xiaomi 12S", 51.2, 8, "phone"),
    # Pixel 7 Pro: Google Tensor G2, LPDDR5 51.2 GB/s; 12 GB.
    Device("Pixel 7 Pro", 51.2, 12, "phone"),
    # Raspberry Pi 5 (8 GB): 32-bit LPDDR4X-4267 = 4267e6 * 4 B = 17.1 GB/s.
    Device("Raspberry Pi 5 8GB", 17.1, 8, "single-board computer"),
    # A typical laptop: dual-channel DDR4-3200 = 2 * 3200e6 * 8 B = 51.2 GB/s; 16 GB.
    Device("Laptop (DDR4-3200, 2 channels)", 51.2, 16, "laptop"),
    # Apple M2 (MacBook Air): Apple's specification, 100 GB/s unified memory; 16 GB configuration.
    Device("Apple M2, 16GB", 100.0, 16, "laptop"),
    # NVIDIA GeForce RTX 4090: 384-bit GDDR6X at 21 Gb/s = 1008 GB/s; 24 GB.
    Device("RTX 4090", 1008.0, 24, "desktop GPU"),
    # NVIDIA A100 80GB SXM datasheet: HBM2e, 2039 GB/s.
    Device("A100 80GB SXM", 2039.0, 80, "datacenter GPU"),
]}
# the phones of the survey's on-device runs, under the names data.json uses
_DEVICE_ALIASES = {"MEIZU 18Pro": "Meizu 18 Pro", "Pixel 7Pro": "Pixel 7 Pro"}


def get_device(device: str | Device) -> Device:
    """A device preset by name (case-insensitive; the survey's spellings work too)."""
    if isinstance(device, Device):
        return device
    name = _DEVICE_ALIASES.get(device, device)
    for key, d in DEVICES.items():
        if key.lower() == str(name).lower():
            return d
    close = difflib.get_close_matches(str(name), list(DEVICES), n=3, cutoff=0.3)
    raise KeyError(f"unknown device {device!r}. Presets: {list(DEVICES)}"
                   + (f"; did you mean {close}?" if close else "")
                   + " Or pass Device(name, bandwidth_gbs, memory_gb).")


# ----------------------------------------------------------------------------- the architecture record
NORM_PARAMS = {"rmsnorm": 1, "layernorm": 2, "layernorm_nobias": 1, "layernorm_noparam": 0}  # per channel


@dataclass(frozen=True)
class Arch:
    """What fixes the size of a decoder-only transformer (the fields a config.json spreads over many names)."""

    name: str
    model_type: str
    vocab_size: int
    n_layer: int
    d_model: int
    n_head: int
    n_kv_head: int
    head_dim: int
    d_ff: int  # width of each FFN up-projection (for a gated FFN: of gate and of up)
    ffn: str  # "swiglu" | "geglu" (gated, 3 matrices) | "gelu" | "relu" (2 matrices)
    norm: str  # a key of NORM_PARAMS
    pos: str  # "rope" | "learned" | "alibi" | "none"
    context: int  # positions the model was built for
    tie_embeddings: bool
    n_positions: int = 0  # rows of a learned position table (OPT keeps 2 extra)
    qkv_bias: bool = False
    o_bias: bool = False
    mlp_bias: bool = False
    lm_head_bias: bool = False
    norms_per_layer: int = 2  # 1 for a parallel block with one shared norm (Phi), 4 for Gemma 2
    final_norm: bool = True
    embed_norm: bool = False  # BLOOM normalizes the embeddings
    embed_dim: int = 0  # OPT-350m: embeddings of width 512 projected to d_model (0: same as d_model)

    @property
    def gated(self) -> bool:
        return self.ffn in ("swiglu", "geglu")

    @property
    def attention(self) -> str:
        if self.n_kv_head == self.n_head:
            return "MHA"
        return "MQA" if self.n_kv_head == 1 else "GQA"

    @property
    def activation(self) -> str:
        return {"swiglu": "silu", "geglu": "gelu_tanh"}.get(self.ffn, self.ffn)

    @classmethod
    def from_tinylm(cls, c: TinyLMConfig, name: str = "TinyLM") -> "Arch":
        norm = "rmsnorm" if c.norm == "rmsnorm" else ("layernorm" if c.bias else "layernorm_nobias")
        return cls(name=name, model_type="tinylm", vocab_size=c.vocab_size, n_layer=c.n_layer, d_model=c.d_model,
                   n_head=c.n_head, n_kv_head=c.n_kv_head, head_dim=c.head_dim, d_ff=c.hidden_dim, ffn=c.ffn,
                   norm=norm, pos=c.pos, context=c.block_size, tie_embeddings=c.tie_embeddings,
                   n_positions=c.block_size if c.pos == "learned" else 0, qkv_bias=c.bias, o_bias=c.bias,
                   mlp_bias=c.bias)

    def to_tinylm(self) -> TinyLMConfig | None:
        """The TinyLMConfig with exactly these weights' shapes, or None when TinyLM cannot express it."""
        same_bias = self.qkv_bias == self.o_bias == self.mlp_bias
        ok = (same_bias and self.head_dim * self.n_head == self.d_model and self.ffn in ("swiglu", "gelu", "relu")
              and self.norms_per_layer == 2 and self.final_norm and not self.embed_norm and not self.embed_dim
              and not self.lm_head_bias and self.pos in ("rope", "learned", "none")
              and (self.pos != "learned" or self.n_positions == self.context)
              and self.norm in ("rmsnorm", "layernorm", "layernorm_nobias")
              and (self.norm != "layernorm" or self.mlp_bias) and (self.norm != "layernorm_nobias" or not self.mlp_bias)
              and (self.pos != "rope" or self.head_dim % 2 == 0))
        if not ok:
            return None
        return TinyLMConfig(vocab_size=self.vocab_size, block_size=self.context, n_layer=self.n_layer,
                            n_head=self.n_head, n_kv_head=self.n_kv_head, d_model=self.d_model, ffn=self.ffn,
                            d_ff=self.d_ff, norm="rmsnorm" if self.norm == "rmsnorm" else "layernorm",
                            pos=self.pos, tie_embeddings=self.tie_embeddings, bias=self.mlp_bias)

    def to_dict(self) -> dict:
        return asdict(self)


# ----------------------------------------------------------------------------- reading config.json
def _load_config_dict(config) -> dict:
    """A config dict from a dict, a config.json path, a save_pretrained directory, or a hub id (online)."""
    if isinstance(config, dict):
        return config
    if hasattr(config, "to_dict"):  # a transformers PretrainedConfig
        return config.to_dict()
    p = Path(config)
    if p.is_file():
        return json.loads(p.read_text(encoding="utf-8"))
    from .hf import resolve_hf_path  # a directory must hold config.json; a hub id needs the network

    src = resolve_hf_path(config)
    if Path(src).is_dir():
        return json.loads((Path(src) / "config.json").read_text(encoding="utf-8"))
    from huggingface_hub import hf_hub_download  # online: fetch only the config

    return json.loads(Path(hf_hub_download(str(config), "config.json")).read_text(encoding="utf-8"))


def _get(d: dict, *keys, default=None):
    for k in keys:
        if d.get(k) is not None:
            return d[k]
    return default


def _need(d: dict, *keys):
    v = _get(d, *keys)
    if v is None:
        raise ValueError(f"config has none of {keys}; is it a decoder-only language model's config.json?")
    return v


_GELU = ("gelu", "gelu_new", "gelu_pytorch_tanh", "gelu_fast", "gelu_tanh")


def _ffn_kind(act: str, gated: bool) -> str:
    if act in ("silu", "swish"):
        return "swiglu" if gated else "silu"
    if act in _GELU:
        return "geglu" if gated else "gelu"
    if act == "relu" and not gated:
        return "relu"
    raise ValueError(f"activation {act!r} is not one the calculator knows (silu, gelu variants, relu)")


# model_type -> family defaults. Llama-style: RMSNorm, gated FFN, RoPE, no biases unless the config says so.
_LLAMA_STYLE = {
    "llama": {}, "mistral": {}, "phi3": {}, "baichuan": {}, "minicpm": {},
    "qwen2": {"qkv_bias": True},  # Qwen2 puts biases on q, k, v (not o) without a config key
    "olmo": {"norm": "layernorm_noparam"},  # OLMo-1: LayerNorm without any parameters
    "stablelm": {"norm": "layernorm"},  # StableLM keeps LayerNorm (with bias); qkv bias by use_qkv_bias
    "gemma": {"gated_act": "gelu_pytorch_tanh", "tie": True},
    "gemma2": {"gated_act": "gelu_pytorch_tanh", "tie": True, "norms_per_layer": 4},
    "qwen": {"qkv_bias": True},  # Qwen-1: c_attn has a bias; intermediate_size counts both gated halves
}
_OTHER = ("gpt2", "opt", "gpt_neox", "bloom", "phi")
SUPPORTED_MODEL_TYPES = tuple(_LLAMA_STYLE) + _OTHER


def arch_from_hf(config, name: str | None = None) -> Arch:
    """An Arch from a transformers config (dict, config.json path, save_pretrained dir, or hub id when online).

    Offline, a hub id raises ``slmlab.hf.OfflineError`` at once (no download is attempted)."""
    d = _load_config_dict(config)
    mt = d.get("model_type")
    name = name or d.get("_name_or_path") or (str(config) if not isinstance(config, dict) else mt) or "model"
    if mt in _LLAMA_STYLE:
        f = _LLAMA_STYLE[mt]
        dm, H = _need(d, "hidden_size"), _need(d, "num_attention_heads")
        hd = _get(d, "head_dim", "kv_channels", default=dm // H)
        d_ff = _need(d, "intermediate_size")
        if mt == "qwen":
            d_ff //= 2  # Qwen-1's w1 and w2 are each intermediate_size / 2 wide
        act = f.get("gated_act") or _get(d, "hidden_activation", "hidden_act", default="silu")
        if mt == "gemma2" or mt == "gemma":
            act = _get(d, "hidden_activation", default=f["gated_act"])
        attn_bias = bool(d.get("attention_bias", False))
        qkv_bias = bool(f.get("qkv_bias", False) or attn_bias or d.get("use_qkv_bias", False))
        ctx = _get(d, "seq_length", "max_position_embeddings", default=2048) if mt == "qwen" else \
            _get(d, "max_position_embeddings", default=2048)
        return Arch(
            name=name, model_type=mt, vocab_size=_need(d, "vocab_size"), n_layer=_need(d, "num_hidden_layers"),
            d_model=dm, n_head=H, n_kv_head=_get(d, "num_key_value_heads", default=H), head_dim=hd, d_ff=d_ff,
            ffn=_ffn_kind(act, gated=True), norm=f.get("norm", "rmsnorm"), pos="rope", context=ctx,
            tie_embeddings=bool(d.get("tie_word_embeddings", f.get("tie", False))),
            qkv_bias=qkv_bias, o_bias=attn_bias, mlp_bias=bool(d.get("mlp_bias", False)),
            norms_per_layer=f.get("norms_per_layer", 2),
        )
    if mt == "gpt2":
        dm, H = _need(d, "n_embd"), _need(d, "n_head")
        npos = _get(d, "n_positions", default=1024)
        return Arch(name=name, model_type=mt, vocab_size=_need(d, "vocab_size"), n_layer=_need(d, "n_layer"),
                    d_model=dm, n_head=H, n_kv_head=H, head_dim=dm // H, d_ff=_get(d, "n_inner", default=4 * dm),
                    ffn=_ffn_kind(_get(d, "activation_function", default="gelu_new"), gated=False),
                    norm="layernorm", pos="learned", context=npos, n_positions=npos, tie_embeddings=True,
                    qkv_bias=True, o_bias=True, mlp_bias=True)
    if mt == "opt":
        dm, H = _need(d, "hidden_size"), _need(d, "num_attention_heads")
        ctx = _get(d, "max_position_embeddings", default=2048)
        proj = _get(d, "word_embed_proj_dim", default=dm)
        bias = bool(d.get("enable_bias", True))
        pre = bool(d.get("do_layer_norm_before", True))
        return Arch(name=name, model_type=mt, vocab_size=_need(d, "vocab_size"),
                    n_layer=_need(d, "num_hidden_layers"), d_model=dm, n_head=H, n_kv_head=H, head_dim=dm // H,
                    d_ff=_need(d, "ffn_dim"), ffn=_ffn_kind(_get(d, "activation_function", default="relu"), False),
                    norm="layernorm", pos="learned", context=ctx, n_positions=ctx + 2,  # OPT's offset of 2
                    tie_embeddings=bool(d.get("tie_word_embeddings", True)), qkv_bias=bias, o_bias=bias,
                    mlp_bias=bias, final_norm=pre and not d.get("_remove_final_layer_norm", False),
                    embed_dim=proj if proj != dm else 0)
    if mt == "gpt_neox":
        dm, H = _need(d, "hidden_size"), _need(d, "num_attention_heads")
        return Arch(name=name, model_type=mt, vocab_size=_need(d, "vocab_size"),
                    n_layer=_need(d, "num_hidden_layers"), d_model=dm, n_head=H, n_kv_head=H, head_dim=dm // H,
                    d_ff=_need(d, "intermediate_size"), ffn=_ffn_kind(_get(d, "hidden_act", default="gelu"), False),
                    norm="layernorm", pos="rope", context=_get(d, "max_position_embeddings", default=2048),
                    tie_embeddings=bool(d.get("tie_word_embeddings", False)), qkv_bias=True, o_bias=True,
                    mlp_bias=True)
    if mt == "bloom":
        dm, H = _need(d, "hidden_size", "n_embed"), _need(d, "n_head", "num_attention_heads")
        return Arch(name=name, model_type=mt, vocab_size=_need(d, "vocab_size"),
                    n_layer=_need(d, "n_layer", "num_hidden_layers"), d_model=dm, n_head=H, n_kv_head=H,
                    head_dim=dm // H, d_ff=4 * dm, ffn="gelu", norm="layernorm", pos="alibi",
                    context=_get(d, "seq_length", default=2048), tie_embeddings=bool(d.get("tie_word_embeddings", True)),
                    qkv_bias=True, o_bias=True, mlp_bias=True, embed_norm=True)
    if mt == "phi":
        dm, H = _need(d, "hidden_size"), _need(d, "num_attention_heads")
        return Arch(name=name, model_type=mt, vocab_size=_need(d, "vocab_size"),
                    n_layer=_need(d, "num_hidden_layers"), d_model=dm, n_head=H,
                    n_kv_head=_get(d, "num_key_value_heads", default=H), head_dim=dm // H,
                    d_ff=_need(d, "intermediate_size"), ffn=_ffn_kind(_get(d, "hidden_act", default="gelu_new"), False),
                    norm="layernorm", pos="rope", context=_get(d, "max_position_embeddings", default=2048),
                    tie_embeddings=bool(d.get("tie_word_embeddings", False)), qkv_bias=True, o_bias=True,
                    mlp_bias=True, lm_head_bias=True, norms_per_layer=1)  # one LayerNorm feeds attention and MLP
    raise ValueError(
        f"model_type {mt!r} is not one the calculator reads (known: {', '.join(SUPPORTED_MODEL_TYPES)}). "
        "If it is a Llama-style decoder (RMSNorm, SwiGLU, RoPE), set config['model_type'] = 'llama'."
    )


# ----------------------------------------------------------------------------- the tables
def zoo_dir() -> Path:
    return data_dir() / "zoo"


_BOOL_COLUMNS = ("is_baseline", "instruct", "tied_embeddings", "data_open")
_INT_COLUMNS = ("n_layer", "d_model", "n_head", "n_kv_head", "head_dim", "d_ff", "vocab_size", "context_length")


def load_zoo(path: str | os.PathLike | None = None) -> pd.DataFrame:
    """The cleaned SLM table as a DataFrame (one row per model; units in data/zoo/README.md).

    Adds two derived columns: ``released`` (the first day of the release month, a Timestamp)
    and ``half`` (e.g. "2023H2")."""
    path = Path(path) if path is not None else zoo_dir() / "slm_zoo.csv"
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: the zoo table ships in data/zoo/ (rebuild it with "
                                "`python data/zoo/build_zoo.py`), or set $SLMLAB_DATA to the folder holding zoo/.")
    df = pd.read_csv(path, keep_default_na=False, na_values=[""])
    for c in _BOOL_COLUMNS:
        df[c] = df[c].map({True: True, False: False, "true": True, "false": False}).astype("boolean")
    for c in _INT_COLUMNS:
        df[c] = df[c].astype("Int64")
    df["released"] = pd.to_datetime(df["release"], format="%Y-%m")
    df["half"] = df["released"].dt.year.astype(str) + "H" + ((df["released"].dt.month > 6) + 1).astype(str)
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
        + " For another model pass its config.json (a dict or a path), or its hub id 'org/name' when online."
    )


def get_arch(model) -> Arch:
    """An Arch from a zoo name or hub id, a config dict/path, a hub id (online), a TinyLMConfig or an Arch."""
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
            hint = f" Models in the zoo table with similar names: {', '.join(close)}." if close else ""
            raise OfflineError(f"{e}{hint}") from e
    cfg = load_configs().get(row["hub_id"])
    if cfg is None:
        raise ValueError(f"{row['name']}: the calculator has no uniform config for it ({row['calc_note']}). "
                         "Pass its config.json instead if you have one.")
    return arch_from_hf(cfg, name=row["name"])


# ----------------------------------------------------------------------------- the derivations
def param_breakdown(model) -> dict[str, int]:
    """Parameters per component: embeddings (tokens, learned positions, embedding norm/projections),
    attention, ffn, norms, lm_head (0 when tied to the embeddings), total."""
    a = get_arch(model)
    d, e = a.d_model, a.embed_dim or a.d_model
    q_out, kv_out = a.n_head * a.head_dim, a.n_kv_head * a.head_dim
    norm = NORM_PARAMS[a.norm] * d
    emb = a.vocab_size * e + a.n_positions * d * (a.pos == "learned") + norm * a.embed_norm \
        + 2 * e * d * bool(a.embed_dim)
    attn = d * q_out + 2 * d * kv_out + q_out * d + (q_out + 2 * kv_out) * a.qkv_bias + d * a.o_bias
    n_in = 2 if a.gated else 1
    ffn = (n_in + 1) * d * a.d_ff + (n_in * a.d_ff + d) * a.mlp_bias
    norms = a.n_layer * a.norms_per_layer * norm + norm * a.final_norm
    head = 0 if a.tie_embeddings else a.vocab_size * e + a.vocab_size * a.lm_head_bias
    out = {"embeddings": emb, "attention": a.n_layer * attn, "ffn": a.n_layer * ffn, "norms": norms, "lm_head": head}
    out["total"] = sum(out.values())
    return out


def num_params(model, non_embedding: bool = False) -> int:
    """Total parameters (or without the embedding tables); slmlab.model.num_params where it applies."""
    a = get_arch(model)
    cfg = a.to_tinylm()
    if cfg is not None:
        return _model.num_params(cfg, non_embedding=non_embedding)
    b = param_breakdown(a)
    return b["total"] - (b["embeddings"] + b["lm_head"] if non_embedding else 0)


def bits_of(bits: float | str) -> float:
    if isinstance(bits, str):
        if bits.lower() not in BITS:
            raise ValueError(f"unknown precision {bits!r}; use a number of bits or one of {list(BITS)}")
        return BITS[bits.lower()]
    if not bits > 0:
        raise ValueError(f"bits must be positive, got {bits}")
    return float(bits)


def weight_bytes(model, bits: float | str = "fp16") -> int:
    """Bytes of all weights at ``bits`` per weight (e.g. 16, "int8", "int4", "q4_0")."""
    return int(num_params(model) * bits_of(bits) / 8)


def decode_weight_params(model) -> int:
    """Weights read to decode one token: every layer, the final norm and the LM head matrix; of the
    embedding table only one row (a lookup), unless it is tied to the LM head (then it is read whole)."""
    a = get_arch(model)
    b = param_breakdown(a)
    head_matrix = a.vocab_size * (a.embed_dim or a.d_model)
    projections = 2 * (a.embed_dim or 0) * a.d_model  # OPT-350m's project_in / project_out are used per token
    return b["total"] - b["embeddings"] + (head_matrix if a.tie_embeddings else 0) + projections


def kv_cache_bytes_per_token(model, bits: float | str = "fp16") -> int:
    """Keys and values of every layer for one token: 2 * n_layer * n_kv_head * head_dim values
    (slmlab.model.kv_cache_bytes_per_token, which reads exactly these three fields)."""
    return _model.kv_cache_bytes_per_token(get_arch(model), bits_of(bits))


def kv_cache_bytes(model, context: int, bits: float | str = "fp16", batch: int = 1) -> int:
    """KV-cache bytes for ``context`` tokens (and ``batch`` sequences)."""
    if context < 0 or batch < 1:
        raise ValueError(f"context must be >= 0 and batch >= 1, got context={context}, batch={batch}")
    return kv_cache_bytes_per_token(model, bits) * int(context) * int(batch)


def flops_per_token(model, context: int | None = None) -> int:
    """Forward matmul FLOPs per token at ``context`` tokens of attention (Kaplan et al.): 2 per weight
    used (all layers and the LM head, not the embedding lookup) + 2 * n_layer * context * attention width."""
    a = get_arch(model)
    T = a.context if context is None else int(context)
    cfg = a.to_tinylm()
    if cfg is not None:
        return _model.flops_per_token(cfg, seq_len=T)
    return _flops_general(a, T)


def _flops_general(a: Arch, T: int) -> int:
    """slmlab.model.flops_per_token's formula with the extra terms of real models (tests check they agree)."""
    b = param_breakdown(a)
    non_embedding = b["total"] - b["embeddings"] - b["lm_head"]
    head = a.vocab_size * (a.embed_dim or a.d_model)
    projections = 2 * (a.embed_dim or 0) * a.d_model
    return 2 * (non_embedding + head + projections) + 2 * a.n_layer * T * a.n_head * a.head_dim


def tokens_per_param(training_tokens: float, params: float) -> float:
    """Training tokens per parameter; compare with CHINCHILLA_TOKENS_PER_PARAM (~20)."""
    return float(training_tokens) / float(params)


def decode_bytes_per_token(model, context: int, bits: float | str = "int4", kv_bits: float | str = "fp16") -> int:
    """Bytes moved from memory to decode one token with ``context`` tokens already cached."""
    return int(decode_weight_params(model) * bits_of(bits) / 8) + kv_cache_bytes(model, context, kv_bits)


def decode_tokens_per_s(model, device: str | Device, context: int = 2048, bits: float | str = "int4",
                        kv_bits: float | str = "fp16") -> float:
    """Roofline upper bound on decode speed: decoding one token (batch 1) streams every weight it uses
    and the whole KV cache from memory once, so tokens/s <= bandwidth / bytes per token.
    Real runtimes reach a fraction of it (compute, dequantization, caches, scheduling)."""
    dev = get_device(device)
    return dev.bandwidth_gbs * GB / decode_bytes_per_token(model, context, bits, kv_bits)


def estimate(model, context: int = 2048, device: str | Device | None = None, bits: float | str = "int4",
             kv_bits: float | str = "fp16", training_tokens: float | None = None) -> dict:
    """Everything the chapter derives for one model, as a flat dict (numbers in parameters, bytes, FLOPs)."""
    a = get_arch(model)
    b = param_breakdown(a)
    out = {"name": a.name, "attention": a.attention, "params": num_params(a),
           **{f"params_{k}": v for k, v in b.items() if k != "total"},
           "weights_fp16_bytes": weight_bytes(a, "fp16"), "weights_int8_bytes": weight_bytes(a, "int8"),
           "weights_int4_bytes": weight_bytes(a, "int4"),
           "kv_bytes_per_token": kv_cache_bytes_per_token(a, kv_bits), "context": context,
           "kv_bytes": kv_cache_bytes(a, context, kv_bits), "flops_per_token": flops_per_token(a, context)}
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


def memory_table(models, device: str | Device = "Meizu 18 Pro", bits: float | str = "int4", context: int = 2048,
                 kv_bits: float | str = "fp16") -> pd.DataFrame:
    """The explorer's table: memory breakdown (GB) and roofline decode speed of ``models`` on ``device``."""
    dev = get_device(device)
    w = bits_of(bits) / 8
    rows = []
    for m in ([models] if isinstance(models, (str, Arch, dict)) else models):
        a = get_arch(m)
        b = param_breakdown(a)
        kv = kv_cache_bytes(a, context, kv_bits) / GB
        weights = weight_bytes(a, bits) / GB
        rows.append({
            "model": a.name, "attention": a.attention, "params (B)": num_params(a) / 1e9,
            "embeddings (GB)": b["embeddings"] * w / GB, "attention (GB)": b["attention"] * w / GB,
            "FFN (GB)": b["ffn"] * w / GB, "LM head (GB)": b["lm_head"] * w / GB,
            "weights (GB)": weights, "KV cache (GB)": kv, "total (GB)": weights + kv,
            "fits": weights + kv <= dev.memory_gb,
            "decode tok/s (bound)": decode_tokens_per_s(a, dev, context, bits, kv_bits),
        })
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
            out.update(params_calc=n, params_rel_diff=n / (r["params_b"] * 1e9) - 1,
                       kv_bytes_per_token=kv_cache_bytes_per_token(a, "fp16"),
                       kv_mb_at_context=kv_cache_bytes(a, context, "fp16") / 1e6,
                       embedding_share=(param_breakdown(a)["embeddings"] + param_breakdown(a)["lm_head"]) / n,
                       lm_head_decode_share=head / decode_weight_params(a))
        if not pd.isna(r["training_tokens"]):
            out["tokens_per_param"] = tokens_per_param(r["training_tokens"], out.get("params_calc", r["params_b"] * 1e9))
        rows.append(out)
    return zoo[["name"]].merge(pd.DataFrame(rows), on="name", how="left")


def ondevice_comparison(runs: pd.DataFrame | None = None, context: int = 512, bits: float | str = "q4_0",
                        kv_bits: float | str = "fp16") -> pd.DataFrame:
    """The calculator next to the survey's llama.cpp INT4 runs: predicted memory (weights at ``bits`` +
    KV cache for ``context`` tokens) vs measured, and roofline decode speed vs measured.

    Assumptions (state them when you quote the numbers): q4_0 = 4.5 bits per weight; the KV cache is
    fp16 and sized for llama.cpp's default context of 512 tokens; measured memory is in GB as data.json says."""
    runs = load_ondevice_runs() if runs is None else runs
    configs = load_configs()
    rows = []
    for _, r in runs[runs["arch_hub_id"].notna()].iterrows():
        a = arch_from_hf(configs[r["arch_hub_id"]], name=r["arch_hub_id"])
        weights = weight_bytes(a, bits) / GB
        kv = kv_cache_bytes(a, context, kv_bits) / GB
        bound = decode_tokens_per_s(a, r["device"], context=context, bits=bits, kv_bits=kv_bits)
        rows.append({"model": r["model"], "device": r["device"], "vocab_size": a.vocab_size,
                     "params (B)": num_params(a) / 1e9, "weights (GB)": weights, "KV (GB)": kv,
                     "predicted (GB)": weights + kv, "measured (GB)": r["memory_gb"],
                     "measured / predicted": r["memory_gb"] / (weights + kv),
                     "unexplained (GB)": r["memory_gb"] - (weights + kv),
                     "decode bound (tok/s)": bound, "decode measured (tok/s)": r["decode_tok_s"],
                     "fraction of bound": r["decode_tok_s"] / bound})
    return pd.DataFrame(rows)


def show_source(obj) -> None:
    """Print the source of a slmlab function (the code a notebook shows is the code that runs)."""
    import inspect

    print(inspect.getsource(obj))


__all__ = [
    "Arch", "Device", "DEVICES", "BITS", "CHINCHILLA_TOKENS_PER_PARAM", "UnknownModelError", "load_zoo",
    "load_ondevice_runs", "load_runtime_findings", "load_configs", "find_model", "get_arch", "get_device",
    "arch_from_hf", "param_breakdown", "num_params", "weight_bytes", "decode_weight_params",
    "kv_cache_bytes_per_token", "kv_cache_bytes", "flops_per_token", "tokens_per_param",
    "decode_bytes_per_token", "decode_tokens_per_s", "estimate", "memory_table", "derive_zoo",
    "ondevice_comparison", "bits_of",
]
