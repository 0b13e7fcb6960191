"""A selective state-space layer (Mamba; Gu & Dao, 2023) in plain PyTorch, and its cache.

Attention keeps every past key and value and looks back over all of them; a state-space layer
keeps a fixed-size state per channel and updates it token by token, like an RNN whose update is
linear in the state:

    h_t = exp(delta_t * A) * h_{t-1} + delta_t * B_t * x_t     (h: d_inner x ssm_state numbers)
    y_t = C_t . h_t + D * x_t

``A`` (negative, one decay rate per channel and state dimension) and ``D`` are learned constants;
*selective* means that the step ``delta_t`` and the projections ``B_t`` and ``C_t`` are computed
from the token itself, so the layer decides per token what to write into its state and what to
read (S4's were fixed). A large ``delta`` forgets the state and takes the token in; a small one
keeps the state and ignores the token. :func:`selective_scan` runs the recurrence as a loop over
positions, the form that is easy to read and to check (Mamba's CUDA kernel and transformers'
``MambaForCausalLM`` without it compute the same).

The layer (Mamba's block, as ``MambaForCausalLM`` has it): ``in_proj`` maps ``d_model`` to two
streams of ``d_inner = ssm_expand * d_model``; one goes through a causal depthwise convolution of
``ssm_conv`` positions and SiLU, then the scan; the other, through SiLU, gates the scan's output;
``out_proj`` maps back to ``d_model``. A Mamba layer has no separate FFN: the block is
``x + mixer(norm(x))``.

Sizes per layer (``i = d_inner``, ``N = ssm_state``, ``r = dt_rank``, ``k = ssm_conv``):
parameters ``2 d i + i k + i + i (r + 2N) + r i + i + i N + i + i d`` (+ biases), and the cache
(:class:`SSMCache`) holds ``i (k - 1)`` convolution inputs and ``i N`` state numbers, whatever
the context's length: generation runs in constant memory, where a KV cache grows by a row per
token (:func:`slmlab.models.state_bytes`).
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from .config import TinyLMConfig
from .layers import make_norm


def selective_scan(
    x: torch.Tensor,
    delta: torch.Tensor,
    A: torch.Tensor,
    B: torch.Tensor,
    C: torch.Tensor,
    D: torch.Tensor,
    state: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Run the recurrence over T positions: ``x`` and ``delta`` (batch, T, d_inner), ``A``
    (d_inner, N), ``B`` and ``C`` (batch, T, N), ``D`` (d_inner,), ``state`` (batch, d_inner, N)
    from earlier positions (zeros when None). Returns ``y`` (batch, T, d_inner) in x's dtype and the
    last state, computed in float32 at least (float64 stays float64)."""
    work = torch.promote_types(x.dtype, torch.float32)
    xw, delta, A = x.to(work), delta.to(work), A.to(work)
    B, C = B.to(work), C.to(work)
    h = xw.new_zeros(x.shape[0], x.shape[2], A.shape[1]) if state is None else state.to(work)
    ys = []
    # one position at a time, every tensor (batch, d_inner, N) small enough to stay in cache:
    # materialising the decays and writes of all T positions first moved 2.4x more memory here
    for x_t, delta_t, B_t, C_t in zip(xw.unbind(1), delta.unbind(1), B.unbind(1), C.unbind(1)):
        decay = torch.exp(delta_t[..., None] * A)  # exp(delta_t A), (batch, d_inner, N)
        h = decay * h + (delta_t * x_t)[..., None] * B_t[:, None, :]
        ys.append(torch.bmm(h, C_t[..., None])[..., 0])  # C_t . h_t
    y = torch.stack(ys, dim=1) + xw * D.to(work)
    return y.to(x.dtype), h


def causal_conv(
    x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, past: torch.Tensor | None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Depthwise causal convolution of ``x`` (batch, channels, T) with ``weight`` (channels, 1, k):
    each output sees its own position and the ``k - 1`` before it, taken from ``past`` (batch,
    channels, k - 1; zeros when None) where they precede x. Returns the output (batch, channels,
    T) and the last ``k - 1`` inputs, the next call's ``past``."""
    k = weight.shape[-1]
    if past is None:
        past = x.new_zeros(x.shape[0], x.shape[1], k - 1)
    window = torch.cat([past.to(x.dtype), x], dim=-1)
    y = F.conv1d(window, weight, bias, groups=x.shape[1])
    return y, window[:, :, window.shape[-1] - (k - 1) :]


class SSMCache:
    """The decoding state of a Mamba model: per layer (per run, with ``block_repeat``) the last
    ``ssm_conv - 1`` inputs of the convolution (batch, d_inner, ssm_conv - 1) and the state
    (batch, d_inner, ssm_state), kept in float32 (float64 for a float64 model). Its size does not
    depend on ``max_len`` (accepted for the interface generation uses): it never fills."""

    unbounded = True  # generation never has to slide its context to make room

    def __init__(self, config: TinyLMConfig, batch_size: int, max_len: int, device, dtype):
        if config.mixer != "mamba":
            raise ValueError(
                f"SSMCache is the state of Mamba layers; this config's mixer is {config.mixer!r}"
            )
        inner, state_dtype = config.ssm_inner, torch.promote_types(dtype, torch.float32)
        self.conv = [
            torch.zeros(batch_size, inner, config.ssm_conv - 1, device=device, dtype=dtype)
            for _ in range(config.depth)
        ]
        self.state = [
            torch.zeros(batch_size, inner, config.ssm_state, device=device, dtype=state_dtype)
            for _ in range(config.depth)
        ]
        self.max_len = max_len
        self.pos = 0  # positions seen so far

    def advance(self, n: int) -> None:
        self.pos += n

    def nbytes(self) -> int:
        return sum(t.numel() * t.element_size() for t in self.conv + self.state)


class MambaMixer(nn.Module):
    """Mamba's mixer: (batch, T, d_model) -> (batch, T, d_model), with transformers' names for
    its weights (``in_proj``, ``conv1d``, ``x_proj``, ``dt_proj``, ``A_log``, ``D``,
    ``out_proj``)."""

    def __init__(self, c: TinyLMConfig, layer: int):
        super().__init__()
        self.layer = layer
        inner, self.n_state, self.dt_rank = c.ssm_inner, c.ssm_state, c.dt_rank
        self.in_proj = nn.Linear(c.d_model, 2 * inner, bias=c.bias)
        self.conv1d = nn.Conv1d(inner, inner, c.ssm_conv, groups=inner, padding=c.ssm_conv - 1)
        self.x_proj = nn.Linear(inner, self.dt_rank + 2 * self.n_state, bias=False)
        self.dt_proj = nn.Linear(self.dt_rank, inner, bias=True)
        self.A_log = nn.Parameter(torch.empty(inner, self.n_state))
        self.D = nn.Parameter(torch.empty(inner))
        self.out_proj = nn.Linear(inner, c.d_model, bias=c.bias)
        self.reset_ssm_parameters()

    @torch.no_grad()
    def reset_ssm_parameters(self, dt_min: float = 1e-3, dt_max: float = 0.1) -> None:
        """Mamba's initialisation of the state-space part (S4D-real): ``A = -(1, 2, .., N)`` in
        every channel, ``D = 1``, and a step ``softplus(dt_proj.bias)`` log-uniform in
        [dt_min, dt_max]. TinyLM calls it again after its generic initialisation."""
        inner = self.D.shape[0]
        n = torch.arange(1, self.n_state + 1, dtype=torch.float32)
        self.A_log.copy_(n.log().expand(inner, -1))
        self.D.fill_(1.0)
        bound = self.dt_rank**-0.5
        self.dt_proj.weight.uniform_(-bound, bound)
        log_dt = torch.rand(inner) * (math.log(dt_max) - math.log(dt_min)) + math.log(dt_min)
        dt = log_dt.exp().clamp(min=1e-4)
        self.dt_proj.bias.copy_(dt + torch.log(-torch.expm1(-dt)))  # softplus^-1(dt)

    def forward(self, x, cache: SSMCache | None = None, slot: int | None = None):
        slot = self.layer if slot is None else slot
        u, gate = self.in_proj(x).chunk(2, dim=-1)  # (batch, T, d_inner) each
        past = cache.conv[slot] if cache is not None else None
        u, tail = causal_conv(u.transpose(1, 2), self.conv1d.weight, self.conv1d.bias, past)
        u = F.silu(u).transpose(1, 2)
        dt, B, C = self.x_proj(u).split([self.dt_rank, self.n_state, self.n_state], dim=-1)
        delta = F.softplus(self.dt_proj(dt))
        A = -torch.exp(self.A_log)
        state = cache.state[slot] if cache is not None else None
        y, state = selective_scan(u, delta, A, B, C, self.D, state)
        if cache is not None:
            cache.conv[slot], cache.state[slot] = tail, state
        return self.out_proj(y * F.silu(gate))


class MambaBlock(nn.Module):
    """A Mamba layer: ``x + mixer(norm(x))`` (no FFN: the mixer's gated expansion is one)."""

    def __init__(self, c: TinyLMConfig, layer: int):
        super().__init__()
        self.norm, self.mixer = make_norm(c), MambaMixer(c, layer)
        self.drop = nn.Dropout(c.dropout)

    def forward(self, x, rope=None, cache: SSMCache | None = None, slot: int | None = None):
        """``rope`` is accepted for the block interface; a state-space layer has no positions."""
        return x + self.drop(self.mixer(self.norm(x), cache, slot))
