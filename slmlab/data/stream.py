"""The TinyTales stream: documents of one split in fixed proportions of kind, the corpus as
text, and the statistics of a corpus."""

from __future__ import annotations

import math
import random
import re
from collections import Counter
from collections.abc import Iterable, Iterator

from .world import CODE_HEADERS, PATTERN_HEADERS, SPLITS, split_of
from .writer import Writer

# The corpus has versions; a run names one in its data section ("version", default the latest).
# Version 1 is the corpus of Part 3's experiments. Version 2 adds what the graded probes ask:
# new things whose fate only their stated material (or how they feel) tells, word problems with
# two operations and three-digit numbers, longer secret-code lessons, and a larger share of
# lessons. Every version's documents stay exactly as they were.
CORPUS_VERSIONS = (1, 2)
CORPUS_VERSION = CORPUS_VERSIONS[-1]
MIXES = {
    1: {"story": 0.45, "facts": 0.15, "math": 0.13, "code": 0.13, "icl": 0.14},
    2: {"story": 0.43, "facts": 0.14, "math": 0.13, "code": 0.12, "icl": 0.18},
}
DEFAULT_MIX = MIXES[CORPUS_VERSION]
KINDS = tuple(DEFAULT_MIX)


def check_version(version) -> int:
    if isinstance(version, bool) or version not in CORPUS_VERSIONS:
        raise ValueError(
            f"TinyTales has versions {list(CORPUS_VERSIONS)} (the latest, {CORPUS_VERSION}, is "
            f"the default), got version={version!r}"
        )
    return version


def _check_mix(mix, version: int = CORPUS_VERSION) -> dict[str, float]:
    mix = dict(MIXES[version] if mix is None else mix)
    unknown = set(mix) - set(KINDS)
    if unknown:
        raise ValueError(
            f"unknown document kind(s) {sorted(unknown)} in mix; the kinds are {list(KINDS)}"
        )
    bad = {k: w for k, w in mix.items() if not isinstance(w, (int, float)) or w < 0 or w != w}
    if bad or sum(mix.values()) <= 0:
        raise ValueError(f"mix proportions must be non-negative numbers, not all zero; got {mix}")
    total = sum(mix.values())
    return {k: w / total for k, w in mix.items() if w > 0}


def _check_split(split: str) -> None:
    if split not in SPLITS:
        raise ValueError(f"split must be one of {list(SPLITS)}, got {split!r}")


def iter_documents(
    split: str = "train", seed: int = 0, mix: dict | None = None, version: int = CORPUS_VERSION
) -> Iterator[str]:
    """An endless, deterministic stream of TinyTales documents of one split.

    ``version`` is the corpus version (:data:`CORPUS_VERSIONS`; the latest by default; 1 is
    Part 3's experiments' corpus). ``mix`` gives the share of *characters* of each document kind
    ("story", "facts", "math", "code", "icl"; default the version's :data:`MIXES`, for the
    latest :data:`DEFAULT_MIX`; normalised to sum to 1). Each kind has its own
    random stream, so changing the mix changes how often a kind appears, not its documents.
    A document is kept only if :func:`split_of` assigns it to ``split`` (word problems and
    programs one by one), so the splits never overlap; no split ever states a held-out
    (object, behaviour) pair (:data:`HELD_OUT`). Documents hold no end-of-text marker: the
    trainer puts the tokenizer's EOS between them."""
    _check_split(split)
    if not isinstance(seed, int):
        raise TypeError(f"seed must be an int, got {type(seed).__name__}")
    version = check_version(version)
    mix = _check_mix(mix, version)
    writers = {
        k: Writer(random.Random(f"tinytales/{seed}/{split}/{k}"), split, version) for k in mix
    }
    made = {k: 0 for k in mix}
    total = 0
    while True:
        # the kind furthest behind its share of characters goes next: exact proportions,
        # no randomness
        kind = max(mix, key=lambda k: mix[k] * (total + 1) - made[k])
        doc = getattr(writers[kind], kind)()
        if not doc or (kind in ("story", "facts") and split_of(doc) != split):
            continue
        made[kind] += len(doc)
        total += len(doc)
        yield doc


_ICL_HEADERS = ("Secret words:",) + CODE_HEADERS + PATTERN_HEADERS


def kind_of(doc: str) -> str:
    """The kind of a TinyTales document ("story", "facts", "math", "code" or "icl"),
    read off its text."""
    if doc.startswith("Problem: "):
        return "math"
    if doc.startswith("```"):
        return "code"
    if doc.startswith(_ICL_HEADERS):
        return "icl"
    return "facts" if "\n" in doc else "story"  # a story is one paragraph; facts are one per line


def corpus_text(
    split: str = "train",
    n_chars: int = 1_000_000,
    seed: int = 0,
    mix: dict | None = None,
    sep: str = "\n\n",
    version: int = CORPUS_VERSION,
) -> str:
    """Whole documents of one split joined by ``sep``, until at least ``n_chars`` characters
    (for notebooks and tokenizer training; the trainer uses :func:`iter_documents`)."""
    if n_chars < 0:
        raise ValueError(f"n_chars must be >= 0, got {n_chars}")
    docs, total = [], 0
    if n_chars == 0:
        return ""
    for doc in iter_documents(split, seed, mix, version):
        docs.append(doc)
        total += len(doc) + len(sep)
        if total >= n_chars:
            break
    return sep.join(docs)


def documents(
    split: str = "train",
    n_docs: int = 1000,
    seed: int = 0,
    mix: dict | None = None,
    version: int = CORPUS_VERSION,
) -> list[str]:
    """The first ``n_docs`` documents of :func:`iter_documents`."""
    out = []
    for doc in iter_documents(split, seed, mix, version):
        if len(out) >= n_docs:
            break
        out.append(doc)
    return out


_WORD = re.compile(r"[A-Za-z]+(?:'[a-z]+)?")
_SENT = re.compile(r"(?<=[.!?:])\s+|\n+")


def corpus_stats(texts: Iterable[str] | str) -> dict:
    """Size and variety of a corpus (a string or an iterable of documents): documents,
    characters, words, vocabulary (distinct lower-cased words), sentences and distinct
    sentences, and the unigram word entropy in bits per word."""
    if isinstance(texts, str):
        texts = [texts]
    words: Counter = Counter()
    sentences: set[str] = set()
    n_docs = n_chars = n_sent = 0
    for t in texts:
        if not isinstance(t, str):
            raise TypeError(f"corpus_stats expects strings, got {type(t).__name__}")
        n_docs += 1
        n_chars += len(t)
        words.update(w.lower() for w in _WORD.findall(t))
        for s in _SENT.split(t):
            s = s.strip()
            if s:
                n_sent += 1
                sentences.add(s)
    total = sum(words.values())
    entropy = -sum(c / total * math.log2(c / total) for c in words.values()) if total else 0.0
    return {
        "n_docs": n_docs,
        "n_chars": n_chars,
        "n_words": total,
        "vocabulary": len(words),
        "n_sentences": n_sent,
        "distinct_sentences": len(sentences),
        "distinct_sentence_frac": len(sentences) / n_sent if n_sent else 0.0,
        "unigram_entropy_bits": entropy,
        "mean_doc_chars": n_chars / n_docs if n_docs else 0.0,
    }


# ============================================================================ probe items
