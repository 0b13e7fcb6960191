"""The transformers twin of TinyLM's recurrent layers: ``mixer="mamba"`` <-> ``MambaForCausalLM``.

A TinyLM of Mamba layers has exactly the parameters of transformers' Mamba model, under the same
names inside each mixer (``in_proj``, ``conv1d``, ``x_proj``, ``dt_proj``, ``A_log``, ``D``,
``out_proj``), so the conversion is again a renaming: ``blocks.{i}.mixer.*`` <->
``backbone.layers.{i}.mixer.*``, ``blocks.{i}.norm`` <-> ``backbone.layers.{i}.norm``.
:mod:`slmlab.hf` calls these functions from ``to_hf``, ``config_from_hf`` and ``from_hf``.
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
