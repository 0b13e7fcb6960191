"""A linear-attention recurrent layer: RWKV (Peng et al., 2023; the RWKV-4 form), and its cache.

RWKV replaces attention's softmax over all past positions by a weighted average whose weights
decay exponentially with distance, which can be kept as a running sum: the *time mix*
(attention's place) computes, per channel,

    wkv_t = (sum_{i<t} e^{-(t-1-i) w + k_i} v_i + e^{u + k_t} v_t)
            / (sum_{i<t} e^{-(t-1-i) w + k_i}     + e^{u + k_t})
    out_t = W_o (sigmoid(r_t) * wkv_t)

with a learned decay ``w = exp(time_decay) > 0`` and a bonus ``u = time_first`` for the current
token. Numerator and denominator are two running sums, ``a_t = e^{-w} a_{t-1} + e^{k_t} v_t``
and the same for ``b``, so decoding keeps three numbers per channel (the sums and the exponent
that keeps them finite: :func:`wkv`), not a row per past token. Keys, values and receptances
come from a *token shift*: each is a learned mix of the token and the one before it.
The *channel mix* (the FFN's place) is ``sigmoid(W_r x'') * W_v relu(W_k x')^2``, with its own
token shift. A block is ``x + time_mix(ln1(x))``, then ``x + channel_mix(ln2(x))``; the first
block also normalises the embeddings (``pre_norm``), as RWKV does.

Sizes per layer (``d = d_model``, ``f = d_ff``): time mix ``4 d^2 + 5 d``, channel mix
``2 d f + d^2 + 2 d``; the cache (:class:`RWKVCache`) holds ``5 d`` numbers per layer at any
context length. transformers' ``RwkvForCausalLM`` computes the same (:mod:`slmlab.hf_recurrent`).
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn

from .config import TinyLMConfig
from .layers import make_norm


def wkv(
    decay: torch.Tensor,
    bonus: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    state: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None = None,
) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
    """RWKV's weighted average over T positions: ``decay`` (channels,) the learned
    ``time_decay`` (the decay rate is ``exp(decay)``), ``bonus`` (channels,) ``time_first``,
    ``k`` and ``v`` (batch, T, channels). ``state`` = (numerator, denominator, exponent), each
    (batch, channels): the sums are kept as ``num * e^exponent`` so that no ``e^k`` overflows.
    Returns the output (batch, T, channels) in v's dtype and the state after the last position,
    computed in float32 at least."""
    dtype, work = v.dtype, torch.promote_types(v.dtype, torch.float32)
    k, v = k.to(work), v.to(work)
    w, u = -torch.exp(decay.to(work)), bonus.to(work)
    if state is None:
        num = torch.zeros_like(k[:, 0])
        den = torch.zeros_like(k[:, 0])
        exp = torch.full_like(k[:, 0], -1e38)
    else:
        num, den, exp = (s.to(work) for s in state)
    out = []
    for kt, vt in zip(k.unbind(1), v.unbind(1)):  # unbind: one stacked gradient, not T slices
        # the output: the past sums plus the current token with its bonus
        top = torch.maximum(exp, u + kt)
        past, now = torch.exp(exp - top), torch.exp(u + kt - top)
        out.append((past * num + now * vt) / (past * den + now))
        # the state: the past decayed by one step, plus the current token without the bonus
        top = torch.maximum(exp + w, kt)
        past, now = torch.exp(exp + w - top), torch.exp(kt - top)
        num, den, exp = past * num + now * vt, past * den + now, top
    return torch.stack(out, dim=1).to(dtype), (num, den, exp)


def token_shift(x: torch.Tensor, previous: torch.Tensor | None) -> torch.Tensor:
    """``x`` (batch, T, d) moved one position later: position t gets x_{t-1}, position 0 gets
    ``previous`` (batch, d; the last token of the previous call, zeros at the start)."""
    first = torch.zeros_like(x[:, :1]) if previous is None else previous[:, None].to(x.dtype)
    return torch.cat([first, x[:, :-1]], dim=1)


class RWKVCache:
    """The decoding state of an RWKV model, per layer (per run, with ``block_repeat``): the last
    input of the time mix and of the channel mix (batch, d_model) and the three running numbers
    of :func:`wkv` (batch, d_model, float32). Its size does not depend on ``max_len``."""

    unbounded = True  # generation never has to slide its context to make room

    def __init__(self, config: TinyLMConfig, batch_size: int, max_len: int, device, dtype):
        if config.mixer != "rwkv":
            raise ValueError(
                f"RWKVCache is the state of RWKV layers; this config's mixer is {config.mixer!r}"
            )
        self.time_shift: list[torch.Tensor | None] = [None] * config.depth
        self.channel_shift: list[torch.Tensor | None] = [None] * config.depth
        self.wkv: list[tuple | None] = [None] * config.depth
        self.shape, self.device, self.dtype = (batch_size, config.d_model), device, dtype
        self.max_len = max_len
        self.pos = 0

    def advance(self, n: int) -> None:
        self.pos += n

    def nbytes(self) -> int:
        """Bytes of the state once filled: 2 shifted inputs + 3 float32 sums per channel."""
        n = self.shape[0] * self.shape[1] * len(self.wkv)
        shift = torch.empty((), dtype=self.dtype).element_size()
        sums = torch.empty((), dtype=torch.promote_types(self.dtype, torch.float32)).element_size()
        return n * (2 * shift + 3 * sums)


class TimeMix(nn.Module):
    """RWKV's time mix (attention's place), with transformers' parameter names."""

    def __init__(self, c: TinyLMConfig, layer: int):
        super().__init__()
        d = c.d_model
        self.time_decay, self.time_first = (
            nn.Parameter(torch.empty(d)),
            nn.Parameter(torch.empty(d)),
        )
        self.time_mix_key = nn.Parameter(torch.empty(1, 1, d))
        self.time_mix_value = nn.Parameter(torch.empty(1, 1, d))
        self.time_mix_receptance = nn.Parameter(torch.empty(1, 1, d))
        self.key, self.value = nn.Linear(d, d, bias=False), nn.Linear(d, d, bias=False)
        self.receptance, self.output = nn.Linear(d, d, bias=False), nn.Linear(d, d, bias=False)
        self.layer, self.n_layer = layer, c.n_layer
        self.reset_rwkv_parameters()

    @torch.no_grad()
    def reset_rwkv_parameters(self) -> None:
        """RWKV-4's start: decay rates spread over the channels (faster in deeper layers), a
        zigzag bonus around log 0.3, and token-shift mixes from mostly-current (first layer) to
        mostly-previous (last)."""
        d = self.time_decay.shape[0]
        deep = self.layer / max(self.n_layer - 1, 1)  # 0 in the first layer, 1 in the last
        shallow = 1.0 - self.layer / self.n_layer  # 1 in the first layer, towards 0
        h = torch.arange(d, dtype=torch.float32)
        self.time_decay.copy_(-5 + 8 * (h / max(d - 1, 1)) ** (0.7 + 1.3 * deep))
        self.time_first.copy_(math.log(0.3) + 0.5 * ((h + 1) % 3 - 1))
        ramp = (h / d)[None, None]
        self.time_mix_key.copy_(ramp**shallow)
        self.time_mix_value.copy_(ramp**shallow + 0.3 * deep)
        self.time_mix_receptance.copy_(ramp ** (0.5 * shallow))

    def forward(self, x, cache: RWKVCache | None = None, slot: int | None = None):
        slot = self.layer if slot is None else slot
        shifted = token_shift(x, cache.time_shift[slot] if cache is not None else None)

        def mix(m):
            return x * m + shifted * (1 - m)

        k, v = self.key(mix(self.time_mix_key)), self.value(mix(self.time_mix_value))
        r = torch.sigmoid(self.receptance(mix(self.time_mix_receptance)))
        state = cache.wkv[slot] if cache is not None else None
        y, state = wkv(self.time_decay, self.time_first, k, v, state)
        if cache is not None:
            cache.time_shift[slot], cache.wkv[slot] = x[:, -1], state
        return self.output(r * y.to(x.dtype))


class ChannelMix(nn.Module):
    """RWKV's channel mix (the FFN's place): ``sigmoid(W_r x'') * W_v relu(W_k x')^2``."""

    def __init__(self, c: TinyLMConfig, layer: int):
        super().__init__()
        d, f = c.d_model, c.hidden_dim
        self.time_mix_key = nn.Parameter(torch.empty(1, 1, d))
        self.time_mix_receptance = nn.Parameter(torch.empty(1, 1, d))
        self.key, self.value = nn.Linear(d, f, bias=False), nn.Linear(f, d, bias=False)
        self.receptance = nn.Linear(d, d, bias=False)
        self.layer, self.n_layer = layer, c.n_layer
        self.reset_rwkv_parameters()

    @torch.no_grad()
    def reset_rwkv_parameters(self) -> None:
        d = self.time_mix_key.shape[-1]
        ramp = (torch.arange(d, dtype=torch.float32) / d)[None, None]
        shallow = 1.0 - self.layer / self.n_layer
        self.time_mix_key.copy_(ramp**shallow)
        self.time_mix_receptance.copy_(ramp**shallow)

    def forward(self, x, cache: RWKVCache | None = None, slot: int | None = None):
        slot = self.layer if slot is None else slot
        shifted = token_shift(x, cache.channel_shift[slot] if cache is not None else None)
        if cache is not None:
            cache.channel_shift[slot] = x[:, -1]
        k = x * self.time_mix_key + shifted * (1 - self.time_mix_key)
        r = x * self.time_mix_receptance + shifted * (1 - self.time_mix_receptance)
        return torch.sigmoid(self.receptance(r)) * self.value(torch.relu(self.key(k)) ** 2)


class RWKVBlock(nn.Module):
    """An RWKV layer: ``x + time_mix(ln1(x))``, then ``x + channel_mix(ln2(x))``; the first layer
    normalises its input first (``pre_norm``)."""

    def __init__(self, c: TinyLMConfig, layer: int):
        super().__init__()
        self.pre_norm = make_norm(c) if layer == 0 else None
        self.ln1, self.time_mix = make_norm(c), TimeMix(c, layer)
        self.ln2, self.channel_mix = make_norm(c), ChannelMix(c, layer)
        self.drop = nn.Dropout(c.dropout)

    def forward(self, x, rope=None, cache: RWKVCache | None = None, slot: int | None = None):
        """``rope`` is accepted for the block interface; RWKV has no positions to rotate."""
        if self.pre_norm is not None and (slot is None or slot == 0):
            x = self.pre_norm(x)
        x = x + self.drop(self.time_mix(self.ln1(x), cache, slot))
        return x + self.drop(self.channel_mix(self.ln2(x), cache, slot))
