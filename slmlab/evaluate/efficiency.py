"""What a model costs to run, beside what it can do: its bytes, the latency of a prefill and of a
decode step, and the peak memory of one generation.

- **bytes**: every parameter and buffer, as stored (:func:`slmlab.surgery.model_nbytes`: a packed
  4-bit layer counts its codes and scales, not a float copy).
- **latency**: the median of ``repeats`` timed calls, each after a warm-up call: a prefill is one
  forward pass over ``batch_size`` prompts of ``prompt_tokens`` tokens; a decode step is the time
  of a greedy generation of ``new_tokens`` tokens with the model's KV cache, less one prefill,
  divided by ``new_tokens``. Wall-clock times on a shared machine are noisy: compare models
  measured in one run, never a time against a fixed number.
- **peak memory**: the model's bytes plus the highest total of the tensors allocated during one
  generation and still alive at that moment (activations, KV cache, logits), read from the
  PyTorch profiler's allocation events (``profile_memory=True``) on the CPU; on a CUDA device,
  ``torch.cuda.max_memory_allocated``. Python objects and the allocator's cached free blocks are
  not counted.

:func:`efficiency` measures one model; ``suite(..., include_efficiency=True)`` and
:func:`efficiency_columns` put the numbers beside the scores.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import time

import torch

from ..lm import eval_mode
from ..surgery import model_nbytes
from .scoring import LM, _generate_batch

COLUMNS = ("MB", "prefill_ms", "decode_ms_per_token", "peak_MB")


def _positive(name: str, value) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a whole number >= 1, got {value!r}")
    return value


def _median_seconds(fn, repeats: int) -> float:
    fn()  # warm-up: first-call costs (allocations, a lean decoder being built) are not latency
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return sorted(times)[len(times) // 2]


@contextlib.contextmanager
def _native_stderr_silenced():
    """File descriptor 2 pointed at /dev/null for the duration: silences what C++ code writes to
    the process's stderr (which a notebook shows), not Python's ``sys.stderr`` alone."""
    try:
        saved = os.dup(2)
    except OSError:  # no stderr to silence
        yield
        return
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def peak_allocated_bytes(fn, device: torch.device | str = "cpu") -> int:
    """The highest total bytes of tensors allocated by ``fn()`` and alive at once (what was
    allocated before the call is not counted): the profiler's allocation events summed in time
    order on the CPU, ``torch.cuda.max_memory_allocated`` above the starting level on CUDA."""
    device = torch.device(device)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        start = torch.cuda.memory_allocated(device)
        torch.cuda.reset_peak_memory_stats(device)
        fn()
        torch.cuda.synchronize(device)
        return int(torch.cuda.max_memory_allocated(device) - start)
    from torch.profiler import ProfilerActivity, profile

    prof = profile(activities=[ProfilerActivity.CPU], profile_memory=True)
    with _native_stderr_silenced():  # the profiler logs its start to the process's stderr
        prof.__enter__()
    try:
        fn()
    finally:
        with _native_stderr_silenced():  # ... and its stop
            prof.__exit__(None, None, None)
    events = sorted(
        (e.start_ns(), e.nbytes())
        for e in prof.profiler.kineto_results.events()
        if e.name() == "[memory]" and e.device_type() == torch.autograd.DeviceType.CPU
    )
    return int(max(itertools.accumulate(n for _, n in events), default=0))


def efficiency(
    model,
    tokenizer,
    prompt_tokens: int = 64,
    new_tokens: int = 16,
    batch_size: int = 1,
    repeats: int = 5,
    seed: int = 0,
) -> dict:
    """Bytes, latency and peak memory of ``model`` (module docstring): ``MB`` (10^6 bytes),
    ``prefill_ms`` (one forward pass over ``batch_size`` x ``prompt_tokens`` tokens),
    ``decode_ms_per_token`` (one greedy step with the KV cache), ``peak_MB`` (the weights and
    the tensors of one generation at their peak), and the settings. The prompts are random token
    ids drawn with ``seed``: cost does not depend on what the tokens say."""
    for name, value in (
        ("prompt_tokens", prompt_tokens),
        ("new_tokens", new_tokens),
        ("batch_size", batch_size),
        ("repeats", repeats),
    ):
        _positive(name, value)
    lm = LM(model, tokenizer)
    if prompt_tokens + new_tokens > lm.max_len:
        raise ValueError(
            f"prompt_tokens + new_tokens = {prompt_tokens + new_tokens} exceeds the model's "
            f"context of {lm.max_len} tokens: pass fewer"
        )
    if not lm.vocab_size:
        raise ValueError("cannot tell the vocabulary size of the model: no config.vocab_size")
    g = torch.Generator().manual_seed(seed)
    x = torch.randint(0, lm.vocab_size, (batch_size, prompt_tokens), generator=g)
    x = x.to(lm.device)
    with eval_mode(model), torch.no_grad():
        prefill = _median_seconds(lambda: lm.logits(x), repeats)
        generate = _median_seconds(lambda: _generate_batch(lm, x, new_tokens, True), repeats)
        working = peak_allocated_bytes(lambda: _generate_batch(lm, x, new_tokens, True), lm.device)
    weights = model_nbytes(model)
    return {
        "MB": weights / 1e6,
        "prefill_ms": 1e3 * prefill,
        "decode_ms_per_token": 1e3 * max(generate - prefill, 0.0) / new_tokens,
        "peak_MB": (weights + working) / 1e6,
        "prompt_tokens": prompt_tokens,
        "new_tokens": new_tokens,
        "batch_size": batch_size,
    }


def efficiency_columns(table, models: dict, tokenizer, **kwargs):
    """``table`` (a DataFrame indexed by the names of ``models``) with the columns of
    :func:`efficiency` added, each model measured in turn with the same settings (``kwargs``)."""
    missing = [name for name in table.index if name not in models]
    if missing:
        raise ValueError(f"no model given for the rows {missing}; pass models={{name: model}}")
    measured = {name: efficiency(models[name], tokenizer, **kwargs) for name in table.index}
    out = table.copy()
    for col in COLUMNS:
        out[col] = [measured[name][col] for name in table.index]
    return out
