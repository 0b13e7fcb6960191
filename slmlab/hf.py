"""Interoperability with transformers: TinyLM <-> LlamaForCausalLM.

TinyLM's Llama-compatible configuration (RMSNorm, SwiGLU, RoPE, no bias) has exactly the
parameters of a Llama model with the same names, so the conversion is a renaming of
state-dict keys: ``blocks.{i}.attn.q_proj`` <-> ``model.layers.{i}.self_attn.q_proj`` etc.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import torch

from .model import TinyLM, TinyLMConfig

# TinyLM name fragment -> transformers Llama name fragment
_RENAMES = [
    ("embed.weight", "model.embed_tokens.weight"),
    ("norm.weight", "model.norm.weight"),
    ("lm_head.weight", "lm_head.weight"),
]
_BLOCK_RENAMES = [
    ("attn_norm.weight", "input_layernorm.weight"),
    ("ffn_norm.weight", "post_attention_layernorm.weight"),
    ("attn.q_proj.weight", "self_attn.q_proj.weight"),
    ("attn.k_proj.weight", "self_attn.k_proj.weight"),
    ("attn.v_proj.weight", "self_attn.v_proj.weight"),
    ("attn.o_proj.weight", "self_attn.o_proj.weight"),
    ("ffn.gate_proj.weight", "mlp.gate_proj.weight"),
    ("ffn.up_proj.weight", "mlp.up_proj.weight"),
    ("ffn.down_proj.weight", "mlp.down_proj.weight"),
]


class OfflineError(RuntimeError):
    """Raised when a hub id is requested but no network (or HF_HUB_OFFLINE) is available."""


def _hf_names(n_layer: int) -> dict[str, str]:
    names = dict(_RENAMES)
    for i in range(n_layer):
        for ours, theirs in _BLOCK_RENAMES:
            names[f"blocks.{i}.{ours}"] = f"model.layers.{i}.{theirs}"
    return names


def llama_config(config: TinyLMConfig):
    """The transformers ``LlamaConfig`` equivalent to a Llama-compatible TinyLMConfig."""
    from transformers import LlamaConfig

    if not config.llama_compatible:
        raise ValueError(
            "to_hf needs a Llama-compatible TinyLMConfig (norm='rmsnorm', ffn='swiglu', pos='rope', bias=False); "
            f"got norm={config.norm!r}, ffn={config.ffn!r}, pos={config.pos!r}, bias={config.bias}."
        )
    return LlamaConfig(
        vocab_size=config.vocab_size,
        hidden_size=config.d_model,
        intermediate_size=config.hidden_dim,
        num_hidden_layers=config.n_layer,
        num_attention_heads=config.n_head,
        num_key_value_heads=config.n_kv_head,
        head_dim=config.head_dim,
        hidden_act="silu",
        max_position_embeddings=config.block_size,
        rms_norm_eps=config.norm_eps,
        rope_theta=config.rope_theta,
        tie_word_embeddings=config.tie_embeddings,
        attention_bias=False,
        mlp_bias=False,
        attention_dropout=config.dropout,
        initializer_range=config.init_std,
    )


def config_from_hf(hf_config) -> TinyLMConfig:
    """A TinyLMConfig from a transformers config (object, dict or path to config.json).

    Covers the Llama family (Llama, Mistral, Qwen2, SmolLM, TinyLlama: RMSNorm + SwiGLU + RoPE)."""
    if isinstance(hf_config, (str, os.PathLike)):
        p = Path(hf_config)
        p = p / "config.json" if p.is_dir() else p
        hf_config = json.loads(p.read_text(encoding="utf-8"))
    d = hf_config if isinstance(hf_config, dict) else hf_config.to_dict()
    act = d.get("hidden_act", "silu")
    if act not in ("silu", "swish"):
        raise ValueError(f"config_from_hf reads Llama-family configs (hidden_act 'silu'); got hidden_act={act!r}")
    n_head = d["num_attention_heads"]
    head_dim = d.get("head_dim") or d["hidden_size"] // n_head
    if head_dim * n_head != d["hidden_size"]:
        raise ValueError(f"head_dim*num_attention_heads ({head_dim}*{n_head}) != hidden_size ({d['hidden_size']}); "
                         "TinyLM needs d_model = n_head * head_dim")
    rope = d.get("rope_parameters") or d.get("rope_scaling") or {}
    theta = rope.get("rope_theta", d.get("rope_theta", 10000.0))
    if rope.get("rope_type", "default") not in ("default", None):
        raise ValueError(f"rope type {rope.get('rope_type')!r} is not supported by TinyLM (plain RoPE only)")
    return TinyLMConfig(
        vocab_size=d["vocab_size"],
        block_size=d.get("max_position_embeddings", 2048),
        n_layer=d["num_hidden_layers"],
        n_head=n_head,
        n_kv_head=d.get("num_key_value_heads") or n_head,
        d_model=d["hidden_size"],
        ffn="swiglu",
        d_ff=d["intermediate_size"],
        norm="rmsnorm",
        norm_eps=d.get("rms_norm_eps", 1e-6),
        pos="rope",
        rope_theta=float(theta),
        tie_embeddings=bool(d.get("tie_word_embeddings", False)),
        bias=bool(d.get("attention_bias", False) or d.get("mlp_bias", False)),
    )


def to_hf(model: TinyLM):
    """A transformers ``LlamaForCausalLM`` with the same weights (and logits) as ``model``."""
    from transformers import LlamaForCausalLM

    hf = LlamaForCausalLM(llama_config(model.config)).to(dtype=model.embed.weight.dtype)
    names = _hf_names(model.config.n_layer)
    sd = {names[k]: v.detach().clone() for k, v in model.state_dict().items()}
    missing, unexpected = hf.load_state_dict(sd, strict=False)
    missing = [k for k in missing if not (model.config.tie_embeddings and k == "lm_head.weight")]
    if missing or unexpected:
        raise RuntimeError(f"to_hf: missing {missing}, unexpected {unexpected}")
    if model.config.tie_embeddings:
        hf.tie_weights()
    return hf.to(model.device).eval()


def _is_offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "0") not in ("0", "", "false", "False")


def _hub_reachable(timeout: float = 3.0) -> bool:
    import socket

    try:
        socket.create_connection(("huggingface.co", 443), timeout=timeout).close()
        return True
    except OSError:
        return False


def resolve_hf_path(path_or_id: str | os.PathLike) -> str:
    """A local directory as is; a hub id only when the hub is reachable, else a clear OfflineError."""
    p = Path(path_or_id)
    if p.is_dir():
        if not (p / "config.json").is_file():
            raise FileNotFoundError(f"{p} has no config.json: is it a transformers save_pretrained directory?")
        return str(p)
    if p.exists() or str(path_or_id).startswith((".", "/")):
        raise FileNotFoundError(f"{path_or_id} is not a save_pretrained directory")
    if _is_offline() or not _hub_reachable():
        raise OfflineError(
            f"cannot load {str(path_or_id)!r} from the Hugging Face hub: this machine is offline "
            "(or HF_HUB_OFFLINE=1). Download it where you have a network (`huggingface-cli download "
            f"{path_or_id} --local-dir DIR`) and pass DIR, or use slmlab.load_reference() for the shipped models."
        )
    return str(path_or_id)


def from_hf(path_or_id, dtype: torch.dtype = torch.float32, device=None) -> TinyLM:
    """A TinyLM with the weights of a Llama-family transformers checkpoint (directory or hub id)."""
    from transformers import AutoModelForCausalLM

    src = resolve_hf_path(path_or_id) if isinstance(path_or_id, (str, os.PathLike)) else None
    hf = path_or_id if src is None else AutoModelForCausalLM.from_pretrained(src, dtype=dtype)
    config = config_from_hf(hf.config)
    model = TinyLM(config).to(dtype)
    inverse = {v: k for k, v in _hf_names(config.n_layer).items()}
    sd = {}
    for k, v in hf.state_dict().items():
        if k not in inverse:
            if "rotary_emb" in k:
                continue
            raise ValueError(f"from_hf: parameter {k!r} has no TinyLM counterpart; is this a Llama-family model?")
        sd[inverse[k]] = v
    if config.tie_embeddings:
        sd.pop("lm_head.weight", None)
        sd["lm_head.weight"] = sd["embed.weight"]
    model.load_state_dict(sd, strict=True)
    return model.to(device or "cpu").eval()
