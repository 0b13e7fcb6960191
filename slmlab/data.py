"""TinyTales: a deterministic synthetic corpus from one small, consistent world.

No machine that runs this book reaches a dataset host, so the book makes its own data: short
stories about characters, places and objects whose properties follow from their material
(glass breaks, wood floats, metal sinks), plain facts about that world, arithmetic word
problems, tiny programs with their output, and in-context "secret code" lessons. A small
model trained on it learns the four capabilities Lu et al. measure SLMs on — commonsense,
in-context learning, math and coding — and the probes in :mod:`slmlab.evaluate` test them
on *held-out* items:

- every document belongs to exactly one split, decided by a hash of its text, so the train,
  validation and test splits can never share a document;
- some (object, property) pairs never appear in training text: the model sees "a marble is
  made of glass" and "glass things break when dropped", but never that a marble breaks; the
  commonsense probes ask exactly those held-out pairs.
"""
from __future__ import annotations

import hashlib
import math
import random
import re
from collections import Counter
from typing import Iterable, Iterator

# ----------------------------------------------------------------------------- the world
NAMES = {
    "she": ["Mia", "Lily", "Emma", "Anna", "Sara", "Lucy", "Nora", "Zoe", "Ella", "Ruby", "Maya", "Ivy", "Rosa",
            "Kate", "Jane", "Amy", "Lena", "Tara", "Nina", "Clara", "Alice", "Daisy", "Hannah", "Grace", "Sophie"],
    "he": ["Tom", "Ben", "Sam", "Leo", "Max", "Jack", "Finn", "Owen", "Noah", "Liam", "Adam", "Luke", "Eli", "Omar",
           "Hugo", "Theo", "Ryan", "Jake", "Paul", "Oscar", "Felix", "Henry", "Peter", "Danny", "Lucas"],
}
PRONOUNS = {"she": ("she", "her", "her"), "he": ("he", "him", "his")}  # subject, object, possessive
TRAITS = ["kind", "brave", "curious", "shy", "funny", "clever", "quiet", "cheerful", "careful", "gentle", "busy", "lazy"]
KIN = ["mom", "dad", "grandma", "grandpa", "sister", "brother", "friend", "teacher", "aunt", "uncle"]
PLACES = ["the park", "the beach", "the forest", "the farm", "the garden", "the kitchen", "the school", "the river",
          "the market", "the library", "the lake", "the hill", "the zoo", "the shop", "the yard", "the playground",
          "the bakery", "the meadow", "the barn", "the cave", "the pond", "the street", "the bridge", "the attic"]
COLORS = ["red", "blue", "green", "yellow", "white", "black", "brown", "pink", "purple", "orange", "gray", "golden"]
SIZES = ["big", "small", "tiny", "long", "short", "old", "new", "round", "little", "heavy", "light", "shiny"]
FEELINGS = {
    "good": ["happy", "glad", "proud", "excited", "calm", "thankful", "cheerful"],
    "bad": ["sad", "angry", "scared", "upset", "worried", "grumpy", "lonely"],
}

# Materials: the rules every object of the material obeys (these make commonsense learnable).
MATERIALS = {
    "glass": {"drop": "broke into many pieces", "water": "sank to the bottom", "fire": "got very hot",
              "facts": ["can break", "is hard", "lets light through"], "feel": "smooth and hard"},
    "wood": {"drop": "made a loud knock", "water": "floated on the water", "fire": "burned",
             "facts": ["floats on water", "can burn", "is hard"], "feel": "rough and hard"},
    "metal": {"drop": "made a loud clang", "water": "sank to the bottom", "fire": "got very hot",
              "facts": ["sinks in water", "is hard", "can get very hot"], "feel": "cold and hard"},
    "paper": {"drop": "floated down slowly", "water": "got wet and soft", "fire": "burned",
              "facts": ["can tear", "can burn", "is light"], "feel": "thin and light"},
    "cloth": {"drop": "fell down softly", "water": "got wet", "fire": "burned",
              "facts": ["is soft", "can burn", "keeps you warm"], "feel": "soft and warm"},
    "ice": {"drop": "cracked into pieces", "water": "floated and melted", "fire": "melted away",
            "facts": ["is cold", "melts in the sun", "floats on water"], "feel": "cold and wet"},
    "stone": {"drop": "made a loud thud", "water": "sank to the bottom", "fire": "stayed the same",
              "facts": ["is heavy", "sinks in water", "is hard"], "feel": "hard and heavy"},
    "rubber": {"drop": "bounced up high", "water": "floated on the water", "fire": "melted and smelled bad",
               "facts": ["can bounce", "can stretch", "floats on water"], "feel": "soft and bouncy"},
}
OBJECTS = {
    "glass": ["cup", "bottle", "jar", "vase", "window", "mirror", "bowl", "lamp", "marble", "bead"],
    "wood": ["stick", "chair", "table", "box", "boat", "spoon", "door", "block", "flute", "stool"],
    "metal": ["key", "coin", "nail", "bell", "pot", "fork", "ring", "can", "whistle", "lock"],
    "paper": ["book", "letter", "map", "kite", "card", "note", "bag", "ticket", "poster", "napkin"],
    "cloth": ["hat", "sock", "scarf", "shirt", "blanket", "coat", "glove", "pillow", "towel", "flag"],
    "ice": ["ice cube", "snowball", "icicle", "ice block", "snowman", "ice cream"],
    "stone": ["rock", "pebble", "brick", "stone", "statue", "boulder"],
    "rubber": ["ball", "boot", "duck toy", "band", "tire", "eraser"],
}
MATERIAL_OF = {o: m for m, objs in OBJECTS.items() for o in objs}
# Held out from training text: the model sees the material of these objects but never their
# behaviour; the commonsense probes ask about exactly these (object, action) pairs.
HELD_OUT = {("marble", "drop"), ("bead", "water"), ("flute", "water"), ("stool", "fire"), ("whistle", "water"),
            ("lock", "drop"), ("ticket", "fire"), ("napkin", "water"), ("towel", "fire"), ("flag", "drop"),
            ("ice block", "fire"), ("boulder", "water"), ("statue", "drop"), ("eraser", "drop"), ("tire", "water"),
            ("mirror", "water"), ("vase", "drop"), ("stool", "drop"), ("lock", "water"), ("poster", "water")}
HELD_OUT_OBJECTS = {o for o, _ in HELD_OUT}
ANIMALS = {  # animal: (sound, home, food)
    "dog": ("barked", "the yard", "bones"), "cat": ("purred", "the house", "fish"), "cow": ("mooed", "the farm", "grass"),
    "duck": ("quacked", "the pond", "bread"), "bird": ("sang", "the tree", "seeds"), "horse": ("neighed", "the barn", "hay"),
    "sheep": ("baaed", "the meadow", "grass"), "frog": ("croaked", "the pond", "flies"), "owl": ("hooted", "the forest", "mice"),
    "bee": ("buzzed", "the garden", "nectar"), "pig": ("oinked", "the farm", "apples"), "mouse": ("squeaked", "the attic", "cheese"),
    "lion": ("roared", "the zoo", "meat"), "fox": ("yelped", "the forest", "berries"), "goat": ("bleated", "the hill", "leaves"),
}
FOODS = ["apple", "banana", "cookie", "cake", "sandwich", "pear", "carrot", "orange", "muffin", "plum", "pie", "grape"]
WEATHER = {  # cause: effects
    "it rained all day": ["the ground was wet", "there were puddles everywhere", "everyone stayed inside"],
    "the sun was very hot": ["the ice cream melted", "everyone was thirsty", "the grass was dry"],
    "it snowed all night": ["the ground was white", "the children made a snowman", "the road was slippery"],
    "the wind blew hard": ["the leaves flew away", "the kite went up high", "the door slammed shut"],
}
PLURAL = {"box": "boxes", "glass": "glasses", "brush": "brushes", "peach": "peaches", "mouse": "mice", "sheep": "sheep",
          "fish": "fish", "ice cream": "ice creams", "cherry": "cherries", "pony": "ponies", "bus": "buses"}
COUNTABLE = ["apples", "cookies", "pencils", "marbles", "stickers", "books", "coins", "shells", "flowers", "eggs",
             "balls", "cards", "stones", "toys", "cupcakes", "buttons", "candies", "boats", "kites", "rings"]

# Invented words for in-context "secret code" lessons: meaningless outside one document.
_SYL = ["ka", "lo", "mi", "ze", "tu", "ro", "pa", "vi", "no", "su", "be", "da", "gu", "fe", "ri", "xo", "ja", "wu"]
CODE_WORDS = sorted({a + b + c for a in _SYL for b in _SYL for c in ("n", "k", "p", "")})
CODE_SOURCES = COLORS + list(ANIMALS) + FOODS + ["sun", "moon", "tree", "house", "river", "star", "book", "shoe"]

DEFAULT_MIX = {"story": 0.45, "facts": 0.15, "math": 0.15, "code": 0.15, "icl": 0.10}
SPLITS = {"train": range(0, 90), "val": range(90, 95), "test": range(95, 100)}


def plural(noun: str) -> str:
    if noun in PLURAL:
        return PLURAL[noun]
    if noun.endswith(("s", "x", "ch", "sh")):
        return noun + "es"
    return noun + "s"


def a(word: str) -> str:
    return ("an " if word[0] in "aeiou" else "a ") + word


def split_of(text: str) -> str:
    """The split a document belongs to: a stable hash of its text (90% train, 5% val, 5% test)."""
    bucket = int.from_bytes(hashlib.blake2b(text.encode("utf-8"), digest_size=4).digest(), "little") % 100
    return "train" if bucket < 90 else ("val" if bucket < 95 else "test")


def behaviour(obj: str, action: str) -> str:
    return MATERIALS[MATERIAL_OF[obj]][action]


# ----------------------------------------------------------------------------- documents
class _Writer:
    """Writes one document kind at a time from a seeded random.Random."""

    def __init__(self, rng: random.Random, held_out_ok: bool):
        self.r = rng
        self.held_out_ok = held_out_ok  # val/test text may mention held-out behaviour

    def person(self):
        g = self.r.choice(("she", "he"))
        return self.r.choice(NAMES[g]), PRONOUNS[g]

    def obj(self, action: str | None = None):
        """An object; if ``action`` is given, one whose behaviour for it may appear in this split."""
        while True:
            o = self.r.choice(list(MATERIAL_OF))
            if action is None or self.held_out_ok or (o, action) not in HELD_OUT:
                return o

    def describe(self, o):
        r = self.r
        k = r.random()
        if k < 0.4:
            return f"{r.choice(COLORS)} {o}"
        if k < 0.6:
            return f"{r.choice(SIZES)} {o}"
        return o

    # --- stories
    def story(self) -> str:
        r = self.r
        name, (he, him, his) = self.person()
        friend, (fhe, fhim, fhis) = self.person()
        while friend == name:
            friend, (fhe, fhim, fhis) = self.person()
        place = r.choice(PLACES)
        s = [r.choice([
            f"Once upon a time, there was a {r.choice(TRAITS)} {'girl' if he == 'she' else 'boy'} named {name}.",
            f"{name} was a {r.choice(TRAITS)} {'girl' if he == 'she' else 'boy'} who liked to play at {place}.",
            f"There once lived a {r.choice(TRAITS)} child called {name}.",
            f"{name} and {his} {r.choice(KIN)} lived in a little house near {r.choice(PLACES)}.",
        ])]
        s.append(r.choice([f"One day, {he} went to {place}.", f"One morning, {name} walked to {place}.",
                           f"After lunch, {name} ran to {place} with {friend}.", f"On a sunny day, {he} visited {place}."]))
        for _ in range(r.randint(1, 3)):
            s += r.choice([self._object_event, self._animal_event, self._weather_event, self._food_event,
                           self._friend_event])(name, he, him, his, friend, fhe)
        good = r.random() < 0.7
        feel = r.choice(FEELINGS["good" if good else "bad"])
        s.append(r.choice([f"{name} felt {feel}.", f"At the end of the day, {name} was {feel}.",
                           f"That made {name} feel {feel}.", f"{name} went home {feel} and tired."]))
        if good:
            s.append(r.choice([f"{he.capitalize()} smiled and said, \"This was the best day ever!\"",
                               f"{name} hugged {friend} and said thank you.", "The end."]))
        else:
            s.append(r.choice([f"But {friend} gave {him} a big hug, and soon {he} felt better.",
                               f"{his.capitalize()} {r.choice(KIN)} said, \"Don't worry. Tomorrow will be better.\"",
                               "The end."]))
        return " ".join(s)

    def _object_event(self, name, he, him, his, friend, fhe):
        r = self.r
        action = r.choice(("drop", "water", "fire"))
        o = self.obj(action)
        d = self.describe(o)
        found = r.choice([f"{he.capitalize()} found {a(d)} under a tree.", f"{name} saw {a(d)} on the ground.",
                          f"{friend} gave {name} {a(d)}.", f"{name} had {a(d)} in {his} bag."])
        mat = r.random() < 0.5
        out = [found] + ([f"The {o} was made of {MATERIAL_OF[o]}."] if mat else [])
        if action == "drop":
            out.append(r.choice([f"{he.capitalize()} dropped the {o} on the floor.", f"Oops! {name} dropped the {o}."]))
        elif action == "water":
            out.append(r.choice([f"{he.capitalize()} put the {o} in the water.", f"{name} threw the {o} into the pond."]))
        else:
            out.append(r.choice([f"{he.capitalize()} put the {o} near the fire.", f"{name} held the {o} over the fire."]))
        out.append(f"The {o} {behaviour(o, action)}.")
        return out

    def _animal_event(self, name, he, him, his, friend, fhe):
        r = self.r
        an = r.choice(list(ANIMALS))
        sound, home, food = ANIMALS[an]
        return r.choice([
            [f"{he.capitalize()} saw {a(an)} in {home}.", f"The {an} {sound}.",
             f"{name} gave the {an} some {food}, and the {an} ate it all."],
            [f"{a(r.choice(SIZES)).capitalize()} {an} came to say hello.", f"It {sound} at {name}.",
             f"{name} laughed because the {an} was so funny."],
            [f"{friend} showed {name} {a(an)}.", f"\"The {an} lives in {home} and eats {food},\" said {friend}."],
        ])

    def _weather_event(self, name, he, him, his, friend, fhe):
        r = self.r
        cause = r.choice(list(WEATHER))
        effect = r.choice(WEATHER[cause])
        return r.choice([[f"Suddenly, {cause}.", f"Because {cause}, {effect}."],
                         [f"That day {cause}, so {effect}."],
                         [f"{name} looked outside. {cause.capitalize()}.", f"{effect.capitalize()}."]])

    def _food_event(self, name, he, him, his, friend, fhe):
        r = self.r
        f = r.choice(FOODS)
        n = r.randint(2, 9)
        return r.choice([[f"{name} was hungry, so {he} ate {a(f)}.", f"It was very tasty."],
                         [f"{name} had {n} {plural(f)}.", f"{he.capitalize()} gave one to {friend}, "
                                                            f"so {he} had {n - 1} {plural(f) if n - 1 != 1 else f} left."],
                         [f"{friend} and {name} shared {a(f)} under a tree."]])

    def _friend_event(self, name, he, him, his, friend, fhe):
        r = self.r
        return r.choice([[f"{name} met {friend}, and they played together.", f"They ran and jumped until they were tired."],
                         [f"{friend} was sad because {fhe} lost {r.choice(['a', 'her' if fhe == 'she' else 'his'])} "
                          f"{self.obj()}.", f"{name} helped {friend} look for it, and they found it near {r.choice(PLACES)}."],
                         [f"{name} and {friend} built {a(r.choice(SIZES))} tower of blocks.", "Then it fell down, and they laughed."]])

    # --- facts
    def facts(self) -> str:
        r = self.r
        out = []
        for _ in range(r.randint(3, 6)):
            k = r.random()
            if k < 0.35:
                o = self.obj()
                out.append(r.choice([f"{a(o).capitalize()} is made of {MATERIAL_OF[o]}.",
                                     f"Q: What is {a(o)} made of?\nA: {MATERIAL_OF[o].capitalize()}."]))
            elif k < 0.55:
                m = r.choice(list(MATERIALS))
                out.append(f"Things made of {m} are {MATERIALS[m]['feel']}. Anything made of {m} {r.choice(MATERIALS[m]['facts'])}.")
            elif k < 0.8:
                action = r.choice(("drop", "water", "fire"))
                o = self.obj(action)
                q = {"drop": f"What happens if you drop {a(o)}?", "water": f"What happens if you put {a(o)} in water?",
                     "fire": f"What happens if you put {a(o)} near a fire?"}[action]
                out.append(f"Q: {q}\nA: It {behaviour(o, action)}.")
            else:
                an = r.choice(list(ANIMALS))
                sound, home, food = ANIMALS[an]
                out.append(r.choice([f"{a(an).capitalize()} lives in {home}.", f"The {an} eats {food}.",
                                     f"Q: What sound does {a(an)} make?\nA: It {sound}.",
                                     f"Q: Where does {a(an)} live?\nA: In {home}."]))
        return "\n".join(out)

    # --- math
    def math(self) -> str:
        r = self.r
        name, (he, him, his) = self.person()
        friend, _ = self.person()
        thing = r.choice(COUNTABLE)
        if r.random() < 0.5:
            x, y = r.randint(1, 60), r.randint(1, 39)
            x = min(x, 99 - y)
            q = r.choice([f"{name} has {x} {thing}. {friend} gives {him} {y} more. How many {thing} does {name} have now?",
                          f"There are {x} {thing} in a box and {y} {thing} on the table. How many {thing} are there in all?",
                          f"{name} found {x} {thing} in the morning and {y} {thing} in the afternoon. How many {thing} did {he} find?"])
            ans = x + y
            work = f"{x} + {y} = {ans}"
        else:
            x = r.randint(2, 99)
            y = r.randint(1, x)
            q = r.choice([f"{name} had {x} {thing}. {he.capitalize()} gave {y} {thing} to {friend}. How many {thing} does {name} have left?",
                          f"There were {x} {thing} in a basket. {name} took {y} of them. How many {thing} are in the basket now?",
                          f"{name} had {x} {thing} and lost {y}. How many {thing} does {he} have now?"])
            ans = x - y
            work = f"{x} - {y} = {ans}"
        return f"Problem: {q}\n{work}\nAnswer: {ans}" if r.random() < 0.5 else f"Problem: {q}\nAnswer: {ans}"

    # --- code
    def code(self) -> str:
        prog, out = self.program()
        return f"```\n{prog}\n```\nOutput: {out}"

    def program(self) -> tuple[str, str]:
        """A tiny Python program and the exact text it prints (checked by running it in the tests)."""
        r = self.r
        v = r.sample(["x", "y", "a", "b", "n", "total", "count", "k"], 2)
        k = r.random()
        x, y = r.randint(0, 20), r.randint(0, 20)
        if k < 0.3:
            op = r.choice(["+", "-"])
            return f"{v[0]} = {x}\n{v[1]} = {v[0]} {op} {y}\nprint({v[1]})", str(x + y if op == "+" else x - y)
        if k < 0.5:
            t = r.randint(0, 20)
            cmp = r.choice([">", "<"])
            cond = x > t if cmp == ">" else x < t
            w1, w2 = r.sample(["yes", "no", "big", "small", "hot", "cold", "up", "down"], 2)
            return f"{v[0]} = {x}\nif {v[0]} {cmp} {t}:\n    print(\"{w1}\")\nelse:\n    print(\"{w2}\")", w1 if cond else w2
        if k < 0.7:
            n = r.randint(1, 6)
            start = r.randint(0, 5)
            step = r.randint(1, 5)
            return (f"{v[0]} = {start}\nfor i in range({n}):\n    {v[0]} = {v[0]} + {step}\nprint({v[0]})",
                    str(start + n * step))
        if k < 0.85:
            n = r.randint(1, 5)
            word = r.choice(["hi", "ok", "go", "la", "ha"])
            return f"for i in range({n}):\n    print(\"{word}\", end=\"\")\nprint()", word * n
        items = r.sample(range(1, 10), r.randint(2, 4))
        return f"{v[0]} = {items}\nprint(len({v[0]}) + {v[0]}[0])", str(len(items) + items[0])

    # --- in-context learning
    def icl(self, n_pairs: int | None = None) -> str:
        r = self.r
        n = n_pairs or r.randint(3, 7)
        src = r.sample(CODE_SOURCES, n)
        dst = r.sample(CODE_WORDS, n)
        lines = [r.choice(["Here is a secret code.", "Learn these new words.", "In the secret language:"])]
        lines += [f"{s} -> {d}" for s, d in zip(src, dst)]
        queries = r.sample(range(n), min(n, r.randint(1, 3)))
        lines += [f"{src[i]} -> {dst[i]}" for i in queries]
        return "\n".join(lines)


def _kind_sequence(rng: random.Random, mix: dict[str, float]):
    kinds, weights = zip(*mix.items())
    while True:
        yield rng.choices(kinds, weights)[0]


def _check_mix(mix):
    mix = dict(DEFAULT_MIX if mix is None else mix)
    unknown = set(mix) - set(DEFAULT_MIX)
    if unknown:
        raise ValueError(f"unknown document kind(s) {sorted(unknown)} in mix; kinds are {sorted(DEFAULT_MIX)}")
    if any(w < 0 for w in mix.values()) or sum(mix.values()) <= 0:
        raise ValueError(f"mix proportions must be non-negative and not all zero, got {mix}")
    return {k: w for k, w in mix.items() if w > 0}


def iter_documents(split: str = "train", seed: int = 0, mix: dict | None = None) -> Iterator[str]:
    """An endless, deterministic stream of TinyTales documents of one split.

    ``mix`` gives the proportions of document kinds (default :data:`DEFAULT_MIX`). A document
    is kept only if :func:`split_of` assigns it to ``split``, so splits never overlap; training
    text never states a held-out (object, behaviour) pair."""
    if split not in SPLITS:
        raise ValueError(f"split must be one of {list(SPLITS)}, got {split!r}")
    mix = _check_mix(mix)
    rng = random.Random(f"tinytales-{seed}-{split}")
    w = _Writer(rng, held_out_ok=split != "train")
    for kind in _kind_sequence(rng, mix):
        doc = getattr(w, kind)()
        if split_of(doc) == split:
            yield doc


def corpus_text(split: str = "train", n_chars: int = 1_000_000, seed: int = 0, mix: dict | None = None,
                sep: str = "\n\n") -> str:
    """About ``n_chars`` characters of one split, documents joined by ``sep``."""
    docs, total = [], 0
    for doc in iter_documents(split, seed, mix):
        docs.append(doc)
        total += len(doc) + len(sep)
        if total >= n_chars:
            break
    return sep.join(docs)


_WORD = re.compile(r"[A-Za-z']+")
_SENT = re.compile(r"(?<=[.!?])\s+|\n")


def corpus_stats(texts: Iterable[str] | str) -> dict:
    """Size and variety of a corpus: documents, characters, words, vocabulary, distinct
    sentences and the unigram word entropy (bits per word)."""
    if isinstance(texts, str):
        texts = [texts]
    words: Counter = Counter()
    sentences: set[str] = set()
    n_docs = n_chars = n_sent = 0
    for t in texts:
        n_docs += 1
        n_chars += len(t)
        words.update(w.lower() for w in _WORD.findall(t))
        for s in _SENT.split(t):
            if s.strip():
                n_sent += 1
                sentences.add(s.strip())
    total = sum(words.values())
    entropy = -sum(c / total * math.log2(c / total) for c in words.values()) if total else 0.0
    return {"n_docs": n_docs, "n_chars": n_chars, "n_words": total, "vocabulary": len(words),
            "n_sentences": n_sent, "distinct_sentences": len(sentences), "unigram_entropy_bits": entropy}


# ----------------------------------------------------------------------------- probe items
def _probe_rng(task: str, seed: int) -> random.Random:
    return random.Random(f"tinytales-probe-{task}-{seed}")


def commonsense_items(n: int = 100, seed: int = 0) -> list[dict]:
    """Multiple choice about held-out (object, behaviour) pairs: the model has seen the object's
    material and how that material behaves, never this object doing it.

    Each item: ``context`` (ends before the answer), ``options`` (4 continuations), ``label``."""
    rng = _probe_rng("commonsense", seed)
    pairs = sorted(HELD_OUT)
    items = []
    for i in range(n):
        o, action = pairs[i % len(pairs)] if i < len(pairs) else rng.choice(pairs)
        name = rng.choice(NAMES["she"] + NAMES["he"])
        verb = {"drop": f"{name} dropped the {o} on the floor.", "water": f"{name} put the {o} in the water.",
                "fire": f"{name} put the {o} near the fire."}[action]
        right = behaviour(o, action)
        wrong = sorted({MATERIALS[m][action] for m in MATERIALS} - {right})
        options = [right] + rng.sample(wrong, 3)
        rng.shuffle(options)
        items.append({"context": f"{name} had a {o}. {verb} The {o}", "options": [" " + x + "." for x in options],
                      "label": options.index(right), "object": o, "action": action})
    return items


def icl_items(n: int = 100, shots: int = 5, seed: int = 0, n_options: int = 4) -> list[dict]:
    """Secret-code lessons: ``shots`` word pairs shown in the prompt, then a query word whose code
    is given only in the prompt (for 0 shots it is given nowhere: chance level). The options are
    the query's code and codes of other words of the prompt (or random codes)."""
    rng = _probe_rng(f"icl-{shots}", seed)
    items = []
    for _ in range(n):
        k = max(shots, n_options)
        src = rng.sample(CODE_SOURCES, k + 1)
        dst = rng.sample(CODE_WORDS, k + 1)
        q = rng.randrange(shots) if shots > 0 else k  # the query is one of the shown pairs
        shown = [f"{s} -> {d}" for s, d in zip(src[:shots], dst[:shots])]
        header = "Here is a secret code."
        context = "\n".join([header] + shown + [f"{src[q]} ->"])
        others = [d for i, d in enumerate(dst) if i != q]
        options = [dst[q]] + rng.sample(others, n_options - 1)
        rng.shuffle(options)
        items.append({"context": context, "options": [" " + o for o in options], "label": options.index(dst[q]),
                      "shots": shots})
    return items


def math_items(n: int = 100, seed: int = 0) -> list[dict]:
    """Word problems from the test split: ``prompt`` ends with "Answer:", ``answer`` is the number."""
    items = []
    for doc in iter_documents("test", seed=seed, mix={"math": 1.0}):
        q = doc.split("\n")[0]
        ans = doc.rsplit("Answer: ", 1)[1]
        items.append({"prompt": q + "\nAnswer:", "answer": ans})
        if len(items) == n:
            return items
    return items


def code_items(n: int = 100, seed: int = 0) -> list[dict]:
    """Tiny programs from the test split: ``prompt`` ends with "Output:", ``answer`` is what it prints."""
    items = []
    for doc in iter_documents("test", seed=seed, mix={"code": 1.0}):
        prog, out = doc.rsplit("\nOutput: ", 1)
        items.append({"prompt": prog + "\nOutput:", "answer": out})
        if len(items) == n:
            return items
    return items
