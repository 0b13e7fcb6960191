"""Did the test leak into training? An n-gram overlap check between evaluation items and a
training corpus.

A benchmark item that also sits in the training data measures memory, not skill. The usual check
(GPT-3's appendix C; the Llama and Qwen reports use variants) looks for long word n-grams that an
item shares with the corpus: an item is **contaminated** when any of its n-grams (GPT-3: 13 words)
appears in the training text. Short items need shorter n-grams, so ``n`` is a parameter, and
TinyTales' template sentences share short n-grams with everything: the book uses 8 or more.

Words are lower-cased runs of letters and digits, so spacing and punctuation do not hide a copy.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

_WORD = re.compile(r"[a-z0-9]+")


def words(text: str) -> list[str]:
    """The lower-cased words (runs of letters and digits) of ``text``."""
    return _WORD.findall(text.lower())


def ngrams(text: str, n: int) -> set[tuple[str, ...]]:
    """Every run of ``n`` consecutive words of ``text``."""
    w = words(text)
    return {tuple(w[i : i + n]) for i in range(len(w) - n + 1)}


def corpus_ngrams(corpus: str | Iterable[str], n: int) -> set[tuple[str, ...]]:
    """The n-grams of a corpus (one string, or an iterable of documents: n-grams do not cross
    documents)."""
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    docs = [corpus] if isinstance(corpus, str) else corpus
    out: set[tuple[str, ...]] = set()
    for doc in docs:
        out |= ngrams(doc, n)
    return out


def item_text(item: dict) -> str:
    """The text of a probe item: context and right answer of a multiple-choice item, prompt and
    answer of a generation item."""
    if "context" in item and "options" in item:
        return item["context"] + item["options"][item["label"]]
    if "prompt" in item:
        return item["prompt"] + " " + str(item.get("answer", ""))
    raise ValueError(
        "an item needs context/options/label (multiple choice) or prompt/answer (generation); "
        f"got keys {sorted(item)}"
    )


def overlap(items: Sequence[dict | str], corpus: str | Iterable[str] | set, n: int = 8) -> dict:
    """How many ``items`` share an ``n``-gram with ``corpus`` (text, documents, or the set
    :func:`corpus_ngrams` returns, to reuse it). Returns ``contaminated`` (a bool per item),
    ``rate`` (their share), ``shared`` (per item, the fraction of its n-grams found in the corpus)
    and ``n``. Items shorter than ``n`` words cannot be matched and count as clean."""
    if not items:
        raise ValueError("no items to check: pass probe items or their texts")
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    grams = corpus if isinstance(corpus, set) else corpus_ngrams(corpus, n)
    flags, shared = [], []
    for it in items:
        g = ngrams(it if isinstance(it, str) else item_text(it), n)
        hits = sum(x in grams for x in g)
        flags.append(hits > 0)
        shared.append(hits / len(g) if g else 0.0)
    return {"contaminated": flags, "rate": sum(flags) / len(flags), "shared": shared, "n": n}
