"""The training objectives :func:`~slmlab.train.fit` can optimise, by name.

A loss function is ``loss_fn(model, batch) -> (loss, metrics)``: ``loss`` a scalar tensor to
minimise (the mean over the batch, so gradient accumulation can average micro-batches),
``metrics`` a dict of extra numbers to log (floats or 0-d tensors; ``{}`` for none). ``model``
is the model as the loop runs it, wrapped in ``DistributedDataParallel`` under ``torchrun``:
call it, don't reach inside it.

Pre-training is :func:`causal_lm_loss`; distillation, the teacher's distribution as the target,
is :func:`distillation_loss` (it needs a teacher, so it is made, not named). Supervised
fine-tuning (answers scored, prompts ignored) and DPO (a preference margin against a frozen
reference) are further entries to come; QAT needs no loss of its own (it trains the
fake-quantized model with :func:`causal_lm_loss`).
"""

from __future__ import annotations

import difflib
from collections.abc import Callable
from typing import Any

import torch
import torch.nn as nn
from torch.nn.parallel import DistributedDataParallel

from ..lm import is_transformers_model, lm_loss, logits

LossFn = Callable[[nn.Module, Any], "tuple[torch.Tensor, dict]"]


def _logits(model: nn.Module, ids: torch.Tensor) -> torch.Tensor:
    # a transformers model inside DDP: call the wrapper (so the gradients are averaged) the
    # way transformers models are called
    if isinstance(model, DistributedDataParallel) and is_transformers_model(model.module):
        return model(input_ids=ids, use_cache=False).logits
    return logits(model, ids)


def causal_lm_loss(model: nn.Module, batch) -> tuple[torch.Tensor, dict]:
    """Next-token cross-entropy (:func:`slmlab.lm.lm_loss`) of a TinyLM or a transformers causal LM.

    ``batch`` is ``(inputs, targets)``, both (B, T) with ``targets[:, t]`` the token after
    ``inputs[:, t]`` (targets equal to -100 are not scored), as :func:`~slmlab.train.get_batch`
    gives; or token windows (B, T+1), each scored on its tokens 2..T+1 given the ones before.
    A TinyLM with experts adds its load-balancing loss (``TinyLM.aux_loss``), logged as
    ``aux_loss``."""
    if torch.is_tensor(batch):
        inputs, targets = batch[:, :-1], batch[:, 1:]
    else:
        inputs, targets = batch
    loss = lm_loss(_logits(model, inputs), targets)
    inner = model.module if isinstance(model, DistributedDataParallel) else model
    aux_loss = getattr(inner, "aux_loss", None)  # a TinyLM's mixture-of-experts balance loss
    if callable(aux_loss) and getattr(getattr(inner, "config", None), "n_experts", 0):
        aux = aux_loss()
        return loss + aux, {"aux_loss": aux.detach()}
    return loss, {}


def distillation_loss(
    teacher: nn.Module,
    temperature: float = 1.0,
    direction: str = "forward",
    hard_weight: float = 0.0,
) -> LossFn:
    """A loss that pulls the model's next-token distributions towards ``teacher``'s (run without
    gradients; put it in eval mode, it is not changed), on token windows (B, T+1) or
    ``(inputs, targets)`` batches.

    ``direction="forward"``: ``KL(p_teacher || p_student)`` (Hinton et al.: the student covers
    every token the teacher finds likely); ``"reverse"``: ``KL(p_student || p_teacher)``
    (MiniLLM: the student puts its mass where the teacher's is). Both at ``temperature`` (the
    logits divided by it), multiplied by ``temperature²`` so that gradients keep their size, and
    averaged over every predicted position. Zero when the student is the teacher. The logged
    metric ``kl`` is the same number, detached.

    ``hard_weight`` w mixes in the next-token cross-entropy on the text itself (Hinton et al.'s
    two terms): ``(1 - w) * KL + w * CE``, from the same forward pass of the student; ``ce`` is
    logged too. The cross-entropy needs targets: batches ``(inputs, targets)`` or windows."""
    if direction not in ("forward", "reverse"):
        raise ValueError(f"direction must be 'forward' or 'reverse', got {direction!r}")
    if not temperature > 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    if isinstance(hard_weight, bool) or not 0.0 <= hard_weight <= 1.0:
        raise ValueError(f"hard_weight must lie in [0, 1], got {hard_weight!r}")

    def loss_fn(model: nn.Module, batch) -> tuple[torch.Tensor, dict]:
        inputs, targets = (batch[:, :-1], batch[:, 1:]) if torch.is_tensor(batch) else batch
        with torch.no_grad():
            t = torch.log_softmax(logits(teacher, inputs).float() / temperature, dim=-1)
        raw = _logits(model, inputs)
        s = torch.log_softmax(raw.float() / temperature, dim=-1)
        if s.shape[-1] != t.shape[-1]:
            raise ValueError(_vocab_message(s.shape[-1], t.shape[-1]))
        if direction == "forward":
            kl = (t.exp() * (t - s)).sum(-1)
        else:
            kl = (s.exp() * (s - t)).sum(-1)
        kl = kl.mean() * temperature**2
        if not hard_weight:
            return kl, {"kl": kl.detach()}
        ce = lm_loss(raw, targets)
        loss = (1 - hard_weight) * kl + hard_weight * ce
        return loss, {"kl": kl.detach(), "ce": ce.detach()}

    return loss_fn


def _vocab_message(student: int, teacher: int) -> str:
    return (
        f"the student's vocabulary has {student} tokens and the teacher's {teacher}: distillation "
        "compares their next-token distributions token by token, so both must use one tokenizer "
        "(train the student with the teacher's, or distil on text with a sequence-level loss)"
    )


def check_same_vocabulary(student: nn.Module, teacher: nn.Module) -> None:
    """Raise a ValueError when both models' configs state a ``vocab_size`` and they differ."""
    sizes = [getattr(getattr(m, "config", None), "vocab_size", None) for m in (student, teacher)]
    if all(isinstance(v, int) for v in sizes) and sizes[0] != sizes[1]:
        raise ValueError(_vocab_message(*sizes))


LOSSES: dict[str, LossFn] = {
    "causal_lm": causal_lm_loss,
}
"""The named losses: ``fit(model, batches, "causal_lm", config)`` is
``fit(..., causal_lm_loss, ...)``."""


def get_loss(loss: str | LossFn) -> LossFn:
    """The loss function named ``loss`` in :data:`LOSSES` (a function is returned as it is)."""
    if callable(loss):
        return loss
    if loss not in LOSSES:
        close = difflib.get_close_matches(str(loss), LOSSES, n=3)
        hint = f" Did you mean {close}?" if close else ""
        raise ValueError(f"unknown loss {loss!r}; the known losses are {sorted(LOSSES)}.{hint}")
    return LOSSES[loss]
