"""Interoperability with transformers: TinyLM <-> LlamaForCausalLM and its relatives.

TinyLM's Llama-compatible configuration (RMSNorm, SwiGLU, RoPE, no bias) has exactly the
parameters of a Llama model with the same names, so the conversion is a renaming of
state-dict keys: ``blocks.{i}.attn.q_proj`` <-> ``model.layers.{i}.self_attn.q_proj`` etc.
Three variants of that block have a transformers architecture that computes the same function
(:func:`twin_architecture`): a sliding ``window`` is Mistral, ``qk_norm`` is Qwen3, experts
(``n_experts``) are Mixtral, latent attention (``mla_kv_rank``) is DeepSeek-V3 with dense
FFNs in every layer; a TinyLM of Mamba or RWKV layers (``mixer``) is ``MambaForCausalLM`` or
``RwkvForCausalLM`` (:mod:`slmlab.hf_recurrent`). :func:`to_hf` builds whichever applies;
:func:`from_hf` reads Llama, Mistral, Qwen2, Qwen3, Mamba and RWKV checkpoints.

:func:`export_hf` writes a complete transformers checkpoint (model + tokenizer + generation
config) that ``AutoModelForCausalLM`` and ``AutoTokenizer`` load offline, without
``trust_remote_code``; that folder is what lm-eval, peft/trl and llama.cpp's converter read.

Special tokens: slmlab's tokenizers have one, ``<|endoftext|>`` (id 0 in the shipped models).
TinyTales puts it between documents, so a document starts right after one: it is the end of text
*and* the beginning of text, and the exported checkpoint uses it as BOS, EOS and PAD. The
transformers tokenizer adds no special tokens when encoding (``add_bos_token=False``), exactly like
``tokenizer.encode``; prepend ``tokenizer.bos_token_id`` yourself where slmlab's evaluation
prepends ``tok.eos_id``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch

from . import hf_recurrent
from .models import TinyLM, TinyLMConfig
from .utils import hub_offline_reason

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
    ("attn.q_norm.weight", "self_attn.q_norm.weight"),  # QK-norm (Qwen3)
    ("attn.k_norm.weight", "self_attn.k_norm.weight"),
    # multi-head latent attention (DeepSeek-V3)
    ("attn.q_down.weight", "self_attn.q_a_proj.weight"),
    ("attn.q_down_norm.weight", "self_attn.q_a_layernorm.weight"),
    ("attn.q_up.weight", "self_attn.q_b_proj.weight"),
    ("attn.kv_down.weight", "self_attn.kv_a_proj_with_mqa.weight"),
    ("attn.kv_norm.weight", "self_attn.kv_a_layernorm.weight"),
    ("attn.kv_up.weight", "self_attn.kv_b_proj.weight"),
]


class OfflineError(RuntimeError):
    """Raised when a hub id is requested but no network (or HF_HUB_OFFLINE) is available."""


def _hf_names(n_layer: int) -> dict[str, str]:
    names = dict(_RENAMES)
    for i in range(n_layer):
        for ours, theirs in _BLOCK_RENAMES:
            names[f"blocks.{i}.{ours}"] = f"model.layers.{i}.{theirs}"
    return names


def _names(config: TinyLMConfig) -> dict[str, str]:
    if config.mixer != "attention":
        return hf_recurrent.names(config)
    return _hf_names(config.n_layer)


def twin_architecture(config: TinyLMConfig) -> str:
    """The transformers model type that computes what ``config`` computes: "llama"; "mistral"
    with a sliding window; "qwen3" with QK-norm; "mixtral" with experts (and a window, if any);
    "deepseek_v3" with latent attention (and no experts: DeepSeek's differ from these); "mamba"
    and "rwkv" for those layers. Raises for a config none of them computes (another norm, FFN,
    position scheme or place of the norm, biases, or QK-norm together with a window or experts)."""
    if config.mixer != "attention":
        hf_recurrent.check_twin(config)
        return config.mixer
    if not config.llama_family:
        raise ValueError(
            "to_hf needs Llama's block: norm='rmsnorm', norm_position='pre', ffn='swiglu', "
            f"pos='rope', bias=False; got norm={config.norm!r}, "
            f"norm_position={config.norm_position!r}, ffn={config.ffn!r}, pos={config.pos!r}, "
            f"bias={config.bias}. The other variants have no transformers twin."
        )
    if config.block_repeat != 1:
        raise ValueError(
            f"block_repeat={config.block_repeat} (a block's weights run several times in a row, "
            "MobileLLM) has no transformers architecture: the twins run each layer once"
        )
    if config.head_scale is not None or config.ffn_scale is not None:
        raise ValueError(
            "layer-wise scaling (head_scale, ffn_scale: OpenELM) has no transformers architecture "
            "here: OpenELM runs only as remote code, which the book never trusts"
        )
    if config.qk_norm and (config.window is not None or config.n_experts):
        raise ValueError(
            "no transformers architecture combines QK-norm with a sliding window or experts here "
            "(Qwen3 has QK-norm, Mistral the window, Mixtral the experts): use one at a time"
        )
    if config.mla_kv_rank:
        if config.n_experts:
            raise ValueError(
                "latent attention with experts has no twin here: DeepSeek-V3's mixture (shared "
                "experts, sigmoid routing) is not TinyLM's; use MLA with a dense FFN"
            )
        return "deepseek_v3"
    if config.n_experts:
        return "mixtral"
    if config.qk_norm:
        return "qwen3"
    return "mistral" if config.window is not None else "llama"


_TWIN_CLASSES = {  # model type -> (config class, model class) in transformers
    "llama": ("LlamaConfig", "LlamaForCausalLM"),
    "mistral": ("MistralConfig", "MistralForCausalLM"),
    "qwen3": ("Qwen3Config", "Qwen3ForCausalLM"),
    "mixtral": ("MixtralConfig", "MixtralForCausalLM"),
    "deepseek_v3": ("DeepseekV3Config", "DeepseekV3ForCausalLM"),
    "mamba": ("MambaConfig", "MambaForCausalLM"),
    "rwkv": ("RwkvConfig", "RwkvForCausalLM"),
}


def hf_config(config: TinyLMConfig, eos_id: int | None = None):
    """The transformers config equivalent to ``config``: a ``LlamaConfig``, or the
    ``MistralConfig``, ``Qwen3Config`` or ``MixtralConfig`` of :func:`twin_architecture`.

    ``eos_id`` (the tokenizer's end-of-text id) becomes ``bos_token_id``, ``eos_token_id`` and
    ``pad_token_id``. Without it the three are None (LlamaConfig would otherwise default to
    Llama-2's 1 and 2, which mean nothing to an slmlab tokenizer); ``generate`` then runs for
    ``max_new_tokens`` unless it is given ``eos_token_id`` explicitly."""
    import transformers

    arch = twin_architecture(config)
    if config.mixer != "attention":
        return hf_recurrent.hf_config(config, eos_id)
    extra = {
        "llama": dict(mlp_bias=False),
        "mistral": dict(sliding_window=config.window),
        "qwen3": dict(use_sliding_window=False),
        "mixtral": dict(
            num_local_experts=config.n_experts,
            num_experts_per_tok=config.top_k,
            router_aux_loss_coef=config.router_aux_loss_coef,
            router_jitter_noise=0.0,
            sliding_window=config.window,
        ),
        "deepseek_v3": dict(
            q_lora_rank=config.mla_q_rank,
            kv_lora_rank=config.mla_kv_rank,
            qk_rope_head_dim=config.mla_rope_dim,
            qk_nope_head_dim=config.head_dim,
            v_head_dim=config.head_dim,
            first_k_dense_replace=config.n_layer,  # every layer's FFN dense
            rope_interleave=False,  # TinyLM's RoPE rotates halves, as Llama's does
        ),
    }[arch]
    return getattr(transformers, _TWIN_CLASSES[arch][0])(
        **extra,
        vocab_size=config.vocab_size,
        hidden_size=config.d_model,
        intermediate_size=config.hidden_dim,
        num_hidden_layers=config.n_layer,
        num_attention_heads=config.n_head,
        num_key_value_heads=config.n_kv_head,
        head_dim=config.rope_dim,  # DeepSeek-V3's head_dim is its rotated part; others': the head
        hidden_act="silu",
        max_position_embeddings=config.block_size,
        rms_norm_eps=config.norm_eps,
        rope_theta=config.rope_theta,
        tie_word_embeddings=config.tie_embeddings,
        attention_bias=False,
        attention_dropout=config.dropout,
        initializer_range=config.init_std,
        bos_token_id=eos_id,
        eos_token_id=eos_id,
        pad_token_id=eos_id,
    )


def config_from_hf(hf_config) -> TinyLMConfig:
    """A TinyLMConfig from a transformers config (object, dict or path to config.json).

    Covers the Llama family (Llama, Mistral, Qwen2, Qwen3, SmolLM, TinyLlama: RMSNorm + SwiGLU +
    RoPE): Mistral's ``sliding_window`` becomes ``window`` (Qwen2's only when
    ``use_sliding_window`` is set), Qwen3's per-head query/key norms ``qk_norm``."""
    if isinstance(hf_config, (str, os.PathLike)):
        p = Path(hf_config)
        p = p / "config.json" if p.is_dir() else p
        hf_config = json.loads(p.read_text(encoding="utf-8"))
    d = hf_config if isinstance(hf_config, dict) else hf_config.to_dict()
    if d.get("model_type") in ("mamba", "rwkv"):
        return hf_recurrent.config_from_hf(d)
    act = d.get("hidden_act", "silu")
    if act not in ("silu", "swish"):
        raise ValueError(
            f"config_from_hf reads Llama-family configs (hidden_act 'silu'); got hidden_act={act!r}"
        )
    n_head = d["num_attention_heads"]
    # DeepSeek-V3's head_dim is the rotated part of a head; its whole head is qk_nope_head_dim
    head_key = "qk_nope_head_dim" if d.get("model_type") == "deepseek_v3" else "head_dim"
    head_dim = d.get(head_key) or d["hidden_size"] // n_head
    if head_dim * n_head != d["hidden_size"]:
        raise ValueError(
            f"head_dim*num_attention_heads ({head_dim}*{n_head}) != "
            f"hidden_size ({d['hidden_size']}); "
            "TinyLM needs d_model = n_head * head_dim"
        )
    rope = d.get("rope_parameters") or d.get("rope_scaling") or {}
    theta = rope.get("rope_theta", d.get("rope_theta", 10000.0))
    if rope.get("rope_type", "default") not in ("default", None):
        raise ValueError(
            f"rope type {rope.get('rope_type')!r} is not supported by TinyLM (plain RoPE only)"
        )
    if d.get("num_local_experts") or d.get("num_experts"):
        raise ValueError(
            "config_from_hf reads dense models; this config has experts "
            f"(model_type {d.get('model_type')!r}): build TinyLMConfig(n_experts=...) yourself"
        )
    window = d.get("sliding_window") if d.get("use_sliding_window", True) else None
    return TinyLMConfig(
        **_latent_attention(d),
        window=window,
        qk_norm=d.get("model_type") == "qwen3",
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


def _latent_attention(d: dict) -> dict:
    """The MLA fields of TinyLMConfig from a DeepSeek-V3 config (none for other models); refuses
    what TinyLM's MLA does not compute."""
    if d.get("model_type") != "deepseek_v3":
        return {}
    head_dim = d["hidden_size"] // d["num_attention_heads"]
    why = {
        "its first_k_dense_replace < num_hidden_layers: layers with experts": d.get(
            "first_k_dense_replace", 0
        )
        < d["num_hidden_layers"],
        "qk_nope_head_dim or v_head_dim differs from hidden_size / heads": (
            d.get("qk_nope_head_dim"),
            d.get("v_head_dim"),
        )
        != (head_dim, head_dim),
        "rope_interleave=True: RoPE over interleaved pairs, TinyLM's rotates halves": d.get(
            "rope_interleave", True
        ),
    }
    problems = [reason for reason, bad in why.items() if bad]
    if problems:
        raise ValueError(f"config_from_hf cannot express this DeepSeek-V3 config: {problems}")
    return dict(
        mla_kv_rank=d["kv_lora_rank"],
        mla_q_rank=d.get("q_lora_rank"),
        mla_rope_dim=d["qk_rope_head_dim"],
    )


def _check_tokenizer_fits(tokenizer, config: TinyLMConfig) -> int:
    """The tokenizer's end-of-text id, after checking that all its ids are rows of the embedding."""
    if tokenizer.vocab_size > config.vocab_size:
        raise ValueError(
            f"the tokenizer has {tokenizer.vocab_size} ids but the model only {config.vocab_size} "
            "embedding rows: is this the model's own tokenizer?"
        )
    return tokenizer.eos_id


def _expert_weights(model: TinyLM, hf_keys) -> dict[str, torch.Tensor]:
    """The experts and routers of a TinyLM with ``n_experts``, under Mixtral's names: one matrix
    per expert and projection in transformers 4 (``block_sparse_moe.experts.{e}.w1``: gate, ``w3``:
    up, ``w2``: down), stacked per layer in transformers 5 (``mlp.experts.gate_up_proj``: gate
    and up concatenated, ``mlp.experts.down_proj``)."""
    stacked = any(k.endswith("mlp.experts.gate_up_proj") for k in hf_keys)
    out = {}
    for i, block in enumerate(model.blocks):
        experts = block.ffn.experts
        gate = [e.gate_proj.weight.detach() for e in experts]
        up = [e.up_proj.weight.detach() for e in experts]
        down = [e.down_proj.weight.detach() for e in experts]
        if stacked:
            pre = f"model.layers.{i}.mlp"
            out[f"{pre}.gate.weight"] = block.ffn.router.weight.detach().clone()
            out[f"{pre}.experts.gate_up_proj"] = torch.stack(
                [torch.cat([g, u]) for g, u in zip(gate, up)]
            )
            out[f"{pre}.experts.down_proj"] = torch.stack(down)
        else:
            pre = f"model.layers.{i}.block_sparse_moe"
            out[f"{pre}.gate.weight"] = block.ffn.router.weight.detach().clone()
            for e in range(len(experts)):
                out[f"{pre}.experts.{e}.w1.weight"] = gate[e].clone()
                out[f"{pre}.experts.{e}.w3.weight"] = up[e].clone()
                out[f"{pre}.experts.{e}.w2.weight"] = down[e].clone()
    return out


def to_hf(model: TinyLM, tokenizer=None):
    """A transformers model with the same weights (and logits) as ``model``: a
    ``LlamaForCausalLM``, or the Mistral, Qwen3 or Mixtral model of :func:`twin_architecture`.

    Given the model's ``tokenizer`` (a :class:`~slmlab.tokenizer.BPETokenizer` or
    :class:`~slmlab.tokenizer.CharTokenizer`), its end-of-text id is the config's and the
    generation config's BOS, EOS and PAD id, so ``generate`` stops where ``TinyLM.generate(...,
    eos_id=tok.eos_id)`` does; without one they are None (see :func:`hf_config`)."""
    import transformers

    eos_id = None if tokenizer is None else _check_tokenizer_fits(tokenizer, model.config)
    config = hf_config(model.config, eos_id)
    model_class = getattr(transformers, _TWIN_CLASSES[twin_architecture(model.config)][1])
    hf = model_class(config).to(dtype=model.embed.weight.dtype)
    names = _names(model.config)
    sd = {names[k]: v.detach().clone() for k, v in model.state_dict().items() if k in names}
    if model.config.n_experts:
        sd.update(_expert_weights(model, hf.state_dict().keys()))
    missing, unexpected = hf.load_state_dict(sd, strict=False)
    head = names["lm_head.weight"]  # "head.weight" in RWKV
    missing = [k for k in missing if not (model.config.tie_embeddings and k == head)]
    if missing or unexpected:
        raise RuntimeError(f"to_hf: missing {missing}, unexpected {unexpected}")
    if model.config.tie_embeddings:
        hf.tie_weights()
    gen = hf.generation_config  # built from the config at construction; set explicitly all the same
    gen.bos_token_id = gen.eos_token_id = gen.pad_token_id = eos_id
    return hf.to(model.device).eval()


def to_hf_tokenizer(
    tokenizer, model_max_length: int | None = None, chat_template: str | None = None
):
    """A transformers fast tokenizer (``PreTrainedTokenizerFast``) with the ids of ``tokenizer``.

    It wraps a copy of the `tokenizers.Tokenizer` behind ``tokenizer`` (for a
    :class:`~slmlab.tokenizer.CharTokenizer`, an equivalent one: see its ``to_tokenizers``).

    - ``<|endoftext|>`` is the BOS, EOS and PAD token (and, for the byte-level BPE, the UNK token
      as in GPT-2, though a byte-level BPE never needs one); see the module docstring for why.
    - Encoding adds **no** special tokens, with or without ``add_special_tokens=True``:
      ``hf_tok(text).input_ids == tokenizer.encode(text)``. Prepend ``bos_token_id`` yourself.
    - Decoding does not "clean up" spaces, so ``decode`` equals ``tokenizer.decode``.
    - ``model_max_length`` is the model's ``block_size`` when given (transformers warns past it).
    - ``chat_template`` (a Jinja string) is stored for ``apply_chat_template``; none of the
      shipped models is a chat model, so the default is None."""
    from transformers import PreTrainedTokenizerFast

    from .tokenizer import EOS

    if not hasattr(tokenizer, "to_tokenizers"):
        raise TypeError(
            "to_hf_tokenizer needs an slmlab BPETokenizer or CharTokenizer, "
            f"got {type(tokenizer).__name__}"
        )
    kwargs = {"model_max_length": model_max_length} if model_max_length else {}
    hf_tok = PreTrainedTokenizerFast(
        tokenizer_object=tokenizer.to_tokenizers(),
        bos_token=EOS,
        eos_token=EOS,
        pad_token=EOS,
        unk_token=EOS if tokenizer.kind == "bpe" else None,
        add_bos_token=False,
        add_eos_token=False,
        clean_up_tokenization_spaces=False,
        **kwargs,
    )
    if chat_template is not None:
        hf_tok.chat_template = chat_template
    if hf_tok.eos_token_id != tokenizer.eos_id or len(hf_tok) != tokenizer.vocab_size:
        raise RuntimeError(
            f"to_hf_tokenizer: {EOS!r} is id {hf_tok.eos_token_id} with {len(hf_tok)} ids, "
            f"expected id {tokenizer.eos_id} with {tokenizer.vocab_size}"
        )
    return hf_tok


# what transformers 4 also understands (transformers 5 maps it to its TokenizersBackend)
_TOKENIZER_CLASS = "PreTrainedTokenizerFast"


def export_hf(model: TinyLM, tokenizer, directory, chat_template: str | None = None) -> Path:
    """Write ``model`` and its ``tokenizer`` as a complete transformers checkpoint in ``directory``.

    The folder holds ``config.json``, ``model.safetensors`` (safetensors only, never pickle),
    ``generation_config.json``, ``tokenizer.json``, ``tokenizer_config.json`` and
    ``special_tokens_map.json``; ``AutoModelForCausalLM.from_pretrained(directory)`` and
    ``AutoTokenizer.from_pretrained(directory)`` load it offline with no ``trust_remote_code``,
    and ``from_hf(directory)`` reads the model back. The directory is written atomically: a
    temporary sibling renamed into place, so a crash leaves no half-written checkpoint (an
    existing ``directory`` is replaced as a whole).

    ``tokenizer_config.json`` names the class ``PreTrainedTokenizerFast`` (transformers 5 writes
    ``TokenizersBackend``, which transformers 4 does not know) and states ``add_bos_token: false``;
    ``special_tokens_map.json``, which transformers 5 no longer writes, is added for older readers.
    ``chat_template`` is the slot for a later chat model (see :func:`to_hf_tokenizer`)."""
    from .checkpoint import write_dir_atomically
    from .utils import atomic_write_json

    hf = to_hf(model, tokenizer)
    hf_tok = to_hf_tokenizer(tokenizer, model.config.block_size, chat_template)

    def fill(tmp: Path) -> None:
        hf.save_pretrained(tmp)
        hf_tok.save_pretrained(tmp)
        cfg_path = tmp / "tokenizer_config.json"
        cfg = json.loads(cfg_path.read_text(encoding="utf-8"))
        cfg["tokenizer_class"] = _TOKENIZER_CLASS
        # stated, not implied, for readers that look
        # (llama.cpp's converter copies these into the GGUF)
        cfg.update(add_bos_token=False, add_eos_token=False)
        atomic_write_json(cfg_path, cfg)
        atomic_write_json(tmp / "special_tokens_map.json", hf_tok.special_tokens_map)
        stray = sorted(p.name for p in tmp.iterdir() if p.suffix in (".bin", ".pt", ".pth", ".pkl"))
        if stray:
            raise RuntimeError(
                f"export_hf: transformers wrote pickle files {stray}; expected safetensors only"
            )

    return write_dir_atomically(directory, fill)


def resolve_hf_path(path_or_id: str | os.PathLike) -> str:
    """A local directory as is; a hub id only when the hub is reachable, else an OfflineError."""
    p = Path(path_or_id)
    if p.is_dir():
        if not (p / "config.json").is_file():
            raise FileNotFoundError(
                f"{p} has no config.json: is it a transformers save_pretrained directory?"
            )
        return str(p)
    if p.exists() or str(path_or_id).startswith((".", "/")):
        raise FileNotFoundError(f"{path_or_id} is not a save_pretrained directory")
    reason = hub_offline_reason()
    if reason:
        raise OfflineError(
            f"cannot load {str(path_or_id)!r} from the Hugging Face hub: offline ({reason}). "
            "Download it where you have a network "
            f"(`huggingface-cli download {path_or_id} --local-dir DIR`) "
            "and pass DIR, or use slmlab.load_reference() for the shipped models."
        )
    return str(path_or_id)


def from_hf(path_or_id, dtype: torch.dtype = torch.float32, device=None) -> TinyLM:
    """A TinyLM with the weights of a Llama-family transformers checkpoint (directory or hub id)."""
    from transformers import AutoModelForCausalLM

    src = resolve_hf_path(path_or_id) if isinstance(path_or_id, (str, os.PathLike)) else None
    hf = path_or_id if src is None else AutoModelForCausalLM.from_pretrained(src, dtype=dtype)
    config = config_from_hf(hf.config)
    model = TinyLM(config).to(dtype)
    inverse = {v: k for k, v in _names(config).items()}
    sd = {}
    for k, v in hf.state_dict().items():
        if k not in inverse:
            if "rotary_emb" in k:
                continue
            raise ValueError(
                f"from_hf: parameter {k!r} has no TinyLM counterpart; is this a Llama-family model?"
            )
        sd[inverse[k]] = v
    if config.tie_embeddings:
        sd.pop("lm_head.weight", None)
        sd["lm_head.weight"] = sd["embed.weight"]
    model.load_state_dict(sd, strict=True)
    return model.to(device or "cpu").eval()
