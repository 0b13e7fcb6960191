"""Calibration data: token windows for GPTQ, AWQ and SmoothQuant, and a window perplexity.

Post-training methods look at the activations a layer actually receives. A calibration set
is a small tensor of token windows (N, T) cut from text the model was trained on — GPTQ's
paper uses 128 windows of 2048 tokens from C4; for the tiny SLM, 32 windows of 128 tokens
(4,096 tokens, more than the widest layer's input dimension, so every Hessian is full rank)
take a fraction of a second to run.
"""
from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F


def as_windows(calib, name: str = "calibration set") -> torch.Tensor:
    """Validate a calibration set: a LongTensor (N, T) of token ids (a list of equal-length id
    lists is accepted). Raises a clear error when it is missing or empty."""
    if calib is None:
        raise ValueError(f"this method needs a {name}: pass calib=slmlab.quant.calibration_windows(tokenizer, ...) "
                         "(a LongTensor of token windows, shape (N, T)).")
    if not torch.is_tensor(calib):
        try:
            calib = torch.as_tensor(calib, dtype=torch.long)
        except (TypeError, ValueError) as e:
            raise ValueError(f"{name} must be a tensor of token ids of shape (N, T); got {type(calib).__name__} ({e}).") from None
    if calib.numel() == 0:
        raise ValueError(f"the {name} is empty (shape {tuple(calib.shape)}); it needs at least one window of tokens, "
                         "e.g. calibration_windows(tokenizer, n_samples=32, seq_len=128).")
    if calib.dim() == 1:
        calib = calib.unsqueeze(0)
    if calib.dim() != 2:
        raise ValueError(f"{name} must have shape (N, T), got {tuple(calib.shape)}.")
    if calib.dtype.is_floating_point:
        return calib  # float inputs for a model that is not a language model
    return calib.long()


def windows_from_ids(ids, n_samples: int = 32, seq_len: int = 128, seed: int = 0, random: bool = True) -> torch.Tensor:
    """``n_samples`` windows of ``seq_len`` tokens cut from a 1-D token sequence: at random
    offsets (seeded) or, with ``random=False``, consecutive non-overlapping windows from the start."""
    ids = torch.as_tensor(ids, dtype=torch.long).reshape(-1)
    if n_samples <= 0 or seq_len <= 0:
        raise ValueError(f"n_samples and seq_len must be positive, got {n_samples} and {seq_len}.")
    if ids.numel() < seq_len:
        raise ValueError(f"the text has {ids.numel()} tokens, fewer than one window of seq_len={seq_len}: "
                         "give more text or a shorter seq_len (an empty calibration set cannot calibrate anything).")
    if not random:
        n = min(n_samples, ids.numel() // seq_len)
        return ids[: n * seq_len].reshape(n, seq_len)
    gen = torch.Generator().manual_seed(seed)
    starts = torch.randint(0, ids.numel() - seq_len + 1, (n_samples,), generator=gen)
    return torch.stack([ids[s : s + seq_len] for s in starts.tolist()])


def calibration_windows(tokenizer, text: str | None = None, n_samples: int = 32, seq_len: int = 128, seed: int = 0,
                        split: str = "train", n_chars: int = 200_000, random: bool = True) -> torch.Tensor:
    """Token windows (n_samples, seq_len) for calibration: from the first ``n_chars`` characters of
    ``text``, else from the project's corpus (``slmlab.data.corpus_text(split, n_chars)``),
    tokenized with ``tokenizer``; random (seeded) offsets unless ``random=False``."""
    if text is None:
        try:
            from ..data import corpus_text
        except ImportError as e:
            raise ValueError("no text given and slmlab.data.corpus_text is not available; pass text=...") from e
        text = corpus_text(split, n_chars)
    text = text[:n_chars] if n_chars else text
    if not text:
        raise ValueError("the calibration text is empty: pass some text (or a split of the corpus) to cut windows from.")
    return windows_from_ids(tokenizer.encode(text), n_samples, seq_len, seed, random)


@torch.no_grad()
def window_perplexity(model: nn.Module, windows: torch.Tensor, batch_size: int = 16) -> float:
    """Perplexity over token windows: ``exp`` of the mean next-token cross-entropy of tokens
    2..T of every window given the tokens before it (works for TinyLM and transformers models)."""
    from .modules import model_device, model_forward

    windows = as_windows(windows, name="evaluation set")
    was_training = model.training
    model.eval()
    total, count = 0.0, 0
    device = model_device(model)
    try:
        for batch in windows.split(batch_size):
            batch = batch.to(device)
            logits = model_forward(model, batch[:, :-1]).float()
            nll = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), batch[:, 1:].reshape(-1), reduction="sum")
            total += nll.item()
            count += batch[:, 1:].numel()
    finally:
        model.train(was_training)
    return math.exp(total / count)


@torch.no_grad()
def window_kl(model: nn.Module, reference: nn.Module, windows: torch.Tensor, batch_size: int = 16) -> float:
    """Mean KL(reference || model) per next-token prediction, in nats, over token windows.

    How far a compressed model's predictions moved from the original's. On a small, well-trained
    model, perplexity changes of a fraction of a percent are noise of the evaluation text (a 3-bit
    model can even score a lower perplexity than the float one), while the KL to the float model
    still orders methods reliably: it compares whole distributions at every position."""
    from .modules import model_device, model_forward

    windows = as_windows(windows, name="evaluation set")
    modes = (model.training, reference.training)
    model.eval()
    reference.eval()
    total, count = 0.0, 0
    try:
        for batch in windows.split(batch_size):
            x = batch[:, :-1]
            ref = F.log_softmax(model_forward(reference, x.to(model_device(reference))).float(), dim=-1).cpu()
            got = F.log_softmax(model_forward(model, x.to(model_device(model))).float(), dim=-1).cpu()
            total += (ref.exp() * (ref - got)).sum().item()
            count += x.numel()
    finally:
        model.train(modes[0])
        reference.train(modes[1])
    return total / count
