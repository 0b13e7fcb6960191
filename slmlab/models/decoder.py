"""A lean decode step: what an inference runtime does to a model before it generates.

Generating one token with a ~3M-parameter model multiplies one vector by 43 small matrices.
Each product takes microseconds, so a step's time goes to *calling* operators (Python, the
dispatcher, waking threads), not to arithmetic. :class:`Decoder` packs a :class:`~slmlab.TinyLM`
once per generation and runs each step with about half the operator calls of ``TinyLM.forward``
(202 against 380 per token for the base model), computing the same function:

- q|k|v and gate|up weights are stacked, so each block runs 4 matrix products instead of 7, and
  each RMSNorm's gain is folded into the stacked matrix that follows it;
- the residual additions ride inside the output projections (``addmm``: x + y @ W);
- RoPE of one new position is a single (head_dim x head_dim) matrix product (rotations are
  linear maps), applied to queries and keys together;
- keys and values go through the cache's own ``update``, so quantized caches still work.

Quantized or otherwise replaced projections keep their own forward (and their norms stay
unfolded), so quantized models decode through the same lean step. ``TinyLM.stream`` (and so
``generate``) uses it unless the model has forward hooks, is training, or has a module whose
forward was replaced; those run through ``TinyLM.forward``. Tests check that both give the same
logits for every configuration.
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from .layers import Attention, Block, FeedForward, KVCache, RMSNorm, apply_rope, causal_mask


def rotate_half_matrix(head_dim: int, dtype=torch.float32, device=None) -> torch.Tensor:
    """The matrix P with x @ P == rotate_half(x) == cat([-x2, x1])."""
    eye = torch.eye(head_dim, dtype=dtype, device=device)
    return torch.cat([-eye[:, head_dim // 2:], eye[:, : head_dim // 2]], dim=-1)


def rope_matrix(cos: torch.Tensor, sin: torch.Tensor, rotate_half: torch.Tensor | None = None) -> torch.Tensor:
    """The (head_dim, head_dim) matrix R with x @ R == apply_rope(x, cos, sin) for one position:
    x * cos + rotate_half(x) * sin == x @ (diag(cos) + P diag(sin))."""
    if rotate_half is None:
        rotate_half = rotate_half_matrix(cos.shape[-1], cos.dtype, cos.device)
    return torch.diag(cos) + rotate_half * sin


def _own_forward(model: nn.Module) -> bool:
    """Is ``model``'s forward TinyLM's own (not a subclass's)? Checked by name, so that this module
    need not import the model that imports it."""
    forward = type(model).forward
    return forward.__qualname__ == "TinyLM.forward" and forward.__module__ == f"{__package__}.tinylm"


def unsupported(model: nn.Module) -> str | None:
    """Why :class:`Decoder` cannot run ``model`` (then ``TinyLM.forward`` does), or None."""
    if model.training:
        return "the model is in training mode"
    if not _own_forward(model) or type(model.embed) is not nn.Embedding or any(
            type(b) is not Block or type(b.attn) is not Attention or type(b.ffn) is not FeedForward
            for b in model.blocks):
        return "a module's forward was replaced (a subclass): only forward knows what it does"
    if any(m._forward_hooks or m._forward_pre_hooks for m in model.modules()):
        return "the model has forward hooks"
    return None


def _norm(module: nn.Module):
    """(normalize, gain): an RMSNorm's gain g is folded into the next matrix, (x * g) @ W == x @ (g W),
    so normalizing takes one multiplication fewer; other norms run as they are (gain None)."""
    if type(module) is RMSNorm and module.weight.dtype == torch.float32:
        eps = module.eps
        return (lambda x: x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps)), module.weight.detach()
    return module, None


def _stack(*linears: nn.Linear, gain: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Weights of linears stacked along their outputs, transposed for x @ W (rows scaled by a folded
    norm gain); and their biases."""
    weight = torch.cat([m.weight.detach() for m in linears]).t()
    if gain is not None:
        weight = gain[:, None] * weight
    bias = None if linears[0].bias is None else torch.cat([m.bias.detach() for m in linears])
    return weight, bias


def _normalize_and_project(norm: nn.Module, *projections: nn.Module):
    """(normalize, project) for a norm followed by projections that read the same input: plain
    ``nn.Linear`` layers become one stacked matrix with the norm's gain folded in; anything else (a
    quantized layer) keeps its own forward, and the outputs are concatenated."""
    if all(type(m) is nn.Linear for m in projections):
        normalize, gain = _norm(norm)
        w, b = _stack(*projections, gain=gain)
        return normalize, (lambda h: h @ w) if b is None else (lambda h: torch.addmm(b, h, w))
    if len(projections) == 1:
        return norm, projections[0]
    return norm, lambda h: torch.cat([m(h) for m in projections], dim=-1)


def _residual(projection: nn.Module):
    """(x, y) -> x + projection(y); for a plain ``nn.Linear`` the addition rides in the matrix product
    (``addmm``)."""
    if type(projection) is not nn.Linear:
        return lambda x, y: x + projection(y)
    w, b = _stack(projection)
    return (lambda x, y: torch.addmm(x, y, w)) if b is None else (lambda x, y: torch.addmm(x, y, w) + b)


# the module types a TinyLM is built of
_OWN_MODULES = (nn.ModuleList, Block, Attention, FeedForward, RMSNorm, nn.LayerNorm, nn.Linear,
                nn.Embedding, nn.Dropout)


class Decoder:
    """``model`` packed for generation; ``decoder(ids, cache)`` -> logits (B, vocab) of the last position.

    Packing copies the stacked projections once (the model's own weights are untouched), so build a
    Decoder per generation, after any change to the weights."""

    @classmethod
    def for_model(cls, model: nn.Module) -> "Decoder":
        """The decoder of ``model``."""
        return cls(model)

    def __init__(self, model: nn.Module):
        reason = unsupported(model)
        if reason is not None:
            raise ValueError(f"Decoder cannot run this model: {reason}; use model(ids, cache) instead")
        self.model, c = model, model.config
        self.layers = []
        with torch.no_grad():
            for b in model.blocks:
                a, f = b.attn, b.ffn
                up = (f.gate_proj, f.up_proj) if c.ffn == "swiglu" else (f.up_proj,)
                self.layers.append((*_normalize_and_project(b.attn_norm, a.q_proj, a.k_proj, a.v_proj),
                                    _residual(a.o_proj), *_normalize_and_project(b.ffn_norm, *up),
                                    _residual(f.down_proj)))
            self.norm, self.head = _normalize_and_project(model.norm, model.lm_head)
        # inference_mode skips autograd's bookkeeping (version counters, view tracking): fewer costs per
        # call than no_grad. But a tensor made under it can never enter autograd later, and a foreign
        # layer (a quantized or bitsandbytes one) may cache state on its first call, so models with
        # any module of another kind step under no_grad.
        own = all(type(m) in _OWN_MODULES for m in model.modules() if m is not model)
        self.mode = torch.inference_mode if own else torch.no_grad
        w = model.embed.weight
        self.rotate_half = rotate_half_matrix(c.head_dim, w.dtype, w.device) if c.pos == "rope" else None

    def __call__(self, idx: torch.Tensor, cache: KVCache) -> torch.Tensor:
        with self.mode():
            return self.step(idx, cache)

    def step(self, idx: torch.Tensor, cache: KVCache) -> torch.Tensor:
        m, c = self.model, self.model.config
        B, T = idx.shape
        nq, nkv, hd, d = c.n_head, c.n_kv_head, c.head_dim, c.d_model
        pos = cache.pos
        x = F.embedding(idx, m.embed.weight)
        if c.pos == "learned":
            x = x + m.pos_embed.weight[pos : pos + T]
        if c.pos == "rope":
            cos, sin = m.rope_tables(pos + T, x.dtype, x.device)
            if T == 1:
                rot = rope_matrix(cos[pos], sin[pos], self.rotate_half)
            else:  # a prompt: the elementwise form, as TinyLM.forward applies it
                cos, sin = cos[pos : pos + T], sin[pos : pos + T]
        mask, causal = causal_mask(pos, T, x.device)
        x = x.reshape(B * T, d)
        for i, (norm1, qkv_proj, o_residual, norm2, up_proj, down_residual) in enumerate(self.layers):
            qkv = qkv_proj(norm1(x))
            if T == 1:  # one new token: (B, 1, heads, hd) and (B, heads, 1, hd) are the same memory
                qkv = qkv.view(B, nq + 2 * nkv, 1, hd)
            else:
                qkv = qkv.view(B, T, nq + 2 * nkv, hd).transpose(1, 2)
            qk, v = qkv.split([nq + nkv, nkv], dim=1)
            if c.pos == "rope" and T == 1:  # queries and keys are rotated together
                qk = (qk.reshape(-1, hd) @ rot).view(B, nq + nkv, 1, hd)
            elif c.pos == "rope":
                qk = apply_rope(qk, cos, sin)
            q, k = qk.split([nq, nkv], dim=1)
            k, v = cache.update(i, k, v)
            y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, is_causal=causal, enable_gqa=nkv != nq)
            y = y.reshape(B, d) if T == 1 else y.transpose(1, 2).reshape(B * T, d)
            x = o_residual(x, y)
            h = up_proj(norm2(x))
            if c.ffn == "swiglu":
                gate, up = h.chunk(2, dim=-1)
                h = F.silu(gate) * up
            else:
                h = F.gelu(h) if c.ffn == "gelu" else F.relu(h)
            x = down_residual(x, h)
        cache.advance(T)
        return self.head(self.norm(x.view(B, T, d)[:, -1]))
