"""TinyLM: a small decoder-only transformer, readable top to bottom.

In the spirit of nanoGPT's model.py: the config (:mod:`~slmlab.models.config`) and the modules
(:mod:`~slmlab.models.layers`, :mod:`~slmlab.models.block`) are small and live beside this
file; here they are assembled into the model, with ``save_pretrained``/``from_pretrained``
and ``generate`` as transformers has them. Its size, FLOPs and KV-cache bytes come from
:mod:`~slmlab.models.estimates`.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path

import torch
import torch.nn as nn

from .. import checkpoint
from ..lm import lm_loss
from . import generation
from .block import make_block
from .config import TinyLMConfig
from .estimates import num_params
from .layers import KVCache, make_norm, rope_cos_sin
from .mamba import MambaMixer
from .moe import MoEFeedForward
from .rwkv import ChannelMix, TimeMix


class TinyLM(nn.Module):
    """Token ids (B, T) -> logits (B, T, vocab_size)."""

    model_type = (
        "slmlab-tinylm"  # config.json's model_type: slmlab.models.MODEL_TYPES maps it back here
    )

    def __init__(self, config: TinyLMConfig):
        super().__init__()
        self.config = c = config
        self.embed = nn.Embedding(c.vocab_size, c.d_model)
        self.pos_embed = nn.Embedding(c.block_size, c.d_model) if c.pos == "learned" else None
        self.drop = nn.Dropout(c.dropout)
        self.blocks = nn.ModuleList(make_block(c, i) for i in range(c.n_layer))
        self.norm = make_norm(c)
        self.lm_head = nn.Linear(c.d_model, c.vocab_size, bias=False)
        self.apply(self._init)
        for name, p in self.named_parameters():  # GPT-2: scale residual projections by depth
            residual = ("o_proj", "down_proj", "out_proj", "time_mix.output", "channel_mix.value")
            if name.endswith(tuple(f"{r}.weight" for r in residual)):
                nn.init.normal_(p, std=c.init_std / math.sqrt(2 * c.depth))
        for m in self.modules():  # Mamba's and RWKV's own start for their recurrent parts
            if isinstance(m, MambaMixer):
                m.reset_ssm_parameters()
            elif isinstance(m, (TimeMix, ChannelMix)):
                m.reset_rwkv_parameters()
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

    def forward(
        self, idx: torch.Tensor, cache: KVCache | None = None, last_only: bool = False
    ) -> torch.Tensor:
        """Logits (B, T, vocab); with ``last_only`` only the last position's (B, 1, vocab),
        as generation needs."""
        B, T = idx.shape
        c = self.config
        start = cache.pos if cache is not None else 0
        if start + T > c.block_size and c.pos == "learned":
            raise ValueError(
                f"sequence of {start + T} tokens exceeds block_size={c.block_size} (learned "
                "positions)"
            )
        x = self.embed(idx)
        rope = None
        if c.pos == "learned":
            x = x + self.pos_embed(torch.arange(start, start + T, device=idx.device))
        elif c.pos == "rope":
            cos, sin = self.rope_tables(start + T, x.dtype, x.device)
            rope = cos[start : start + T], sin[start : start + T]
        x = self.drop(x)
        for i, block in enumerate(self.blocks):
            for run in range(c.block_repeat):  # MobileLLM's immediate repeat: same weights again
                x = block(x, rope, cache, slot=i * c.block_repeat + run)
        if cache is not None:
            cache.advance(T)
        return self.lm_head(self.norm(x[:, -1:] if last_only else x))

    def rope_tables(self, end: int, dtype, device) -> tuple[torch.Tensor, torch.Tensor]:
        """RoPE cos/sin of positions 0 .. end-1 (at least block_size), computed once and reused."""
        t = self._rope
        if t is None or t[0].shape[0] < end or t[0].dtype != dtype or t[0].device != device:
            with torch.inference_mode(
                False
            ):  # a cached table must serve training too, even if made while decoding
                positions = torch.arange(max(end, self.config.block_size), device=device)
                t = self._rope = rope_cos_sin(
                    positions, self.config.rope_dim, self.config.rope_theta, dtype
                )
        return t

    def loss(self, idx: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """Next-token cross-entropy of ``targets`` (-100 = ignored), as
        :func:`slmlab.lm.lm_loss`, plus :meth:`aux_loss` (0 for a dense model)."""
        return lm_loss(self(idx), targets) + self.aux_loss()

    def aux_loss(self) -> torch.Tensor:
        """The load-balancing loss of the last forward's mixture-of-experts layers (their sum,
        times ``router_aux_loss_coef``; :mod:`~slmlab.models.moe`); 0 for a dense model."""
        losses = [
            m.last_aux_loss
            for m in self.modules()
            if isinstance(m, MoEFeedForward) and m.last_aux_loss is not None
        ]
        if not losses:
            return torch.zeros((), device=self.device)
        return self.config.router_aux_loss_coef * torch.stack(losses).sum()

    def num_params(self, non_embedding: bool = False) -> int:
        return num_params(self.config, non_embedding)

    def save_pretrained(self, directory, tokenizer=None):
        """Write config.json + model.safetensors (+ tokenizer.json), like transformers."""
        return checkpoint.save_pretrained(self, directory, tokenizer)

    @classmethod
    def from_pretrained(cls, directory, device=None, dtype: torch.dtype | None = None) -> TinyLM:
        """The TinyLM that ``save_pretrained`` wrote into ``directory`` (in eval mode)."""
        if not Path(directory).is_dir():
            raise checkpoint.CheckpointError(f"no model directory at {directory}")
        model = cls(TinyLMConfig.from_dict(checkpoint.read_config(directory)))
        checkpoint.load_weights(model, directory)
        if dtype is not None:
            model = model.to(dtype)
        return model.to(device or "cpu").eval()

    # ------------------------------------------------------------------------- generation
    def stream(self, idx, max_new_tokens: int, **kw) -> Iterator[torch.Tensor]:
        """Yield the next token ids (B,) one step at a time
        (see :func:`slmlab.models.generation.stream`)."""
        return generation.stream(self, idx, max_new_tokens, **kw)

    def generate(
        self,
        idx,
        max_new_tokens: int,
        temperature: float = 1.0,
        top_k: int | None = None,
        top_p: float | None = None,
        eos_id: int | None = None,
        generator=None,
        **kw,
    ) -> torch.Tensor:
        """Append up to ``max_new_tokens`` sampled tokens to ``idx`` (B, T);
        temperature 0 is greedy."""
        return generation.generate(
            self, idx, max_new_tokens, temperature, top_k, top_p, eos_id, generator, **kw
        )
