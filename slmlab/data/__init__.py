"""TinyTales: a deterministic synthetic corpus from one small, consistent world.

No machine that builds this book reaches a dataset host, so the book makes its own data.
TinyTales is one small world written out as text:

- **stories** about characters (names, traits, family), places, animals, food and objects
  whose behaviour follows from their *material* (glass breaks when dropped, wood floats,
  metal sinks, ice melts by the fire), the weather and what it causes (rain makes the ground
  wet), and feelings with their causes (a lost toy makes you sad);
- **facts** about that world (what things are made of, what a material does, where things
  are found, what animals say and eat), as sentences and as question/answer pairs;
- **math**: add/subtract word problems, answers up to two digits, with the working and the
  answer in a fixed format (``7 + 5 = 12`` then ``Answer: 12``);
- **code**: tiny Python programs with what they print (``Output: 5``);
- **icl**: in-context lessons, "secret words" whose meaning is given only inside the
  document, so the only way to predict them is to learn from the examples in the prompt.

A model trained on it can learn the four capabilities Lu et al. measure SLMs on, and
:mod:`slmlab.evaluate` probes them on items that training never showed:

- every document (and every single word problem or program) belongs to exactly one split,
  decided by a stable hash of its text, so train, validation and test never share one;
- some (object, behaviour) pairs are *held out*: no split ever says that a marble breaks
  when dropped, although training says that a marble is made of glass and that glass things
  break; the commonsense probes ask exactly those pairs (:data:`HELD_OUT`);
- the invented words of the in-context probes come from a hash bucket no training document
  uses, so their meaning really is given only in the prompt.

Everything is a pure function of ``(split, seed)``: the same call gives the same text on
every machine (``random.Random`` seeded with a string is stable across runs and platforms).

Modules, read top to bottom: :mod:`~slmlab.data.world` (the tables and the splits),
:mod:`~slmlab.data.writer` (one document of each kind), :mod:`~slmlab.data.stream` (the corpus
as a stream of documents), :mod:`~slmlab.data.loaders` (real corpora, local or from the hub). The
probe items that ask about this world live in :mod:`slmlab.evaluate.items`.
"""

from .loaders import HUB_DATASETS, load_text_dataset
from .stream import (
    CORPUS_VERSION,
    CORPUS_VERSIONS,
    DEFAULT_MIX,
    KINDS,
    MIXES,
    corpus_stats,
    corpus_text,
    documents,
    iter_documents,
    kind_of,
)
from .world import (
    ALL_NAMES,
    ANIMALS,
    CODE_WORDS,
    FEELINGS,
    FOODS,
    HELD_OUT,
    HELD_OUT_OBJECTS,
    KIN,
    MATERIAL_OF,
    MATERIALS,
    OBJECT_INFO,
    OBJECTS,
    PATTERN_HEADERS,
    PLACE_OF,
    PLACES,
    RELATIONS,
    SECRET_WORDS,
    SPLITS,
    TRAITS,
    USE_OF,
    WEATHER,
    article,
    behaviour,
    past,
    plural,
    split_of,
)
from .writer import Writer, pattern_lesson

__all__ = [
    "iter_documents",
    "corpus_text",
    "documents",
    "kind_of",
    "corpus_stats",
    "DEFAULT_MIX",
    "MIXES",
    "CORPUS_VERSION",
    "CORPUS_VERSIONS",
    "KINDS",
    "SPLITS",
    "split_of",
    "behaviour",
    "plural",
    "article",
    "past",
    "Writer",
    "pattern_lesson",
    "load_text_dataset",
    "HUB_DATASETS",
    "ALL_NAMES",
    "ANIMALS",
    "CODE_WORDS",
    "FEELINGS",
    "FOODS",
    "HELD_OUT",
    "HELD_OUT_OBJECTS",
    "KIN",
    "PATTERN_HEADERS",
    "MATERIAL_OF",
    "MATERIALS",
    "OBJECT_INFO",
    "OBJECTS",
    "PLACE_OF",
    "PLACES",
    "RELATIONS",
    "SECRET_WORDS",
    "TRAITS",
    "USE_OF",
    "WEATHER",
]
