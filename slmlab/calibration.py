"""Calibration: token windows, the statistics of each layer's inputs, and a block-by-block runner.

Post-training methods look at the activations a layer actually receives. A calibration set
is a small tensor of token windows (N, T) cut from text the model was trained on — GPTQ's
paper uses 128 windows of 2048 tokens from C4; for the tiny SLM, 32 windows of 128 tokens
(4,096 tokens, more than the widest layer's input dimension, so every Hessian is full rank)
take a fraction of a second to run.

Post-training techniques (GPTQ, AWQ, SmoothQuant, SparseGPT, Wanda, activation-aware low-rank
factorization) all need the same few statistics of what enters a layer: the input Hessian
``2 XᵀX / n``, the mean |x| and the max |x| of each input channel. :class:`InputStats` collects
them with forward hooks (:func:`collect_input_stats`); :func:`run_blocks` feeds the calibration
data through one transformer block at a time, so a whole model is never held twice.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn as nn

from .data import corpus_text
from .lm import logits, model_device
from .surgery import find_blocks


def as_windows(calib, name: str = "calibration set") -> torch.Tensor:
    """Validate a calibration set: a LongTensor (N, T) of token ids (a list of equal-length id
    lists is accepted). Raises a clear error when it is missing or empty."""
    if calib is None:
        raise ValueError(
            f"this method needs a {name}: pass calib=slmlab.quant.calibration_windows(tokenizer, "
            "...) (a LongTensor of token windows, shape (N, T))."
        )
    if not torch.is_tensor(calib):
        try:
            calib = torch.as_tensor(calib, dtype=torch.long)
        except (TypeError, ValueError) as e:
            raise ValueError(
                f"{name} must be a tensor of token ids of shape (N, T); "
                f"got {type(calib).__name__} ({e})."
            ) from None
    if calib.numel() == 0:
        raise ValueError(
            f"the {name} is empty (shape {tuple(calib.shape)}); "
            "it needs at least one window of tokens, e.g. calibration_windows(tokenizer, "
            "n_samples=32, seq_len=128)."
        )
    if calib.dim() == 1:
        calib = calib.unsqueeze(0)
    if calib.dim() != 2:
        raise ValueError(f"{name} must have shape (N, T), got {tuple(calib.shape)}.")
    if calib.dtype.is_floating_point:
        return calib  # float inputs for a model that is not a language model
    return calib.long()


def windows_from_ids(
    ids, n_samples: int = 32, seq_len: int = 128, seed: int = 0, random: bool = True
) -> torch.Tensor:
    """``n_samples`` windows of ``seq_len`` tokens cut from a 1-D token sequence: at random
    offsets (seeded) or, with ``random=False``,
    consecutive non-overlapping windows from the start."""
    ids = torch.as_tensor(ids, dtype=torch.long).reshape(-1)
    if n_samples <= 0 or seq_len <= 0:
        raise ValueError(f"n_samples and seq_len must be positive, got {n_samples} and {seq_len}.")
    if ids.numel() < seq_len:
        raise ValueError(
            f"the text has {ids.numel()} tokens, fewer than one window of seq_len={seq_len}: "
            "give more text or a shorter seq_len (an empty calibration set cannot calibrate "
            "anything)."
        )
    if not random:
        n = min(n_samples, ids.numel() // seq_len)
        return ids[: n * seq_len].reshape(n, seq_len)
    gen = torch.Generator().manual_seed(seed)
    starts = torch.randint(0, ids.numel() - seq_len + 1, (n_samples,), generator=gen)
    return torch.stack([ids[s : s + seq_len] for s in starts.tolist()])


def calibration_windows(
    tokenizer,
    text: str | None = None,
    n_samples: int = 32,
    seq_len: int = 128,
    seed: int = 0,
    split: str = "train",
    n_chars: int = 200_000,
    random: bool = True,
) -> torch.Tensor:
    """Token windows (n_samples, seq_len) for calibration: from the first ``n_chars`` characters of
    ``text``, else from the project's corpus (``slmlab.data.corpus_text(split, n_chars)``),
    tokenized with ``tokenizer``; random (seeded) offsets unless ``random=False``."""
    if text is None:
        text = corpus_text(split, n_chars)
    text = text[:n_chars] if n_chars else text
    if not text:
        raise ValueError(
            "the calibration text is empty: pass some text (or a split of the corpus) to cut "
            "windows from."
        )
    return windows_from_ids(tokenizer.encode(text), n_samples, seq_len, seed, random)


# ----------------------------------------------------------------------------- input statistics
class InputStats:
    """Statistics of every calibration token seen at a layer's input (in_features channels):
        ``H``, the running mean of ``2 x xᵀ`` (the Hessian of the layer's output error, GPTQ and
        SparseGPT); ``absmean``, the mean |x| per channel (AWQ, Wanda); ``absmax``, the max |x| per
        channel (SmoothQuant, LLM.int8's outliers); ``sqmean``, the mean x² per channel (Wanda's
    ``‖X_j‖₂²`` over the tokens, up to the count: ``diag(H) / 2`` without the whole matrix); ``n``
    tokens. Only the asked ones are kept."""

    def __init__(
        self,
        in_features: int,
        device=None,
        hessian: bool = True,
        absmean: bool = False,
        absmax: bool = False,
        sqmean: bool = False,
    ):
        self.H = torch.zeros(in_features, in_features, device=device) if hessian else None
        self.absmean = torch.zeros(in_features, device=device) if absmean else None
        self.absmax = torch.zeros(in_features, device=device) if absmax else None
        self.sqmean = torch.zeros(in_features, device=device) if sqmean else None
        self.n = 0

    @torch.no_grad()
    def add(self, x: torch.Tensor) -> None:
        x = x.reshape(-1, x.shape[-1]).float()
        m = x.shape[0]
        keep = self.n / (self.n + m)
        if self.absmean is not None:
            self.absmean.mul_(keep).add_(x.abs().sum(dim=0) / (self.n + m))
        if self.sqmean is not None:
            self.sqmean.mul_(keep).add_(x.square().sum(dim=0) / (self.n + m))
        if self.absmax is not None:
            torch.maximum(self.absmax, x.abs().amax(dim=0), out=self.absmax)
        self.n += m
        if self.H is not None:
            self.H *= keep
            x = math.sqrt(2.0 / self.n) * x
            self.H += x.t() @ x


@torch.no_grad()
def collect_input_stats(
    layers: dict[str, nn.Module],
    run: Callable[[], object],
    hessian: bool = True,
    absmean: bool = False,
    absmax: bool = False,
    sqmean: bool = False,
) -> dict[str, InputStats]:
    """Call ``run()`` with hooks that accumulate each layer's :class:`InputStats`.

    Layers fed the very same tensor (q/k/v after one norm, gate/up after another) share one
    accumulator, so each distinct input is accumulated once."""
    accs: dict[str, InputStats] = {}
    owner: dict[str, str] = {}
    last = {"x": None, "name": None}

    def hook(mod, args, name):
        x = args[0]
        if name not in owner:  # first call: does this layer share its input with the previous one?
            if last["x"] is not None and x is last["x"]:
                owner[name] = owner[last["name"]]
            else:
                owner[name] = name
                accs[name] = InputStats(mod.in_features, x.device, hessian, absmean, absmax, sqmean)
            last["x"], last["name"] = x, name
        if owner[name] == name:
            accs[name].add(x.detach())

    handles = [
        m.register_forward_pre_hook(lambda mod, args, n=n: hook(mod, args, n))
        for n, m in layers.items()
    ]
    try:
        run()
    finally:
        for h in handles:
            h.remove()
        last["x"] = None
    missing = [n for n in layers if n not in owner]
    if missing:
        raise RuntimeError(
            f"layer(s) {missing} saw no calibration input; are they used in the forward pass?"
        )
    return {n: accs[owner[n]] for n in layers}


# ----------------------------------------------------------------------------- the Hessian
@torch.no_grad()
def hessian_from_inputs(x: torch.Tensor) -> torch.Tensor:
    """``2 X^T X / n`` for inputs ``x`` (..., in_features)."""
    x = x.reshape(-1, x.shape[-1]).float()
    return 2.0 * x.t() @ x / max(1, x.shape[0])


def inverse_hessian_cholesky(
    H: torch.Tensor, percdamp: float = 0.01, method: str = "this method"
) -> torch.Tensor:
    """Upper Cholesky factor of ``(H + damp I)^-1`` with ``damp = percdamp * mean(diag H)``: every
    row of the inverse Hessian that GPTQ and SparseGPT need, computed stably. Retries with 10x more
    damping while H is singular."""
    diag = torch.arange(H.shape[0], device=H.device)
    damp = percdamp
    for _ in range(6):
        Hd = H.clone()
        Hd[diag, diag] += damp * torch.mean(torch.diag(H)).clamp(min=1e-8)
        L, info = torch.linalg.cholesky_ex(Hd)
        if int(info) == 0:
            Hinv = torch.cholesky_inverse(L)
            U, info = torch.linalg.cholesky_ex(Hinv, upper=True)
            if int(info) == 0:
                return U
        damp *= 10
    raise RuntimeError(
        f"{method}: the Hessian is not positive definite even with damping {damp / 10:g}; "
        "use more calibration tokens (at least as many as the layer's input features)."
    )


def output_error(W: torch.Tensor, W_hat: torch.Tensor, H: torch.Tensor) -> float:
    """``trace((W - W_hat) H (W - W_hat)^T) / 2``:
    the layer-output squared error per token that GPTQ minimises."""
    D = W.float() - W_hat.float()
    return float(torch.einsum("ij,jk,ik->", D, H.float(), D) / 2)


# ----------------------------------------------------------------------------- sequential runner
class _StopForward(Exception):
    pass


def _hidden(args: tuple, kwargs: dict) -> torch.Tensor:
    if args and torch.is_tensor(args[0]):
        return args[0]
    if "hidden_states" in kwargs:
        return kwargs["hidden_states"]
    raise TypeError(
        "cannot find the hidden-state input of the first block (first positional argument or "
        "`hidden_states=`); use a model whose blocks take the hidden states first."
    )


def _with_hidden(args: tuple, kwargs: dict, h: torch.Tensor) -> tuple[tuple, dict]:
    if args and torch.is_tensor(args[0]):
        return (h,) + tuple(args[1:]), kwargs
    return args, {**kwargs, "hidden_states": h}


@torch.no_grad()
def capture_block_inputs(
    model: nn.Module, blocks: nn.ModuleList, windows: torch.Tensor, batch_size: int = 8
) -> list[tuple[tuple, dict]]:
    """Run the model on ``windows`` up to its first block and keep that block's inputs
    (args, kwargs) for every batch (the "catcher" of the GPTQ reference code)."""
    inputs: list[tuple[tuple, dict]] = []

    def hook(module, args, kwargs):
        inputs.append((tuple(args), dict(kwargs)))
        raise _StopForward

    handle = blocks[0].register_forward_pre_hook(hook, with_kwargs=True)
    try:
        for batch in windows.split(batch_size):
            try:
                logits(model, batch.to(model_device(model)))
            except _StopForward:
                pass
    finally:
        handle.remove()
    return inputs


@torch.no_grad()
def run_block(block: nn.Module, inputs: list[tuple[tuple, dict]]) -> list[torch.Tensor]:
    """Outputs (hidden states) of ``block`` for each cached input."""
    outs = []
    for args, kwargs in inputs:
        out = block(*args, **kwargs)
        outs.append(out[0] if isinstance(out, (tuple, list)) else out)
    return outs


@torch.no_grad()
def run_blocks(
    model: nn.Module,
    windows: torch.Tensor,
    targets: dict[str, nn.Module],
    process: Callable[[dict[str, nn.Module], Callable[[], None]], None],
    batch_size: int = 8,
    propagate_quantized: bool = True,
) -> None:
    """Calibrate ``targets`` one transformer block at a time.

    For each block, ``process(layers, run)`` receives the block's target layers (name ->
    module) and a function ``run()`` that feeds the calibration inputs through the block
    (the caller's forward hooks collect statistics during ``run``); ``process`` then modifies
    the layers in place. The block's outputs, computed after ``process`` when
    ``propagate_quantized`` (GPTQ: later layers see earlier layers' quantization error) or
    before it (AWQ: inputs of the float model), become the next block's inputs.
    Targets outside the blocks (or all targets, for a model without a block list) are then
    calibrated with whole-model passes.
    """
    found = find_blocks(model)
    remaining = dict(targets)
    if found is not None:
        prefix, blocks = found
        inputs = capture_block_inputs(model, blocks, windows, batch_size)
        for i, block in enumerate(blocks):
            block_prefix = f"{prefix}.{i}." if prefix else f"{i}."
            layers = {n: m for n, m in remaining.items() if n.startswith(block_prefix)}
            for n in layers:
                remaining.pop(n)
            if not propagate_quantized:
                outs = run_block(block, inputs)
            if layers:
                process(layers, lambda: run_block(block, inputs))
            if propagate_quantized:
                outs = run_block(block, inputs)
            inputs = [_with_hidden(a, k, h) for (a, k), h in zip(inputs, outs)]
        del inputs
    if remaining:

        def run_all():
            for batch in windows.split(batch_size):
                logits(model, batch.to(model_device(model)))

        # layers outside the block list, one at a time in registration order
        # (each sees the previous ones quantized)
        for name, mod in list(remaining.items()):
            process({name: mod}, run_all)
