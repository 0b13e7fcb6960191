"""Perplexity and bits per byte of any causal LM over documents
(default: TinyTales' validation split)."""

from __future__ import annotations

import math
from collections.abc import Iterable

import torch

from ..data import iter_documents
from ..lm import IGNORE_INDEX, eval_mode, lm_loss
from .scoring import LM, _pad_batch


def perplexity(
    model,
    tokenizer,
    texts: str | Iterable[str] | None = None,
    split: str = "val",
    n_tokens: int = 20_000,
    seq_len: int | None = None,
    batch_size: int = 8,
    stride: int | None = None,
    seed: int = 0,
) -> dict:
    """Perplexity of a causal LM on ``texts`` (default: the TinyTales ``split``, a fixed slice).

    Documents are joined into one token stream, each preceded by the end-of-text token (the
    document separator of training), so ``nll`` is comparable with the training loss. Whole
    documents are taken until ``n_tokens`` tokens (``None``: all of ``texts``). The stream is
    cut into windows of ``seq_len`` tokens (default: the model's context); with ``stride`` <
    ``seq_len`` windows overlap and each token is scored once, with at least ``seq_len - stride``
    tokens of context (the sliding window of the transformers perplexity guide).

    Returns ``ppl`` (= exp(nll)), ``nll`` (nats per token), ``bits_per_token``,
    ``bits_per_byte`` (total bits / UTF-8 bytes of the scored text, a separator counting as one
    byte: comparable across tokenizers), ``n_tokens``, ``n_bytes``, ``n_docs``."""
    lm = LM(model, tokenizer)
    L = min(seq_len or lm.max_len, lm.max_len)
    S = stride or L
    if L < 2 or not 0 < S <= L:
        raise ValueError(
            f"need seq_len >= 2 and 0 < stride <= seq_len; got seq_len={L}, stride={S}"
        )
    if texts is None:
        docs = iter_documents(split, seed=seed)
    elif isinstance(texts, str):
        docs = iter([texts])
    else:
        docs = iter(texts)
    sep = lm.prefix_id
    stream: list[int] = []
    n_bytes = n_docs = 0
    for doc in docs:
        ids = lm.encode(doc)
        stream.append(sep)
        stream += ids
        n_docs += 1
        n_bytes += len(doc.encode("utf-8")) + (1 if n_docs > 1 else 0)
        if n_tokens is not None and len(stream) - 1 >= n_tokens:
            break
    if len(stream) < 2:
        raise ValueError("need at least two tokens of text to measure perplexity")
    # window w: inputs stream[b:e], targets stream[b+1:e+1]; its first `skip` targets were scored
    # by the window before (they are only context here)
    windows, begin, scored = [], 0, 0
    while scored < len(stream) - 1:
        end = min(begin + L, len(stream) - 1)
        windows.append((begin, end, scored - begin))
        scored = end
        begin = max(0, end - (L - S))
    total_nll, total_n = 0.0, 0
    with eval_mode(model):
        for i in range(0, len(windows), batch_size):
            chunk = windows[i : i + batch_size]
            x = _pad_batch([stream[b:e] for b, e, _ in chunk], pad=stream[0])
            # targets: the next tokens; padding and the positions an earlier window scored are
            # both ignored
            y = torch.full(x.shape, IGNORE_INDEX, dtype=torch.long)
            for row, (b, e, skip) in enumerate(chunk):
                y[row, skip : e - b] = torch.tensor(stream[b + 1 + skip : e + 1])
                total_n += e - b - skip
            total_nll += lm_loss(lm.logits(x), y.to(lm.device), reduction="sum").item()
    nll = total_nll / total_n
    return {
        "ppl": math.exp(nll),
        "nll": nll,
        "bits_per_token": nll / math.log(2),
        "bits_per_byte": total_nll / math.log(2) / max(1, n_bytes),
        "n_tokens": total_n,
        "n_bytes": n_bytes,
        "n_docs": n_docs,
        "seq_len": L,
        "stride": S,
    }
