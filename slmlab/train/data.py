"""A run's data: the tokenizer, the corpus as one stream of token ids,
and the batch of each step."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import torch

from ..data import iter_documents
from ..data.stream import CORPUS_VERSION, check_version
from ..lm import window_nll
from ..tokenizer import BPETokenizer, CharTokenizer, load_tokenizer
from ..utils import PROJECT_ROOT


def build_tokenizer(spec: dict, texts: Callable[[int], str]):
    if "path" in spec:
        path = Path(spec["path"])
        if not path.is_absolute() and not path.exists():  # relative to the repository
            path = PROJECT_ROOT / path
        return load_tokenizer(path)
    kind = spec.get("kind", "bpe")
    sample = texts(int(spec.get("train_chars", 4_000_000)))
    if kind == "bpe":
        return BPETokenizer.train(
            [sample[i : i + 10_000] for i in range(0, len(sample), 10_000)],
            vocab_size=int(spec.get("vocab_size", 2048)),
        )
    if kind == "char":
        return CharTokenizer.train([sample])
    raise ValueError(f"data.tokenizer.kind={kind!r} is not 'bpe' or 'char'")


def _tinytales_docs(split: str, n_chars: int, seed: int, mix, version: int) -> list[str]:
    docs, total = [], 0
    for doc in iter_documents(split, seed=seed, mix=mix, version=version):
        docs.append(doc)
        total += len(doc) + 1
        if total >= n_chars:
            return docs
    return docs


def encode_docs(tokenizer, docs: list[str]) -> torch.Tensor:
    """One long 1-D tensor of token ids: each document followed by the tokenizer's EOS."""
    ids: list[int] = []
    for chunk in range(0, len(docs), 1024):
        for seq in tokenizer.encode_batch(docs[chunk : chunk + 1024]):
            ids.extend(seq)
            ids.append(tokenizer.eos_id)
    return torch.tensor(ids, dtype=torch.int32 if tokenizer.vocab_size < 2**31 else torch.int64)


def prepare_data(data: dict):
    """(tokenizer, train_ids, val_ids) for a run's ``data`` section."""
    known = {
        "corpus",
        "version",
        "text_file",
        "train_chars",
        "val_chars",
        "seed",
        "mix",
        "tokenizer",
    }
    unknown = sorted(set(data) - known)
    if unknown:
        raise ValueError(f"Unknown data option(s) {unknown}")
    seed = int(data.get("seed", 0))
    if "text_file" in data:
        text = Path(data["text_file"]).read_text(encoding="utf-8")
        cut = int(len(text) * 0.95)
        train_docs, val_docs = [text[:cut]], [text[cut:]]
        sample = lambda n: text[:n]  # noqa: E731
    else:
        if data.get("corpus", "tinytales") != "tinytales":
            raise ValueError(
                f"data.corpus={data.get('corpus')!r}: only 'tinytales' or a data.text_file "
                "is supported"
            )
        mix = data.get("mix")
        version = check_version(data.get("version", CORPUS_VERSION))
        train_chars = int(data.get("train_chars", 20_000_000))
        train_docs = _tinytales_docs("train", train_chars, seed, mix, version)
        val_docs = _tinytales_docs("val", int(data.get("val_chars", 200_000)), seed, mix, version)
        sample = lambda n: "\n\n".join(_tinytales_docs("train", n, seed, mix, version))  # noqa: E731
    tokenizer = build_tokenizer(data.get("tokenizer", {}), sample)
    return tokenizer, encode_docs(tokenizer, train_docs), encode_docs(tokenizer, val_docs)


def get_batch(
    ids: torch.Tensor,
    step: int,
    seed: int,
    batch_size: int,
    seq_len: int,
    rank: int = 0,
    world: int = 1,
) -> tuple[torch.Tensor, torch.Tensor]:
    """This process's slice of the global batch of ``step``: a function of (seed, step) only."""
    if len(ids) <= seq_len + 1:
        raise ValueError(f"only {len(ids)} tokens of data, fewer than seq_len+1={seq_len + 1}")
    g = torch.Generator().manual_seed(seed * 1_000_003 + step)
    starts = torch.randint(0, len(ids) - seq_len - 1, (batch_size * world,), generator=g)
    starts = starts[rank * batch_size : (rank + 1) * batch_size]
    x = torch.stack([ids[s : s + seq_len] for s in starts.tolist()]).long()
    y = torch.stack([ids[s + 1 : s + seq_len + 1] for s in starts.tolist()]).long()
    return x, y


def evaluate_loss(
    model, ids: torch.Tensor, seq_len: int, n_batches: int, batch_size: int, device=None
) -> float:
    """Mean next-token loss on fixed, evenly spaced windows of ``ids`` (the same every call), on
    the model's device (``device`` is accepted for old callers and not used)."""
    n = min(n_batches * batch_size, max(1, (len(ids) - 1) // seq_len))
    starts = torch.linspace(0, len(ids) - seq_len - 1, n).long().tolist()
    windows = torch.stack([ids[j : j + seq_len + 1] for j in starts]).long()
    total, count = window_nll(model, windows, batch_size)
    return total / count
