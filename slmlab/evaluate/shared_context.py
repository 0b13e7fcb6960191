"""Log-likelihoods of several continuations of one context, with the context run once.

A multiple-choice item asks for the log-probability of each of its options after the same
context: run as ``len(options)`` full sequences (as lm-evaluation-harness runs them), the context
costs ``len(options)`` times. Here a batch of contexts, left-padded to one length, fills a KV cache
once (the lean :class:`~slmlab.models.decoder.Decoder`, padding invisible); the cache's rows are
repeated, one per continuation; and the continuations run on top of it, right-padded (a causal
model's later positions never change earlier ones). The numbers are those of the full sequences up
to the order of float sums (``tests/test_evaluate.py`` compares both).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

from ..models import TinyLM
from ..models.decoder import Decoder, unsupported
from ..models.layers import KVCache


def can_share_context(model) -> bool:
    """A TinyLM the lean decoder runs (in eval mode): the only models this module scores."""
    return isinstance(model, TinyLM) and unsupported(model) is None


@torch.no_grad()
def shared_context_loglikelihoods(
    model: TinyLM, requests: Sequence[tuple[list[int], list[int]]], batch_size: int = 32
) -> list[tuple[float, bool]]:
    """For each ``(context_ids, continuation_ids)``: (log-probability of the continuation, whether
    greedy decoding gives exactly it). Requests with equal context ids share one context run; at
    most ``batch_size`` continuations run together. Each context + continuation must fit in the
    model's ``block_size`` + 1 (the last token is predicted, never fed)."""
    if not can_share_context(model):
        raise ValueError(f"the lean decoder cannot run this model: {unsupported(model)}")
    groups: dict[tuple[int, ...], list[int]] = {}
    for i, (ctx, cont) in enumerate(requests):
        if not ctx or not cont:
            raise ValueError(f"request {i} has an empty context or continuation")
        if len(ctx) + len(cont) - 1 > model.config.block_size:
            raise ValueError(
                f"request {i}: {len(ctx) + len(cont)} tokens pass block_size + 1 "
                f"({model.config.block_size + 1})"
            )
        groups.setdefault(tuple(ctx), []).append(i)
    out: list[tuple[float, bool]] = [(0.0, False)] * len(requests)
    decoder = Decoder.for_model(model)
    for chunk in _chunks(sorted(groups, key=len, reverse=True), groups, batch_size):
        rows = [i for ctx in chunk for i in groups[ctx]]
        owner = torch.tensor([c for c, ctx in enumerate(chunk) for _ in groups[ctx]])
        conts = [requests[i][1] for i in rows]
        logp = _continuation_logprobs(model, decoder, chunk, owner, conts)
        for r, (i, cont) in enumerate(zip(rows, conts)):
            lp = logp[r, : len(cont)]
            target = torch.tensor(cont, device=lp.device)
            ll = lp.gather(-1, target[:, None]).sum().item()
            out[i] = (ll, bool((lp.argmax(-1) == target).all()))
    return out


def _chunks(contexts: list, groups: dict, batch_size: int) -> list[list]:
    """Consecutive contexts whose continuations number at most ``batch_size`` (at least one)."""
    chunks, current, rows = [], [], 0
    for ctx in contexts:
        if current and rows + len(groups[ctx]) > batch_size:
            chunks.append(current)
            current, rows = [], 0
        current.append(ctx)
        rows += len(groups[ctx])
    return chunks + [current] if current else chunks


def _continuation_logprobs(model, decoder, contexts, owner, conts) -> torch.Tensor:
    """(rows, longest continuation, vocab) log-probabilities: row r's position j predicts token j
    of ``conts[r]``, which continues ``contexts[owner[r]]``."""
    device, c = model.device, model.config
    width = max(len(ctx) for ctx in contexts)
    pad = torch.tensor([width - len(ctx) for ctx in contexts], device=device)
    x = torch.tensor([[ctx[0]] * (width - len(ctx)) + list(ctx) for ctx in contexts], device=device)
    fed = max(len(t) for t in conts) - 1  # a continuation's last token is predicted, not fed
    cache = KVCache(c, len(contexts), width + fed, device, model.embed.weight.dtype)
    owner = owner.to(device)
    logits = decoder(x, cache, pad)[owner][:, None]  # (rows, 1, vocab): the first tokens
    if fed > 0:
        cache.select_rows(owner)
        y = torch.tensor([t[:-1] + [t[0]] * (fed - len(t) + 1) for t in conts], device=device)
        logits = torch.cat([logits, decoder(y, cache, pad[owner], every=True)], dim=1)
    return F.log_softmax(logits.float(), dim=-1)
