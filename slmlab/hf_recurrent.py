"""The transformers twins of TinyLM's recurrent layers: ``mixer="mamba"`` <->
``MambaForCausalLM``, ``mixer="rwkv"`` <-> ``RwkvForCausalLM``.

A TinyLM of Mamba layers has exactly the parameters of transformers' Mamba model, under the same
names inside each mixer (``in_proj``, ``conv1d``, ``x_proj``, ``dt_proj``, ``A_log``, ``D``,
``out_proj``), so the conversion is again a renaming: ``blocks.{i}.mixer.*`` <->
``backbone.layers.{i}.mixer.*``, ``blocks.{i}.norm`` <-> ``backbone.layers.{i}.norm``. An RWKV
TinyLM's time and channel mixes are RWKV's ``attention`` and ``feed_forward``
(``blocks.{i}.time_mix.*`` <-> ``rwkv.blocks.{i}.attention.*``). :mod:`slmlab.hf` calls
:func:`names`, :func:`check_twin`, :func:`hf_config` and :func:`config_from_hf` for both.
"""

from __future__ import annotations

from .models import TinyLMConfig

_MIXER_PARTS = (
    "in_proj.weight",
    "in_proj.bias",
    "conv1d.weight",
    "conv1d.bias",
    "x_proj.weight",
    "dt_proj.weight",
    "dt_proj.bias",
    "A_log",
    "D",
    "out_proj.weight",
    "out_proj.bias",
)


def mamba_names(n_layer: int) -> dict[str, str]:
    """TinyLM parameter name -> MambaForCausalLM parameter name."""
    names = {
        "embed.weight": "backbone.embeddings.weight",
        "norm.weight": "backbone.norm_f.weight",
        "lm_head.weight": "lm_head.weight",
    }
    for i in range(n_layer):
        names[f"blocks.{i}.norm.weight"] = f"backbone.layers.{i}.norm.weight"
        for part in _MIXER_PARTS:
            names[f"blocks.{i}.mixer.{part}"] = f"backbone.layers.{i}.mixer.{part}"
    return names


_TIME_MIX = ("time_decay", "time_first", "time_mix_key", "time_mix_value", "time_mix_receptance")
_TIME_MIX += ("key.weight", "value.weight", "receptance.weight", "output.weight")
_CHANNEL_MIX = ("time_mix_key", "time_mix_receptance", "key.weight", "value.weight")
_CHANNEL_MIX += ("receptance.weight",)


def rwkv_names(n_layer: int) -> dict[str, str]:
    """TinyLM parameter name -> RwkvForCausalLM parameter name."""
    names = {"embed.weight": "rwkv.embeddings.weight", "lm_head.weight": "head.weight"}
    norms = [("norm", "rwkv.ln_out"), ("blocks.0.pre_norm", "rwkv.blocks.0.pre_ln")]
    for i in range(n_layer):
        ours, theirs = f"blocks.{i}", f"rwkv.blocks.{i}"
        norms += [(f"{ours}.ln1", f"{theirs}.ln1"), (f"{ours}.ln2", f"{theirs}.ln2")]
        names.update({f"{ours}.time_mix.{p}": f"{theirs}.attention.{p}" for p in _TIME_MIX})
        names.update(
            {f"{ours}.channel_mix.{p}": f"{theirs}.feed_forward.{p}" for p in _CHANNEL_MIX}
        )
    for ours, theirs in norms:
        names.update({f"{ours}.{p}": f"{theirs}.{p}" for p in ("weight", "bias")})
    return names


def names(config: TinyLMConfig) -> dict[str, str]:
    """TinyLM parameter name -> the twin's, for a Mamba or an RWKV TinyLM."""
    return (mamba_names if config.mixer == "mamba" else rwkv_names)(config.n_layer)


def check_twin(config: TinyLMConfig) -> None:
    """Raise for a recurrent TinyLM that its transformers twin does not compute."""
    (check_mamba_twin if config.mixer == "mamba" else check_rwkv_twin)(config)


def hf_config(config: TinyLMConfig, eos_id: int | None = None):
    """The transformers config of a Mamba or an RWKV TinyLM."""
    return (mamba_hf_config if config.mixer == "mamba" else rwkv_hf_config)(config, eos_id)


def config_from_hf(d: dict) -> TinyLMConfig:
    """A TinyLMConfig from a Mamba or an RWKV config dict."""
    return (mamba_config_from_hf if d.get("model_type") == "mamba" else rwkv_config_from_hf)(d)


def check_rwkv_twin(config: TinyLMConfig) -> None:
    """Raise for an RWKV TinyLM that ``RwkvForCausalLM`` does not compute."""
    why = {
        "norm='layernorm' with bias=True (RWKV's LayerNorms)": (config.norm, config.bias)
        != ("layernorm", True),
        "norm_eps=1e-5 (RWKV's last LayerNorm has torch's default eps)": config.norm_eps != 1e-5,
        "pos='none' (RWKV has no position embeddings)": config.pos != "none",
        "block_repeat=1 (each layer runs once)": config.block_repeat != 1,
        "n_layer >= 2 (transformers' RWKV initialisation divides by n_layer - 1)": (
            config.n_layer < 2
        ),
    }
    needed = [need for need, missing in why.items() if missing]
    if needed:
        raise ValueError(f"RwkvForCausalLM needs {', '.join(needed)}; this config differs")


def rwkv_hf_config(config: TinyLMConfig, eos_id: int | None = None):
    """The ``RwkvConfig`` of an RWKV TinyLM; ``rescale_every=0``: transformers would otherwise
    halve the hidden state every 6 layers in eval mode (an fp16 trick that LayerNorm's eps makes
    slightly inexact)."""
    import transformers

    check_rwkv_twin(config)
    return transformers.RwkvConfig(
        vocab_size=config.vocab_size,
        context_length=config.block_size,
        hidden_size=config.d_model,
        num_hidden_layers=config.n_layer,
        attention_hidden_size=config.d_model,
        intermediate_size=config.hidden_dim,
        layer_norm_epsilon=config.norm_eps,
        rescale_every=0,
        tie_word_embeddings=config.tie_embeddings,
        bos_token_id=eos_id,
        eos_token_id=eos_id,
        pad_token_id=eos_id,
    )


def rwkv_config_from_hf(d: dict) -> TinyLMConfig:
    """A TinyLMConfig from an RWKV config dict (``model_type`` "rwkv")."""
    hidden = d["hidden_size"]
    if (d.get("attention_hidden_size") or hidden) != hidden:
        raise ValueError("attention_hidden_size != hidden_size: TinyLM's time mix is d x d")
    return TinyLMConfig(
        mixer="rwkv",
        pos="none",
        norm="layernorm",
        bias=True,
        vocab_size=d["vocab_size"],
        block_size=d.get("context_length", 1024),
        n_layer=d["num_hidden_layers"],
        n_head=1,
        d_model=hidden,
        d_ff=d.get("intermediate_size") or 4 * hidden,
        norm_eps=d.get("layer_norm_epsilon", 1e-5),
        tie_embeddings=bool(d.get("tie_word_embeddings", False)),
    )


def check_mamba_twin(config: TinyLMConfig) -> None:
    """Raise for a Mamba TinyLM that ``MambaForCausalLM`` does not compute."""
    why = {
        "norm='rmsnorm' (Mamba's RMSNorm)": config.norm != "rmsnorm",
        "pos='none' (Mamba has no position embeddings)": config.pos != "none",
        "block_repeat=1 (each layer runs once)": config.block_repeat != 1,
    }
    needed = [need for need, missing in why.items() if missing]
    if needed:
        raise ValueError(f"MambaForCausalLM needs {', '.join(needed)}; this config differs")


def mamba_hf_config(config: TinyLMConfig, eos_id: int | None = None):
    """The ``MambaConfig`` of a TinyLM of Mamba layers (``use_bias`` for in/out_proj's biases,
    the convolution always with one, as Mamba has it)."""
    import transformers

    check_mamba_twin(config)
    return transformers.MambaConfig(
        vocab_size=config.vocab_size,
        hidden_size=config.d_model,
        state_size=config.ssm_state,
        num_hidden_layers=config.n_layer,
        layer_norm_epsilon=config.norm_eps,
        expand=config.ssm_expand,
        conv_kernel=config.ssm_conv,
        use_bias=config.bias,
        use_conv_bias=True,
        hidden_act="silu",
        time_step_rank=config.dt_rank,
        residual_in_fp32=True,
        tie_word_embeddings=config.tie_embeddings,
        initializer_range=config.init_std,
        use_mambapy=False,
        bos_token_id=eos_id,
        eos_token_id=eos_id,
        pad_token_id=eos_id,
    )


def mamba_config_from_hf(d: dict) -> TinyLMConfig:
    """A TinyLMConfig from a Mamba config dict (``model_type`` "mamba")."""
    act = d.get("hidden_act", "silu")
    if act not in ("silu", "swish") or not d.get("use_conv_bias", True):
        raise ValueError(
            "TinyLM's Mamba layer has a SiLU and a convolution with a bias; this config has "
            f"hidden_act={act!r}, use_conv_bias={d.get('use_conv_bias')!r}"
        )
    hidden = d["hidden_size"]
    expand = d.get("expand", 2)
    if d.get("intermediate_size", expand * hidden) != expand * hidden:
        raise ValueError("intermediate_size != expand * hidden_size: TinyLM's width is expand*d")
    rank = d.get("time_step_rank", "auto")
    return TinyLMConfig(
        mixer="mamba",
        pos="none",
        vocab_size=d["vocab_size"],
        block_size=d.get("max_position_embeddings", 2048),
        n_layer=d["num_hidden_layers"],
        n_head=1,  # no heads; the field is required of every TinyLM
        d_model=hidden,
        ssm_state=d.get("state_size", 16),
        ssm_expand=expand,
        ssm_conv=d.get("conv_kernel", 4),
        ssm_dt_rank=None if rank == "auto" else int(rank),
        norm="rmsnorm",
        norm_eps=d.get("layer_norm_epsilon", 1e-5),
        tie_embeddings=bool(d.get("tie_word_embeddings", True)),
        bias=bool(d.get("use_bias", False)),
    )
