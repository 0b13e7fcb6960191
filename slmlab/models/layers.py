"""The modules a TinyLM is built of: norms, rotary positions, the KV cache, attention, the
feed-forward network and the transformer block (one :class:`~slmlab.models.TinyLMConfig`
chooses between their variants)."""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from .config import TinyLMConfig


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


def causal_mask(past: int, T: int, device) -> tuple[torch.Tensor | None, bool]:
    """(attn_mask, is_causal) for ``scaled_dot_product_attention`` of T new queries after
    ``past`` cached keys."""
    if past == 0 or T == 1:  # plain causal (prefill) or one new token that may see everything
        return None, past == 0 and T > 1
    return torch.ones(T, past + T, dtype=torch.bool, device=device).tril(diagonal=past), False


class KVCache:
    """Preallocated keys/values per layer, (B, n_kv_head, max_len, head_dim).

    Subclass and override ``update`` to change how the cache stores tensors (the
    quantization chapter stores them in int8/int4)."""

    def __init__(self, config: TinyLMConfig, batch_size: int, max_len: int, device, dtype):
        shape = (batch_size, config.n_kv_head, max_len, config.head_dim)
        self.k = [torch.zeros(shape, device=device, dtype=dtype) for _ in range(config.n_layer)]
        self.v = [torch.zeros(shape, device=device, dtype=dtype) for _ in range(config.n_layer)]
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

    def advance(self, n: int) -> None:
        self.pos += n

    def nbytes(self) -> int:
        return sum(t.numel() * t.element_size() for t in self.k + self.v)


class Attention(nn.Module):
    def __init__(self, c: TinyLMConfig, layer: int):
        super().__init__()
        self.c, self.layer = c, layer
        kv = c.n_kv_head * c.head_dim
        self.q_proj = nn.Linear(c.d_model, c.d_model, bias=c.bias)
        self.k_proj = nn.Linear(c.d_model, kv, bias=c.bias)
        self.v_proj = nn.Linear(c.d_model, kv, bias=c.bias)
        self.o_proj = nn.Linear(c.d_model, c.d_model, bias=c.bias)
        self.dropout = c.dropout

    def forward(self, x, rope=None, cache: KVCache | None = None):
        B, T, _ = x.shape
        c = self.c
        q = self.q_proj(x).view(B, T, c.n_head, c.head_dim).transpose(1, 2)
        k = self.k_proj(x).view(B, T, c.n_kv_head, c.head_dim).transpose(1, 2)
        v = self.v_proj(x).view(B, T, c.n_kv_head, c.head_dim).transpose(1, 2)
        if rope is not None:
            q, k = apply_rope(q, *rope), apply_rope(k, *rope)
        past = 0
        if cache is not None:
            past = cache.pos
            k, v = cache.update(self.layer, k, v)
        mask, causal = causal_mask(past, T, x.device)
        # enable_gqa: each KV head serves n_head / n_kv_head query heads
        y = F.scaled_dot_product_attention(
            q,
            k,
            v,
            attn_mask=mask,
            is_causal=causal,
            dropout_p=self.dropout if self.training else 0.0,
            enable_gqa=c.n_kv_head != c.n_head,
        )
        return self.o_proj(y.transpose(1, 2).reshape(B, T, c.d_model))


class FeedForward(nn.Module):
    def __init__(self, c: TinyLMConfig):
        super().__init__()
        h = c.hidden_dim
        self.kind = c.ffn
        if c.ffn == "swiglu":
            self.gate_proj = nn.Linear(c.d_model, h, bias=c.bias)
        self.up_proj = nn.Linear(c.d_model, h, bias=c.bias)
        self.down_proj = nn.Linear(h, c.d_model, bias=c.bias)

    def forward(self, x):
        if self.kind == "swiglu":
            h = F.silu(self.gate_proj(x)) * self.up_proj(x)
        elif self.kind == "gelu":
            h = F.gelu(self.up_proj(x))
        else:
            h = F.relu(self.up_proj(x))
        return self.down_proj(h)


class Block(nn.Module):
    def __init__(self, c: TinyLMConfig, layer: int):
        super().__init__()
        self.attn_norm, self.attn = make_norm(c), Attention(c, layer)
        self.ffn_norm, self.ffn = make_norm(c), FeedForward(c)
        self.drop = nn.Dropout(c.dropout)

    def forward(self, x, rope=None, cache=None):
        x = x + self.drop(self.attn(self.attn_norm(x), rope, cache))
        return x + self.drop(self.ffn(self.ffn_norm(x)))
