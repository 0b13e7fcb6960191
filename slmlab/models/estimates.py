"""The size of a decoder-only transformer, from its shape alone: one set of formulas.

An :class:`Arch` holds the few numbers that fix a model's size (layers, widths, heads, FFN kind,
norms, biases, tying). Every formula takes an Arch or a :class:`~slmlab.models.TinyLMConfig`
(converted with :func:`as_arch`): :func:`param_breakdown` and :func:`num_params`,
:func:`active_params` and :func:`ffn_params`, :func:`weight_bytes`,
:func:`kv_cache_bytes_per_token` and :func:`kv_cache_bytes` (a recurrent layer's fixed-size
state: :func:`state_bytes`),
:func:`flops_per_token`, :func:`decode_weight_params`. :mod:`slmlab.zoo` reads real models'
configs into Archs and uses the same formulas; the tests check them against the tensors that
TinyLM and transformers allocate.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from .config import TinyLMConfig, layer_scales, scaled_heads, scaled_width

# Bits per weight. fp16/int8/int4 are the bare number formats; llama.cpp's q8_0 and q4_0 store
# blocks of 32 weights with one fp16 scale, i.e. 8 + 16/32 = 8.5 and 4 + 16/32 = 4.5 bits
# per weight.
BITS = {
    "fp32": 32.0,
    "fp16": 16.0,
    "bf16": 16.0,
    "int8": 8.0,
    "q8_0": 8.5,
    "int4": 4.0,
    "q4_0": 4.5,
}
NORM_PARAMS = {
    "rmsnorm": 1,
    "layernorm": 2,
    "layernorm_nobias": 1,
    "layernorm_noparam": 0,
}  # per channel


@dataclass(frozen=True)
class Arch:
    """What fixes the size of a decoder-only transformer
    (the fields a config.json spreads over many names)."""

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
    embed_dim: int = (
        0  # OPT-350m: embeddings of width 512 projected to d_model (0: same as d_model)
    )
    n_experts: int = 0  # mixture of experts: FFNs per layer (0: one dense FFN)
    top_k: int = 0  # experts each token uses
    qk_norm: bool = False  # a norm of head_dim over each query and key head (Qwen3)
    window: int = 0  # sliding-window attention: positions each query sees (0: all)
    kv_rank: int = 0  # multi-head latent attention: the cached latent's width (0: no MLA)
    q_rank: int = 0  # MLA's query bottleneck (0: a full-rank query projection)
    rope_dim: int = 0  # MLA's decoupled rotated dimensions per head
    block_repeat: int = 1  # block-wise sharing: each layer's weights run this many times
    head_scale: tuple = ()  # layer-wise scaling (OpenELM): heads x first .. x last factor
    ffn_scale: tuple = ()  # layer-wise scaling: FFN width x first .. x last factor
    mixer: str = "attention"  # "mamba": selective SSM layers (no FFN); "rwkv": RWKV-4 layers
    ssm_state: int = 0  # Mamba: state numbers per channel
    ssm_inner: int = 0  # Mamba: the mixer's width (expand x d_model)
    ssm_conv: int = 0  # Mamba: the causal convolution's width
    dt_rank: int = 0  # Mamba: rank of the step projection

    @property
    def gated(self) -> bool:
        return self.ffn in ("swiglu", "geglu")

    @property
    def attention(self) -> str:
        if self.mixer != "attention":
            return f"none ({self.mixer})"
        if self.kv_rank:
            return "MLA"
        if self.n_kv_head == self.n_head:
            return "MHA"
        return "MQA" if self.n_kv_head == 1 else "GQA"

    @property
    def activation(self) -> str:
        return {"swiglu": "silu", "geglu": "gelu_tanh"}.get(self.ffn, self.ffn)

    @classmethod
    def from_tinylm(cls, c: TinyLMConfig, name: str = "TinyLM") -> Arch:
        norm = "rmsnorm" if c.norm == "rmsnorm" else ("layernorm" if c.bias else "layernorm_nobias")
        fields = dict(
            name=name,
            model_type="tinylm",
            vocab_size=c.vocab_size,
            n_layer=c.n_layer,
            d_model=c.d_model,
            n_head=c.n_head,
            n_kv_head=c.n_kv_head,
            head_dim=c.head_dim,
            d_ff=c.hidden_dim,
            ffn=c.ffn,
            norm=norm,
            pos=c.pos,
            context=c.block_size,
            tie_embeddings=c.tie_embeddings,
            n_positions=c.block_size if c.pos == "learned" else 0,
            qkv_bias=c.bias,
            o_bias=c.bias,
            mlp_bias=c.bias,
            n_experts=c.n_experts,
            top_k=c.top_k if c.n_experts else 0,
            qk_norm=c.qk_norm,
            window=c.window or 0,
            kv_rank=c.mla_kv_rank or 0,
            q_rank=c.mla_q_rank or 0,
            rope_dim=c.mla_rope_dim if c.mla_kv_rank else 0,
            block_repeat=c.block_repeat,
            head_scale=tuple(c.head_scale or ()),
            ffn_scale=tuple(c.ffn_scale or ()),
        )
        return cls(**{**fields, **_mamba_fields(c)})

    def to_tinylm(self) -> TinyLMConfig | None:
        """The TinyLMConfig with exactly these weights' shapes,
        or None when TinyLM cannot express it."""
        same_bias = self.qkv_bias == self.o_bias == self.mlp_bias
        ok = (
            same_bias
            and self.head_dim * self.n_head == self.d_model
            and self.ffn in ("swiglu", "gelu", "relu", "relu2")
            and self.norms_per_layer == 2
            and self.final_norm
            and not self.embed_norm
            and not self.embed_dim
            and not self.lm_head_bias
            and self.pos in ("rope", "learned", "none", "alibi")
            and (self.pos != "learned" or self.n_positions == self.context)
            and self.norm in ("rmsnorm", "layernorm", "layernorm_nobias")
            and (self.norm != "layernorm" or self.mlp_bias)
            and (self.norm != "layernorm_nobias" or not self.mlp_bias)
            and (self.pos != "rope" or self.head_dim % 2 == 0)
            and self.mixer == "attention"  # a Mamba Arch comes from a TinyLMConfig, not back
        )
        if not ok:
            return None
        return TinyLMConfig(
            vocab_size=self.vocab_size,
            block_size=self.context,
            n_layer=self.n_layer,
            n_head=self.n_head,
            n_kv_head=self.n_kv_head,
            d_model=self.d_model,
            ffn=self.ffn,
            d_ff=self.d_ff,
            norm="rmsnorm" if self.norm == "rmsnorm" else "layernorm",
            pos=self.pos,
            tie_embeddings=self.tie_embeddings,
            bias=self.mlp_bias,
            n_experts=self.n_experts,
            top_k=self.top_k if self.n_experts else 2,
            qk_norm=self.qk_norm,
            window=self.window or None,
            mla_kv_rank=self.kv_rank or None,
            mla_q_rank=self.q_rank or None,
            mla_rope_dim=self.rope_dim or None,
            block_repeat=self.block_repeat,
            head_scale=self.head_scale or None,
            ffn_scale=self.ffn_scale or None,
        )

    def to_dict(self) -> dict:
        return asdict(self)

    def layer_heads(self) -> list[tuple[int, int]]:
        """(query heads, key/value heads) of every layer (they vary with ``head_scale``)."""
        scales = layer_scales(self.n_layer, self.head_scale or None)
        return [scaled_heads(self.n_head, self.n_kv_head, s) for s in scales]

    def layer_widths(self) -> list[int]:
        """The FFN width of every layer (it varies with ``ffn_scale``)."""
        scales = layer_scales(self.n_layer, self.ffn_scale or None)
        return [scaled_width(self.d_ff, s) for s in scales]


def _mamba_fields(c: TinyLMConfig) -> dict:
    if c.mixer == "rwkv":  # the first layer's norm of the embeddings counts as BLOOM's does
        return dict(mixer="rwkv", embed_norm=True, ffn="rwkv", n_experts=0, top_k=0)
    if c.mixer != "mamba":
        return {}
    return dict(
        mixer="mamba",
        ssm_state=c.ssm_state,
        ssm_inner=c.ssm_inner,
        ssm_conv=c.ssm_conv,
        dt_rank=c.dt_rank,
        n_experts=0,
        top_k=0,
        norms_per_layer=1,
        d_ff=0,
    )


def _mamba_layer_params(a: Arch) -> int:
    """One Mamba mixer: in_proj (two streams), the depthwise convolution and its bias, x_proj
    (step rank + B + C), dt_proj and its bias, A_log, D, out_proj (and the two projections'
    biases, if any)."""
    d, i, n, r = a.d_model, a.ssm_inner, a.ssm_state, a.dt_rank
    weights = d * 2 * i + i * a.ssm_conv + i * (r + 2 * n) + r * i + i * n + i + i * d
    biases = i + i + (2 * i + d) * a.mlp_bias  # conv and dt_proj always; in/out_proj with bias
    return weights + biases


def _rwkv_layer_params(a: Arch) -> tuple[int, int]:
    """(time mix, channel mix) of one RWKV layer: decay, bonus, three token-shift mixes and four
    d x d projections; two mixes, key (d -> d_ff), value (d_ff -> d) and receptance (d x d)."""
    d, f = a.d_model, a.d_ff
    return 5 * d + 4 * d * d, 2 * d + 2 * d * f + d * d


def as_arch(model) -> Arch:
    """``model`` as an :class:`Arch`: an Arch as is, a TinyLMConfig (or a module with one as
    ``.config``, such as a TinyLM) converted."""
    if isinstance(model, Arch):
        return model
    config = getattr(model, "config", model)
    if isinstance(config, TinyLMConfig):
        return Arch.from_tinylm(config)
    raise TypeError(
        f"expected an Arch or a TinyLMConfig, got {type(model).__name__}; "
        "for a model name or a transformers config use slmlab.zoo.get_arch(...)"
    )


def param_breakdown(model) -> dict[str, int]:
    """Parameters per component: embeddings (tokens, learned positions, embedding norm/projections),
    attention (the token mixer: a Mamba layer's whole mixer), ffn (every expert and the routers
    of a mixture), norms (QK-norm's too), lm_head (0 when tied to the embeddings), total."""
    a = as_arch(model)
    d, e = a.d_model, a.embed_dim or a.d_model
    q_out = a.n_head * a.head_dim
    norm = NORM_PARAMS[a.norm] * d
    emb = (
        a.vocab_size * e
        + a.n_positions * d * (a.pos == "learned")
        + norm * a.embed_norm
        + 2 * e * d * bool(a.embed_dim)
    )
    if a.mixer == "mamba":  # the whole mixer counts as the layer's "attention" (token mixing)
        attn, latent_norms = a.n_layer * _mamba_layer_params(a), 0
    elif a.mixer == "rwkv":  # the time mix in attention's place
        attn, latent_norms = a.n_layer * _rwkv_layer_params(a)[0], 0
    elif a.kv_rank:  # MLA: queries (maybe through a bottleneck), latent down and up, output
        q_width = a.n_head * (a.head_dim + a.rope_dim)
        queries = d * a.q_rank + a.q_rank * q_width if a.q_rank else d * q_width
        keys_values = d * (a.kv_rank + a.rope_dim) + a.kv_rank * 2 * q_out
        attn = a.n_layer * (queries + keys_values + q_out * d)
        latent_norms = NORM_PARAMS[a.norm] * (a.kv_rank + a.q_rank)
    else:
        attn = sum(_attention_params(a, h, kv) for h, kv in a.layer_heads())
        latent_norms = 0
    ffn = sum(  # every expert of every layer, and the routers (a Mamba layer has no FFN)
        max(a.n_experts, 1) * _ffn_params(a, width) + d * a.n_experts for width in a.layer_widths()
    ) * (a.mixer == "attention")
    if a.mixer == "rwkv":  # the channel mix in the FFN's place
        ffn = a.n_layer * _rwkv_layer_params(a)[1]
    qk_norms = 2 * NORM_PARAMS[a.norm] * a.head_dim * a.qk_norm
    norms = a.n_layer * (a.norms_per_layer * norm + qk_norms + latent_norms) + norm * a.final_norm
    head = 0 if a.tie_embeddings else a.vocab_size * e + a.vocab_size * a.lm_head_bias
    out = {
        "embeddings": emb,
        "attention": attn,
        "ffn": ffn,
        "norms": norms,
        "lm_head": head,
    }
    out["total"] = sum(out.values())
    return out


def _attention_params(a: Arch, n_head: int, n_kv_head: int) -> int:
    """q, k, v and o of one layer with ``n_head`` query and ``n_kv_head`` key/value heads."""
    d, q_out, kv_out = a.d_model, n_head * a.head_dim, n_kv_head * a.head_dim
    return 2 * d * q_out + 2 * d * kv_out + (q_out + 2 * kv_out) * a.qkv_bias + d * a.o_bias


def _ffn_params(a: Arch, width: int) -> int:
    n_in = 2 if a.gated else 1
    return (n_in + 1) * a.d_model * width + (n_in * width + a.d_model) * a.mlp_bias


def ffn_params(model) -> int:
    """Parameters of one FFN (of one expert in a mixture): 2 or, gated, 3 matrices of
    ``d_model x d_ff`` and their biases (at the base width ``d_ff``; with layer-wise scaling
    each layer's differs, see :meth:`Arch.layer_widths`)."""
    a = as_arch(model)
    return _ffn_params(a, a.d_ff)


def active_params(model) -> int:
    """Parameters one token uses: all of :func:`num_params` except the experts it is not sent
    to (``n_experts - top_k`` FFNs per layer); :func:`num_params` for a dense model."""
    a = as_arch(model)
    idle = max(a.n_experts - a.top_k, 0) * sum(_ffn_params(a, w) for w in a.layer_widths())
    return num_params(a) - idle


def num_params(model, non_embedding: bool = False) -> int:
    """Total parameters (or without the embedding tables and the LM head); equals
    ``sum(p.numel() for p in TinyLM(config).parameters())`` for a TinyLMConfig."""
    b = param_breakdown(model)
    return b["total"] - (b["embeddings"] + b["lm_head"] if non_embedding else 0)


def bits_of(bits: float | str) -> float:
    if isinstance(bits, str):
        if bits.lower() not in BITS:
            raise ValueError(
                f"unknown precision {bits!r}; use a number of bits or one of {list(BITS)}"
            )
        return BITS[bits.lower()]
    if not bits > 0:
        raise ValueError(f"bits must be positive, got {bits}")
    return float(bits)


def weight_bytes(model, bits: float | str) -> int:
    """Bytes of all weights at ``bits`` per weight (e.g. 16, "int8", "int4", "q4_0")."""
    return int(num_params(model) * bits_of(bits) / 8)


def decode_weight_params(model) -> int:
    """Weights read to decode one token: every layer, the final norm and the LM head matrix; of the
    embedding table only one row (a lookup),
    unless it is tied to the LM head (then it is read whole)."""
    a = as_arch(model)
    b = param_breakdown(a)
    head_matrix = a.vocab_size * (a.embed_dim or a.d_model)
    projections = (
        2 * (a.embed_dim or 0) * a.d_model
    )  # OPT-350m's project_in / project_out are used per token
    return b["total"] - b["embeddings"] + (head_matrix if a.tie_embeddings else 0) + projections


def kv_cache_bytes_per_token(model, bits: float | str) -> int:
    """Keys and values of every layer for one token: 2 * n_layer * n_kv_head * head_dim values;
    with latent attention (MLA) the latent and the shared rotated key, n_layer * (kv_rank +
    rope_dim) values. A layer run ``block_repeat`` times caches that many rows."""
    a = as_arch(model)
    if a.mixer != "attention":  # no per-token cache: a fixed-size state (see state_bytes)
        return 0
    if a.kv_rank:
        layers = a.n_layer * (a.kv_rank + a.rope_dim)
    else:
        layers = sum(2 * kv * a.head_dim for _, kv in a.layer_heads())
    return int(layers * a.block_repeat * bits_of(bits) / 8)


def kv_cache_bytes(model, context: int, bits: float | str, batch: int = 1) -> int:
    """KV-cache bytes for ``context`` tokens (and ``batch`` sequences); with a sliding window,
    at most ``window`` tokens are kept, whatever the context; a Mamba model keeps its fixed-size
    state (:func:`state_bytes`) instead."""
    if context < 0 or batch < 1:
        raise ValueError(
            f"context must be >= 0 and batch >= 1, got context={context}, batch={batch}"
        )
    a = as_arch(model)
    if a.mixer != "attention":  # the same state at any context
        return state_bytes(a, bits) * int(batch)
    kept = min(int(context), a.window) if a.window else int(context)
    return kv_cache_bytes_per_token(a, bits) * kept * int(batch)


def state_bytes(model, bits: float | str) -> int:
    """The fixed-size decoding state of one sequence in a recurrent model: per Mamba layer (and
    run), ``ssm_inner * ssm_state`` state numbers and ``ssm_inner * (ssm_conv - 1)`` inputs of the
    convolution; per RWKV layer 5 * d_model numbers (two shifted inputs, three running sums); 0
    for attention, whose cache grows with the context instead."""
    a = as_arch(model)
    if a.mixer == "attention":
        return 0
    if a.mixer == "rwkv":
        per_layer = 5 * a.d_model
    else:
        per_layer = a.ssm_inner * (a.ssm_state + a.ssm_conv - 1)
    return int(a.n_layer * a.block_repeat * per_layer * bits_of(bits) / 8)


_SCAN_FLOPS = 3  # multiply-adds per Mamba state number and token (2 FLOPs each: see below)


def flops_per_token(model, context: int | None = None, training: bool = False) -> int:
    """Matmul FLOPs per token at ``context`` tokens of attention (Kaplan et al.): forward = 2 per
    weight used (all layers, only the experts a token is sent to, and the LM head; not the
    embedding lookup) + 2 * n_layer * context * attention width (scores and values; a sliding
    window caps the context; MLA's scores have head_dim + rope_dim terms per head, its values
    head_dim, as the expanded form computes them; a layer run ``block_repeat`` times costs that
    many times); training (forward + backward) = 3x forward. A Mamba layer has no context term:
    its weights, plus the scan's elementwise work per state number (decay, update and read-out,
    ``_SCAN_FLOPS`` = 3 multiply-adds, counted as 2 FLOPs each), the same at any context; an
    RWKV layer, its weights (its running sums, a few operations per channel, are left out)."""
    a = as_arch(model)
    T = a.context if context is None else int(context)
    T = min(T, a.window) if a.window else T
    b = param_breakdown(a)
    non_embedding = active_params(a) - b["embeddings"] - b["lm_head"]
    head = a.vocab_size * (a.embed_dim or a.d_model)
    projections = 2 * (a.embed_dim or 0) * a.d_model
    score_and_value_width = sum(h for h, _ in a.layer_heads()) * (2 * a.head_dim + a.rope_dim)
    if a.mixer != "attention":  # no attention over the context (Mamba's scan: below)
        score_and_value_width = 0
    final_norm = NORM_PARAMS[a.norm] * a.d_model * a.final_norm
    layers = (non_embedding - final_norm) * a.block_repeat + final_norm  # each run counts
    if a.mixer == "mamba":
        layers += _SCAN_FLOPS * a.n_layer * a.block_repeat * a.ssm_inner * a.ssm_state
    # (score_and_value_width sums the layers already; each run of a layer attends again)
    forward = 2 * (layers + head + projections) + a.block_repeat * T * score_and_value_width
    return 3 * forward if training else forward
