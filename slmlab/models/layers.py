"""The modules a TinyLM's attention is built of: norms, rotary positions, the KV cache and
multi-head attention (MHA, GQA, MQA; sliding-window, ALiBi and QK-norm by config).

The variants that need more than a switch live in their own modules: ALiBi and the attention
masks in :mod:`~slmlab.models.masks`, the sliding window's ring-buffer cache in
:mod:`~slmlab.models.sliding_window`, latent attention in :mod:`~slmlab.models.mla`. The
feed-forward network is in :mod:`~slmlab.models.ffn` and :mod:`~slmlab.models.moe`; the block
that joins attention and FFN in :mod:`~slmlab.models.block`."""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from .config import TinyLMConfig
from .masks import alibi_slopes, attention_mask


class RMSNorm(nn.Module):
    def __init__(self, d: int, eps: float = 1e-5):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(d))

    def forward(
        self, x
    ):  # x / sqrt(mean(x^2) + eps), computed in float32, then scaled: as Llama does
        return F.rms_norm(x.float(), (x.shape[-1],), eps=self.eps).type_as(x) * self.weight


def make_norm(c: TinyLMConfig) -> nn.Module:
    return (
        RMSNorm(c.d_model, c.norm_eps)
        if c.norm == "rmsnorm"
        else nn.LayerNorm(c.d_model, eps=c.norm_eps, bias=c.bias)
    )


def rope_cos_sin(
    positions: torch.Tensor, head_dim: int, theta: float, dtype
) -> tuple[torch.Tensor, torch.Tensor]:
    """cos/sin tables of rotary embeddings, (T, head_dim),
    in the "rotate half" layout Llama uses."""
    inv_freq = 1.0 / (
        theta
        ** (torch.arange(0, head_dim, 2, device=positions.device, dtype=torch.float32) / head_dim)
    )
    angles = positions.float()[:, None] * inv_freq[None, :]
    emb = torch.cat([angles, angles], dim=-1)
    return emb.cos().to(dtype), emb.sin().to(dtype)


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    x1, x2 = x.chunk(2, dim=-1)
    return x * cos + torch.cat([-x2, x1], dim=-1) * sin


def rotate_half_matrix(head_dim: int, dtype=torch.float32, device=None) -> torch.Tensor:
    """The matrix P with x @ P == rotate_half(x) == cat([-x2, x1])."""
    eye = torch.eye(head_dim, dtype=dtype, device=device)
    return torch.cat([-eye[:, head_dim // 2 :], eye[:, : head_dim // 2]], dim=-1)


def rope_matrix(
    cos: torch.Tensor, sin: torch.Tensor, rotate_half: torch.Tensor | None = None
) -> torch.Tensor:
    """The (head_dim, head_dim) matrix R with x @ R == apply_rope(x, cos, sin) for one position:
    x * cos + rotate_half(x) * sin == x @ (diag(cos) + P diag(sin))."""
    if rotate_half is None:
        rotate_half = rotate_half_matrix(cos.shape[-1], cos.dtype, cos.device)
    return torch.diag(cos) + rotate_half * sin


def causal_mask(past: int, T: int, device) -> tuple[torch.Tensor | None, bool]:
    """(attn_mask, is_causal) for ``scaled_dot_product_attention`` of T new queries after
    ``past`` cached keys."""
    if past == 0 or T == 1:  # plain causal (prefill) or one new token that may see everything
        return None, past == 0 and T > 1
    return torch.ones(T, past + T, dtype=torch.bool, device=device).tril(diagonal=past), False


def padded_causal_mask(pad: torch.Tensor, past: int, T: int) -> torch.Tensor:
    """The (B, 1, T, past + T) attention mask of T new queries after ``past`` cached keys when row
    b starts with ``pad[b]`` left-padding positions: a query sees the keys before it that are not
    padding. A padding query sees only itself (a row of no keys would give NaN, and its NaN would
    reach the real queries' sums as 0 * NaN); no real query ever sees it."""
    keys = torch.arange(past + T, device=pad.device)
    queries = keys[past:, None]
    real = keys >= pad[:, None, None]  # (B, 1, past + T)
    mask = (keys <= queries) & (real | (keys == queries))  # (B, T, past + T)
    return mask[:, None]


class KVCache:
    """Preallocated keys/values per layer (per run of a layer, with ``block_repeat``),
    (B, n_kv_head, max_len, head_dim).

    Subclass and override ``update`` to change how the cache stores tensors (the
    quantization chapter stores them in int8/int4)."""

    def __init__(self, config: TinyLMConfig, batch_size: int, max_len: int, device, dtype):
        def zeros(slot: int) -> torch.Tensor:  # a layer's KV heads (layer-wise scaling varies them)
            n_kv = config.layer_heads(slot // config.block_repeat)[1]
            shape = (batch_size, n_kv, max_len, config.head_dim)
            return torch.zeros(shape, device=device, dtype=dtype)

        self.k = [zeros(slot) for slot in range(config.depth)]
        self.v = [zeros(slot) for slot in range(config.depth)]
        self.max_len = max_len
        self.pos = 0  # number of positions already stored

    def update(
        self, layer: int, k: torch.Tensor, v: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Store k, v (B, n_kv, T, hd) at the current position; return all cached keys/values."""
        T, end = k.shape[2], self.pos + k.shape[2]
        self.k[layer].narrow(2, self.pos, T).copy_(k)
        self.v[layer].narrow(2, self.pos, T).copy_(v)
        return self.k[layer].narrow(2, 0, end), self.v[layer].narrow(2, 0, end)

    def key_positions(self, T: int, device=None) -> torch.Tensor:
        """Positions of the keys ``update`` returns for ``T`` new ones (before ``advance``)."""
        return torch.arange(self.pos + T, device=device)

    def advance(self, n: int) -> None:
        self.pos += n

    def select_rows(self, index: torch.Tensor) -> None:
        """Keep the batch rows ``index`` (B',), in that order, repeats allowed: one cached context
        continued several ways."""
        self.k = [k.index_select(0, index) for k in self.k]
        self.v = [v.index_select(0, index) for v in self.v]

    def nbytes(self) -> int:
        return sum(t.numel() * t.element_size() for t in self.k + self.v)


class Attention(nn.Module):
    """Multi-head attention with ``n_kv_head`` key/value heads (MHA, GQA, MQA), optionally
    sliding-window (``window``), with ALiBi biases (``pos="alibi"``) or QK-norm (``qk_norm``).

    Keys and values per token: ``2 * n_kv_head * head_dim`` numbers per layer, the KV cache's
    row; with a window, a cache of ``window`` rows per layer suffices at any context length."""

    def __init__(self, c: TinyLMConfig, layer: int):
        super().__init__()
        self.c, self.layer = c, layer
        # n_head and n_kv_head, unless layer-wise scaling gives this layer more or fewer
        self.n_head, self.n_kv_head = c.layer_heads(layer)
        q_out, kv = self.n_head * c.head_dim, self.n_kv_head * c.head_dim
        self.q_proj = nn.Linear(c.d_model, q_out, bias=c.bias)
        self.k_proj = nn.Linear(c.d_model, kv, bias=c.bias)
        self.v_proj = nn.Linear(c.d_model, kv, bias=c.bias)
        self.o_proj = nn.Linear(q_out, c.d_model, bias=c.bias)
        if c.qk_norm:  # one gain per head dimension, shared by the heads (as Qwen3 has it)
            self.q_norm = RMSNorm(c.head_dim, c.norm_eps)
            self.k_norm = RMSNorm(c.head_dim, c.norm_eps)
        if c.pos == "alibi":  # fixed, not learned: a buffer, not saved (follows .to())
            self.register_buffer("alibi", alibi_slopes(self.n_head), persistent=False)
        self.dropout = c.dropout

    def forward(self, x, rope=None, cache: KVCache | None = None, slot: int | None = None):
        """``slot``: this run's place in the cache (default: the layer's index)."""
        B, T, _ = x.shape
        c = self.c
        q = self.q_proj(x).view(B, T, self.n_head, c.head_dim).transpose(1, 2)
        k = self.k_proj(x).view(B, T, self.n_kv_head, c.head_dim).transpose(1, 2)
        v = self.v_proj(x).view(B, T, self.n_kv_head, c.head_dim).transpose(1, 2)
        if c.qk_norm:
            q, k = self.q_norm(q), self.k_norm(k)
        if rope is not None:
            q, k = apply_rope(q, *rope), apply_rope(k, *rope)
        past = 0
        if cache is not None:
            past = cache.pos
            k, v = cache.update(self.layer if slot is None else slot, k, v)
        if c.window is None and c.pos != "alibi":
            mask, causal = causal_mask(past, T, x.device)
        else:  # which keys each query sees (and ALiBi's distance penalty), from positions
            key_pos = (
                cache.key_positions(T, x.device)
                if cache is not None
                else torch.arange(T, device=x.device)
            )
            query_pos = torch.arange(past, past + T, device=x.device)
            slopes = self.alibi if c.pos == "alibi" else None
            mask, causal = attention_mask(query_pos, key_pos, c.window, slopes, q.dtype), False
        # enable_gqa: each KV head serves n_head / n_kv_head query heads
        y = F.scaled_dot_product_attention(
            q,
            k,
            v,
            attn_mask=mask,
            is_causal=causal,
            dropout_p=self.dropout if self.training else 0.0,
            enable_gqa=self.n_kv_head != self.n_head,
        )
        return self.o_proj(y.transpose(1, 2).reshape(B, T, self.n_head * c.head_dim))
