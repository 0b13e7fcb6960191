"""Scoring any causal LM the way lm-evaluation-harness does: the log-likelihood of a
continuation, multiple choice by comparing the options' log-likelihoods (``acc``, and
``acc_norm`` per character of the option's text, as the harness normalises), and greedy
generation with stop strings. :mod:`slmlab.evaluate.harness` runs the harness itself on the same
items, and the tests check that the two agree.

:class:`LM` adapts slmlab's :class:`~slmlab.TinyLM` with an slmlab tokenizer, or a transformers
causal LM with its tokenizer, to what scoring needs: encode text, compute next-token logits, know
the context length and the end-of-text token. Every prompt starts with the tokenizer's
end-of-text token (a transformers tokenizer's BOS token if it has one), the document separator
the model saw in training.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

from ..lm import eval_mode, logits, model_device
from ..models import TinyLM
from ..models.decoder import unsupported
from .shared_context import can_share_context, shared_context_loglikelihoods


class LM:
    """A causal LM and its tokenizer, seen through one small interface.

    ``encode(text) -> list[int]``; ``logits(ids (B, T)) -> (B, T, V)``; ``max_len`` (the
    context length: ``config.block_size`` for TinyLM, ``config.max_position_embeddings`` for
    transformers models); ``prefix_id`` (the token every prompt starts with)."""

    def __init__(self, model, tokenizer, max_len: int | None = None):
        if isinstance(model, LM):
            raise TypeError("pass the model and tokenizer, not an LM adapter")
        if not callable(model):
            raise TypeError(
                "model must be a torch module (TinyLM or a transformers causal LM), "
                f"got {type(model).__name__}"
            )
        if not hasattr(tokenizer, "encode") or not hasattr(tokenizer, "decode"):
            raise TypeError(
                f"tokenizer must have encode() and decode(), got {type(tokenizer).__name__}"
            )
        self.model, self.tokenizer = model, tokenizer
        cfg = getattr(model, "config", None)
        self.max_len = max_len or _first_int(
            cfg, ("block_size", "max_position_embeddings", "n_positions", "n_ctx")
        )
        if not self.max_len:
            raise ValueError(
                "cannot tell the model's context length (no config.block_size or "
                "config.max_position_embeddings): pass max_len="
            )
        self.device = (
            model_device(model) if isinstance(model, torch.nn.Module) else torch.device("cpu")
        )
        self.eos_id = _first_int(tokenizer, ("eos_id", "eos_token_id"))
        bos = getattr(tokenizer, "bos_token_id", None)
        self.prefix_id = bos if isinstance(bos, int) else self.eos_id
        if self.prefix_id is None:
            raise ValueError(
                f"the tokenizer ({type(tokenizer).__name__}) has no end-of-text token "
                "(eos_id / eos_token_id) nor a BOS token: every prompt is scored after it, the "
                "document separator the model saw in training. Pass the model's own tokenizer, "
                "or set one (for a transformers tokenizer: tokenizer.eos_token = '...')"
            )
        model_vocab = _first_int(cfg, ("vocab_size",))
        tok_vocab = _tokenizer_size(tokenizer)
        if isinstance(model, TinyLM) and tok_vocab and tok_vocab != model_vocab:
            raise ValueError(
                f"the tokenizer has {tok_vocab} tokens but this TinyLM's vocabulary has "
                f"{model_vocab}: it was trained with another tokenizer. Pass its own (the "
                "tokenizer.json saved beside the model)"
            )
        if model_vocab and tok_vocab and tok_vocab > model_vocab:
            raise ValueError(
                f"the tokenizer has {tok_vocab} tokens but the model's vocabulary only "
                f"{model_vocab}: they do not belong together (ids past {model_vocab - 1} have no "
                "embedding). Pass the tokenizer the model was trained with"
            )
        self.vocab_size = model_vocab or tok_vocab

    def encode(self, text: str) -> list[int]:
        try:
            ids = self.tokenizer.encode(text, add_special_tokens=False)
        except TypeError:  # a tokenizer without that keyword
            ids = self.tokenizer.encode(text)
        return list(getattr(ids, "ids", ids))

    def decode(self, ids: Sequence[int]) -> str:
        return self.tokenizer.decode([int(i) for i in ids])

    @torch.no_grad()
    def logits(self, ids: torch.Tensor) -> torch.Tensor:
        return logits(self.model, ids.to(self.device)).float()

    def with_prefix(self, ids: list[int]) -> list[int]:
        return [self.prefix_id] + ids


def _tokenizer_size(tokenizer) -> int | None:
    """How many ids the tokenizer can produce: ``len(tokenizer)`` for a transformers tokenizer
    (added tokens included), else its ``vocab_size``."""
    if hasattr(tokenizer, "__len__"):
        try:
            return int(len(tokenizer))
        except TypeError:
            pass
    return _first_int(tokenizer, ("vocab_size",))


def _first_int(obj, names) -> int | None:
    for n in names:
        v = getattr(obj, n, None)
        if isinstance(v, int) and not isinstance(v, bool):
            return v
    return None


def _pad_batch(seqs: list[list[int]], pad: int) -> torch.Tensor:
    """Right-pad to one length. Causal models see only the past, so the padding after a
    sequence never changes the logits of its real positions (and positions start at 0)."""
    T = max(len(s) for s in seqs)
    return torch.tensor([s + [pad] * (T - len(s)) for s in seqs], dtype=torch.long)


# ----------------------------------------------------------------------------- log-likelihood
def _split_context(lm: LM, context: str, continuation: str) -> tuple[list[int], list[int]]:
    """Tokens of context and continuation the way lm-evaluation-harness makes them: trailing
    spaces of the context move to the continuation; the continuation's tokens are those of
    ``context + continuation`` after the context's tokens."""
    n = len(context) - len(context.rstrip(" "))
    if n:
        context, continuation = context[:-n], context[-n:] + continuation
    whole = lm.encode(context + continuation)
    ctx = lm.encode(context)
    if whole[: len(ctx)] != ctx:  # a merge across the boundary: encode the parts apart
        return ctx, lm.encode(continuation)
    return ctx, whole[len(ctx) :]


def loglikelihood(
    model,
    tokenizer,
    requests: Sequence[tuple[str, str]],
    batch_size: int = 32,
    _lm: LM | None = None,
) -> list[tuple[float, bool]]:
    """For each ``(context, continuation)``: (log-probability of the continuation's tokens given
    the context, whether greedy decoding would produce exactly those tokens). Sequences longer
    than the model's context keep their last ``max_len`` tokens."""
    lm = _lm or LM(model, tokenizer)
    enc, split = [], []
    for ctx, cont in requests:
        c, t = _split_context(lm, ctx, cont)
        if not t:
            raise ValueError(f"empty continuation for context {ctx[-40:]!r}")
        split.append((lm.with_prefix(c), t))
        seq = lm.with_prefix(c) + t
        seq = seq[-(lm.max_len + 1) :]
        enc.append((seq, len(t)))
    out: list[tuple[float, bool]] = [(0.0, False)] * len(enc)
    with eval_mode(model):
        # a TinyLM runs each distinct context once (shared_context); what does not fit its
        # context, and any other model, runs as whole sequences, the harness's way
        whole = list(range(len(enc)))
        if can_share_context(model):
            fits = [i for i in whole if len(enc[i][0]) == sum(map(len, split[i]))]
            scored = shared_context_loglikelihoods(model, [split[i] for i in fits], batch_size)
            for i, result in zip(fits, scored):
                out[i] = result
            whole = sorted(set(whole) - set(fits))
        order = sorted(whole, key=lambda i: -len(enc[i][0]))  # similar lengths batch together
        for i in range(0, len(order), batch_size):
            idx = order[i : i + batch_size]
            x = _pad_batch([enc[j][0][:-1] for j in idx], pad=enc[idx[0]][0][0])
            logp = F.log_softmax(lm.logits(x), dim=-1)
            for row, j in enumerate(idx):
                seq, n = enc[j]
                T = len(seq) - 1
                tgt = torch.tensor(seq[-n:], device=logp.device)
                lp = logp[row, T - n : T]
                ll = lp.gather(-1, tgt[:, None]).sum().item()
                greedy = bool((lp.argmax(-1) == tgt).all())
                out[j] = (ll, greedy)
    return out


def multiple_choice(
    model, tokenizer, items: Sequence[dict], batch_size: int = 32, _lm: LM | None = None
) -> dict:
    """Accuracy on multiple-choice ``items`` (``context``, ``options``, ``label``), scored as
    lm-evaluation-harness scores multiple choice: ``acc`` picks the option with the highest
    log-likelihood; ``acc_norm`` the highest log-likelihood per character of the option's text.

    The text is the option without its leading space. An option is the continuation scored
    (``" sank to the bottom."``); the harness scores ``target_delimiter + choice``, the space and
    the answer, but divides by ``len(choice)``: the space is scored, not counted (so ARC's or
    HellaSwag's acc_norm is per character of the answer). :mod:`slmlab.evaluate.harness` writes
    slmlab's options as harness choices that way.
    Also returns each item's prediction (``pred``, ``pred_norm``) and option log-likelihoods."""
    _check_items(items)
    reqs = [(it["context"], opt) for it in items for opt in it["options"]]
    lls = loglikelihood(model, tokenizer, reqs, batch_size=batch_size, _lm=_lm)
    k = 0
    preds, preds_norm, all_ll = [], [], []
    for it in items:
        ll = [lls[k + j][0] for j in range(len(it["options"]))]
        k += len(it["options"])
        norm = [v / _text_len(o) for v, o in zip(ll, it["options"])]
        preds.append(max(range(len(ll)), key=ll.__getitem__))
        preds_norm.append(max(range(len(norm)), key=norm.__getitem__))
        all_ll.append(ll)
    n = len(items)
    acc = sum(p == it["label"] for p, it in zip(preds, items)) / n
    acc_norm = sum(p == it["label"] for p, it in zip(preds_norm, items)) / n
    chance = sum(1 / len(it["options"]) for it in items) / n
    return {
        "acc": acc,
        "acc_norm": acc_norm,
        "chance": chance,
        "n": n,
        "pred": preds,
        "pred_norm": preds_norm,
        "loglikelihoods": all_ll,
    }


def _check_items(items: Sequence[dict]) -> None:
    """Multiple-choice items that can be scored, or a ValueError naming the first bad one."""
    if not items:
        raise ValueError("no items to score: pass at least one item (context, options, label)")
    for i, it in enumerate(items):
        missing = {"context", "options", "label"} - set(it)
        if missing:
            raise ValueError(
                f"item {i} lacks {sorted(missing)}; an item needs context, options, label"
            )
        if len(it["options"]) < 2:
            raise ValueError(f"item {i} has {len(it['options'])} option(s): pass at least 2")
        label = it["label"]
        if (
            isinstance(label, bool)
            or not isinstance(label, int)
            or not 0 <= label < len(it["options"])
        ):
            raise ValueError(
                f"item {i}: label {label!r} is not an index of its {len(it['options'])} options"
            )


def _text_len(option: str) -> int:
    """The characters ``acc_norm`` divides by: the option without one leading space (the harness's
    ``len(choice)``, its continuation being ``" " + choice``); at least 1."""
    return max(len(option) - option.startswith(" "), 1)


# ----------------------------------------------------------------------------- generation
@torch.no_grad()
def greedy_generate(
    model,
    tokenizer,
    prompts: Sequence[str],
    max_new_tokens: int = 24,
    stop: Sequence[str] = ("\n\n",),
    batch_size: int = 64,
    use_cache: bool = True,
    _lm: LM | None = None,
) -> list[str]:
    """Greedy continuations of ``prompts`` (each after the end-of-text prefix), cut before the
    first of the ``stop`` strings and at the end-of-text token.

    A TinyLM the lean decoder runs batches prompts of any lengths, left-padded (``pad=`` of
    :func:`slmlab.models.generation.stream`: the padding is invisible, each prompt keeps its
    positions); other models batch prompts of equal token length (no padding, so no attention
    mask is needed). Both decode with the model's own KV-cache generation: ``TinyLM.generate`` or
    transformers' ``generate``. ``use_cache=False`` (or a model with neither) uses a plain loop
    of full forward passes instead; both give the same tokens."""
    lm = _lm or LM(model, tokenizer)
    if isinstance(stop, str):
        stop = (stop,)
    encoded = []
    for p in prompts:
        ids = lm.with_prefix(lm.encode(p))
        keep = lm.max_len - max_new_tokens
        if keep < 1:
            raise ValueError(
                f"max_new_tokens={max_new_tokens} leaves no room for a prompt in a context of "
                f"{lm.max_len}"
            )
        encoded.append(ids[-keep:])
    new_tokens: list[list[int]] = [[] for _ in prompts]
    with eval_mode(model):
        padded = use_cache and isinstance(model, TinyLM) and unsupported(model) is None
        for chunk in _batches(encoded, batch_size, padded):
            width = max(len(encoded[i]) for i in chunk)
            pad = [width - len(encoded[i]) for i in chunk]
            rows = [[lm.prefix_id] * p + encoded[i] for p, i in zip(pad, chunk)]
            x = torch.tensor(rows, dtype=torch.long, device=lm.device)
            if padded and any(pad):
                out = model.generate(x, max_new_tokens, temperature=0.0, pad=torch.tensor(pad))
                out = out[:, width:]
            else:
                out = _generate_batch(lm, x, max_new_tokens, use_cache)
            for row, i in enumerate(chunk):
                new_tokens[i] = out[row].tolist()
    texts = []
    for toks in new_tokens:
        if lm.eos_id is not None and lm.eos_id in toks:
            toks = toks[: toks.index(lm.eos_id)]
        text = lm.decode(toks)
        for s in stop:
            text = text.split(s)[0]
        texts.append(text)
    return texts


def _batches(encoded: list[list[int]], batch_size: int, padded: bool) -> list[list[int]]:
    """Indices of ``encoded`` in batches of at most ``batch_size``: longest first when rows may be
    left-padded (so a batch's lengths are close), else one length per batch."""
    if padded:
        order = sorted(range(len(encoded)), key=lambda i: -len(encoded[i]))
        return [order[k : k + batch_size] for k in range(0, len(order), batch_size)]
    by_len: dict[int, list[int]] = {}
    for i, ids in enumerate(encoded):
        by_len.setdefault(len(ids), []).append(i)
    return [
        idx[k : k + batch_size]
        for _length, idx in sorted(by_len.items())
        for k in range(0, len(idx), batch_size)
    ]


def _generate_batch(lm: LM, x: torch.Tensor, n: int, use_cache: bool) -> torch.Tensor:
    """(B, n) greedy new tokens after the equal-length prompts ``x`` (B, T)."""
    model = lm.model
    if use_cache and isinstance(model, TinyLM):
        return model.generate(x, n, temperature=0.0)[:, x.shape[1] :]
    if use_cache and hasattr(model, "generate") and hasattr(model, "generation_config"):
        from transformers import GenerationConfig

        # the tokenizer's end-of-text token, not whatever the model config says
        gc = GenerationConfig(
            max_new_tokens=n,
            do_sample=False,
            eos_token_id=lm.eos_id,
            pad_token_id=lm.eos_id if lm.eos_id is not None else 0,
        )
        out = model.generate(x, attention_mask=torch.ones_like(x), generation_config=gc)
        return out[:, x.shape[1] :]
    seq = x
    for _ in range(n):
        nxt = lm.logits(seq)[:, -1].argmax(-1, keepdim=True).to(seq.device)
        seq = torch.cat([seq, nxt], dim=1)
    return seq[:, x.shape[1] :]
