"""Write data/tinytales/README.md: what the TinyTales corpus holds,
measured by running the generator.

    python data/tinytales/make_readme.py [--chars 30000000]

Every number in the README comes from this run (sizes, variety, speed, chance levels); the
corpus itself is not stored: ``slmlab.data.iter_documents`` regenerates it on demand.
"""

from __future__ import annotations

import argparse
import itertools
import platform
import time
from collections import Counter
from pathlib import Path

from slmlab import data as D
from slmlab.data.stream import _WORD
from slmlab.evaluate import chance_level
from slmlab.evaluate.items import commonsense_items, trivial_baselines
from slmlab.utils import atomic_write_text

HERE = Path(__file__).resolve().parent


def measure(n_chars: int) -> tuple[dict, dict, float, float]:
    t, c = time.perf_counter(), time.process_time()
    docs, total = [], 0
    for doc in D.iter_documents("train", seed=0):
        docs.append(doc)
        total += len(doc)
        if total >= n_chars:
            break
    seconds, cpu = time.perf_counter() - t, time.process_time() - c
    by_kind: dict[str, list[str]] = {}
    for d in docs:
        by_kind.setdefault(D.kind_of(d), []).append(d)
    secret = set().union(*D.SECRET_WORDS.values())
    words = {w.lower() for d in docs for w in _WORD.findall(d)}
    stats = D.corpus_stats(docs)
    stats["vocabulary_without_secret_words"] = len(words - secret)
    return stats, {k: D.corpus_stats(v) for k, v in by_kind.items()}, seconds, cpu


def table(rows: list[list], header: list[str]) -> str:
    out = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    out += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return "\n".join(out)


def _mix(mix: dict) -> str:
    return ", ".join(f"{k} {v:.0%}" for k, v in mix.items())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0].replace("\n", " "))
    ap.add_argument(
        "--chars", type=float, default=30e6, help="characters of the train split to measure"
    )
    args = ap.parse_args()
    n = int(args.chars)
    stats, kinds, seconds, cpu = measure(n)
    val = D.corpus_stats(list(itertools.islice(D.iter_documents("val"), 2000)))
    examples = {}
    for d in D.iter_documents("train", seed=7):
        examples.setdefault(D.kind_of(d), d)
        if len(examples) == len(D.KINDS):
            break
    items = commonsense_items(1000)
    cs = Counter(it["kind"] for it in items)
    grade = Counter(it["difficulty"] for it in items)
    math_b, code_b = trivial_baselines("math"), trivial_baselines("code")
    f = lambda x: f"{x:,.0f}" if isinstance(x, (int, float)) and x >= 100 else f"{x:.3g}"  # noqa: E731

    kind_rows = [
        [
            k,
            f(kinds[k]["n_docs"]),
            f"{kinds[k]['n_chars'] / stats['n_chars']:.1%}",
            f"{D.DEFAULT_MIX[k]:.0%}",
            f(kinds[k]["mean_doc_chars"]),
            f(kinds[k]["vocabulary"]),
            f(kinds[k]["distinct_sentences"]),
            f"{kinds[k]['unigram_entropy_bits']:.2f}",
        ]
        for k in D.KINDS
    ]
    kind_table = table(
        kind_rows,
        [
            "kind",
            "documents",
            "share of chars",
            "mix",
            "mean chars/doc",
            "vocabulary",
            "distinct sentences",
            "entropy (bits/word)",
        ],
    )
    md = (
        f"""# TinyTales: the book's synthetic corpus

TinyTales is generated on demand by `slmlab.data` (nothing here is stored but this page and the
script that wrote it, `python data/tinytales/make_readme.py --chars {n:.0f}`). It is one small,
consistent world written out as stories, facts, arithmetic word problems, tiny Python programs and
in-context lessons (patterns, secret codes, secret words); \
`slmlab.evaluate` probes what a model learned from it.

```python
from slmlab.data import iter_documents, corpus_text, corpus_stats

docs = iter_documents("train", seed=0)  # endless, deterministic, streamable
text = corpus_text("val", 100_000)  # whole documents joined by blank lines
```

## Versions

A run names the corpus version in its data section (`"version"`, default the latest,
{D.CORPUS_VERSION}); every version's documents stay exactly as they were (a test checks version 1
byte for byte).

| version | used by | what it adds | mix (share of characters) |
|---|---|---|---|
| 1 | Part 3's shipped experiments (`data/experiments`) | stories, facts, word problems, programs, \
lessons | {_mix(D.MIXES[1])} |
| 2 | the reference models (`data/reference`) | new things named by invented words, two-step \
and three-digit word problems, longer and more secret-code lessons | {_mix(D.MIXES[2])} |

All runs share one tokenizer, `data/tinytales/tokenizer.json`: a 2,048-token byte-level BPE
trained on the first 4,000,000 characters of version 1 (`slmlab.train.build_tokenizer` with
`{{"kind": "bpe", "vocab_size": 2048, "train_chars": 4000000}}`), kept fixed so that a model of
either version reads the same tokens. This page describes version {D.CORPUS_VERSION}.

## Size and variety (first {stats["n_chars"]:,} characters of the train split, seed 0)

| measure | value |
|---|---|
| documents | {stats["n_docs"]:,} |
| characters | {stats["n_chars"]:,} |
| words | {stats["n_words"]:,} |
| vocabulary (distinct lower-cased words) | \
{stats["vocabulary"]:,} ({stats["vocabulary_without_secret_words"]:,} without the invented secret \
words) |
| sentences | {stats["n_sentences"]:,} |
| distinct sentences | {stats["distinct_sentences"]:,} ({stats["distinct_sentence_frac"]:.1%}) |
| unigram word entropy | {stats["unigram_entropy_bits"]:.2f} bits/word |
| generation speed | {stats["n_chars"] / cpu / 1e6:.1f} million characters per CPU-second on one \
core ({cpu:.1f} s of CPU time, {seconds:.1f} s wall-clock on a shared {platform.machine()} \
machine) |

Validation split (first 2,000 documents): vocabulary {val["vocabulary"]:,}, \
{val["distinct_sentences"]:,} distinct
sentences, {val["unigram_entropy_bits"]:.2f} bits/word.

By kind of document (the mix is a share of *characters*, `slmlab.data.DEFAULT_MIX`):

{kind_table}

## The world

- {len(D.ALL_NAMES)} characters' names, {len(D.TRAITS)} traits, {len(D.KIN)} relatives, \
{len(D.PLACES)} places.
- {len(D.OBJECT_INFO)} objects of {len(D.MATERIALS)} materials. The material decides what happens \
when the object is
  dropped, put in water or put near a fire (glass breaks, wood floats, ice melts...): \
a rule a model can learn
  and apply to objects it never saw doing that.
- {len(D.ANIMALS)} animals (sound, home, food), {len(D.FOODS)} foods, \
{len(D.WEATHER)} kinds of weather with their
  effects, {len(D.FEELINGS)} feelings with their causes.
- New things (from version 2): a story names a thing by an invented word and says what it is made \
of, or
  only how it feels, or names two of them; what happens to it follows from its material alone.
- Word problems: add or subtract, operands and answers from 0 to 99 (mostly up to 20), \
with the working and
  the answer in a fixed format (`7 + 5 = 12` / `Answer: 12`); from version 2, a fifth of them \
take two
  operations (a line of working each) and a tenth of the operands reach 500.
- Programs: assignments, `+`/`-`, `if`/`else`, `for` over `range`, `print`; \
the tests run every one to check
  the `Output:` line.
- Pattern lessons: a header that does not say the rule ("Follow the pattern."), \
then `thing -> value` lines
  of one relation of the world ({", ".join(sorted(D.RELATIONS))}): \
only the lines say which relation is meant.
- Secret codes and secret words: invented words ({sum(len(v) for v in D.SECRET_WORDS.values()):,} \
of them, from syllables, none an
  English word of the world) that mean something only inside one document.

## Splits and held-out items

- Every story and fact sheet, and every single word problem, program and invented word, \
belongs to one split
  by a stable hash of its text (90% train, 5% val, 5% test), so no two splits share one; \
each split and kind
  has its own random stream.
- {len(D.HELD_OUT)} (object, action) pairs are held out of **every** split: \
training says that a marble is made
  of glass and that glass things break when dropped, never that a marble breaks. The commonsense \
probes ask
  these pairs.
- The probes' invented words, word problems and programs come from the test bucket: \
training never shows them.

## Probes (`slmlab.evaluate.suite`)

| task | format | scoring | chance |
|---|---|---|---|
| commonsense | 4-way multiple choice at three grades (of 1,000 items: easy {grade["easy"]}, \
medium {grade["medium"]}, hard {grade["hard"]}). Easy: held-out material behaviour \
({cs["material"]}), weather ({cs["weather"]}), feelings ({cs["feelings"]}), animals \
({cs["animals"]}), where things are ({cs["where"]}); medium: a new thing (a test-bucket \
invented word) and what it is made of ({cs["new_thing"]}); hard: only how the new thing feels \
({cs["new_thing_feel"]}), or two new things and a lure ({cs["two_things"]}) | log-likelihood of \
each option (`acc`) and per character (`acc_norm`), as lm-evaluation-harness | \
{chance_level("commonsense"):.2f} |
| icl | pattern lessons at 1, 3, 5 and 10 shots: `k` lines `thing -> value` of one relation, \
then a new thing; the options are its values under each relation of its domain, \
so only the examples say which is meant (task recognition) | log-likelihood of the three values | \
{chance_level("icl"):.3f} |
| icl_lookup | secret codes at 1, 3, 5 and 10 shots: `word = code` pairs with invented codes \
from the test bucket, then one shown word again; from 4 shots all the wrong options are shown \
too, paired with other words (lookup, an induction-head skill) | log-likelihood of four codes | \
{chance_level("icl_lookup"):.2f} |
| math | `Problem: ...` then greedy generation; a third each easy (one operation, numbers up to \
20), medium (a larger two-digit number), hard (two operations or a three-digit number) | exact \
match of the number after `Answer:` | {chance_level("math"):.3f} |
| code | a program then `Output:`; a third each easy (one or two lines), medium (reassignment), \
hard (a loop or an if/else) | exact match of the greedy output line | \
{chance_level("code"):.3f} |

Chance for math and code is the best answer-free guesser on 900 probe items: \
always the most common answer
(math {math_b["majority"]:.3f}, code {code_b["majority"]:.3f}), copy the first number of the prompt
(math {math_b["copy_first_number"]:.3f}, code {code_b["copy_first_number"]:.3f}) or the last one
(math {math_b["copy_last_number"]:.3f}, code {code_b["copy_last_number"]:.3f}).

## One document of each kind (train split, seed 7)

"""
        + "\n\n".join(f"**{k}**\n\n```text\n{examples[k]}\n```" for k in D.KINDS)
        + "\n"
    )
    atomic_write_text(HERE / "README.md", md)
    print(md)


if __name__ == "__main__":
    main()
