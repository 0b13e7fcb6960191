"""The feed-forward network of a block: two matrices with an activation between them, or three
with a gate (SwiGLU, Shazeer 2020).

====================  ====================================  ===========================
``ffn``               hidden h                              parameters (no bias)
====================  ====================================  ===========================
``"relu"``            relu(x W_up^T)                        2 d h
``"gelu"``            gelu(x W_up^T)                        2 d h
``"relu2"``           relu(x W_up^T)^2 (Primer)             2 d h
``"swiglu"``          silu(x W_gate^T) * (x W_up^T)         3 d h
====================  ====================================  ===========================

then ``down_proj``: ``h W_down^T``. At a fixed parameter budget SwiGLU's width is 2/3 of the
others' (Llama's 8/3 d instead of 4 d).
"""

from __future__ import annotations

import torch.nn as nn
import torch.nn.functional as F

from .config import TinyLMConfig

ACTIVATIONS = {
    "gelu": F.gelu,
    "relu": F.relu,
    "relu2": lambda h: F.relu(h).square(),  # Primer's squared ReLU (So et al., 2021)
}


class FeedForward(nn.Module):
    """``down(act(up(x)))``, or for SwiGLU ``down(silu(gate(x)) * up(x))``: 2 or 3 matrices of
    ``d_model x hidden_dim``."""

    def __init__(self, c: TinyLMConfig, hidden_dim: int | None = None):
        super().__init__()
        h = c.hidden_dim if hidden_dim is None else hidden_dim
        self.kind = c.ffn
        if c.ffn == "swiglu":
            self.gate_proj = nn.Linear(c.d_model, h, bias=c.bias)
        self.up_proj = nn.Linear(c.d_model, h, bias=c.bias)
        self.down_proj = nn.Linear(h, c.d_model, bias=c.bias)

    def forward(self, x):
        if self.kind == "swiglu":
            h = F.silu(self.gate_proj(x)) * self.up_proj(x)
        else:
            h = ACTIVATIONS[self.kind](self.up_proj(x))
        return self.down_proj(h)
