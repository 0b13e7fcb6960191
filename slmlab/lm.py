"""The causal-LM basics every part of the book needs, for any causal LM: a TinyLM or a
transformers model (whose output has ``.logits``).

- :func:`logits` of token ids, :func:`model_device`, :func:`eval_mode` (restores the mode after);
- :func:`lm_loss`: next-token cross-entropy with ``ignore_index`` (the one loss of the package:
  pre-training, SFT's masked answers, QAT and the benchmarks all use it);
- over token windows (N, T): :func:`window_nll` (summed negative log-likelihood and count),
  :func:`window_perplexity` and :func:`window_kl` (how far one model's predictions moved from
  another's); :class:`ReferenceComparison` gives both for many models against one reference,
  scoring the reference once.
"""

from __future__ import annotations

import math
import sys
from contextlib import contextmanager

import torch
import torch.nn as nn
import torch.nn.functional as F

IGNORE_INDEX = -100  # targets with this id are not scored (PyTorch's and transformers' convention)


def is_transformers_model(model: nn.Module) -> bool:
    """True for a transformers ``PreTrainedModel`` (checked without importing transformers)."""
    if "transformers" not in sys.modules:  # a transformers model cannot exist before the import
        return False
    from transformers import PreTrainedModel

    return isinstance(model, PreTrainedModel)


def logits(model: nn.Module, ids: torch.Tensor) -> torch.Tensor:
    """Logits (B, T, V) of a causal LM for token ids (B, T): TinyLM's ``model(ids)`` or a
    transformers model's ``model(input_ids=ids, use_cache=False).logits``; any other module:
    ``model(ids)`` (its ``.logits`` or first element when it returns more)."""
    if is_transformers_model(model):
        return model(input_ids=ids, use_cache=False).logits
    out = model(ids)
    if hasattr(out, "logits"):
        return out.logits
    return out[0] if isinstance(out, tuple) else out


def model_device(model: nn.Module) -> torch.device:
    """The device of the model's first parameter (or buffer); CPU for a module without tensors."""
    for t in list(model.parameters()) + list(model.buffers()):
        return t.device
    return torch.device("cpu")


@contextmanager
def eval_mode(*models: nn.Module):
    """``with eval_mode(model):`` eval mode inside, each model's previous mode restored after."""
    modes = [getattr(m, "training", False) for m in models]
    try:
        for m in models:
            m.eval()
        yield
    finally:
        for m, was in zip(models, modes):
            m.train(was)


def lm_loss(
    logits: torch.Tensor,
    targets: torch.Tensor,
    ignore_index: int = IGNORE_INDEX,
    reduction: str = "mean",
) -> torch.Tensor:
    """Cross-entropy of ``targets`` (B, T) under ``logits`` (B, T, V), computed in float32;
    targets equal to ``ignore_index`` are not scored. The targets are the next tokens: the
    caller has shifted them (``targets[:, t]`` is the token after ``ids[:, t]``)."""
    return F.cross_entropy(
        logits.reshape(-1, logits.size(-1)).float(),
        targets.reshape(-1),
        ignore_index=ignore_index,
        reduction=reduction,
    )


def _as_windows(windows) -> torch.Tensor:
    windows = torch.as_tensor(windows)
    if windows.dim() == 1:
        windows = windows[None]
    if windows.dim() != 2 or windows.shape[1] < 2 or windows.numel() == 0:
        raise ValueError(
            f"need token windows of shape (N, T) with T >= 2, got {tuple(windows.shape)}"
        )
    return windows.long()


@torch.no_grad()
def window_nll(model: nn.Module, windows: torch.Tensor, batch_size: int = 16) -> tuple[float, int]:
    """(summed negative log-likelihood in nats, number of predictions) of tokens 2..T of every
    window given the tokens before it."""
    windows = _as_windows(windows)
    device = model_device(model)
    total, count = 0.0, 0
    with eval_mode(model):
        for batch in windows.split(batch_size):
            batch = batch.to(device)
            total += lm_loss(logits(model, batch[:, :-1]), batch[:, 1:], reduction="sum").item()
            count += batch[:, 1:].numel()
    return total, count


def window_perplexity(model: nn.Module, windows: torch.Tensor, batch_size: int = 16) -> float:
    """Perplexity over token windows: ``exp`` of the mean next-token cross-entropy of
    :func:`window_nll`."""
    total, count = window_nll(model, windows, batch_size)
    return math.exp(total / count)


@torch.no_grad()
def window_kl(
    model: nn.Module, reference: nn.Module, windows: torch.Tensor, batch_size: int = 16
) -> float:
    """Mean KL(reference || model) per next-token prediction, in nats, over token windows.

    How far a compressed model's predictions moved from the original's. On a small, well-trained
    model, perplexity changes of a fraction of a percent are noise of the evaluation text (a 3-bit
    model can even score a lower perplexity than the float one), while the KL to the float model
    still orders methods reliably: it compares whole distributions at every position."""
    windows = _as_windows(windows)
    total, count = 0.0, 0
    with eval_mode(model, reference):
        for batch in windows.split(batch_size):
            x = batch[:, :-1]
            ref = F.log_softmax(
                logits(reference, x.to(model_device(reference))).float(), dim=-1
            ).cpu()
            got = F.log_softmax(logits(model, x.to(model_device(model))).float(), dim=-1).cpu()
            total += (ref.exp() * (ref - got)).sum().item()
            count += x.numel()
    return total / count


class ReferenceComparison:
    """Perplexity and KL(reference || model) over fixed token windows, for many models against one
    reference: the reference's log-probabilities are computed once, here, and each call then runs
    only the model being compared. ``compare(model)`` gives what :func:`window_perplexity` and
    :func:`window_kl` give, in one pass of ``model`` instead of three."""

    def __init__(self, reference: nn.Module, windows: torch.Tensor, batch_size: int = 16):
        self.windows, self.batch_size = _as_windows(windows), batch_size
        self.reference_logprobs = self._logprobs(reference)  # (N, T - 1, V) on the CPU

    @torch.no_grad()
    def _logprobs(self, model: nn.Module) -> torch.Tensor:
        with eval_mode(model):
            return torch.cat(
                [
                    F.log_softmax(
                        logits(model, b[:, :-1].to(model_device(model))).float(), -1
                    ).cpu()
                    for b in self.windows.split(self.batch_size)
                ]
            )

    def __call__(self, model: nn.Module) -> dict[str, float]:
        """``{"ppl": perplexity of model, "kl": mean KL(reference || model) per prediction}``
        (KL in nats)."""
        got = self._logprobs(model)
        ref = self.reference_logprobs
        nll = -got.gather(-1, self.windows[:, 1:, None]).mean().item()
        kl = (ref.exp() * (ref - got)).sum(-1).mean().item()
        return {"ppl": math.exp(nll), "kl": kl}
