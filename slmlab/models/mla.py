"""Multi-head latent attention (MLA, DeepSeek-V2): keys and values from one small latent per token.

Grouped-query attention shrinks the KV cache by sharing keys and values between heads; MLA
instead caches a ``r``-dimensional *latent* ``c = norm(x W_down)`` per token and per layer, from
which every head's key and value are re-expanded: ``k_h = c W_uk_h``, ``v_h = c W_uv_h``. RoPE
cannot pass through that expansion (it would have to rotate the latent by a different angle for
every key), so MLA *decouples* it: each head's query and key have ``head_dim`` dimensions without
position and ``rope_dim`` rotated ones, and the rotated key part is one vector per token, shared
by all heads (like MQA's single key). Per token and layer the cache holds ``r + rope_dim``
numbers, against ``2 * n_kv_head * head_dim`` for standard attention.

=============================  ==========================================  ========================
tensor                         shape                                       in transformers' twin
=============================  ==========================================  ========================
``q_proj`` (or ``q_down``,     ``d -> n_head * (head_dim + rope_dim)``     ``q_proj`` (``q_a_proj``,
``q_down_norm``, ``q_up``)     (through a rank-``q_rank`` bottleneck)      ``q_a_layernorm``,
                                                                           ``q_b_proj``)
``kv_down``                    ``d -> r + rope_dim``: latent, rotated key  ``kv_a_proj_with_mqa``
``kv_norm``                    RMSNorm over the latent                     ``kv_a_layernorm``
``kv_up``                      ``r -> n_head * (head_dim + head_dim)``     ``kv_b_proj``
``o_proj``                     ``n_head * head_dim -> d``                  ``o_proj``
=============================  ==========================================  ========================

**Two ways to compute the same attention.** Training expands the latent into keys and values
(:meth:`MLAttention.expanded`). Decoding need not: a query's score against the expanded key is
``q_h . (c W_uk_h) = (q_h W_uk_h^T) . c``, so the query can be *absorbed* into latent space and
attend over the cached latents directly, as one shared key/value "head" of ``r + rope_dim``
dimensions (MQA over the latent); the output is mapped back with ``W_uv_h`` afterwards
(:meth:`MLAttention.absorbed`). No per-token key or value is ever materialised.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from .config import TinyLMConfig
from .layers import KVCache, RMSNorm, apply_rope, causal_mask

LATENT_NORM_EPS = 1e-6  # the latents' RMSNorm epsilon, fixed in DeepSeek's code (not norm_eps)


class LatentCache(KVCache):
    """The MLA cache: per layer the normalised latent ``c`` (B, 1, max_len, r) and the rotated key
    part (B, 1, max_len, rope_dim) of every position: ``r + rope_dim`` numbers per token and
    layer, whatever the number of heads."""

    def __init__(self, config: TinyLMConfig, batch_size: int, max_len: int, device, dtype):
        if not config.mla_kv_rank:
            raise ValueError(
                "LatentCache holds MLA's latents: it needs TinyLMConfig(mla_kv_rank=...); "
                "standard attention uses KVCache"
            )
        shape = (batch_size, 1, max_len)
        self.k = [
            torch.zeros(*shape, config.mla_kv_rank, device=device, dtype=dtype)
            for _ in range(config.depth)
        ]  # the latents
        self.v = [
            torch.zeros(*shape, config.mla_rope_dim, device=device, dtype=dtype)
            for _ in range(config.depth)
        ]  # the rotated, shared key parts
        self.max_len = max_len
        self.pos = 0


class MLAttention(nn.Module):
    """Multi-head latent attention; queries optionally through a low-rank bottleneck
    (``mla_q_rank``). With a cache it attends in latent space (:meth:`absorbed`) unless
    ``absorb`` is set to False (then it re-expands every cached latent, :meth:`expanded`)."""

    def __init__(self, c: TinyLMConfig, layer: int):
        super().__init__()
        self.c, self.layer = c, layer
        self.absorb = True
        H, hd, p, r = c.n_head, c.head_dim, c.mla_rope_dim, c.mla_kv_rank
        if c.mla_q_rank:
            self.q_down = nn.Linear(c.d_model, c.mla_q_rank, bias=False)
            self.q_down_norm = RMSNorm(c.mla_q_rank, LATENT_NORM_EPS)
            self.q_up = nn.Linear(c.mla_q_rank, H * (hd + p), bias=False)
        else:
            self.q_proj = nn.Linear(c.d_model, H * (hd + p), bias=False)
        self.kv_down = nn.Linear(c.d_model, r + p, bias=False)
        self.kv_norm = RMSNorm(r, LATENT_NORM_EPS)
        self.kv_up = nn.Linear(r, H * 2 * hd, bias=False)
        self.o_proj = nn.Linear(H * hd, c.d_model, bias=False)
        self.scale = (hd + p) ** -0.5  # the query . key dot product has hd + p terms
        self.dropout = c.dropout

    def queries(self, x, rope):
        """Per head: the position-free part (B, H, T, head_dim) and the rotated part (rope_dim)."""
        B, T, _ = x.shape
        c = self.c
        q = self.q_up(self.q_down_norm(self.q_down(x))) if c.mla_q_rank else self.q_proj(x)
        q = q.view(B, T, c.n_head, c.head_dim + c.mla_rope_dim).transpose(1, 2)
        q_plain, q_rot = q.split([c.head_dim, c.mla_rope_dim], dim=-1)
        return q_plain, apply_rope(q_rot, *rope)

    def latents(self, x, rope):
        """The latent (B, 1, T, r) and the shared rotated key (B, 1, T, rope_dim) of each token:
        what the cache stores."""
        B, T, _ = x.shape
        latent, k_rot = self.kv_down(x).split([self.c.mla_kv_rank, self.c.mla_rope_dim], dim=-1)
        latent = self.kv_norm(latent).view(B, 1, T, -1)
        return latent, apply_rope(k_rot.view(B, 1, T, -1), *rope)

    def up_weights(self) -> tuple[torch.Tensor, torch.Tensor]:
        """``W_uk`` and ``W_uv`` per head, each (H, head_dim, r), as ``kv_up`` holds them."""
        c = self.c
        w = self.kv_up.weight.view(c.n_head, 2 * c.head_dim, c.mla_kv_rank)
        return w[:, : c.head_dim], w[:, c.head_dim :]

    def expanded(self, q_plain, q_rot, latent, k_rot, mask, causal):
        """Attention with every head's keys and values expanded from the latents."""
        c = self.c
        B, _, S, _ = latent.shape
        kv = self.kv_up(latent[:, 0]).view(B, S, c.n_head, 2 * c.head_dim).transpose(1, 2)
        k_plain, v = kv.split([c.head_dim, c.head_dim], dim=-1)
        k = torch.cat([k_plain, k_rot.expand(-1, c.n_head, -1, -1)], dim=-1)
        q = torch.cat([q_plain, q_rot], dim=-1)
        return F.scaled_dot_product_attention(
            q,
            k,
            v,
            attn_mask=mask,
            is_causal=causal,
            dropout_p=self.dropout if self.training else 0.0,
            scale=self.scale,
        )

    def absorbed(self, q_plain, q_rot, latent, k_rot, mask, causal):
        """The same attention computed in latent space: queries absorbed through ``W_uk``, one
        shared key/value head (the latent itself) for all query heads, output through ``W_uv``."""
        w_uk, w_uv = self.up_weights()
        q = torch.cat([torch.einsum("bhtd,hdr->bhtr", q_plain, w_uk), q_rot], dim=-1)
        k = torch.cat([latent, k_rot], dim=-1)
        y = F.scaled_dot_product_attention(
            q,
            k,
            latent,  # the values, before W_uv: a mix of latents
            attn_mask=mask,
            is_causal=causal,
            dropout_p=self.dropout if self.training else 0.0,
            scale=self.scale,
            enable_gqa=self.c.n_head > 1,
        )
        return torch.einsum("bhtr,hdr->bhtd", y, w_uv)

    def forward(self, x, rope=None, cache: KVCache | None = None, slot: int | None = None):
        B, T, _ = x.shape
        q_plain, q_rot = self.queries(x, rope)
        latent, k_rot = self.latents(x, rope)
        past = 0
        if cache is not None:
            past = cache.pos
            latent, k_rot = cache.update(self.layer if slot is None else slot, latent, k_rot)
        mask, causal = causal_mask(past, T, x.device)
        attend = self.absorbed if cache is not None and self.absorb else self.expanded
        y = attend(q_plain, q_rot, latent, k_rot, mask, causal)
        return self.o_proj(y.transpose(1, 2).reshape(B, T, -1))
