"""An :class:`~slmlab.models.estimates.Arch` from a transformers config.json: the calculator's
reader of the ``model_type`` families it knows (``SUPPORTED_MODEL_TYPES``).

:mod:`slmlab.zoo` re-exports :func:`arch_from_hf` as part of its calculator."""

from __future__ import annotations

import json
from pathlib import Path

from .models.estimates import Arch


def _load_config_dict(config) -> dict:
    """A config dict from a dict, a config.json path, a save_pretrained directory, or a hub id
    (online)."""
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
        raise ValueError(
            f"config has none of {keys}; is it a decoder-only language model's config.json?"
        )
    return v


_GELU = ("gelu", "gelu_new", "gelu_pytorch_tanh", "gelu_fast", "gelu_tanh")


def _ffn_kind(act: str, gated: bool) -> str:
    if act in ("silu", "swish"):
        return "swiglu" if gated else "silu"
    if act in _GELU:
        return "geglu" if gated else "gelu"
    if act == "relu" and not gated:
        return "relu"
    raise ValueError(
        f"activation {act!r} is not one the calculator knows (silu, gelu variants, relu)"
    )


# model_type -> family defaults. Llama-style: RMSNorm, gated FFN, RoPE, no biases unless the config
# says so.
_LLAMA_STYLE = {
    "llama": {},
    "mistral": {},
    "phi3": {},
    "baichuan": {},
    "minicpm": {},
    "qwen2": {"qkv_bias": True},  # Qwen2 puts biases on q, k, v (not o) without a config key
    "olmo": {"norm": "layernorm_noparam"},  # OLMo-1: LayerNorm without any parameters
    # StableLM keeps LayerNorm (with bias); qkv bias by use_qkv_bias
    "stablelm": {"norm": "layernorm"},
    "gemma": {"gated_act": "gelu_pytorch_tanh", "tie": True},
    "gemma2": {"gated_act": "gelu_pytorch_tanh", "tie": True, "norms_per_layer": 4},
    # Qwen-1: c_attn has a bias; intermediate_size counts both gated halves
    "qwen": {"qkv_bias": True},
}
_OTHER = ("gpt2", "opt", "gpt_neox", "bloom", "phi")
SUPPORTED_MODEL_TYPES = tuple(_LLAMA_STYLE) + _OTHER


def arch_from_hf(config, name: str | None = None) -> Arch:
    """An Arch from a transformers config (dict, config.json path, save_pretrained dir, or hub id
    when online).

    Offline, a hub id raises ``slmlab.hf.OfflineError`` at once (no download is attempted)."""
    d = _load_config_dict(config)
    mt = d.get("model_type")
    name = (
        name
        or d.get("_name_or_path")
        or (str(config) if not isinstance(config, dict) else mt)
        or "model"
    )
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
        ctx = (
            _get(d, "seq_length", "max_position_embeddings", default=2048)
            if mt == "qwen"
            else _get(d, "max_position_embeddings", default=2048)
        )
        return Arch(
            name=name,
            model_type=mt,
            vocab_size=_need(d, "vocab_size"),
            n_layer=_need(d, "num_hidden_layers"),
            d_model=dm,
            n_head=H,
            n_kv_head=_get(d, "num_key_value_heads", default=H),
            head_dim=hd,
            d_ff=d_ff,
            ffn=_ffn_kind(act, gated=True),
            norm=f.get("norm", "rmsnorm"),
            pos="rope",
            context=ctx,
            tie_embeddings=bool(d.get("tie_word_embeddings", f.get("tie", False))),
            qkv_bias=qkv_bias,
            o_bias=attn_bias,
            mlp_bias=bool(d.get("mlp_bias", False)),
            norms_per_layer=f.get("norms_per_layer", 2),
        )
    if mt == "gpt2":
        dm, H = _need(d, "n_embd"), _need(d, "n_head")
        npos = _get(d, "n_positions", default=1024)
        return Arch(
            name=name,
            model_type=mt,
            vocab_size=_need(d, "vocab_size"),
            n_layer=_need(d, "n_layer"),
            d_model=dm,
            n_head=H,
            n_kv_head=H,
            head_dim=dm // H,
            d_ff=_get(d, "n_inner", default=4 * dm),
            ffn=_ffn_kind(_get(d, "activation_function", default="gelu_new"), gated=False),
            norm="layernorm",
            pos="learned",
            context=npos,
            n_positions=npos,
            tie_embeddings=True,
            qkv_bias=True,
            o_bias=True,
            mlp_bias=True,
        )
    if mt == "opt":
        dm, H = _need(d, "hidden_size"), _need(d, "num_attention_heads")
        ctx = _get(d, "max_position_embeddings", default=2048)
        proj = _get(d, "word_embed_proj_dim", default=dm)
        bias = bool(d.get("enable_bias", True))
        pre = bool(d.get("do_layer_norm_before", True))
        return Arch(
            name=name,
            model_type=mt,
            vocab_size=_need(d, "vocab_size"),
            n_layer=_need(d, "num_hidden_layers"),
            d_model=dm,
            n_head=H,
            n_kv_head=H,
            head_dim=dm // H,
            d_ff=_need(d, "ffn_dim"),
            ffn=_ffn_kind(_get(d, "activation_function", default="relu"), False),
            norm="layernorm",
            pos="learned",
            context=ctx,
            n_positions=ctx + 2,  # OPT's offset of 2
            tie_embeddings=bool(d.get("tie_word_embeddings", True)),
            qkv_bias=bias,
            o_bias=bias,
            mlp_bias=bias,
            final_norm=pre and not d.get("_remove_final_layer_norm", False),
            embed_dim=proj if proj != dm else 0,
        )
    if mt == "gpt_neox":
        dm, H = _need(d, "hidden_size"), _need(d, "num_attention_heads")
        return Arch(
            name=name,
            model_type=mt,
            vocab_size=_need(d, "vocab_size"),
            n_layer=_need(d, "num_hidden_layers"),
            d_model=dm,
            n_head=H,
            n_kv_head=H,
            head_dim=dm // H,
            d_ff=_need(d, "intermediate_size"),
            ffn=_ffn_kind(_get(d, "hidden_act", default="gelu"), False),
            norm="layernorm",
            pos="rope",
            context=_get(d, "max_position_embeddings", default=2048),
            tie_embeddings=bool(d.get("tie_word_embeddings", False)),
            qkv_bias=True,
            o_bias=True,
            mlp_bias=True,
        )
    if mt == "bloom":
        dm, H = _need(d, "hidden_size", "n_embed"), _need(d, "n_head", "num_attention_heads")
        return Arch(
            name=name,
            model_type=mt,
            vocab_size=_need(d, "vocab_size"),
            n_layer=_need(d, "n_layer", "num_hidden_layers"),
            d_model=dm,
            n_head=H,
            n_kv_head=H,
            head_dim=dm // H,
            d_ff=4 * dm,
            ffn="gelu",
            norm="layernorm",
            pos="alibi",
            context=_get(d, "seq_length", default=2048),
            tie_embeddings=bool(d.get("tie_word_embeddings", True)),
            qkv_bias=True,
            o_bias=True,
            mlp_bias=True,
            embed_norm=True,
        )
    if mt == "phi":
        dm, H = _need(d, "hidden_size"), _need(d, "num_attention_heads")
        return Arch(
            name=name,
            model_type=mt,
            vocab_size=_need(d, "vocab_size"),
            n_layer=_need(d, "num_hidden_layers"),
            d_model=dm,
            n_head=H,
            n_kv_head=_get(d, "num_key_value_heads", default=H),
            head_dim=dm // H,
            d_ff=_need(d, "intermediate_size"),
            ffn=_ffn_kind(_get(d, "hidden_act", default="gelu_new"), False),
            norm="layernorm",
            pos="rope",
            context=_get(d, "max_position_embeddings", default=2048),
            tie_embeddings=bool(d.get("tie_word_embeddings", False)),
            qkv_bias=True,
            o_bias=True,
            mlp_bias=True,
            lm_head_bias=True,
            norms_per_layer=1,
        )  # one LayerNorm feeds attention and MLP
    raise ValueError(
        f"model_type {mt!r} is not one the calculator reads "
        f"(known: {', '.join(SUPPORTED_MODEL_TYPES)}). "
        "If it is a Llama-style decoder (RMSNorm, SwiGLU, RoPE), "
        "set config['model_type'] = 'llama'."
    )
