"""Recovery after pruning: a short fine-tune of the pruned model on training text.

One-shot pruning with calibration (SparseGPT) repairs each layer locally; removing whole
neurons or blocks needs the model to adapt as a whole. LLM-Pruner recovers with a short LoRA
fine-tune, Sheared-LLaMA with continued pre-training, Minitron by distillation from the unpruned
model. Here: next-token training, or distillation from the unpruned model, on token windows
(:func:`slmlab.train.finetune_on_windows`) of a copy of the pruned model. A masked
(unstructured) model keeps its zeros: their gradients are masked at every step, so recovery does
not grow the pruned weights back.
"""

from __future__ import annotations

import copy

import torch.nn as nn

from ..calibration import as_windows
from ..surgery import find_linears
from ..train.finetune import check_finetune_args, finetune_on_windows
from ..train.losses import causal_lm_loss, check_same_vocabulary, distillation_loss


def recover(
    model: nn.Module,
    windows,
    steps: int = 50,
    batch_size: int = 8,
    lr: float = 1e-3,
    warmup: int = 5,
    seed: int = 0,
    keep_zeros: bool = True,
    teacher: nn.Module | None = None,
    progress: bool = False,
) -> tuple[nn.Module, list[float]]:
    """Fine-tune a copy of ``model`` for ``steps`` steps on ``windows`` (N, T) of training text;
    returns ``(recovered copy, losses)``. The loss is next-token cross-entropy, or, with a
    ``teacher`` (the unpruned model), the KL from the teacher's predictions
    (:func:`slmlab.train.distillation_loss`: recovery by distillation, as Minitron does). With
    ``keep_zeros``, weights of linear layers that are exactly zero stay zero (their gradient is
    masked), so the sparsity is kept."""
    windows = as_windows(windows, name="recovery windows")
    check_finetune_args(steps, batch_size, warmup, lr)
    if teacher is not None:
        check_same_vocabulary(model, teacher)
    out = copy.deepcopy(model)
    handles = []
    if keep_zeros:
        for layer in find_linears(out).values():
            if not isinstance(getattr(layer, "weight", None), nn.Parameter):
                continue  # e.g. a low-rank pair: no weight of its own to keep zeros in
            mask = layer.weight.detach() != 0
            if not mask.all():
                handles.append(layer.weight.register_hook(lambda g, m=mask: g * m))
    try:
        loss_fn = causal_lm_loss if teacher is None else distillation_loss(teacher)
        losses = finetune_on_windows(
            out, windows, steps, batch_size, lr, warmup, seed, loss_fn, progress, desc="recover"
        )
    finally:
        for h in handles:
            h.remove()
    out.eval()  # (AdamW without weight decay leaves a weight whose gradient is 0 where it is)
    return out, losses
