"""TinyLM: a small decoder-only transformer, readable top to bottom.

In the spirit of nanoGPT's model.py: a config dataclass, small modules (norm, attention,
feed-forward, block, model) and ``generate`` beside the model. Every switch that the
book's architecture chapter studies is a config field:

=================  ==========================================  ===================
field              choices                                     Llama-compatible
=================  ==========================================  ===================
n_kv_head          n_head (MHA), 1 < k < n_head (GQA), 1 (MQA)  any divisor
ffn                "swiglu", "gelu", "relu"                    "swiglu"
norm               "rmsnorm", "layernorm"                      "rmsnorm"
pos                "rope", "learned", "none"                   "rope"
tie_embeddings     True / False                                either
bias               True / False                                False
=================  ==========================================  ===================
"""
from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, fields
from typing import Iterator

import torch
import torch.nn as nn
import torch.nn.functional as F

CHOICES = {"ffn": ("swiglu", "gelu", "relu"), "norm": ("rmsnorm", "layernorm"), "pos": ("rope", "learned", "none")}


@dataclass
class TinyLMConfig:
    vocab_size: int = 512
    block_size: int = 256  # longest sequence the model is trained on / can attend over
    n_layer: int = 4
    n_head: int = 4
    n_kv_head: int | None = None  # None -> n_head (MHA)
    d_model: int = 128
    ffn: str = "swiglu"
    ffn_ratio: float = 4.0  # hidden width / d_model (for SwiGLU: the width of each of the two up-projections)
    d_ff: int | None = None  # overrides ffn_ratio when set
    norm: str = "rmsnorm"
    norm_eps: float = 1e-5
    pos: str = "rope"
    rope_theta: float = 10000.0
    tie_embeddings: bool = False  # untied is the fast default on CPU: see benchmarks/
    bias: bool = False
    dropout: float = 0.0
    init_std: float = 0.02

    def __post_init__(self):
        if self.n_kv_head is None:
            self.n_kv_head = self.n_head
        for name, choices in CHOICES.items():
            if getattr(self, name) not in choices:
                raise ValueError(f"TinyLMConfig.{name}={getattr(self, name)!r} is not one of {choices}.")
        for name in ("vocab_size", "block_size", "n_layer", "n_head", "n_kv_head", "d_model"):
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or v <= 0:
                raise ValueError(f"TinyLMConfig.{name} must be a positive integer, got {v!r}.")
        if self.d_model % self.n_head:
            raise ValueError(
                f"d_model={self.d_model} is not divisible by n_head={self.n_head}: "
                f"each head gets d_model / n_head dimensions; pick n_head among the divisors of {self.d_model}."
            )
        if self.n_head % self.n_kv_head:
            raise ValueError(
                f"n_kv_head={self.n_kv_head} does not divide n_head={self.n_head}: each KV head serves a group "
                f"of query heads; use 1 (MQA), {self.n_head} (MHA) or another divisor (GQA)."
            )
        if self.pos == "rope" and self.head_dim % 2:
            raise ValueError(f"RoPE needs an even head dimension, got d_model/n_head={self.head_dim}.")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}.")
        if self.d_ff is None and self.ffn_ratio <= 0:
            raise ValueError(f"ffn_ratio must be positive, got {self.ffn_ratio}.")

    @property
    def head_dim(self) -> int:
        return self.d_model // self.n_head

    @property
    def hidden_dim(self) -> int:
        return self.d_ff if self.d_ff is not None else int(round(self.ffn_ratio * self.d_model))

    @property
    def llama_compatible(self) -> bool:
        return self.norm == "rmsnorm" and self.ffn == "swiglu" and self.pos == "rope" and not self.bias

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "TinyLMConfig":
        """From a dict of options, or a ``config.json`` that ``save_pretrained`` wrote (its
        ``model_type`` is ``"slmlab-tinylm"``; a transformers config is refused with a pointer)."""
        d = dict(d)
        model_type = d.pop("model_type", "slmlab-tinylm")
        if model_type != "slmlab-tinylm":
            raise ValueError(f"this is a {model_type!r} config, not a TinyLM one: load a transformers checkpoint "
                             "with slmlab.from_hf(path) (Llama family) or slmlab.hf.config_from_hf(config)")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(f"Unknown TinyLMConfig option(s) {unknown}; known options are {sorted(known)}.")
        return cls(**d)

    @classmethod
    def from_json(cls, path) -> "TinyLMConfig":
        with open(path, encoding="utf-8") as f:
            return cls.from_dict(json.load(f))


# ----------------------------------------------------------------------------- estimates
def num_params(config: TinyLMConfig, non_embedding: bool = False) -> int:
    """Parameter count from the config alone (equals ``sum(p.numel())`` of the model)."""
    c, d = config, config.d_model
    kv = c.n_kv_head * c.head_dim
    attn = d * d + 2 * d * kv + d * d + (2 * d + 2 * kv if c.bias else 0)
    n_up = 2 if c.ffn == "swiglu" else 1
    ffn = (n_up + 1) * d * c.hidden_dim + ((n_up * c.hidden_dim + d) if c.bias else 0)
    norm = 2 * d if (c.norm == "layernorm" and c.bias) else d
    body = c.n_layer * (attn + ffn + 2 * norm) + norm
    emb = c.vocab_size * d + (c.block_size * d if c.pos == "learned" else 0)
    head = 0 if c.tie_embeddings else c.vocab_size * d
    return body if non_embedding else body + emb + head


def flops_per_token(config: TinyLMConfig, seq_len: int | None = None, training: bool = False) -> int:
    """Matmul FLOPs per token (Kaplan et al. convention): forward = 2 * (weights used per token)
    + 2 * n_layer * seq_len * d_model for attention scores and values; training = 3x forward."""
    c = config
    T = seq_len or c.block_size
    weights = num_params(c, non_embedding=True) + c.vocab_size * c.d_model  # the LM head is a matmul
    fwd = 2 * weights + 2 * c.n_layer * T * c.d_model
    return 3 * fwd if training else fwd


def weight_bytes(config: TinyLMConfig, bits: float = 32) -> int:
    return int(num_params(config) * bits / 8)


def kv_cache_bytes_per_token(config: TinyLMConfig, bits: float = 32) -> int:
    """Keys and values of every layer for one token: 2 * n_layer * n_kv_head * head_dim elements."""
    return int(2 * config.n_layer * config.n_kv_head * config.head_dim * bits / 8)


# ----------------------------------------------------------------------------- modules
class RMSNorm(nn.Module):
    def __init__(self, d: int, eps: float = 1e-5):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(d))

    def forward(self, x):  # x / sqrt(mean(x^2) + eps), computed in float32, then scaled: as Llama does
        return F.rms_norm(x.float(), (x.shape[-1],), eps=self.eps).type_as(x) * self.weight


def make_norm(c: TinyLMConfig) -> nn.Module:
    return RMSNorm(c.d_model, c.norm_eps) if c.norm == "rmsnorm" else nn.LayerNorm(c.d_model, eps=c.norm_eps, bias=c.bias)


def rope_cos_sin(positions: torch.Tensor, head_dim: int, theta: float, dtype) -> tuple[torch.Tensor, torch.Tensor]:
    """cos/sin tables of rotary embeddings, (T, head_dim), in the "rotate half" layout Llama uses."""
    inv_freq = 1.0 / (theta ** (torch.arange(0, head_dim, 2, device=positions.device, dtype=torch.float32) / head_dim))
    angles = positions.float()[:, None] * inv_freq[None, :]
    emb = torch.cat([angles, angles], dim=-1)
    return emb.cos().to(dtype), emb.sin().to(dtype)


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    x1, x2 = x.chunk(2, dim=-1)
    return x * cos + torch.cat([-x2, x1], dim=-1) * sin


def causal_mask(past: int, T: int, device) -> tuple[torch.Tensor | None, bool]:
    """(attn_mask, is_causal) for ``scaled_dot_product_attention`` of T new queries after ``past`` cached keys."""
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

    def update(self, layer: int, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
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
        y = F.scaled_dot_product_attention(  # enable_gqa: each KV head serves n_head / n_kv_head query heads
            q, k, v, attn_mask=mask, is_causal=causal, dropout_p=self.dropout if self.training else 0.0,
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


class TinyLM(nn.Module):
    """Token ids (B, T) -> logits (B, T, vocab_size)."""

    def __init__(self, config: TinyLMConfig):
        super().__init__()
        self.config = c = config
        self.embed = nn.Embedding(c.vocab_size, c.d_model)
        self.pos_embed = nn.Embedding(c.block_size, c.d_model) if c.pos == "learned" else None
        self.drop = nn.Dropout(c.dropout)
        self.blocks = nn.ModuleList(Block(c, i) for i in range(c.n_layer))
        self.norm = make_norm(c)
        self.lm_head = nn.Linear(c.d_model, c.vocab_size, bias=False)
        self.apply(self._init)
        for name, p in self.named_parameters():  # GPT-2: scale residual projections by depth
            if name.endswith(("o_proj.weight", "down_proj.weight")):
                nn.init.normal_(p, std=c.init_std / math.sqrt(2 * c.n_layer))
        if c.tie_embeddings:
            self.lm_head.weight = self.embed.weight
        self._rope = None  # cos/sin tables, computed on first use: see rope_tables

    def _init(self, m):
        if isinstance(m, (nn.Linear, nn.Embedding)):
            nn.init.normal_(m.weight, std=self.config.init_std)
        if isinstance(m, nn.Linear) and m.bias is not None:
            nn.init.zeros_(m.bias)

    @property
    def device(self) -> torch.device:
        return self.embed.weight.device

    def forward(self, idx: torch.Tensor, cache: KVCache | None = None, last_only: bool = False) -> torch.Tensor:
        """Logits (B, T, vocab); with ``last_only`` only the last position's (B, 1, vocab), as generation needs."""
        B, T = idx.shape
        c = self.config
        start = cache.pos if cache is not None else 0
        if start + T > c.block_size and c.pos == "learned":
            raise ValueError(f"sequence of {start + T} tokens exceeds block_size={c.block_size} (learned positions)")
        x = self.embed(idx)
        rope = None
        if c.pos == "learned":
            x = x + self.pos_embed(torch.arange(start, start + T, device=idx.device))
        elif c.pos == "rope":
            cos, sin = self.rope_tables(start + T, x.dtype, x.device)
            rope = cos[start : start + T], sin[start : start + T]
        x = self.drop(x)
        for block in self.blocks:
            x = block(x, rope, cache)
        if cache is not None:
            cache.advance(T)
        return self.lm_head(self.norm(x[:, -1:] if last_only else x))

    def rope_tables(self, end: int, dtype, device) -> tuple[torch.Tensor, torch.Tensor]:
        """RoPE cos/sin of positions 0 .. end-1 (at least block_size), computed once and reused."""
        t = self._rope
        if t is None or t[0].shape[0] < end or t[0].dtype != dtype or t[0].device != device:
            with torch.inference_mode(False):  # a cached table must serve training too, even if made while decoding
                positions = torch.arange(max(end, self.config.block_size), device=device)
                t = self._rope = rope_cos_sin(positions, self.config.head_dim, self.config.rope_theta, dtype)
        return t

    def loss(self, idx: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        logits = self(idx)
        return F.cross_entropy(logits.view(-1, logits.size(-1)).float(), targets.reshape(-1), ignore_index=-100)

    def num_params(self, non_embedding: bool = False) -> int:
        return num_params(self.config, non_embedding)

    def save_pretrained(self, directory, tokenizer=None):
        """Write config.json + model.safetensors (+ tokenizer.json), like transformers."""
        from .checkpoint import save_pretrained

        return save_pretrained(self, directory, tokenizer)

    @classmethod
    def from_pretrained(cls, directory, device=None) -> "TinyLM":
        from .checkpoint import load_pretrained

        return load_pretrained(directory, device)

    # ------------------------------------------------------------------------- generation
    @torch.no_grad()
    def stream(self, idx, max_new_tokens: int, temperature: float = 1.0, top_k: int | None = None,
               top_p: float | None = None, eos_id: int | None = None, generator: torch.Generator | None = None,
               cache_cls=KVCache) -> Iterator[torch.Tensor]:
        """Yield the next token ids (B,) one step at a time, using a KV cache."""
        from .decode import Decoder, unsupported  # the lean decode step (imported here: it imports this module)

        idx = torch.as_tensor(idx, device=self.device)
        if idx.dim() == 1:
            idx = idx[None]
        if idx.shape[1] == 0:
            raise ValueError("generate needs a prompt of at least one token (e.g. a BOS/EOS id).")
        was_training = self.training
        self.eval()
        L = self.config.block_size
        ctx = idx[:, -L:]
        done = torch.zeros(idx.shape[0], dtype=torch.bool, device=self.device)
        # the lean packed step, unless the model has hooks or subclassed modules (see decode.unsupported)
        step = Decoder(self) if unsupported(self) is None else (lambda ids, c: self(ids, c, last_only=True)[:, -1])
        try:
            cache = cache_cls(self.config, idx.shape[0], L, self.device, self.embed.weight.dtype)
            logits = step(ctx, cache)
            for _ in range(max_new_tokens):
                nxt = sample_next(logits, temperature, top_k, top_p, generator)
                yield nxt
                ctx = torch.cat([ctx, nxt[:, None]], dim=1)
                if eos_id is not None:
                    done |= nxt == eos_id
                    if bool(done.all()):
                        return
                if cache.pos >= L:  # context full: slide the window and re-fill the cache
                    ctx = ctx[:, -(L // 2):]
                    cache = cache_cls(self.config, idx.shape[0], L, self.device, self.embed.weight.dtype)
                    logits = step(ctx, cache)
                else:
                    logits = step(nxt[:, None], cache)
        finally:
            self.train(was_training)

    @torch.no_grad()
    def generate(self, idx, max_new_tokens: int, temperature: float = 1.0, top_k: int | None = None,
                 top_p: float | None = None, eos_id: int | None = None, generator=None, **kw) -> torch.Tensor:
        """Append up to ``max_new_tokens`` sampled tokens to ``idx`` (B, T); temperature 0 is greedy."""
        idx = torch.as_tensor(idx, device=self.device)
        squeeze = idx.dim() == 1
        idx = idx[None] if squeeze else idx
        out = [idx] + [t[:, None] for t in self.stream(idx, max_new_tokens, temperature, top_k, top_p, eos_id, generator, **kw)]
        out = torch.cat(out, dim=1)
        return out[0] if squeeze else out


def sample_next(logits: torch.Tensor, temperature: float = 1.0, top_k: int | None = None,
                top_p: float | None = None, generator: torch.Generator | None = None) -> torch.Tensor:
    """Pick the next token from logits (B, V): greedy when temperature == 0, else sample from the
    temperature-scaled distribution restricted to the top-k tokens and/or the top-p nucleus."""
    if temperature < 0:
        raise ValueError(f"temperature must be >= 0, got {temperature}")
    if top_p is not None and not 0 < top_p <= 1:
        raise ValueError(f"top_p must be in (0, 1], got {top_p}")
    if temperature == 0:
        return logits.argmax(dim=-1)
    logits = logits.float() / temperature
    if top_k is not None:
        kth = torch.topk(logits, min(top_k, logits.size(-1))).values[:, -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if top_p is not None and top_p < 1:
        sorted_logits, order = torch.sort(logits, descending=True)
        cum = sorted_logits.softmax(-1).cumsum(-1)
        drop = cum - sorted_logits.softmax(-1) >= top_p  # keep the smallest prefix whose mass reaches top_p
        sorted_logits = sorted_logits.masked_fill(drop, float("-inf"))
        logits = torch.full_like(logits, float("-inf")).scatter(-1, order, sorted_logits)
    probs = logits.softmax(-1)
    return torch.multinomial(probs, 1, generator=generator)[:, 0]
