"""The transformer block: attention and FFN, each in a residual branch with its norm.

The config chooses the parts: standard attention (:class:`~slmlab.models.layers.Attention`) or
latent attention (:class:`~slmlab.models.mla.MLAttention`); a dense FFN
(:class:`~slmlab.models.ffn.FeedForward`) or a mixture of experts
(:class:`~slmlab.models.moe.MoEFeedForward`); the norm before each branch or after the residual.
With ``mixer="mamba"`` a selective state-space layer (:class:`~slmlab.models.mamba.MambaBlock`)
takes the whole block's place, with ``mixer="rwkv"`` an RWKV layer
(:class:`~slmlab.models.rwkv.RWKVBlock`) (:func:`make_block`).
"""

from __future__ import annotations

import torch.nn as nn

from .config import TinyLMConfig
from .ffn import FeedForward
from .layers import Attention, make_norm
from .mamba import MambaBlock
from .mla import MLAttention
from .moe import MoEFeedForward
from .rwkv import RWKVBlock


def make_attention(c: TinyLMConfig, layer: int) -> nn.Module:
    """The block's attention: latent (MLA) when ``mla_kv_rank`` is set, else MHA/GQA/MQA."""
    return MLAttention(c, layer) if c.mla_kv_rank else Attention(c, layer)


def make_ffn(c: TinyLMConfig, layer: int) -> nn.Module:
    """The block's FFN: dense, or a mixture of ``n_experts`` FFNs when ``n_experts > 0``; as wide
    as ``c.layer_hidden_dim(layer)`` (layer-wise scaling may widen or narrow it)."""
    width = c.layer_hidden_dim(layer)
    return MoEFeedForward(c, width) if c.n_experts else FeedForward(c, width)


class Block(nn.Module):
    """Pre-norm (``x + f(norm(x))``, GPT-2 onwards) or post-norm (``norm(x + f(x))``, the
    original transformer) residual block of attention and FFN."""

    def __init__(self, c: TinyLMConfig, layer: int):
        super().__init__()
        self.attn_norm, self.attn = make_norm(c), make_attention(c, layer)
        self.ffn_norm, self.ffn = make_norm(c), make_ffn(c, layer)
        self.drop = nn.Dropout(c.dropout)
        self.post_norm = c.norm_position == "post"

    def forward(self, x, rope=None, cache=None, slot: int | None = None):
        """``slot``: where this run keeps its keys and values in ``cache`` (a block run twice,
        with ``block_repeat``, needs two places); by default the block's index."""
        if self.post_norm:
            x = self.attn_norm(x + self.drop(self.attn(x, rope, cache, slot)))
            return self.ffn_norm(x + self.drop(self.ffn(x)))
        x = x + self.drop(self.attn(self.attn_norm(x), rope, cache, slot))
        return x + self.drop(self.ffn(self.ffn_norm(x)))


def make_block(c: TinyLMConfig, layer: int) -> nn.Module:
    """Block ``layer`` of a TinyLM: a transformer :class:`Block`, a Mamba or an RWKV layer."""
    return {"mamba": MambaBlock, "rwkv": RWKVBlock}.get(c.mixer, Block)(c, layer)
