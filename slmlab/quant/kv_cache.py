"""A quantized KV cache: keys and values stored in int8 / int4 / int2 during generation.

At long context the KV cache, not the weights, dominates memory: ``2 * n_layer * n_kv_head *
head_dim`` numbers per token (``slmlab.kv_cache_bytes_per_token``). Storing them in 4 bits
saves 8x over float32. This cache plugs into TinyLM's generation path by subclassing
:class:`slmlab.model.KVCache` and overriding ``update``:

    model.generate(ids, 100, cache_cls=quantized_kv_cache(bits=4))

Which numbers share a scale matters (KIVI, Liu et al., 2024): keys have a few *channels*
with large magnitude (the same channels for every token), so KIVI quantizes keys
**per channel** (each channel of a chunk of ``residual`` tokens shares a scale and minimum) and
values **per token** (each token's ``group_size`` channels share one). Keys of the last
tokens wait in full precision until a whole chunk is complete. ``key_axis="token"``
quantizes keys per token too (simpler, and worse at 4 bits and below). Quantization is
asymmetric (scale and minimum per group, both stored in float16).
"""

from __future__ import annotations

import torch

from ..models import KVCache, TinyLMConfig

KV_BITS = (2, 4, 8)


def _pack(codes: torch.Tensor, bits: int) -> torch.Tensor:
    """Pack codes (..., d) in [0, 2**bits) along the last dim, 8 // bits per byte (first in the high
    bits)."""
    if bits == 8:
        return codes.to(torch.uint8)
    per = 8 // bits
    c = codes.to(torch.uint8).reshape(*codes.shape[:-1], codes.shape[-1] // per, per)
    out = torch.zeros(c.shape[:-1], dtype=torch.uint8, device=codes.device)
    for i in range(per):
        out |= c[..., i] << (bits * (per - 1 - i))
    return out


def _unpack(packed: torch.Tensor, bits: int) -> torch.Tensor:
    if bits == 8:
        return packed
    per = 8 // bits
    parts = [(packed >> (bits * (per - 1 - i))) & (2**bits - 1) for i in range(per)]
    return torch.stack(parts, dim=-1).reshape(*packed.shape[:-1], packed.shape[-1] * per)


def quantize_groups(
    x: torch.Tensor, bits: int, dim: int = -1
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Asymmetric quantization with one (scale, min) per slice along ``dim``:
    ``x ~= codes * scale + min``."""
    lo = x.amin(dim=dim, keepdim=True)
    hi = x.amax(dim=dim, keepdim=True)
    scale = ((hi - lo) / (2**bits - 1)).clamp(min=1e-8)
    codes = torch.clamp(torch.round((x - lo) / scale), 0, 2**bits - 1)
    return codes, scale, lo


class QuantizedKVCache(KVCache):
    """KV cache holding keys and values as packed low-bit codes plus float16 scales/minimums.

    Class attributes (set them with :func:`quantized_kv_cache`): ``bits`` (8, 4 or 2),
    ``group_size`` (channels per value/key group for per-token quantization; must divide
    head_dim), ``key_axis`` ("channel" as in KIVI, or "token"), ``residual`` (tokens per key
    chunk for per-channel quantization; the newest incomplete chunk stays in float).
    """

    bits: int = 8
    group_size: int = 32
    key_axis: str = "channel"
    residual: int = 32

    def __init__(self, config: TinyLMConfig, batch_size: int, max_len: int, device, dtype):
        if self.bits not in KV_BITS:
            raise ValueError(f"unsupported KV-cache bit width {self.bits}; supported: {KV_BITS}.")
        if self.key_axis not in ("channel", "token"):
            raise ValueError(
                f"key_axis must be 'channel' (KIVI) or 'token', got {self.key_axis!r}."
            )
        if getattr(config, "head_scale", None) is not None:
            raise ValueError(
                "the quantized KV cache assumes n_kv_head heads in every layer; layer-wise "
                "scaling (head_scale) varies them"
            )
        if getattr(config, "mixer", "attention") != "attention":
            raise ValueError(
                f"the quantized KV cache stores keys and values; mixer={config.mixer!r} layers "
                "keep a fixed-size state instead (slmlab.models.mamba.SSMCache)"
            )
        if getattr(config, "mla_kv_rank", None):
            raise ValueError(
                "the quantized KV cache stores keys and values per head; latent attention "
                "(mla_kv_rank) caches latents (slmlab.models.mla.LatentCache)"
            )
        hd = config.head_dim
        gs = min(self.group_size, hd)
        if hd % gs:
            raise ValueError(
                f"KV-cache group_size={self.group_size} does not divide head_dim={hd}; "
                f"use a divisor of {hd} such as {[g for g in (8, 16, 32, 64, 128) if hd % g == 0]}."
            )
        self.gs, self.hd, self.dtype, self.device = gs, hd, dtype, device
        self.max_len, self.pos = max_len, 0
        B, H, L, n_g = batch_size, config.n_kv_head, max_len, hd // gs
        pb = hd * self.bits // 8  # packed bytes per token and head
        half = dict(dtype=torch.float16, device=device)
        mk = lambda *shape, **kw: [torch.zeros(*shape, **kw) for _ in range(config.depth)]  # noqa: E731
        self.v_codes = mk(B, H, L, pb, dtype=torch.uint8, device=device)
        self.v_scale, self.v_min = mk(B, H, L, n_g, **half), mk(B, H, L, n_g, **half)
        self.k_codes = mk(B, H, L, pb, dtype=torch.uint8, device=device)
        if self.key_axis == "token":
            self.k_scale, self.k_min = mk(B, H, L, n_g, **half), mk(B, H, L, n_g, **half)
        else:
            n_chunks = -(-L // self.residual)
            self.k_scale, self.k_min = (
                mk(B, H, n_chunks, hd, **half),
                mk(B, H, n_chunks, hd, **half),
            )
            self.k_resid = mk(B, H, self.residual, hd, dtype=dtype, device=device)
        self.k_done = [0] * config.depth  # key positions already quantized (per-channel mode)

    # -- per-token groups
    def _put_tokens(self, codes_buf, scale_buf, min_buf, x, start):
        B, H, T, hd = x.shape
        g = x.float().reshape(B, H, T, hd // self.gs, self.gs)
        codes, scale, lo = quantize_groups(g, self.bits)
        codes_buf[:, :, start : start + T] = _pack(codes.reshape(B, H, T, hd), self.bits)
        scale_buf[:, :, start : start + T] = scale[..., 0].half()
        min_buf[:, :, start : start + T] = lo[..., 0].half()

    def _get_tokens(self, codes_buf, scale_buf, min_buf, end):
        B, H = codes_buf.shape[:2]
        codes = _unpack(codes_buf[:, :, :end], self.bits).float().reshape(B, H, end, -1, self.gs)
        x = codes * scale_buf[:, :, :end].float().unsqueeze(-1) + min_buf[
            :, :, :end
        ].float().unsqueeze(-1)
        return x.reshape(B, H, end, self.hd).to(self.dtype)

    # -- per-channel key chunks (KIVI)
    def _update_keys_channel(self, layer: int, k: torch.Tensor, end: int) -> torch.Tensor:
        R, done = self.residual, self.k_done[layer]
        resid = self.k_resid[layer]
        n_old = self.pos - done  # keys waiting in the float buffer
        pending = torch.cat([resid[:, :, :n_old], k], dim=2)
        while pending.shape[2] >= R:  # a full chunk: quantize each channel over its R tokens
            chunk, pending = pending[:, :, :R], pending[:, :, R:]
            codes, scale, lo = quantize_groups(chunk.float(), self.bits, dim=2)
            c = done // R
            self.k_codes[layer][:, :, done : done + R] = _pack(codes, self.bits)
            self.k_scale[layer][:, :, c] = scale[:, :, 0].half()
            self.k_min[layer][:, :, c] = lo[:, :, 0].half()
            done += R
        resid[:, :, : pending.shape[2]] = pending
        self.k_done[layer] = done
        parts = []
        if done:
            B, H = k.shape[:2]
            n_c = done // R
            codes = (
                _unpack(self.k_codes[layer][:, :, :done], self.bits)
                .float()
                .reshape(B, H, n_c, R, self.hd)
            )
            keys = codes * self.k_scale[layer][:, :, :n_c].float().unsqueeze(3) + self.k_min[layer][
                :, :, :n_c
            ].float().unsqueeze(3)
            parts.append(keys.reshape(B, H, done, self.hd).to(self.dtype))
        parts.append(pending.to(self.dtype))
        return torch.cat(parts, dim=2)

    def update(
        self, layer: int, k: torch.Tensor, v: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Quantize and store k, v (B, n_kv, T, hd) at the current position; return all cached
        keys/values dequantized (what attention then uses)."""
        end = self.pos + k.shape[2]
        if end > self.max_len:
            raise ValueError(f"KV cache of {self.max_len} positions is full (asked for {end}).")
        self._put_tokens(self.v_codes[layer], self.v_scale[layer], self.v_min[layer], v, self.pos)
        vals = self._get_tokens(self.v_codes[layer], self.v_scale[layer], self.v_min[layer], end)
        if self.key_axis == "token":
            self._put_tokens(
                self.k_codes[layer], self.k_scale[layer], self.k_min[layer], k, self.pos
            )
            keys = self._get_tokens(
                self.k_codes[layer], self.k_scale[layer], self.k_min[layer], end
            )
        else:
            keys = self._update_keys_channel(layer, k, end)
        return keys, vals

    def nbytes(self) -> int:
        """Bytes held by the cache (codes, scales, minimums and the float key residual),
        for max_len positions."""
        tensors = (
            self.k_codes + self.v_codes + self.k_scale + self.k_min + self.v_scale + self.v_min
        )
        if self.key_axis == "channel":
            tensors = tensors + self.k_resid
        return sum(t.numel() * t.element_size() for t in tensors)


def quantized_kv_cache(
    bits: int = 8, group_size: int = 32, key_axis: str = "channel", residual: int = 32
) -> type:
    """A :class:`QuantizedKVCache` subclass with these settings, to pass as ``cache_cls``."""
    if bits not in KV_BITS:
        raise ValueError(f"unsupported KV-cache bit width {bits}; supported: {KV_BITS}.")
    if key_axis not in ("channel", "token"):
        raise ValueError(f"key_axis must be 'channel' (KIVI) or 'token', got {key_axis!r}.")
    if residual <= 0 or group_size <= 0:
        raise ValueError("group_size and residual must be positive integers.")
    name = f"Int{bits}KVCache_{key_axis}"
    return type(
        name,
        (QuantizedKVCache,),
        {
            "bits": bits,
            "group_size": group_size,
            "key_axis": key_axis,
            "residual": residual,
            "__doc__": QuantizedKVCache.__doc__,
        },
    )


Int8KVCache = quantized_kv_cache(8)
Int4KVCache = quantized_kv_cache(4)


def cache_nbytes(
    config: TinyLMConfig, context: int, cache_cls=KVCache, batch_size: int = 1, dtype=torch.float32
) -> int:
    """Measured bytes of a cache of ``cache_cls`` holding ``context`` positions (allocated, not
    estimated; :func:`slmlab.models.kv_cache_bytes` is the formula)."""
    return cache_cls(config, batch_size, context, "cpu", dtype).nbytes()
