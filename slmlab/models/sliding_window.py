"""A KV cache for sliding-window attention: a ring buffer of ``window`` positions per layer.

With a window of ``w``, no query ever looks further back than ``w - 1`` positions, so a cache
that keeps the last ``w`` keys and values is enough, however long generation runs: its memory
stays flat where :class:`~slmlab.models.layers.KVCache` grows by one row per token (Mistral's
"rolling buffer cache"). Position ``p`` is stored in slot ``p % w``, overwriting position
``p - w``, which no later query can see.

The keys come back in slot order, not in position order; :meth:`key_positions` says where each
one sits, and the attention mask is built from those positions
(:func:`slmlab.models.masks.attention_mask`), so the order does not matter.
"""

from __future__ import annotations

import torch

from .config import TinyLMConfig
from .layers import KVCache


class SlidingWindowCache(KVCache):
    """Keys/values of the last ``min(window, max_len)`` positions per layer, in a ring buffer,
    (B, n_kv_head, size, head_dim); generation may run past ``max_len`` and ``block_size``."""

    unbounded = True  # generation never has to slide its context to make room

    def __init__(self, config: TinyLMConfig, batch_size: int, max_len: int, device, dtype):
        if config.window is None:
            raise ValueError(
                "SlidingWindowCache needs a config with a window (TinyLMConfig(window=...)); "
                "full attention uses KVCache"
            )
        size = min(config.window, max_len)
        super().__init__(config, batch_size, size, device, dtype)
        self.size = size
        # the position held by each slot; -1: empty
        self.slot_pos = torch.full((size,), -1, dtype=torch.long, device=device)

    def _filled(self) -> int:
        return min(self.pos, self.size)

    def update(
        self, layer: int, k: torch.Tensor, v: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Return the stored keys/values followed by the new ones (T of them), then store the
        last ``size`` of the new ones in their slots."""
        n = self._filled()
        keys = torch.cat([self.k[layer][:, :, :n], k], dim=2)
        values = torch.cat([self.v[layer][:, :, :n], v], dim=2)
        keep = min(k.shape[2], self.size)
        slots = self._slots(k.shape[2], keep)
        self.k[layer][:, :, slots] = k[:, :, -keep:]
        self.v[layer][:, :, slots] = v[:, :, -keep:]
        return keys, values

    def _slots(self, T: int, keep: int) -> torch.Tensor:
        """Slots of the last ``keep`` of ``T`` new positions."""
        start = self.pos + T - keep
        return torch.arange(start, start + keep, device=self.slot_pos.device) % self.size

    def key_positions(self, T: int, device=None) -> torch.Tensor:
        n = self._filled()
        new = torch.arange(self.pos, self.pos + T, device=self.slot_pos.device)
        return torch.cat([self.slot_pos[:n], new]).to(device)

    def advance(self, n: int) -> None:
        keep = min(n, self.size)
        self.slot_pos[self._slots(n, keep)] = torch.arange(
            self.pos + n - keep, self.pos + n, device=self.slot_pos.device
        )
        super().advance(n)
