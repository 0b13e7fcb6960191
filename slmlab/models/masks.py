"""Which keys each query may see, and ALiBi's penalty for distance: attention masks from
positions.

Causal attention lets the query at position ``i`` see the keys at positions ``j <= i``. A
sliding window of ``w`` (Mistral; Beltagy et al.'s Longformer) keeps only ``i - w < j <= i``:
each query sees itself and the ``w - 1`` positions before it, so a layer's cost per token and
its cache stop growing with the context, while stacked layers still pass information further
back (``n_layer * (w - 1)`` positions at most).

ALiBi (Press et al., 2022) gives the model no position embedding at all. It adds
``-m_h * (i - j)`` to head ``h``'s attention score of key ``j``: a penalty linear in the distance,
with a fixed slope per head, steep for some heads (local) and gentle for others (long range).
The slopes are the geometric sequence ``m_h = 2^(-8 h / n)`` for ``h = 1..n`` heads (for a head
count that is not a power of two, the paper's interpolation: the slopes of the nearest power of
two below, then every other slope of twice that many).

Masks are built from absolute positions, so they serve a full sequence, a KV cache, and a ring
buffer whose keys are stored out of order alike.
"""

from __future__ import annotations

import math

import torch


def alibi_slopes(n_head: int) -> torch.Tensor:
    """ALiBi's slope per head, (n_head,) float32: ``2^(-8 h / n)`` for ``h = 1..n`` when ``n`` is a
    power of two (8 heads: 1/2, 1/4, ..., 1/256)."""
    if n_head < 1:
        raise ValueError(f"n_head must be >= 1, got {n_head}")

    def power_of_two(n: int) -> list[float]:
        return [2.0 ** (-8.0 * h / n) for h in range(1, n + 1)]

    below = 2 ** math.floor(math.log2(n_head))
    slopes = power_of_two(below) + power_of_two(2 * below)[0::2][: n_head - below]
    return torch.tensor(slopes, dtype=torch.float32)


def visible(query_pos: torch.Tensor, key_pos: torch.Tensor, window: int | None) -> torch.Tensor:
    """(T, S) bool: query ``t`` (at ``query_pos[t]``) may see key ``s`` (at ``key_pos[s]``):
    causal, and within the last ``window`` positions when a window is given."""
    distance = query_pos[:, None] - key_pos[None, :]
    allowed = distance >= 0
    if window is not None:
        allowed &= distance < window
    return allowed


def attention_mask(
    query_pos: torch.Tensor,
    key_pos: torch.Tensor,
    window: int | None = None,
    slopes: torch.Tensor | None = None,
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """The ``attn_mask`` of ``scaled_dot_product_attention``: a (T, S) bool mask of
    :func:`visible`, or with ALiBi ``slopes`` (n_head,) an additive (n_head, T, S) mask of
    ``-slope * distance`` where visible and ``-inf`` elsewhere."""
    allowed = visible(query_pos, key_pos, window)
    if slopes is None:
        return allowed
    distance = (query_pos[:, None] - key_pos[None, :]).to(torch.float32)
    bias = -slopes.to(torch.float32)[:, None, None] * distance
    return bias.masked_fill(~allowed, float("-inf")).to(dtype)
