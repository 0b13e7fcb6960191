"""Generating text with a TinyLM: sampling one token from logits, and the loop that feeds tokens
back through a KV cache (the lean decode step of :mod:`slmlab.models.decoder` when it applies)."""

from __future__ import annotations

from collections.abc import Iterator

import torch

from .decoder import Decoder, unsupported
from .layers import KVCache
from .mamba import SSMCache
from .mla import LatentCache
from .rwkv import RWKVCache
from .sliding_window import SlidingWindowCache


def cache_class(config) -> type[KVCache]:
    """The cache generation uses by default: Mamba's or RWKV's state (:class:`SSMCache`,
    :class:`RWKVCache`), MLA's latents
    (:class:`LatentCache`), a ring buffer for a sliding window (:class:`SlidingWindowCache`), else
    keys and values (:class:`KVCache`)."""
    mixer = getattr(config, "mixer", "attention")
    if mixer != "attention":
        return {"mamba": SSMCache, "rwkv": RWKVCache}[mixer]
    if getattr(config, "mla_kv_rank", None):
        return LatentCache
    return SlidingWindowCache if getattr(config, "window", None) is not None else KVCache


def sample_next(
    logits: torch.Tensor,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
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
        drop = (
            cum - sorted_logits.softmax(-1) >= top_p
        )  # keep the smallest prefix whose mass reaches top_p
        sorted_logits = sorted_logits.masked_fill(drop, float("-inf"))
        logits = torch.full_like(logits, float("-inf")).scatter(-1, order, sorted_logits)
    probs = logits.softmax(-1)
    return torch.multinomial(probs, 1, generator=generator)[:, 0]


def decode_step(model):
    """``step(ids, cache) -> logits (B, vocab)`` of the last position: the lean :class:`Decoder`
    when it supports ``model`` (see :func:`~slmlab.models.decoder.unsupported`), kept from the
    previous call while the model's weights are unchanged, else the model's own ``forward``."""
    if unsupported(model) is None:
        return Decoder.for_model(model)
    return lambda ids, cache: model(ids, cache, last_only=True)[:, -1]


def _padded_step(model, idx: torch.Tensor, max_new_tokens: int, pad):
    """``step(ids, cache)`` of the lean decoder with left padding ``pad``, after checking it."""
    reason = unsupported(model)
    if reason is not None:
        raise ValueError(
            f"left-padded generation (pad=) needs the lean decoder, which cannot run this model: "
            f"{reason}. Generate prompts of each length apart instead"
        )
    pad = torch.as_tensor(pad, dtype=torch.long, device=idx.device)
    B, T = idx.shape
    if pad.shape != (B,):
        raise ValueError(f"pad has shape {tuple(pad.shape)}; it needs one count per row, ({B},)")
    if bool((pad < 0).any()) or bool((pad >= T).any()):
        raise ValueError(f"pad {pad.tolist()} must leave each row of {T} tokens at least one real")
    need = T + max_new_tokens - 1
    if need > model.config.block_size:
        raise ValueError(
            f"padded rows cannot slide their window: the prompt ({T} tokens with padding) and "
            f"{max_new_tokens} new tokens pass block_size={model.config.block_size}"
        )
    decoder = Decoder.for_model(model)
    return lambda ids, cache: decoder(ids, cache, pad)


@torch.no_grad()
def stream(
    model,
    idx,
    max_new_tokens: int,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
    eos_id: int | None = None,
    generator: torch.Generator | None = None,
    cache_cls=None,
    pad=None,
) -> Iterator[torch.Tensor]:
    """Yield the next token ids (B,) of ``model`` one step at a time, using a KV cache
    (``cache_cls``; by default :func:`cache_class`'s: a :class:`KVCache`, MLA's latents, or a ring
    buffer for sliding-window attention). When the context
    (``block_size``) is full, the window slides by half and the cache is refilled; a ring buffer
    never fills, and generation with it runs on past ``block_size``.

    ``pad`` (B,) batches prompts of different lengths: row b of ``idx`` starts with ``pad[b]``
    left-padding tokens (any ids), which its real tokens never see; each row's tokens are those
    of its prompt alone, up to the order of float sums. Only the lean :class:`Decoder` runs
    padded rows, and the prompt plus the new tokens must fit in ``block_size``.

    The cache holds only the positions this call can fill (prompt + new tokens, at most
    ``block_size``): a hub model's context of thousands of positions would otherwise be allocated
    and zeroed on every call. No step runs after the last token (its logits would go unused)."""
    idx = torch.as_tensor(idx, device=model.device)
    if idx.dim() == 1:
        idx = idx[None]
    if idx.shape[1] == 0:
        raise ValueError("generate needs a prompt of at least one token (e.g. a BOS/EOS id).")
    if max_new_tokens <= 0:
        return
    was_training = model.training
    model.eval()
    L = model.config.block_size
    ctx = idx[:, -L:]
    done = torch.zeros(idx.shape[0], dtype=torch.bool, device=model.device)
    step = decode_step(model)
    if pad is not None:
        try:
            step = _padded_step(model, idx, max_new_tokens, pad)
        except ValueError:
            model.train(was_training)  # as it was given
            raise

    if cache_cls is None:
        cache_cls = cache_class(model.config)
    # a ring buffer keeps what the window needs of however many positions generation reaches
    # (a learned position table still ends at block_size)
    unbounded = getattr(cache_cls, "unbounded", False) and model.config.pos != "learned"

    def new_cache(length: int):
        return cache_cls(model.config, idx.shape[0], length, model.device, model.embed.weight.dtype)

    try:
        # the last new token is never fed back,
        # so ctx + max_new_tokens - 1 positions are all that is stored
        need = ctx.shape[1] + max_new_tokens - 1
        cache = new_cache(need if unbounded else min(L, need))
        logits = step(ctx, cache)
        for i in range(max_new_tokens):
            nxt = sample_next(logits, temperature, top_k, top_p, generator)
            yield nxt
            left = max_new_tokens - 1 - i  # tokens still to come
            if left == 0:
                return
            ctx = torch.cat([ctx, nxt[:, None]], dim=1)
            if eos_id is not None:
                done |= nxt == eos_id
                if bool(done.all()):
                    return
            if cache.pos >= L and not unbounded:
                # context full: slide the window and re-fill the cache
                ctx = ctx[:, -(L // 2) :]
                cache = new_cache(min(L, ctx.shape[1] + left - 1))
                logits = step(ctx, cache)
            else:
                logits = step(nxt[:, None], cache)
    finally:
        model.train(was_training)


@torch.no_grad()
def generate(
    model,
    idx,
    max_new_tokens: int,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
    eos_id: int | None = None,
    generator=None,
    **kw,
) -> torch.Tensor:
    """``idx`` (B, T) with up to ``max_new_tokens`` sampled tokens appended;
    temperature 0 is greedy."""
    idx = torch.as_tensor(idx, device=model.device)
    squeeze = idx.dim() == 1
    idx = idx[None] if squeeze else idx
    new = stream(model, idx, max_new_tokens, temperature, top_k, top_p, eos_id, generator, **kw)
    out = torch.cat([idx] + [t[:, None] for t in new], dim=1)
    return out[0] if squeeze else out
