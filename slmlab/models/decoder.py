"""A lean decode step: what an inference runtime does to a model before it generates.

Generating one token with a ~3M-parameter model multiplies one vector by 43 small matrices.
Each product takes microseconds, so a step's time goes to *calling* operators (Python, the
dispatcher, waking threads), not to arithmetic. :class:`Decoder` packs a :class:`~slmlab.TinyLM`
and runs each step with about half the operator calls of ``TinyLM.forward``, computing the same
function:

- q|k|v and gate|up weights are stacked, so each block runs 4 matrix products instead of 7, and
  each RMSNorm's gain is folded into the stacked matrix that follows it;
- the residual additions ride inside the output projections (``addmm``: x + y @ W);
- RoPE of one new position is a single (head_dim x head_dim) matrix product (rotations are
  linear maps), applied to queries and keys together;
- keys and values go through the cache's own ``update``, so quantized caches still work.

Packing copies weights, which pays only while matrices are small. The 3M-parameter base model's
step is bound by operator calls, and every saved call counts; a 135M-parameter hub model's step
is bound by reading its 540 MB of weights, where copies would double the memory and the time to
build the decoder for no measurable gain. So projections with more than
:data:`PACK_MAX_ELEMENTS` weights are read in place, through transposed views made once, with
the RMSNorm before them in the few calls of Llama's formula; o_proj and down_proj always are
(``addmm(x, y, W.t())`` reads the module's weight in the layout a copy would have).

**What it runs is declared.** :data:`SUPPORTED` lists every :class:`~slmlab.models.TinyLMConfig`
field with the values of it the decoder computes as ``forward`` does (or :data:`ANY` value); a
config with a value outside the table, or with a field the table does not know (one added after
this decoder was written), runs through ``TinyLM.forward``, as do models that are training, have
forward hooks, or have a module whose forward was replaced (:func:`unsupported` says which).
Quantized or otherwise replaced projections keep their own forward (and their norms stay
unfolded), so quantized models decode through the same lean step. Tests check that both paths
give the same logits for every supported configuration.

**Built once per model.** :meth:`Decoder.for_model` keeps the decoder of each model (in a weak
dictionary: it neither keeps the model alive nor travels with it through ``state_dict``,
``deepcopy`` or pickling) and builds a new one when what it was built from changed: a parameter
or buffer updated in place (every in-place write bumps a tensor's version counter: optimizer
steps, ``copy_``, ``load_state_dict``), replaced, or moved to another dtype or device, a module
replaced (a layer swapped for a quantized one), or a config value changed. Writes through
``tensor.data`` bypass the version counter: after those, call :func:`forget`.
"""

from __future__ import annotations

import dataclasses
import weakref

import torch
import torch.nn as nn
import torch.nn.functional as F

from .block import Block
from .ffn import ACTIVATIONS, FeedForward
from .layers import (
    Attention,
    KVCache,
    RMSNorm,
    apply_rope,
    causal_mask,
    padded_causal_mask,
    rope_matrix,
    rotate_half_matrix,
)


class AnyValue:
    """In :data:`SUPPORTED`: every value of the field is supported
    (``value in ANY`` is always true)."""

    def __contains__(self, value) -> bool:
        return True

    def __repr__(self) -> str:
        return "ANY"


ANY = AnyValue()

# Every TinyLMConfig field, with the values the decoder computes exactly as TinyLM.forward does. A
# field missing here (a switch added to TinyLMConfig later) sends generation through forward until
# it is added.
SUPPORTED: dict[str, object] = {
    # sizes: the decoder reads them from the config or from the weights' shapes, as the modules do
    "vocab_size": ANY,
    "block_size": ANY,
    "n_layer": ANY,
    "n_head": ANY,
    "n_kv_head": ANY,  # MHA, GQA and MQA alike: scaled_dot_product_attention(enable_gqa=...)
    "d_model": ANY,
    "ffn": ("swiglu", "gelu", "relu", "relu2"),
    "ffn_ratio": ANY,  # the hidden width only sizes the weights, used as they are
    "d_ff": ANY,
    "norm": ("rmsnorm", "layernorm"),
    "norm_eps": ANY,  # read from each norm module
    "pos": ("rope", "learned", "none"),  # not "alibi": its bias needs a mask per head
    "rope_theta": ANY,  # RoPE tables come from model.rope_tables, as forward's do
    "tie_embeddings": (False, True),
    "bias": (False, True),
    # the decoder never runs a training model, and in eval mode dropout is the identity
    "dropout": ANY,
    "init_std": ANY,  # initialization only
    # the architecture chapter's variants run through forward (their masks, norms and routers)
    "window": (None,),
    "qk_norm": (False,),
    "norm_position": ("pre",),
    "n_experts": (0,),
    "top_k": ANY,  # used only with experts
    "router_aux_loss_coef": ANY,  # training only
    "mla_kv_rank": (None,),  # latent attention has its own cache and attention
    "mla_q_rank": (None,),
    "mla_rope_dim": (None,),
    "block_repeat": (1,),  # a block run twice needs two cache slots: forward handles it
    "head_scale": (None,),  # layer-wise scaling: shapes that vary by layer
    "ffn_scale": (None,),
    "mixer": ("attention",),  # Mamba layers run through forward
    "ssm_state": ANY,  # the Mamba sizes matter only with mixer="mamba"
    "ssm_expand": ANY,
    "ssm_conv": ANY,
    "ssm_dt_rank": ANY,
}

# Copy projections that read the same input (q|k|v, gate|up, the LM head) into one packed matrix,
# with the RMSNorm gain before them folded in, only while it has at most this many elements
# (256K: 1 MB in float32). Measured on the project's 2-core CPU: packing makes the base model's
# step (largest group 196K, gate|up) 13% faster than reading in place; SmolLM2-135M's step
# (smallest group 553K, q|k|v) at most 3% faster, for 66-390 MB more memory and 0.1-0.4 s more in
# the first call (benchmarks/README.md).
PACK_MAX_ELEMENTS = 1 << 18


def _own_forward(model: nn.Module) -> bool:
    """Is ``model``'s forward TinyLM's own (not a subclass's)? Checked by name, so that this module
    need not import the model that imports it."""
    forward = type(model).forward
    return (
        forward.__qualname__ == "TinyLM.forward" and forward.__module__ == f"{__package__}.tinylm"
    )


def unsupported_config(config) -> str | None:
    """Why :data:`SUPPORTED` does not cover ``config`` (a field it does not list, or a value outside
    the listed ones), or None. Attributes set on the config object count as fields too."""
    if not dataclasses.is_dataclass(config):
        return f"its config is a {type(config).__name__}, not a TinyLMConfig"
    values = {f.name: getattr(config, f.name) for f in dataclasses.fields(config)}
    values.update(getattr(config, "__dict__", {}))
    unknown = sorted(set(values) - set(SUPPORTED))
    if unknown:
        return (
            f"config field(s) {unknown} are not in the decoder's SUPPORTED table: only forward "
            "knows what they change"
        )
    missing = sorted(set(SUPPORTED) - set(values))
    if missing:
        return f"the config lacks the field(s) {missing} that the decoder reads"
    for name, allowed in SUPPORTED.items():
        if values[name] not in allowed:
            return (
                f"config {name}={values[name]!r} is not among the values the decoder supports, "
                f"{allowed}"
            )
    return None


def unsupported(model: nn.Module) -> str | None:
    """Why :class:`Decoder` cannot run ``model`` (then ``TinyLM.forward`` does), or None."""
    if model.training:
        return "the model is in training mode"
    reason = unsupported_config(model.config)
    if reason is not None:
        return reason
    # the modules whose forward the decoder does not call but re-implements must be exactly TinyLM's
    pos_embed = getattr(model, "pos_embed", None)
    if (
        not _own_forward(model)
        or type(model.embed) is not nn.Embedding
        or (pos_embed is not None and type(pos_embed) is not nn.Embedding)
        or type(model.drop) is not nn.Dropout
        or any(
            type(b) is not Block
            or type(b.attn) is not Attention
            or type(b.ffn) is not FeedForward
            or type(b.drop) is not nn.Dropout
            for b in model.blocks
        )
    ):
        return "a module's forward was replaced (a subclass): only forward knows what it does"
    global_hooks = (
        getattr(nn.modules.module, "_global_forward_hooks", None),
        getattr(nn.modules.module, "_global_forward_pre_hooks", None),
    )
    if any(global_hooks) or any(m._forward_hooks or m._forward_pre_hooks for m in model.modules()):
        return "the model has forward hooks"
    return None


# ---------------------------------------------------------------------------------- building blocks
def _gainless_rms(norm: RMSNorm):
    """x / rms(x): an RMSNorm without its gain, for when the gain is folded into the next matrix."""
    return lambda x: x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + norm.eps)


def _lean_norm(norm: nn.Module):
    """``norm`` in as few calls as possible: a float32 RMSNorm as x * rsqrt(mean(x^2) + eps) * g,
    the form Llama (and transformers) compute, without the module's call and float32 round trip
    (which are no-ops for float32 inputs, but calls all the same); any other norm as it is."""
    if type(norm) is RMSNorm and norm.weight.dtype == torch.float32:
        normalize, gain = _gainless_rms(norm), norm.weight.detach()
        return lambda x: normalize(x) * gain
    return norm


def _packable(projections: tuple[nn.Module, ...]) -> bool:
    """Are these projections (which read the same normalized input) worth copying into one packed
    matrix?"""
    return (
        all(type(m) is nn.Linear for m in projections)
        and sum(m.weight.numel() for m in projections) <= PACK_MAX_ELEMENTS
    )


def _normalize_and_project(norm: nn.Module, *projections: nn.Module):
    """x -> the outputs of ``projections`` on ``norm(x)``, concatenated along the last dimension.

    Small plain ``nn.Linear`` layers are copied into one stacked matrix, transposed for x @ W, with
    an RMSNorm's gain g folded in ((x * g) @ W == x @ (g W), one multiplication fewer per step);
    large ones are used in place, and anything else (a quantized layer) keeps its own forward."""
    if _packable(projections):
        weight = torch.cat([m.weight.detach() for m in projections]).t()
        bias = (
            None
            if projections[0].bias is None
            else torch.cat([m.bias.detach() for m in projections])
        )
        normalize = norm
        if (
            type(norm) is RMSNorm and norm.weight.dtype == torch.float32
        ):  # forward computes it in float32
            normalize, weight = _gainless_rms(norm), norm.weight.detach()[:, None] * weight
        if bias is None:
            return lambda x: normalize(x) @ weight
        return lambda x: torch.addmm(bias, normalize(x), weight)
    norm = _lean_norm(norm)
    projections = [_project(m) for m in projections]
    if len(projections) == 1:
        project = projections[0]
        return lambda x: project(norm(x))

    def project_all(x):
        h = norm(x)
        return torch.cat([project(h) for project in projections], dim=-1)

    return project_all


def _project(projection: nn.Module):
    """h -> projection(h); a plain ``nn.Linear`` reads its weight in place through a transposed view
    made once here, in one call (``mm``, or ``addmm`` with a bias),
    without the module's own call."""
    if type(projection) is not nn.Linear:
        return projection
    weight_t, bias = projection.weight.detach().t(), projection.bias
    if bias is None:
        return lambda h: h @ weight_t
    bias = bias.detach()
    return lambda h: torch.addmm(bias, h, weight_t)


def _residual(projection: nn.Module):
    """(x, y) -> x + projection(y); for a plain ``nn.Linear`` the addition rides in the matrix
    product (``addmm``), which reads the module's own weight through a transposed view."""
    if type(projection) is not nn.Linear:
        return lambda x, y: x + projection(y)
    weight_t, bias = projection.weight.detach().t(), projection.bias
    if bias is None:
        return lambda x, y: torch.addmm(x, y, weight_t)
    bias = bias.detach()
    return lambda x, y: torch.addmm(x, y, weight_t) + bias


def _feed_forward(norm: nn.Module, ffn: FeedForward):
    """x -> x + ffn(norm(x)): the up projection(s) as :func:`_normalize_and_project` builds them,
    the activation, and the down projection with the residual addition inside it."""
    down = _residual(ffn.down_proj)
    if ffn.kind == "swiglu" and _packable((ffn.gate_proj, ffn.up_proj)):
        gate_up = _normalize_and_project(norm, ffn.gate_proj, ffn.up_proj)

        def packed_swiglu(x):
            gate, up = gate_up(x).chunk(2, dim=-1)
            return down(x, F.silu(gate) * up)

        return packed_swiglu
    if ffn.kind == "swiglu":  # two products read in place: no need to concatenate their outputs
        norm, gate, up = _lean_norm(norm), _project(ffn.gate_proj), _project(ffn.up_proj)

        def swiglu(x):
            h = norm(x)
            return down(x, F.silu(gate(h)) * up(h))

        return swiglu
    up = _normalize_and_project(norm, ffn.up_proj)
    activation = ACTIVATIONS[ffn.kind]
    return lambda x: down(x, activation(up(x)))


# ---------------------------------------------------------------------------------------- the cache
def _sources(model: nn.Module) -> list:
    """Everything a decoder of ``model`` is built from, in order: its config, its submodules and
    their parameters and buffers (the model itself is left out: a decoder must not keep it
    alive)."""
    found = [model.config]
    for module in model.modules():
        if module is not model:
            found.append(module)
        # the registries themselves (parameters(recurse=False) costs 4x as much on a 30-layer model)
        found.extend(module._parameters.values())
        found.extend(module._buffers.values())
    return found


def _fingerprint(sources: list) -> tuple | None:
    """What must stay the same for a decoder built from ``sources`` to be current, in a form that
    compares with ==: every object's identity (a replaced module or parameter), each tensor's
    storage address, dtype, device, shape and version counter (in-place updates), and the config's
    values. None when a tensor has no version counter (one made under ``torch.inference_mode``):
    then nothing could tell that it changed, and the decoder is not kept.

    Identities only mean something while the objects live: the decoder holds ``sources``, so no new
    object can take an old one's id while the decoder is cached."""
    key = [tuple(vars(sources[0]).items())]
    for obj in sources:
        if isinstance(obj, torch.Tensor):
            if obj.is_inference():
                return None
            key.append((id(obj), obj.data_ptr(), obj._version, obj.dtype, obj.device, obj.shape))
        else:
            key.append(id(obj))
    return tuple(key)


# model -> its Decoder; weak keys: a model that is gone takes its decoder with it
_DECODERS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def forget(model: nn.Module) -> None:
    """Drop the kept decoder of ``model`` (the next generation builds a new one): needed only after
    writing its weights through ``.data``, which leaves no trace a decoder could check."""
    _DECODERS.pop(model, None)


# -------------------------------------------------------------------------------------- the decoder
# the module types a TinyLM is built of
_OWN_MODULES = (
    nn.ModuleList,
    Block,
    Attention,
    FeedForward,
    RMSNorm,
    nn.LayerNorm,
    nn.Linear,
    nn.Embedding,
    nn.Dropout,
)


class Decoder:
    """``model`` packed for generation; ``decoder(ids, cache)`` -> logits
    (B, vocab) of the last position.

    Packing copies the small stacked projections (the model's own weights are untouched and the
    others are read in place). :meth:`for_model` keeps one decoder per model and builds a new one
    when the model changed; a Decoder built directly is not checked, so build it after any change to
    the weights."""

    builds = 0  # Decoders built so far (all models): lets tests see that packing happened once

    @classmethod
    def for_model(cls, model: nn.Module) -> Decoder:
        """The decoder of ``model``: the one built before when nothing it was built from has changed
        since, else a new one (kept for the next call)."""
        reason = unsupported(model)
        if reason is not None:
            raise ValueError(
                f"Decoder cannot run this model: {reason}; use model(ids, cache) instead"
            )
        decoder = _DECODERS.get(model)
        if decoder is not None and decoder.current():
            return decoder
        decoder = cls(model)
        if decoder.fingerprint is not None:
            _DECODERS[model] = decoder
        else:
            _DECODERS.pop(model, None)
        return decoder

    def __init__(self, model: nn.Module):
        reason = unsupported(model)
        if reason is not None:
            raise ValueError(
                f"Decoder cannot run this model: {reason}; use model(ids, cache) instead"
            )
        type(self).builds += 1
        self._model = weakref.ref(model)  # the cache's value must not keep its key alive
        self.config = c = model.config
        self._sources = _sources(model)
        self.fingerprint = _fingerprint(self._sources)
        # packed tensors are ordinary ones (not inference tensors) even if built under
        # inference_mode, so a decoder built there can also step under no_grad later
        with torch.inference_mode(False), torch.no_grad():
            self.layers = [
                (
                    _normalize_and_project(
                        b.attn_norm, b.attn.q_proj, b.attn.k_proj, b.attn.v_proj
                    ),
                    _residual(b.attn.o_proj),
                    _feed_forward(b.ffn_norm, b.ffn),
                )
                for b in model.blocks
            ]
            self.head = _normalize_and_project(model.norm, model.lm_head)
            w = model.embed.weight
            self.rotate_half = (
                rotate_half_matrix(c.head_dim, w.dtype, w.device) if c.pos == "rope" else None
            )
        # inference_mode skips autograd's bookkeeping (version counters, view tracking): fewer costs
        # per call than no_grad. But a tensor made under it can never enter autograd later, and a
        # foreign layer (a quantized or bitsandbytes one) may cache state on its first call, so
        # models with any module of another kind step under no_grad.
        own = all(type(m) in _OWN_MODULES for m in model.modules() if m is not model)
        self.mode = torch.inference_mode if own else torch.no_grad

    @property
    def model(self) -> nn.Module:
        model = self._model()
        if model is None:
            raise RuntimeError("the model of this Decoder no longer exists")
        return model

    def current(self) -> bool:
        """Is this decoder still the model's: nothing it was built from changed since (see the
        module docstring for what is checked)?"""
        model = self._model()
        if model is None or self.fingerprint is None:
            return False
        return _fingerprint(_sources(model)) == self.fingerprint

    def __call__(self, idx: torch.Tensor, cache: KVCache, pad=None, every=False) -> torch.Tensor:
        with self.mode():
            return self.step(idx, cache, pad, every)

    def step(self, idx: torch.Tensor, cache: KVCache, pad=None, every=False) -> torch.Tensor:
        """Logits (B, vocab) of the last of ``idx`` (B, T) after the ``cache``'s positions; of every
        position, (B, T, vocab), with ``every``. ``pad`` (B,): row b's first ``pad[b]`` cached
        positions are left padding, invisible to its real tokens, which keep their own positions
        (0 at the first real one)."""
        m, c = self.model, self.config
        B, T = idx.shape
        nq, nkv, hd, d = c.n_head, c.n_kv_head, c.head_dim, c.d_model
        pos = cache.pos
        x = F.embedding(idx, m.embed.weight)
        at = slice(pos, pos + T)  # the positions of idx: the same for every row unless padded
        if pad is not None:
            at = (torch.arange(pos, pos + T, device=x.device) - pad[:, None]).clamp(min=0)
        if c.pos == "learned":
            x = x + m.pos_embed.weight[at]
        rot = None
        if c.pos == "rope":
            cos, sin = m.rope_tables(pos + T, x.dtype, x.device)
            if T == 1 and pad is None:
                rot = rope_matrix(cos[pos], sin[pos], self.rotate_half)
            else:  # a prompt or padded rows: the elementwise form, as TinyLM.forward applies it
                cos, sin = cos[at], sin[at]
                if pad is not None:  # (B, 1, T, hd): a row's positions for all its heads
                    cos, sin = cos[:, None], sin[:, None]
        if pad is None:
            mask, causal = causal_mask(pos, T, x.device)
        else:
            mask, causal = padded_causal_mask(pad, pos, T), False
        x = x.reshape(B * T, d)
        for i, (qkv_proj, o_residual, feed_forward) in enumerate(self.layers):
            qkv = qkv_proj(x)
            if T == 1:  # one new token: (B, 1, heads, hd) and (B, heads, 1, hd) are the same memory
                qkv = qkv.view(B, nq + 2 * nkv, 1, hd)
            else:
                qkv = qkv.view(B, T, nq + 2 * nkv, hd).transpose(1, 2)
            qk, v = qkv.split([nq + nkv, nkv], dim=1)
            if rot is not None:  # one new token: queries and keys are rotated together
                qk = (qk.reshape(-1, hd) @ rot).view(B, nq + nkv, 1, hd)
            elif c.pos == "rope":
                qk = apply_rope(qk, cos, sin)
            q, k = qk.split([nq, nkv], dim=1)
            k, v = cache.update(i, k, v)
            y = F.scaled_dot_product_attention(
                q, k, v, attn_mask=mask, is_causal=causal, enable_gqa=nkv != nq
            )
            y = y.reshape(B, d) if T == 1 else y.transpose(1, 2).reshape(B * T, d)
            x = feed_forward(o_residual(x, y))
        cache.advance(T)
        return self.head(x.view(B, T, d) if every else x.view(B, T, d)[:, -1])
