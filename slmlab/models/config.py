"""TinyLMConfig: every switch the book's architecture chapter studies is a config field.

=================  ==============================================  ====================
field              choices                                         transformers twin
=================  ==============================================  ====================
mixer              "attention"; "mamba" (a selective SSM layer);   Mamba ("mamba"),
                   "rwkv" (RWKV-4's linear-attention recurrence)   RWKV ("rwkv")
ssm_state ...      Mamba's state width, expansion, conv, dt rank   Mamba
n_kv_head          n_head (MHA), 1 < k < n_head (GQA), 1 (MQA)      Llama (any divisor)
mla_kv_rank        None; r >= 1: latent attention (MLA), rank r     DeepSeek-V3
mla_q_rank         None (full-rank queries); a query bottleneck     DeepSeek-V3
mla_rope_dim       rotated dims per MLA head (None: head_dim / 2)   DeepSeek-V3
block_repeat       1; k >= 2: each block run k times in a row       (none; MobileLLM)
head_scale         None; (a, b): heads x a in layer 1 .. x b last   (none; OpenELM)
ffn_scale          None; (a, b): FFN width x a .. x b with depth    (none; OpenELM)
window             None (full causal attention), w >= 1 (sliding)  Mistral
pos                "rope", "learned", "none", "alibi"              Llama ("rope")
qk_norm            False / True (RMSNorm of each query/key head)   Qwen3
norm               "rmsnorm", "layernorm"                          Llama ("rmsnorm")
norm_position      "pre" (x + f(norm(x))), "post" (norm(x + f(x)))  (none)
ffn                "swiglu", "gelu", "relu", "relu2"               Llama ("swiglu")
n_experts, top_k   0 (a dense FFN); n >= 1 experts, top_k <= n     Mixtral
tie_embeddings     True / False                                    either
bias               True / False                                    Llama (False)
=================  ==============================================  ====================

``pos`` is one field, so ALiBi and RoPE cannot be combined; ALiBi needs no table and no
``block_size`` limit on positions. ``window`` caps what every query sees to itself and the
``window - 1`` positions before it (Mistral's definition); generation then keeps only ``window``
positions per layer (:class:`~slmlab.models.sliding_window.SlidingWindowCache`).
``mixer="mamba"`` replaces every block by a Mamba layer (:mod:`~slmlab.models.mamba`): a
selective state-space mixer of width ``ssm_expand * d_model`` with ``ssm_state`` numbers of state
per channel, and no attention, no FFN and no positions to rotate (``pos`` is "none" or
"learned"); generation keeps a constant-size state (:class:`~slmlab.models.mamba.SSMCache`).
``mixer="rwkv"`` makes every block an RWKV layer (:mod:`~slmlab.models.rwkv`): a time mix with
exponentially decaying weights in attention's place and a channel mix of width ``d_ff`` (ReLU²
with a receptance gate, whatever ``ffn`` says) in the FFN's; its projections have no biases
(``bias`` gives the norms theirs), and its state is constant too.
``mla_kv_rank`` replaces the key and value projections by multi-head latent attention
(:mod:`~slmlab.models.mla`): every head keeps ``head_dim`` dimensions for keys and values, and
``mla_rope_dim`` more rotated ones for queries and keys; the cache holds ``mla_kv_rank +
mla_rope_dim`` numbers per token and layer (:class:`~slmlab.models.mla.LatentCache`).
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, fields


def layer_scales(n_layer: int, scale: tuple[float, float] | None) -> list[float]:
    """Layer-wise scaling (OpenELM): a factor per layer, linear from ``scale[0]`` in the first
    layer to ``scale[1]`` in the last; 1 everywhere without a scale."""
    if not scale:
        return [1.0] * n_layer
    first, last = scale
    if n_layer == 1:
        return [float(first)]
    return [first + (last - first) * i / (n_layer - 1) for i in range(n_layer)]


def scaled_heads(n_head: int, n_kv_head: int, factor: float) -> tuple[int, int]:
    """(query heads, key/value heads) of a layer whose heads are scaled by ``factor``: whole
    groups of ``n_head / n_kv_head`` query heads per KV head, at least one group."""
    group = n_head // n_kv_head
    groups = max(1, round(n_head * factor / group))
    return groups * group, groups


def scaled_width(width: int, factor: float) -> int:
    """The FFN width of a layer whose width is scaled by ``factor`` (at least 1)."""
    return max(1, round(width * factor))


CHOICES = {
    "mixer": ("attention", "mamba", "rwkv"),
    "ffn": ("swiglu", "gelu", "relu", "relu2"),
    "norm": ("rmsnorm", "layernorm"),
    "norm_position": ("pre", "post"),
    "pos": ("rope", "learned", "none", "alibi"),
}


@dataclass
class TinyLMConfig:
    vocab_size: int = 512
    block_size: int = 256  # longest sequence the model is trained on / can attend over
    n_layer: int = 4
    n_head: int = 4
    n_kv_head: int | None = None  # None -> n_head (MHA)
    d_model: int = 128
    ffn: str = "swiglu"
    ffn_ratio: float = (
        4.0  # hidden width / d_model (for SwiGLU: the width of each of the two up-projections)
    )
    d_ff: int | None = None  # overrides ffn_ratio when set
    norm: str = "rmsnorm"
    norm_eps: float = 1e-5
    pos: str = "rope"
    rope_theta: float = 10000.0
    tie_embeddings: bool = False  # untied is the fast default on CPU: see benchmarks/
    bias: bool = False
    dropout: float = 0.0
    init_std: float = 0.02
    window: int | None = None  # sliding-window attention: each query sees `window` positions
    qk_norm: bool = False  # RMSNorm over each head's queries and keys, before RoPE (Qwen3)
    norm_position: str = "pre"  # "post": the original transformer's norm after the residual
    n_experts: int = 0  # mixture of experts: 0 is a dense FFN
    top_k: int = 2  # experts per token (when n_experts > 0)
    router_aux_loss_coef: float = 0.01  # weight of the load-balancing loss in TinyLM.loss
    mla_kv_rank: int | None = None  # multi-head latent attention: the latent's width
    mla_q_rank: int | None = None  # MLA's query bottleneck (None: one full-rank projection)
    mla_rope_dim: int | None = None  # MLA's rotated dimensions per head (None: head_dim // 2)
    block_repeat: int = 1  # block-wise sharing (MobileLLM): each block's weights run k times
    head_scale: tuple[float, float] | None = None  # layer-wise scaling of the heads (OpenELM)
    ffn_scale: tuple[float, float] | None = None  # layer-wise scaling of the FFN width
    mixer: str = "attention"  # "mamba", "rwkv": recurrent layers instead of transformer blocks
    ssm_state: int = 16  # Mamba: state numbers per channel (N)
    ssm_expand: int = 2  # Mamba: the mixer's width, as a multiple of d_model
    ssm_conv: int = 4  # Mamba: positions the causal convolution sees
    ssm_dt_rank: int | None = None  # Mamba: rank of the step's projection (None: d_model / 16)

    def __post_init__(self):
        if self.n_kv_head is None:
            self.n_kv_head = self.n_head
        for name, choices in CHOICES.items():
            if getattr(self, name) not in choices:
                raise ValueError(
                    f"TinyLMConfig.{name}={getattr(self, name)!r} is not one of {choices}."
                )
        for name in ("vocab_size", "block_size", "n_layer", "n_head", "n_kv_head", "d_model"):
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or v <= 0:
                raise ValueError(f"TinyLMConfig.{name} must be a positive integer, got {v!r}.")
        if self.d_model % self.n_head:
            raise ValueError(
                f"d_model={self.d_model} is not divisible by n_head={self.n_head}: "
                "each head gets d_model / n_head dimensions; pick n_head among the divisors of "
                f"{self.d_model}."
            )
        if self.n_head % self.n_kv_head:
            raise ValueError(
                f"n_kv_head={self.n_kv_head} does not divide n_head={self.n_head}: "
                "each KV head serves a group of query heads; use 1 (MQA), "
                f"{self.n_head} (MHA) or another divisor (GQA)."
            )
        if self.pos == "rope" and self.head_dim % 2:
            raise ValueError(
                f"RoPE needs an even head dimension, got d_model/n_head={self.head_dim}."
            )
        if self.window is not None and (
            isinstance(self.window, bool) or not isinstance(self.window, int) or self.window < 1
        ):
            raise ValueError(
                f"window must be None (full attention) or a whole number >= 1 of positions each "
                f"query sees, got {self.window!r}."
            )
        if (
            isinstance(self.block_repeat, bool)
            or not isinstance(self.block_repeat, int)
            or (self.block_repeat < 1)
        ):
            raise ValueError(
                f"block_repeat must be a whole number >= 1 (how many times each block runs in a "
                f"row; 1: no sharing), got {self.block_repeat!r}."
            )
        for name in ("n_experts", "top_k"):
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or v < 0:
                raise ValueError(f"TinyLMConfig.{name} must be a whole number >= 0, got {v!r}.")
        if self.n_experts and not 1 <= self.top_k <= self.n_experts:
            raise ValueError(
                f"top_k={self.top_k} experts per token is not between 1 and "
                f"n_experts={self.n_experts}: each token is sent to top_k of the experts."
            )
        if self.router_aux_loss_coef < 0:
            raise ValueError(f"router_aux_loss_coef must be >= 0, got {self.router_aux_loss_coef}.")
        self._check_mla()
        self._check_layer_scaling()
        self._check_mixer()
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}.")
        if self.d_ff is None and self.ffn_ratio <= 0:
            raise ValueError(f"ffn_ratio must be positive, got {self.ffn_ratio}.")

    def _check_layer_scaling(self) -> None:
        for name in ("head_scale", "ffn_scale"):
            v = getattr(self, name)
            if v is None:
                continue
            try:
                first, last = (float(f) for f in v)
            except (TypeError, ValueError):
                raise ValueError(
                    f"{name} must be None or two factors (first layer, last layer), got {v!r}."
                ) from None
            if not (first > 0 and last > 0):
                raise ValueError(f"{name} factors must be positive, got {v!r}.")
            setattr(self, name, (first, last))  # a list from config.json becomes a tuple
        if self.head_scale is not None and self.mla_kv_rank:
            raise ValueError("head_scale with mla_kv_rank: layer-wise heads are for MHA/GQA/MQA.")

    def _check_mixer(self) -> None:
        for name in ("ssm_state", "ssm_expand", "ssm_conv", "ssm_dt_rank"):
            v = getattr(self, name)
            if (v is not None or name != "ssm_dt_rank") and (
                isinstance(v, bool) or not isinstance(v, int) or v < 1
            ):
                raise ValueError(f"TinyLMConfig.{name} must be an integer >= 1, got {v!r}.")
        if self.mixer == "attention":
            return
        why_not = {
            "pos": (
                self.pos in ("rope", "alibi"),
                "a state-space layer has no attention scores to rotate or bias; use pos='none' "
                "(the state carries the order) or 'learned'",
            ),
            "window": (self.window is not None, "a window limits attention; there is none"),
            "mla_kv_rank": (bool(self.mla_kv_rank), "latent attention is attention"),
            "qk_norm": (self.qk_norm, "there are no queries and keys to normalise"),
            "n_experts": (bool(self.n_experts), "no FFN of this layer is split into experts here"),
            "head_scale": (self.head_scale is not None, "a recurrent layer has no heads"),
            "ffn_scale": (self.ffn_scale is not None, "its width is the same in every layer here"),
            "norm_position": (self.norm_position != "pre", "the layer is x + mixer(norm(x))"),
        }
        for name, (clash, why) in why_not.items():
            if clash:
                raise ValueError(
                    f"mixer={self.mixer!r} with {name}={getattr(self, name)!r}: {why}."
                )

    def layer_heads(self, layer: int) -> tuple[int, int]:
        """(query heads, key/value heads) of block ``layer``: n_head and n_kv_head, scaled by
        ``head_scale``'s factor for that layer (whole GQA groups); the head width is fixed."""
        factor = layer_scales(self.n_layer, self.head_scale)[layer]
        return scaled_heads(self.n_head, self.n_kv_head, factor)

    def layer_hidden_dim(self, layer: int) -> int:
        """The FFN width of block ``layer``: hidden_dim, scaled by ``ffn_scale``'s factor."""
        return scaled_width(self.hidden_dim, layer_scales(self.n_layer, self.ffn_scale)[layer])

    def _check_mla(self) -> None:
        for name in ("mla_kv_rank", "mla_q_rank", "mla_rope_dim"):
            v = getattr(self, name)
            if v is not None and (isinstance(v, bool) or not isinstance(v, int) or v < 1):
                raise ValueError(f"TinyLMConfig.{name} must be None or an integer >= 1, got {v!r}.")
        if self.mla_kv_rank is None:
            if self.mla_q_rank is not None or self.mla_rope_dim is not None:
                raise ValueError(
                    "mla_q_rank and mla_rope_dim shape multi-head latent attention: set "
                    "mla_kv_rank (the latent's width) too, or leave them None"
                )
            return
        for name in ("mla_kv_rank", "mla_q_rank"):
            v = getattr(self, name)
            if v is not None and v > self.d_model:
                raise ValueError(
                    f"{name}={v} is wider than d_model={self.d_model}: a latent is a compression "
                    "of the token's vector, so its rank is at most d_model"
                )
        if self.mla_rope_dim is None:
            self.mla_rope_dim = max(2, self.head_dim // 2 // 2 * 2)
        if self.mla_rope_dim % 2:
            raise ValueError(
                f"mla_rope_dim must be even (RoPE rotates pairs), got {self.mla_rope_dim}."
            )
        clashes = {
            "pos": (self.pos != "rope", "MLA's decoupled keys are rotated: pos='rope'"),
            "n_kv_head": (
                self.n_kv_head != self.n_head,
                "every MLA head expands its own key and value from the latent: leave n_kv_head "
                "unset (it is n_head)",
            ),
            "window": (self.window is not None, "no sliding window with MLA here"),
            "qk_norm": (self.qk_norm, "MLA normalises its latents instead of QK-norm"),
            "bias": (self.bias, "MLA's projections have no biases here (as in DeepSeek)"),
        }
        for name, (clash, why) in clashes.items():
            if clash:
                raise ValueError(f"mla_kv_rank with {name}={getattr(self, name)!r}: {why}.")

    @property
    def depth(self) -> int:
        """Blocks a token passes through: ``n_layer`` distinct blocks, each run ``block_repeat``
        times; every run has its own place in the KV cache."""
        return self.n_layer * self.block_repeat

    @property
    def rope_dim(self) -> int:
        """Dimensions RoPE rotates per head: head_dim, or MLA's decoupled ``mla_rope_dim``."""
        return self.mla_rope_dim if self.mla_kv_rank else self.head_dim

    @property
    def ssm_inner(self) -> int:
        """Width of a Mamba mixer's two streams: ``ssm_expand * d_model``."""
        return self.ssm_expand * self.d_model

    @property
    def dt_rank(self) -> int:
        """Rank of Mamba's step projection: ``ssm_dt_rank``, or ceil(d_model / 16) as Mamba's."""
        return self.ssm_dt_rank or math.ceil(self.d_model / 16)

    @property
    def head_dim(self) -> int:
        return self.d_model // self.n_head

    @property
    def hidden_dim(self) -> int:
        return self.d_ff if self.d_ff is not None else int(round(self.ffn_ratio * self.d_model))

    @property
    def llama_compatible(self) -> bool:
        """The weights and the function of a transformers Llama model of the same shape."""
        return (
            self.llama_family
            and self.window is None
            and not self.qk_norm
            and not self.n_experts
            and not self.mla_kv_rank
            and self.block_repeat == 1
            and self.head_scale is None
            and self.ffn_scale is None
            and self.mixer == "attention"
        )

    @property
    def llama_family(self) -> bool:
        """Llama's block (RMSNorm before attention and FFN, SwiGLU, RoPE, no bias): the base of
        the transformers twins (Llama; Mistral with a window; Qwen3 with QK-norm; Mixtral with
        experts; DeepSeek-V3 with latent attention)."""
        return (
            self.norm == "rmsnorm"
            and self.norm_position == "pre"
            and self.ffn == "swiglu"
            and self.pos == "rope"
            and not self.bias
        )

    def to_dict(self) -> dict:
        """The options as a dict; ``ffn_ratio`` is left out when ``d_ff`` sets the width, so a
        saved ``config.json`` never states two different FFN widths."""
        options = asdict(self)
        if self.d_ff is not None:
            del options["ffn_ratio"]
        return options

    @classmethod
    def from_dict(cls, d: dict) -> TinyLMConfig:
        """From a dict of options, or a ``config.json`` that ``save_pretrained`` wrote (its
        ``model_type`` is ``"slmlab-tinylm"``; a transformers config is refused with a pointer)."""
        d = dict(d)
        model_type = d.pop("model_type", "slmlab-tinylm")
        if model_type != "slmlab-tinylm":
            raise ValueError(
                f"this is a {model_type!r} config, not a TinyLM one: "
                "load a transformers checkpoint with slmlab.from_hf(path) (Llama family) or "
                "slmlab.hf.config_from_hf(config)"
            )
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(
                f"Unknown TinyLMConfig option(s) {unknown}; known options are {sorted(known)}."
            )
        return cls(**d)

    @classmethod
    def from_json(cls, path) -> TinyLMConfig:
        with open(path, encoding="utf-8") as f:
            return cls.from_dict(json.load(f))
