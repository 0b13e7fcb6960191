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
"""
from __future__ import annotations

import hashlib
import json
import math
import os
import random
import re
from collections import Counter
from pathlib import Path
from typing import Iterable, Iterator

# ============================================================================ the world
NAMES = {
    "she": ["Mia", "Lily", "Emma", "Anna", "Sara", "Lucy", "Nora", "Zoe", "Ella", "Ruby", "Maya", "Ivy", "Rosa",
            "Kate", "Jane", "Amy", "Lena", "Tara", "Nina", "Clara", "Alice", "Daisy", "Hannah", "Grace", "Sophie",
            "Julia", "Eva", "Molly", "Hazel", "Olivia"],
    "he": ["Tom", "Ben", "Sam", "Leo", "Max", "Jack", "Finn", "Owen", "Noah", "Liam", "Adam", "Luke", "Eli", "Omar",
           "Hugo", "Theo", "Ryan", "Jake", "Paul", "Oscar", "Felix", "Henry", "Peter", "Danny", "Lucas",
           "Mark", "Carl", "Ivan", "Tim", "Oliver"],
}
ALL_NAMES = NAMES["she"] + NAMES["he"]
PRONOUNS = {"she": ("she", "her", "her"), "he": ("he", "him", "his")}  # subject, object, possessive
TRAITS = ["kind", "brave", "curious", "shy", "funny", "clever", "quiet", "cheerful", "careful", "gentle", "busy",
          "lazy", "friendly", "polite", "playful", "honest", "patient", "helpful", "silly", "proud"]
KIN = ["mom", "dad", "grandma", "grandpa", "sister", "brother", "friend", "teacher", "aunt", "uncle", "cousin",
       "neighbor"]
# place -> the objects one finds there (each object lives in exactly one place: a learnable fact)
PLACES = ["the park", "the beach", "the forest", "the farm", "the garden", "the kitchen", "the school", "the river",
          "the market", "the library", "the lake", "the hill", "the zoo", "the shop", "the yard", "the playground",
          "the bakery", "the meadow", "the barn", "the cave", "the pond", "the street", "the attic", "the bedroom",
          "the bathroom", "the station", "the village", "the field"]
OUTDOOR = ["the park", "the beach", "the forest", "the farm", "the garden", "the river", "the lake", "the hill",
           "the zoo", "the playground", "the meadow", "the pond", "the field", "the market", "the school"]
ANIMAL_ADJ = ["big", "small", "little", "young", "old", "friendly", "sleepy", "shy", "happy", "noisy"]
COLORS = ["red", "blue", "green", "yellow", "white", "black", "brown", "pink", "purple", "orange", "gray", "golden"]
SIZES = ["big", "small", "tiny", "long", "short", "old", "new", "round", "little", "huge", "pretty", "dirty",
         "clean", "funny", "strange", "lovely"]
TIMES = ["One day", "One morning", "One evening", "On a sunny day", "After lunch", "On Sunday", "Last summer",
         "One cold morning", "After school", "Early in the morning", "On a rainy afternoon", "One winter day"]

# Materials: the rules every object of the material obeys (these make commonsense learnable).
# "drop" / "water" / "fire" are what happens to a thing of that material; "feel" is how it feels.
MATERIALS = {
    "glass": {"drop": "breaks into many pieces", "water": "sinks to the bottom", "fire": "gets very hot",
              "facts": ["can break", "is hard", "lets light through"], "feel": "smooth and hard"},
    "wood": {"drop": "makes a loud knock", "water": "floats on the water", "fire": "burns to ashes",
             "facts": ["floats on water", "can burn", "is hard"], "feel": "rough and hard"},
    "metal": {"drop": "makes a loud clang", "water": "sinks to the bottom", "fire": "gets very hot",
              "facts": ["sinks in water", "is hard", "can get very hot"], "feel": "cold and hard"},
    "paper": {"drop": "floats down slowly", "water": "gets wet and soft", "fire": "burns to ashes",
              "facts": ["can tear", "can burn", "is light"], "feel": "thin and light"},
    "cloth": {"drop": "falls down softly", "water": "gets wet and heavy", "fire": "burns to ashes",
              "facts": ["is soft", "can burn", "keeps you warm"], "feel": "soft and warm"},
    "ice": {"drop": "cracks into pieces", "water": "floats and melts", "fire": "melts away",
            "facts": ["is cold", "melts in the sun", "floats on water"], "feel": "cold and wet"},
    "stone": {"drop": "makes a loud thud", "water": "sinks to the bottom", "fire": "stays the same",
              "facts": ["is heavy", "sinks in water", "is hard"], "feel": "hard and heavy"},
    "rubber": {"drop": "bounces up high", "water": "floats on the water", "fire": "melts and smells bad",
               "facts": ["can bounce", "can stretch", "floats on water"], "feel": "soft and bouncy"},
}
_PAST = {"breaks": "broke", "sinks": "sank", "gets": "got", "makes": "made", "floats": "floated", "burns": "burned",
         "falls": "fell", "cracks": "cracked", "melts": "melted", "stays": "stayed", "bounces": "bounced",
         "smells": "smelled"}


def past(phrase: str) -> str:
    """The past tense of a behaviour phrase: "breaks into many pieces" -> "broke into many pieces"."""
    return " ".join(_PAST.get(w, w) for w in phrase.split(" "))


ACTIONS = ("drop", "water", "fire")
# object -> (material, where it is found, what it is for)
OBJECT_INFO = {
    # glass
    "cup": ("glass", "the kitchen", "drink milk"), "bottle": ("glass", "the kitchen", "keep water"),
    "jar": ("glass", "the kitchen", "keep jam"), "vase": ("glass", "the bedroom", "hold flowers"),
    "window": ("glass", "the school", "look outside"), "mirror": ("glass", "the bathroom", "see your face"),
    "bowl": ("glass", "the kitchen", "eat soup"), "lamp": ("glass", "the attic", "give light"),
    "marble": ("glass", "the playground", "play games"), "bead": ("glass", "the shop", "make a necklace"),
    # wood
    "stick": ("wood", "the forest", "draw in the sand"), "chair": ("wood", "the school", "sit on"),
    "table": ("wood", "the kitchen", "eat dinner on"), "box": ("wood", "the attic", "keep toys"),
    "boat": ("wood", "the lake", "sail on the water"), "spoon": ("wood", "the kitchen", "stir the soup"),
    "door": ("wood", "the barn", "keep the animals in"), "block": ("wood", "the bedroom", "build towers"),
    "flute": ("wood", "the school", "play music"), "stool": ("wood", "the bakery", "reach high shelves"),
    # metal
    "key": ("metal", "the street", "open doors"), "coin": ("metal", "the market", "buy things"),
    "nail": ("metal", "the barn", "fix the fence"), "bell": ("metal", "the school", "ring at noon"),
    "pot": ("metal", "the kitchen", "cook rice"), "fork": ("metal", "the kitchen", "eat cake"),
    "ring": ("metal", "the shop", "wear on a finger"), "can": ("metal", "the market", "keep beans"),
    "whistle": ("metal", "the playground", "call the dog"), "lock": ("metal", "the station", "keep bikes safe"),
    # paper
    "book": ("paper", "the library", "read stories"), "letter": ("paper", "the village", "send news"),
    "map": ("paper", "the station", "find the way"), "kite": ("paper", "the field", "fly in the wind"),
    "card": ("paper", "the shop", "say happy birthday"), "note": ("paper", "the school", "remember things"),
    "bag": ("paper", "the bakery", "carry bread"), "ticket": ("paper", "the station", "ride the train"),
    "poster": ("paper", "the library", "show pictures"), "napkin": ("paper", "the bakery", "wipe your mouth"),
    # cloth
    "hat": ("cloth", "the beach", "keep the sun away"), "sock": ("cloth", "the bedroom", "keep feet warm"),
    "scarf": ("cloth", "the village", "keep the neck warm"), "shirt": ("cloth", "the shop", "wear to school"),
    "blanket": ("cloth", "the bedroom", "stay warm at night"), "coat": ("cloth", "the street", "stay warm outside"),
    "glove": ("cloth", "the garden", "keep hands clean"), "pillow": ("cloth", "the bedroom", "rest your head"),
    "towel": ("cloth", "the bathroom", "dry your hands"), "flag": ("cloth", "the hill", "show the way"),
    # ice
    "ice cube": ("ice", "the kitchen", "cool a drink"), "snowball": ("ice", "the field", "throw at friends"),
    "icicle": ("ice", "the cave", "look at"), "ice block": ("ice", "the market", "keep fish cold"),
    "snowman": ("ice", "the yard", "play in winter"), "ice sculpture": ("ice", "the park", "look at"),
    # stone
    "rock": ("stone", "the hill", "sit on"), "pebble": ("stone", "the river", "skip on the water"),
    "brick": ("stone", "the farm", "build walls"), "statue": ("stone", "the park", "look at"),
    "boulder": ("stone", "the cave", "block the way"), "millstone": ("stone", "the farm", "grind wheat"),
    # rubber
    "ball": ("rubber", "the park", "play catch"), "boot": ("rubber", "the garden", "walk in the mud"),
    "duck toy": ("rubber", "the bathroom", "play in the bath"), "band": ("rubber", "the school", "hold pencils"),
    "tire": ("rubber", "the street", "roll a bike"), "eraser": ("rubber", "the school", "fix mistakes"),
}
OBJECTS = {m: [o for o, (mm, _, _) in OBJECT_INFO.items() if mm == m] for m in MATERIALS}
MATERIAL_OF = {o: info[0] for o, info in OBJECT_INFO.items()}
PLACE_OF = {o: info[1] for o, info in OBJECT_INFO.items()}
USE_OF = {o: info[2] for o, info in OBJECT_INFO.items()}

# Held out from EVERY split's text: the model sees the material of these objects and how the
# material behaves, but never these objects doing it. The commonsense probes ask exactly these.
HELD_OUT = frozenset({
    ("marble", "drop"), ("bead", "water"), ("mirror", "fire"), ("vase", "drop"),
    ("flute", "water"), ("stool", "fire"), ("block", "drop"),
    ("whistle", "water"), ("lock", "drop"), ("ring", "fire"),
    ("ticket", "fire"), ("napkin", "water"), ("poster", "drop"),
    ("towel", "fire"), ("flag", "drop"), ("glove", "water"),
    ("ice block", "fire"), ("icicle", "drop"), ("ice sculpture", "water"),
    ("boulder", "water"), ("statue", "drop"), ("millstone", "fire"),
    ("eraser", "drop"), ("tire", "water"), ("band", "fire"),
})
HELD_OUT_OBJECTS = frozenset(o for o, _ in HELD_OUT)

ANIMALS = {  # animal: (what it does when happy, where it lives, what it eats)
    "dog": ("barked", "in the yard", "bones"), "cat": ("purred", "in the house", "fish"),
    "cow": ("mooed", "on the farm", "grass"), "duck": ("quacked", "on the pond", "bread"),
    "bird": ("sang", "in a tree", "seeds"), "horse": ("neighed", "in the barn", "hay"),
    "sheep": ("baaed", "in the meadow", "grass"), "frog": ("croaked", "in the pond", "flies"),
    "owl": ("hooted", "in the forest", "mice"), "bee": ("buzzed", "in the garden", "nectar"),
    "pig": ("oinked", "on the farm", "apples"), "mouse": ("squeaked", "in the attic", "cheese"),
    "lion": ("roared", "at the zoo", "meat"), "fox": ("yelped", "in the forest", "berries"),
    "goat": ("bleated", "on the hill", "leaves"), "rabbit": ("sniffed", "in the field", "carrots"),
    "monkey": ("chattered", "at the zoo", "bananas"), "hen": ("clucked", "in the barn", "corn"),
    "wolf": ("howled", "in the forest", "meat"), "squirrel": ("chirped", "in the park", "nuts"),
}
FOODS = {  # food: taste
    "apple": "sweet", "banana": "sweet", "cookie": "sweet", "cake": "sweet", "sandwich": "tasty", "pear": "juicy",
    "carrot": "crunchy", "orange": "juicy", "muffin": "soft", "plum": "juicy", "pie": "warm", "grape": "sweet",
    "lemon": "sour", "cherry": "sweet", "peach": "juicy", "bun": "soft", "soup": "hot", "cracker": "salty",
    "pickle": "sour", "honey cake": "sweet",
}
WEATHER = {  # cause: the effects it has (every effect belongs to exactly one cause)
    "it rained all day": ["the ground was wet", "there were puddles everywhere", "everyone stayed inside"],
    "the sun was very hot": ["the ice cream melted", "everyone was thirsty", "the grass was dry"],
    "it snowed all night": ["the ground was white", "the children made a snowman", "the road was slippery"],
    "the wind blew hard": ["the leaves flew away", "the kite went up high", "the door slammed shut"],
    "a thick fog came down": ["nobody could see far", "the cars drove slowly", "the hills were hidden"],
    "the night was very cold": ["the pond froze", "the windows were frosty", "everyone wore warm coats"],
}
EFFECT_CAUSE = {e: c for c, es in WEATHER.items() for e in es}
# feelings and what causes them (the causes are templates: {his} = possessive pronoun)
FEELING_CAUSES = {
    "happy": ["got a new {toy} for {his} birthday", "found the {toy} {he} had lost", "got a big hug from {his} {kin}"],
    "sad": ["lost {his} favorite {toy}", "had to say goodbye to {his} best friend", "saw that {his} {toy} was broken"],
    "scared": ["heard a loud noise in the dark", "saw a big shadow on the wall", "was lost in the forest at night"],
    "angry": ["saw someone break {his} {toy} on purpose", "was pushed by a bully", "had {his} {toy} taken away"],
    "tired": ["ran around the park all day", "walked up the hill three times", "helped on the farm from dawn to dusk"],
    "hungry": ["had not eaten since breakfast", "smelled fresh bread from the bakery", "skipped lunch to play"],
    "proud": ["won the race at school", "built a tall tower all alone", "read a whole book by {himself}"],
}
FEELINGS = list(FEELING_CAUSES)
GOOD_FEELINGS = {"happy", "proud"}
TOYS = ["ball", "kite", "duck toy", "doll", "teddy bear", "toy car", "drum", "puzzle", "robot", "yo-yo", "marble", "block"]
COUNTABLE = ["apple", "cookie", "pencil", "marble", "sticker", "book", "coin", "shell", "flower", "egg", "ball", "card",
             "stone", "toy", "cupcake", "button", "candy", "boat", "kite", "ring", "carrot", "pear", "bead", "key",
             "sock", "block", "plum", "nut", "leaf", "feather"]
PLURAL = {"box": "boxes", "glass": "glasses", "brush": "brushes", "peach": "peaches", "mouse": "mice", "sheep": "sheep",
          "fish": "fish", "cherry": "cherries", "pony": "ponies", "bus": "buses", "sandwich": "sandwiches",
          "knife": "knives", "leaf": "leaves", "wolf": "wolves", "child": "children", "candy": "candies"}

# In-context "secret words": invented words with no meaning outside one document. Each
# belongs to one split by hash, so the probes' secret words never occur in training text.
_ONSETS = ["b", "d", "f", "g", "k", "l", "m", "n", "p", "r", "s", "t", "v", "z", "bl", "br", "dr", "fl", "gr",
           "kr", "pl", "pr", "sl", "sn", "st", "tr", "gl", "sp"]
_VOWELS = ["a", "e", "i", "o", "u"]
_CODAS = ["b", "d", "g", "k", "m", "n", "p", "t", "x", "z", "ck", "sh", "nt", "mp", "sk", "rp", "lf"]
# the groups in which secret words sort things
ICL_GROUPS = {
    "animals": list(ANIMALS),
    "foods": list(FOODS),
    "colors": COLORS,
    "names": ALL_NAMES,
    "places": [p.split(" ", 1)[1] for p in PLACES],
    "feelings": FEELINGS + ["glad", "upset", "calm", "lonely", "excited", "worried"],
    "numbers": ["one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven", "twelve"],
}
# Pattern lessons: "x -> f(x)" lines for one relation f of the world; which relation is meant is
# given only by the examples (a query alone could be answered by any of its domain's relations).
RELATIONS = {
    "eats": ("animals", lambda x: ANIMALS[x][2]),
    "home": ("animals", lambda x: ANIMALS[x][1].rsplit(" ", 1)[1]),
    "sound": ("animals", lambda x: ANIMALS[x][0]),
    "material": ("objects", lambda x: MATERIAL_OF[x]),
    "place": ("objects", lambda x: PLACE_OF[x].split(" ", 1)[1]),
    "use": ("objects", lambda x: USE_OF[x]),
    "taste": ("foods", lambda x: FOODS[x]),
}
PATTERN_HEADERS = ("Follow the pattern.", "Continue the list.", "Do what the examples do.", "Answer like the examples.")
CODE_WORDS_SOURCE = list(ANIMALS) + list(FOODS) + COLORS + ["sun", "moon", "tree", "house", "river", "star", "shoe"]

DEFAULT_MIX = {"story": 0.45, "facts": 0.15, "math": 0.13, "code": 0.13, "icl": 0.14}
KINDS = tuple(DEFAULT_MIX)
SPLITS = {"train": range(0, 90), "val": range(90, 95), "test": range(95, 100)}


def plural(noun: str) -> str:
    if noun in PLURAL:
        return PLURAL[noun]
    if " " in noun:
        head, last = noun.rsplit(" ", 1)
        return f"{head} {plural(last)}"
    if noun.endswith(("s", "x", "ch", "sh")):
        return noun + "es"
    return noun + "s"


def a(word: str) -> str:
    """``word`` with its indefinite article: "an apple", "a cup", "an honest"."""
    w = word.lower()
    return ("an " if w[0] in "aeiou" or w.startswith(("honest", "hour")) else "a ") + word


def cap(s: str) -> str:
    return s[:1].upper() + s[1:]


def _bucket(text: str) -> int:
    return int.from_bytes(hashlib.blake2b(text.encode("utf-8"), digest_size=4).digest(), "little") % 100


def split_of(text: str) -> str:
    """The split a document (or problem, program, secret word) belongs to: a stable hash of its
    text, 90% train, 5% val, 5% test."""
    b = _bucket(text)
    return "train" if b < 90 else ("val" if b < 95 else "test")


def behaviour(obj: str, action: str) -> str:
    """What happens to ``obj`` under ``action`` ("drop", "water", "fire"): its material decides."""
    return MATERIALS[MATERIAL_OF[obj]][action]


def _make_secret_words() -> dict[str, list[str]]:
    words = sorted({o + v + c for o in _ONSETS for v in _VOWELS for c in _CODAS}
                   | {o + v + c + "o" for o in _ONSETS[:14] for v in _VOWELS for c in _CODAS[:10]})
    out = {s: [] for s in SPLITS}
    for w in words:
        if w not in _WORLD_WORDS:
            out[split_of("secret:" + w)].append(w)
    return out


# ============================================================================ documents
class _Writer:
    """Writes documents of every kind from one seeded ``random.Random``; ``split`` decides which
    word problems, programs and secret words it may use."""

    def __init__(self, rng: random.Random, split: str):
        self.r = rng
        self.split = split

    # ---------------------------------------------------------------- helpers
    def person(self, avoid: str | None = None):
        g = self.r.choice(("she", "he"))
        name = self.r.choice(NAMES[g])
        while name == avoid:
            name = self.r.choice(NAMES[g])
        return name, g

    def obj(self, action: str | None = None, material: str | None = None) -> str:
        """An object; with ``action``, one whose behaviour under it may be written (not held out)."""
        pool = OBJECTS[material] if material else list(OBJECT_INFO)
        while True:
            o = self.r.choice(pool)
            if action is None or (o, action) not in HELD_OUT:
                return o

    def describe(self, o: str) -> str:
        k = self.r.random()
        if k < 0.3:
            return f"{self.r.choice(COLORS)} {o}"
        if k < 0.45:
            return f"{self.r.choice(SIZES)} {o}"
        if k < 0.6 and MATERIAL_OF[o] not in ("ice", "stone"):  # not "an ice snowball", "a stone rock"
            return f"{MATERIAL_OF[o]} {o}"
        return o

    # ---------------------------------------------------------------- stories
    def story(self) -> str:
        r = self.r
        name, g = self.person()
        he, him, his = PRONOUNS[g]
        friend, fg = self.person(avoid=name)
        place = r.choice(OUTDOOR)
        kid = "girl" if g == "she" else "boy"
        ctx = dict(name=name, he=he, him=him, his=his, friend=friend, fg=fg, place=place, kid=kid)
        s = [r.choice([
            f"Once upon a time, there was a {r.choice(TRAITS)} {kid} named {name}.",
            f"{name} was a {r.choice(TRAITS)} {kid} who liked to play at {r.choice(OUTDOOR)}.",
            f"There once lived a {r.choice(TRAITS)} little {kid} called {name}.",
            f"{name} and {his} {r.choice(KIN)} lived in a little house near {r.choice(OUTDOOR)}.",
            f"{name} was {a(r.choice(TRAITS))} {kid}. {cap(he)} had a friend named {friend}.",
            f"In a small village, there lived a {kid} named {name}. {cap(he)} was very {r.choice(TRAITS)}.",
        ])]
        s.append(r.choice([f"{r.choice(TIMES)}, {he} went to {place} with {his} friend {friend}.",
                           f"{r.choice(TIMES)}, {name} walked to {place}. {cap(his)} friend {friend} came too.",
                           f"{r.choice(TIMES)}, {name} ran to {place} with {friend}.",
                           f"{r.choice(TIMES)}, {name} and {friend} went to {place} to play.",
                           f"{r.choice(TIMES)}, {his} {r.choice(KIN)} took {him} and {friend} to {place}.",
                           f"{r.choice(TIMES)}, {name} met {friend} at {place}."]))
        events = [self._object_event, self._object_event, self._animal_event, self._weather_event,
                  self._food_event, self._friend_event, self._feeling_event, self._find_event]
        for ev in r.sample(events, r.randint(2, 4)):
            s += ev(ctx)
        good = r.random() < 0.7
        feel = r.choice(["happy", "glad", "proud", "calm", "thankful"] if good else ["sad", "tired", "upset", "sleepy"])
        s.append(r.choice([f"{name} felt {feel}.", f"At the end of the day, {name} was {feel}.",
                           f"That evening, {name} went home. {cap(he)} was {feel}.",
                           f"When the sun went down, {name} was {feel} and went to bed."]))
        if good:
            s.append(r.choice([f"{cap(he)} smiled and said, \"This was the best day ever!\"",
                               f"{name} hugged {friend} and said thank you.", "The end.",
                               f"From that day on, {name} and {friend} were best friends."]))
        else:
            s.append(r.choice([f"But {friend} gave {him} a big hug, and soon {he} felt better.",
                               f"{cap(his)} {r.choice(KIN)} said, \"Don't worry. Tomorrow will be better.\"",
                               "The end.", f"The next day, {name} felt much better."]))
        return " ".join(s)

    def _object_event(self, c):
        r = self.r
        action = r.choice(ACTIONS)
        o = self.obj(action)
        name, he, his, friend = c["name"], c["he"], c["his"], c["friend"]
        d = self.describe(o)
        found = r.choice([f"{cap(he)} found {a(d)} on the ground.", f"{name} saw {a(d)} near a tree.",
                          f"{friend} gave {name} {a(d)}.", f"{name} had {a(d)} in {his} bag.",
                          f"{name} picked up {a(d)}.", f"There was {a(d)} on the table."])
        out = [found]
        if r.random() < 0.6 and not d.startswith(MATERIAL_OF[o]):
            out.append(r.choice([f"The {o} was made of {MATERIAL_OF[o]}.", f"It was made of {MATERIAL_OF[o]}."]))
        if action == "drop":
            out.append(r.choice([f"{cap(he)} dropped the {o} on the floor.", f"Oops! {name} dropped the {o}.",
                                 f"The {o} slipped out of {his} hands and fell.", f"{friend} dropped the {o} by mistake."]))
        elif action == "water":
            out.append(r.choice([f"{cap(he)} put the {o} in the water.", f"{name} threw the {o} into the pond.",
                                 f"The {o} fell into the river.", f"{name} dropped the {o} into a bucket of water."]))
        else:
            out.append(r.choice([f"{cap(he)} put the {o} near the fire.", f"{name} held the {o} over the fire.",
                                 f"{friend} left the {o} next to the fire.", f"The {o} was too close to the fire."]))
        out.append(f"The {o} {past(behaviour(o, action))}.")
        if action == "drop" and MATERIAL_OF[o] in ("glass", "ice"):
            out.append(r.choice([f"{name} was sad.", f"\"Oh no!\" said {name}.", f"{friend} helped clean it up."]))
        elif r.random() < 0.3:
            out.append(r.choice([f"\"Look!\" said {name}.", f"{name} laughed.", f"\"Wow,\" said {friend}."]))
        return out

    def _find_event(self, c):
        r = self.r
        o = r.choice(list(OBJECT_INFO))
        place, use = PLACE_OF[o], USE_OF[o]
        name, he, his = c["name"], c["he"], c["his"]
        return r.choice([
            [f"In {place}, {name} found {a(self.describe(o))}.", f"{cap(he)} used it to {use}."],
            [f"{name} needed {a(o)} to {use}.", f"{cap(he)} looked in {place} and found one there."],
            [f"{name} went to {place} to get {a(o)}.", f"\"We use {a(o)} to {use},\" said {his} {r.choice(KIN)}."],
        ])

    def _animal_event(self, c):
        r = self.r
        an = r.choice(list(ANIMALS))
        sound, home, food = ANIMALS[an]
        name, he, friend = c["name"], c["he"], c["friend"]
        return r.choice([
            [f"{cap(he)} saw {a(an)} {home}.", f"The {an} {sound}.",
             f"{name} gave the {an} some {food}, and the {an} ate it all."],
            [f"{cap(a(r.choice(ANIMAL_ADJ)))} {an} came to say hello.", f"It {sound} at {name}.",
             f"{name} laughed because the {an} was so funny."],
            [f"{friend} showed {name} {a(an)}.", f"\"The {an} lives {home} and eats {food},\" said {friend}."],
            [f"On the way, they met {a(an)}.", f"The {an} was hungry, so {name} gave it some {food}."],
        ])

    def _weather_event(self, c):
        r = self.r
        cause = r.choice(list(WEATHER))
        effect = r.choice(WEATHER[cause])
        name = c["name"]
        return r.choice([[f"Suddenly, {cause}.", f"Because {cause}, {effect}."],
                         [f"That day {cause}, so {effect}."],
                         [f"{name} looked outside. {cap(cause)}.", f"{cap(effect)}."],
                         [f"{cap(cause)}, so {effect}."]])

    def _food_event(self, c):
        r = self.r
        f = r.choice(list(FOODS))
        n = r.randint(2, 9)
        name, he, friend = c["name"], c["he"], c["friend"]
        return r.choice([[f"{name} was hungry, so {he} ate {a(f)}.", f"The {f} was {FOODS[f]}."],
                         [f"{name} had {n} {plural(f)}.",
                          f"{cap(he)} gave one to {friend}, so {he} had {n - 1} {plural(f) if n - 1 != 1 else f} left."],
                         [f"{friend} and {name} shared {a(f)} under a tree.", f"It was {FOODS[f]}."]])

    def _friend_event(self, c):
        r = self.r
        name, friend, fg = c["name"], c["friend"], c["fg"]
        fhe, _, fhis = PRONOUNS[fg]
        toy = r.choice(TOYS)
        return r.choice([[f"{name} met {friend}, and they played together.", "They ran and jumped until they were tired."],
                         [f"{friend} was sad because {fhe} lost {fhis} {toy}.",
                          f"{name} helped {friend} look for it, and they found it in {r.choice(PLACES)}."],
                         [f"{name} and {friend} built {a(r.choice(SIZES))} tower of blocks.",
                          "Then it fell down, and they laughed."],
                         [f"{friend} asked, \"Can I play with you?\"", f"\"Yes!\" said {name}. They played all afternoon."]])

    def _feeling_event(self, c):
        r = self.r
        feel = r.choice(FEELINGS)
        who, g = (c["name"], PRONOUNS["she" if c["he"] == "she" else "he"]) if r.random() < 0.6 else (c["friend"], PRONOUNS[c["fg"]])
        cause = _feeling_cause(r, feel, g)
        return [f"{who} {cause}.", f"{cap(g[0])} felt {feel}."] if r.random() < 0.7 else [f"{who} felt {feel} because {g[0]} {cause}."]

    # ---------------------------------------------------------------- facts
    def facts(self) -> str:
        r = self.r
        out = []
        for _ in range(r.randint(4, 8)):
            k = r.random()
            if k < 0.25:
                o = self.obj()
                m = MATERIAL_OF[o]
                out.append(r.choice([f"{cap(a(o))} is made of {m}.", f"Q: What is {a(o)} made of?\nA: {cap(m)}.",
                                     f"The {o} is made of {m}. It is {MATERIALS[m]['feel']}.",
                                     f"{cap(a(o))} is made of {m}, and {m} {r.choice(MATERIALS[m]['facts'])}."]))
            elif k < 0.4:
                m = r.choice(list(MATERIALS))
                action = r.choice(ACTIONS)
                what = {"drop": "If you drop something made of {m}, it {b}.",
                        "water": "If you put something made of {m} in water, it {b}.",
                        "fire": "If you put something made of {m} near a fire, it {b}."}[action]
                out.append(r.choice([f"Things made of {m} are {MATERIALS[m]['feel']}.",
                                     f"Anything made of {m} {r.choice(MATERIALS[m]['facts'])}.",
                                     what.format(m=m, b=MATERIALS[m][action])]))
            elif k < 0.6:
                action = r.choice(ACTIONS)
                o = self.obj(action)
                q = {"drop": f"What happens if you drop {a(o)}?", "water": f"What happens if you put {a(o)} in water?",
                     "fire": f"What happens if you put {a(o)} near a fire?"}[action]
                out.append(r.choice([f"Q: {q}\nA: It {behaviour(o, action)}.",
                                     f"The {o} is made of {MATERIAL_OF[o]}, so if you {_action_phrase(action, o)}, "
                                     f"it {behaviour(o, action)}."]))
            elif k < 0.72:
                o = r.choice(list(OBJECT_INFO))
                out.append(r.choice([f"You can find {a(o)} in {PLACE_OF[o]}.", f"People use {a(o)} to {USE_OF[o]}.",
                                     f"Q: Where can you find {a(o)}?\nA: In {PLACE_OF[o]}.",
                                     f"Q: What is {a(o)} for?\nA: You use it to {USE_OF[o]}."]))
            elif k < 0.85:
                an = r.choice(list(ANIMALS))
                sound, home, food = ANIMALS[an]
                out.append(r.choice([f"{cap(a(an))} lives {home}.", f"{cap(a(an))} eats {food}.",
                                     f"Q: What does {a(an)} eat?\nA: {cap(food)}.",
                                     f"Q: Where does {a(an)} live?\nA: {cap(home)}.",
                                     f"{cap(a(an))} is an animal. It lives {home} and eats {food}.",
                                     f"{cap(plural(an))} are animals."]))
            elif k < 0.93:
                cause = r.choice(list(WEATHER))
                effect = r.choice(WEATHER[cause])
                out.append(r.choice([f"When {cause}, {effect}.", f"Q: Why {_why(effect)}?\nA: Because {cause}."]))
            else:
                feel = r.choice(FEELINGS)
                g = PRONOUNS[r.choice(("she", "he"))]
                out.append(f"If a child {_feeling_cause(r, feel, g, generic=True)}, the child feels {feel}.")
        return "\n".join(out)

    # ---------------------------------------------------------------- math
    def math_problem(self) -> tuple[str, str, int]:
        """(question, working, answer): add or subtract, operands and answer between 0 and 99."""
        r = self.r
        name, g = self.person()
        he, him, his = PRONOUNS[g]
        friend, _ = self.person(avoid=name)
        noun = r.choice(COUNTABLE)
        things = plural(noun)

        def n_(k: int) -> str:  # "1 apple", "3 apples"
            return f"{k} {noun if k == 1 else things}"

        if r.random() < 0.5:
            x, y = _operands(r, add=True)
            q = r.choice([
                f"{name} has {n_(x)}. {friend} gives {him} {y} more. How many {things} does {name} have now?",
                f"There are {n_(x)} in a box and {n_(y)} on the table. How many {things} are there in all?",
                f"{name} found {n_(x)} in the morning and {n_(y)} in the afternoon. How many {things} did {he} find?",
                f"{name} has {n_(x)} and {friend} has {n_(y)}. How many {things} do they have together?",
                f"There were {n_(x)} in the bag. {name} put in {y} more. How many {things} are in the bag now?",
                f"What is {x} plus {y}?",
            ])
            ans, work = x + y, f"{x} + {y} = {x + y}"
        else:
            x, y = _operands(r, add=False)
            q = r.choice([
                f"{name} had {n_(x)}. {cap(he)} gave {n_(y)} to {friend}. How many {things} does {name} have left?",
                f"There were {n_(x)} in a basket. {name} took {y} of them. How many {things} are in the basket now?",
                f"{name} had {n_(x)} and lost {y}. How many {things} does {he} have now?",
                f"{name} has {n_(x)}. {friend} has {n_(y)}. How many more {things} does {name} have than {friend}?",
                f"There were {n_(x)} on the shelf. {y} fell off. How many {things} are still on the shelf?",
                f"What is {x} minus {y}?",
            ])
            ans, work = x - y, f"{x} - {y} = {x - y}"
        return q, work, ans

    def math(self) -> str:
        out = []
        for _ in range(self.r.randint(2, 5)):
            q, work, ans = self.math_problem()
            if split_of("math:" + q) == self.split:  # each problem belongs to one split
                out.append(f"Problem: {q}\n{work}\nAnswer: {ans}")
        return "\n\n".join(out)

    # ---------------------------------------------------------------- code
    def program(self) -> tuple[str, str]:
        """A tiny Python program and the exact text it prints (the tests run every one)."""
        r = self.r
        v, w = r.sample(["x", "y", "a", "b", "n", "total", "count", "k", "score", "m"], 2)
        k = r.random()
        x, y = r.randint(0, 20), r.randint(0, 20)
        if k < 0.15:
            op = r.choice(["+", "-"])
            if op == "-" and y > x:
                x, y = y, x
            return f"{v} = {x}\nprint({v} {op} {y})", str(x + y if op == "+" else x - y)
        if k < 0.35:
            op = r.choice(["+", "-"])
            if op == "-" and y > x:
                x, y = y, x
            return f"{v} = {x}\n{w} = {v} {op} {y}\nprint({w})", str(x + y if op == "+" else x - y)
        if k < 0.45:
            op = r.choice(["+", "-"])
            if op == "-" and y > x:
                x, y = y, x
            return f"{v} = {x}\n{w} = {y}\nprint({v} {op} {w})", str(x + y if op == "+" else x - y)
        if k < 0.6:
            t = r.randint(0, 20)
            cmp = r.choice([">", "<"])
            cond = x > t if cmp == ">" else x < t
            w1, w2 = r.sample(["yes", "no", "big", "small", "hot", "cold", "up", "down", "cat", "dog"], 2)
            return f"{v} = {x}\nif {v} {cmp} {t}:\n    print(\"{w1}\")\nelse:\n    print(\"{w2}\")", w1 if cond else w2
        if k < 0.75:
            n = r.randint(1, 5)
            start = r.randint(0, 10)
            step = r.randint(1, 5)
            op = "+" if r.random() < 0.7 or start < n * step else "-"
            end = start + n * step if op == "+" else start - n * step
            return (f"{v} = {start}\nfor i in range({n}):\n    {v} = {v} {op} {step}\nprint({v})", str(end))
        if k < 0.85:
            word = r.choice(["hi", "cat", "sun", "red", "big", "yes", "no", "go"])
            return f"{v} = \"{word}\"\nprint({v})", word
        if k < 0.93:
            x, y = r.randint(0, 9), r.randint(0, 9)
            return f"{v} = {x}\n{v} = {v} + {y}\n{v} = {v} + 1\nprint({v})", str(x + y + 1)
        name = r.choice(ALL_NAMES)
        return f"name = \"{name}\"\nprint(\"Hello, \" + name)", f"Hello, {name}"

    def code(self) -> str:
        out = []
        for _ in range(self.r.randint(2, 4)):
            prog, printed = self.program()
            if split_of("code:" + prog) == self.split:
                out.append(f"```\n{prog}\n```\nOutput: {printed}")
        return "\n\n".join(out)

    # ---------------------------------------------------------------- in-context learning
    def icl(self) -> str:
        """An in-context lesson: a pattern lesson (things and one of their properties, the same
        property on every line), a secret code (invented words for real words, then some of them
        asked again) or a secret-words lesson (two invented words name two groups of things)."""
        r = self.r
        pool = SECRET_WORDS[self.split]
        k = r.random()
        if k < 0.2:
            header, lines = icl_episode(r, pool, n_lines=r.randint(6, 14))
            return "\n".join([header] + lines)
        if k < 0.65:
            return pattern_lesson(r, n_lines=r.randint(3, 10))
        n = r.randint(1, 7)
        src = r.sample(CODE_WORDS_SOURCE, n)
        dst = r.sample(pool, n)
        lines = [r.choice(CODE_HEADERS)] + [f"{s} = {d}" for s, d in zip(src, dst)]
        lines += [f"{src[i]} = {dst[i]}" for i in (r.randrange(n) for _ in range(r.randint(1, n + 1)))]
        return "\n".join(lines)


CODE_HEADERS = ("Here is a secret code.", "Learn these new words.", "In the secret language:")


def _domain(name: str) -> list[str]:
    return {"animals": list(ANIMALS), "objects": list(OBJECT_INFO), "foods": list(FOODS)}[name]


def pattern_lesson(r: random.Random, n_lines: int, relation: str | None = None,
                   things: list[str] | None = None) -> str:
    """A pattern lesson: a header that does not say the rule, then ``thing -> value`` lines of one
    relation (an animal's food, home or sound; an object's material, place or use; a food's taste)."""
    rel = relation or r.choice(sorted(RELATIONS))
    domain, f = RELATIONS[rel]
    if things is None:
        things = [r.choice(_domain(domain)) for _ in range(n_lines)]
    return "\n".join([r.choice(PATTERN_HEADERS)] + [f"{t} -> {f(t)}" for t in things])


def icl_episode(r: random.Random, pool: list[str], n_lines: int, groups: tuple[str, str] | None = None,
                labels: tuple[str, str] | None = None, items: list[tuple[str, int]] | None = None):
    """One secret-words lesson: ``(header, lines)``. Two groups get one invented word each; every
    line is ``thing -> word`` for a thing of one of the groups (words may repeat)."""
    g = list(groups or r.sample(sorted(ICL_GROUPS), 2))
    lab = list(labels or r.sample(pool, 2))
    order = [0, 1]
    r.shuffle(order)
    header = f"Secret words: {lab[order[0]]} and {lab[order[1]]}."
    if items is None:
        items = [(r.choice(ICL_GROUPS[g[j]]), j) for j in (r.randrange(2) for _ in range(n_lines))]
    return header, [f"{thing} -> {lab[j]}" for thing, j in items]


def _action_phrase(action: str, o: str) -> str:
    return {"drop": f"drop it", "water": "put it in water", "fire": "put it near a fire"}[action]


def _why(effect: str) -> str:
    """ "the ground was wet" -> "was the ground wet" (a question about a weather effect)."""
    m = re.match(r"(the [a-z ]+?|there|everyone|nobody|the children|the cars) (was|were|could|drove|made|went|flew|wore|froze|melted|stayed|slammed)(.*)", effect)
    if not m:
        return f"did it happen that {effect}"
    subj, verb, rest = m.groups()
    if verb in ("was", "were", "could"):
        return f"{verb} {subj}{rest}"
    base = {"drove": "drive", "made": "make", "went": "go", "flew": "fly", "wore": "wear", "froze": "freeze",
            "melted": "melt", "stayed": "stay", "slammed": "slam"}[verb]
    return f"did {subj} {base}{rest}"


def _feeling_cause(r: random.Random, feel: str, g: tuple[str, str, str], generic: bool = False) -> str:
    he, him, his = g
    if generic:
        he, him, his = "it", "it", "its"
        himself = "itself"
    else:
        himself = "herself" if he == "she" else "himself"
    t = r.choice(FEELING_CAUSES[feel])
    out = t.format(his=his, he=he, toy=r.choice(TOYS), kin=r.choice(KIN), himself=himself)
    if generic:  # "a child ... its favorite toy" reads badly: use "their"
        out = out.replace(" its ", " their ").replace("itself", "themselves").replace(" it had lost", " they had lost")
    return out


def _operands(r: random.Random, add: bool) -> tuple[int, int]:
    """Small operands most of the time (what a tiny model can learn), larger ones sometimes;
    the answer always has at most two digits."""
    hi = 10 if r.random() < 0.5 else 20 if r.random() < 0.75 else 50
    if add:
        x, y = r.randint(0, hi), r.randint(0, hi)
        return x, min(y, 99 - x)
    x = r.randint(1, hi)
    return x, r.randint(0, x)


# ============================================================================ the stream
_WORLD_WORDS: set[str] = set()


def _collect_world_words() -> set[str]:
    words = set()
    tables = [ALL_NAMES, TRAITS, KIN, PLACES, COLORS, SIZES, TIMES, list(OBJECT_INFO), list(ANIMALS), list(FOODS),
              TOYS, COUNTABLE, FEELINGS, CODE_WORDS_SOURCE]
    for t in tables:
        for s in t:
            words.update(w.lower() for w in re.findall(r"[A-Za-z]+", s))
    for info in list(OBJECT_INFO.values()) + list(ANIMALS.values()):
        for s in info:
            words.update(re.findall(r"[a-z]+", s.lower()))
    for m in MATERIALS.values():
        for s in [m["drop"], m["water"], m["fire"], m["feel"]] + m["facts"]:
            words.update(re.findall(r"[a-z]+", s))
    for g in ICL_GROUPS.values():
        words.update(w.lower() for w in g)
    # a few common short English words the syllable generator could spell
    words.update("bad bat bed big bit bog bug bun but cap cat dad dig dog dot fan fat fig fit fog fox fun gap gas "
                 "god got gum gun gut kid kit lab lad lap leg let lid lip lit log lot mad man map mat men met mix mob "
                 "mom mop mud mug nap net nod not nut pad pan pat peg pen pet pig pin pit pod pot pub pup rat red rib "
                 "rid rim rip rob rod rot rub rug run sad sat set sin sip sit sob sun tab tag tan tap ten tin tip top "
                 "tub van vet zip blob blot brag brim drag drip drop drum flag flap flat flip flop glad grab grid grin "
                 "grip plan plot plug plum slab slam slap slim slip slot snap snip snob spot stab step stem stop trap "
                 "trim trip trot dumb bomb limb lamb camp damp lamp ramp stamp tent rent dent bent sent went hunt punt "
                 "tusk musk desk disk risk task mask bask sick sock suck sack lock luck lick kick pick pack tick tack "
                 "dock deck duck neck rock rack back bash dash mash rash sash wish fish dish mush gush rush push lush "
                 "box fix mix six wax tax fax sax fox pox lot".split())
    return words


_WORLD_WORDS = _collect_world_words()
SECRET_WORDS = _make_secret_words()
CODE_WORDS = SECRET_WORDS["train"]  # the invented words training documents may use


def _check_mix(mix) -> dict[str, float]:
    mix = dict(DEFAULT_MIX if mix is None else mix)
    unknown = set(mix) - set(KINDS)
    if unknown:
        raise ValueError(f"unknown document kind(s) {sorted(unknown)} in mix; the kinds are {list(KINDS)}")
    bad = {k: w for k, w in mix.items() if not isinstance(w, (int, float)) or w < 0 or w != w}
    if bad or sum(mix.values()) <= 0:
        raise ValueError(f"mix proportions must be non-negative numbers, not all zero; got {mix}")
    total = sum(mix.values())
    return {k: w / total for k, w in mix.items() if w > 0}


def _check_split(split: str) -> None:
    if split not in SPLITS:
        raise ValueError(f"split must be one of {list(SPLITS)}, got {split!r}")


def iter_documents(split: str = "train", seed: int = 0, mix: dict | None = None) -> Iterator[str]:
    """An endless, deterministic stream of TinyTales documents of one split.

    ``mix`` gives the share of *characters* of each document kind ("story", "facts", "math",
    "code", "icl"; default :data:`DEFAULT_MIX`; normalised to sum to 1). Each kind has its own
    random stream, so changing the mix changes how often a kind appears, not its documents.
    A document is kept only if :func:`split_of` assigns it to ``split`` (word problems and
    programs one by one), so the splits never overlap; no split ever states a held-out
    (object, behaviour) pair (:data:`HELD_OUT`). Documents hold no end-of-text marker: the
    trainer puts the tokenizer's EOS between them."""
    _check_split(split)
    if not isinstance(seed, int):
        raise TypeError(f"seed must be an int, got {type(seed).__name__}")
    mix = _check_mix(mix)
    writers = {k: _Writer(random.Random(f"tinytales/{seed}/{split}/{k}"), split) for k in mix}
    made = {k: 0 for k in mix}
    total = 0
    while True:
        # the kind furthest behind its share of characters goes next: exact proportions, no randomness
        kind = max(mix, key=lambda k: mix[k] * (total + 1) - made[k])
        doc = getattr(writers[kind], kind)()
        if not doc or (kind in ("story", "facts") and split_of(doc) != split):
            continue
        made[kind] += len(doc)
        total += len(doc)
        yield doc


_ICL_HEADERS = ("Secret words:",) + CODE_HEADERS + PATTERN_HEADERS


def kind_of(doc: str) -> str:
    """The kind of a TinyTales document ("story", "facts", "math", "code" or "icl"), read off its text."""
    if doc.startswith("Problem: "):
        return "math"
    if doc.startswith("```"):
        return "code"
    if doc.startswith(_ICL_HEADERS):
        return "icl"
    return "facts" if "\n" in doc else "story"  # a story is one paragraph; facts are one per line


def corpus_text(split: str = "train", n_chars: int = 1_000_000, seed: int = 0, mix: dict | None = None,
                sep: str = "\n\n") -> str:
    """Whole documents of one split joined by ``sep``, until at least ``n_chars`` characters
    (for notebooks and tokenizer training; the trainer uses :func:`iter_documents`)."""
    if n_chars < 0:
        raise ValueError(f"n_chars must be >= 0, got {n_chars}")
    docs, total = [], 0
    if n_chars == 0:
        return ""
    for doc in iter_documents(split, seed, mix):
        docs.append(doc)
        total += len(doc) + len(sep)
        if total >= n_chars:
            break
    return sep.join(docs)


def documents(split: str = "train", n_docs: int = 1000, seed: int = 0, mix: dict | None = None) -> list[str]:
    """The first ``n_docs`` documents of :func:`iter_documents`."""
    out = []
    for doc in iter_documents(split, seed, mix):
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
    return {"n_docs": n_docs, "n_chars": n_chars, "n_words": total, "vocabulary": len(words),
            "n_sentences": n_sent, "distinct_sentences": len(sentences),
            "distinct_sentence_frac": len(sentences) / n_sent if n_sent else 0.0,
            "unigram_entropy_bits": entropy, "mean_doc_chars": n_chars / n_docs if n_docs else 0.0}


# ============================================================================ probe items
# The capability probes of slmlab.evaluate ask about the same world, in the formats the
# corpus uses, on items training never showed: their own random streams ("probe/..."), the
# held-out (object, behaviour) pairs, test-split word problems and programs, and invented
# words from the test bucket.
COMMONSENSE_KINDS = {"material": 0.4, "weather": 0.15, "feelings": 0.15, "animals": 0.15, "where": 0.15}


def _probe_rng(task: str, seed: int) -> random.Random:
    return random.Random(f"tinytales/probe/{task}/{seed}")


def _options(r: random.Random, right: str, wrong: Iterable[str], k: int = 4) -> tuple[list[str], int]:
    wrong = sorted(set(wrong) - {right})
    opts = [right] + r.sample(wrong, k - 1)
    r.shuffle(opts)
    return opts, opts.index(right)


def commonsense_items(n: int = 200, seed: int = 0, kinds: dict | None = None) -> list[dict]:
    """Four-way multiple choice about the world, scored by log-likelihood (as lm-evaluation-harness
    does): ``context`` ends just before the answer, ``options`` are continuations (each starts with
    a space), ``label`` indexes the right one; ``kind`` says which sort of knowledge it asks:

    - "material": a held-out (object, behaviour) pair — the context says what the object is made
      of; training text never shows this object doing this, only other objects of its material;
    - "weather": a cause and its effect ("It rained all day, so" -> "the ground was wet.");
    - "feelings": an event and how it makes a child feel;
    - "animals": the sound, food or home of an animal;
    - "where": where an object is found.
    """
    kinds = dict(COMMONSENSE_KINDS if kinds is None else kinds)
    bad = set(kinds) - set(COMMONSENSE_KINDS)
    if bad:
        raise ValueError(f"unknown commonsense kind(s) {sorted(bad)}; known: {list(COMMONSENSE_KINDS)}")
    r = _probe_rng("commonsense", seed)
    names, weights = zip(*kinds.items())
    pairs = sorted(HELD_OUT)
    items = []
    for i in range(n):
        kind = r.choices(names, weights)[0]
        g = r.choice(("she", "he"))
        name = r.choice(NAMES[g])
        he, him, his = PRONOUNS[g]
        if kind == "material":
            o, action = r.choice(pairs)
            m = MATERIAL_OF[o]
            wrong = {MATERIALS[mm][action] for mm in MATERIALS} - {MATERIALS[m][action]}
            stated = r.random() < 0.5  # the context says the material (else: recall it, then apply the rule)
            if r.random() < 0.5:  # story style, past tense
                verb = {"drop": f"{cap(he)} dropped the {o} on the floor.", "water": f"{cap(he)} put the {o} in the water.",
                        "fire": f"{cap(he)} put the {o} near the fire."}[action]
                made = f" The {o} was made of {m}." if stated else ""
                context = f"{name} had {a(o)}.{made} {verb} The {o}"
                opts, label = _options(r, past(behaviour(o, action)), (past(w) for w in wrong))
            else:  # fact style, present tense
                q = {"drop": f"drop {a(o)}?", "water": f"put {a(o)} in water?", "fire": f"put {a(o)} near a fire?"}[action]
                context = (f"The {o} is made of {m}, so if you {_action_phrase(action, o)}, it" if stated
                           else f"Q: What happens if you {q}\nA: It")
                opts, label = _options(r, behaviour(o, action), wrong)
            extra = {"object": o, "action": action, "material_stated": stated}
        elif kind == "weather":
            cause = r.choice(list(WEATHER))
            right = r.choice(WEATHER[cause])
            wrong = [r.choice(WEATHER[c]) for c in WEATHER if c != cause]
            context = r.choice([f"{cap(cause)}, so", f"That day {cause}, so"])
            opts, label = _options(r, right, wrong)
            extra = {"cause": cause}
        elif kind == "feelings":
            feel = r.choice(FEELINGS)
            context = f"{name} {_feeling_cause(r, feel, PRONOUNS[g])}. {cap(he)} felt"
            # every other feeling is wrong, except that happy and proud may go together
            pool = [f for f in FEELINGS if f != feel and {f, feel} != {"happy", "proud"}]
            opts, label = _options(r, feel, pool)
            extra = {"feeling": feel}
        elif kind == "animals":
            an = r.choice(list(ANIMALS))
            sound, home, food = ANIMALS[an]
            q = r.randrange(3)
            if q == 0:
                context = f"{name} saw {a(an)} {home}. The {an}"
                opts, label = _options(r, sound, {s for s, _, _ in ANIMALS.values()})
            elif q == 1:
                context = f"Q: What does {a(an)} eat?\nA:"
                opts, label = _options(r, cap(food), {cap(f) for _, _, f in ANIMALS.values()})
            else:
                context = f"Q: Where does {a(an)} live?\nA:"
                opts, label = _options(r, cap(home), {cap(h) for _, h, _ in ANIMALS.values()})
            extra = {"animal": an}
        else:  # where
            o = r.choice(list(OBJECT_INFO))
            context = f"Q: Where can you find {a(o)}?\nA: In"
            opts, label = _options(r, PLACE_OF[o].split(" ", 1)[1], {p.split(" ", 1)[1] for p in PLACE_OF.values()})
            opts = ["the " + x for x in opts]
            extra = {"object": o}
        items.append({"kind": kind, "context": context, "options": [" " + x + "." for x in opts], "label": label, **extra})
    return items


def icl_group_items(n: int = 100, shots: int | Iterable[int] = (0, 1, 5), seed: int = 0) -> list[dict]:
    """Secret-words lessons with ``shots`` examples: two invented words (from the test bucket,
    never in training text) each name one group of things (animals, colors, names, ...); the
    query is a new thing of one group, the options are the two words (chance 1/2). The same
    lessons are used for every number of shots (the k-shot prompt shows the first k examples;
    with 5 shots both groups appear), so the scores are paired across shots."""
    shot_list = [shots] if isinstance(shots, int) else list(shots)
    if any(k < 0 for k in shot_list):
        raise ValueError(f"shots must be >= 0, got {shot_list}")
    r = _probe_rng("icl-groups", seed)
    pool = SECRET_WORDS["test"]
    kmax = max(shot_list + [5])
    items = []
    for i in range(n):
        groups = tuple(r.sample(sorted(ICL_GROUPS), 2))
        labels = tuple(r.sample(pool, 2))
        qj = r.randrange(2)
        assign = [r.randrange(2) for _ in range(kmax)]
        if len(set(assign[:5])) < 2:  # both groups among the first five examples
            assign[r.randrange(5)] = 1 - assign[0]
        things = []
        for j in assign + [qj]:
            choices = [t for t in ICL_GROUPS[groups[j]] if t not in things]
            things.append(r.choice(choices))
        examples = list(zip(things[:-1], assign))
        header, lines = icl_episode(r, pool, 0, groups, labels, examples)
        for k in shot_list:
            context = "\n".join([header] + lines[:k] + [f"{things[-1]} ->"])
            items.append({"shots": k, "episode": i, "context": context, "options": [" " + labels[0], " " + labels[1]],
                          "label": qj, "groups": groups})
    return items


def icl_pattern_items(n: int = 100, shots: int | Iterable[int] = (0, 1, 5), seed: int = 0) -> list[dict]:
    """Pattern lessons: ``k`` examples ``thing -> value`` of one relation, then a new thing of the
    same domain. The options are the query's values under each relation of its domain (an
    animal's food, home and sound; an object's material, place and use), so only the examples
    say which is meant: at 0 shots every relation is equally likely and the chance level is 1/3
    whatever the model does. The same lessons are used for every number of shots."""
    shot_list = [shots] if isinstance(shots, int) else list(shots)
    if any(k < 0 for k in shot_list):
        raise ValueError(f"shots must be >= 0, got {shot_list}")
    r = _probe_rng("icl-pattern", seed)
    kmax = max(shot_list + [5])
    items = []
    for i in range(n):
        domain = r.choice(["animals", "objects"])
        rels = sorted(k for k, (d, _) in RELATIONS.items() if d == domain)
        rel = r.choice(rels)
        things = r.sample(_domain(domain), kmax + 1)
        query, shown = things[-1], things[:-1]
        header = r.choice(PATTERN_HEADERS)
        opts = [RELATIONS[x][1](query) for x in rels]
        r.shuffle(opts)
        f = RELATIONS[rel][1]
        right = f(query)
        for k in shot_list:
            context = "\n".join([header] + [f"{t} -> {f(t)}" for t in shown[:k]] + [f"{query} ->"])
            items.append({"shots": k, "episode": i, "context": context, "options": [" " + o for o in opts],
                          "label": opts.index(right), "relation": rel})
    return items


def icl_items(n: int = 100, shots: int | Iterable[int] = (0, 1, 5), seed: int = 0, n_options: int = 4) -> list[dict]:
    """Secret-code lessons: ``k`` pairs "word = code" in the prompt, then one of the shown words
    again; the answer is its code, an invented word (from the test bucket: never in training) that
    only the prompt gives. The options are the codes of one lesson (chance 1/``n_options``): at 0
    shots nothing in the prompt tells them apart; at 1 shot the answer is the one code shown; at 5
    shots the other options are shown too, paired with other words. The same lessons, query and
    options are used for every number of shots (paired scores)."""
    shot_list = [shots] if isinstance(shots, int) else list(shots)
    if any(k < 0 for k in shot_list):
        raise ValueError(f"shots must be >= 0, got {shot_list}")
    if n_options < 2:
        raise ValueError(f"n_options must be >= 2, got {n_options}")
    r = _probe_rng("icl", seed)
    pool = SECRET_WORDS["test"]
    kmax = max(shot_list + [n_options])
    items = []
    for i in range(n):
        src = r.sample(CODE_WORDS_SOURCE, kmax)
        dst = r.sample(pool, kmax)
        header = r.choice(CODE_HEADERS)
        q = r.randrange(kmax)
        others = [j for j in range(kmax) if j != q]
        r.shuffle(others)
        opts = [dst[q]] + [dst[j] for j in others[: n_options - 1]]
        r.shuffle(opts)
        for k in shot_list:
            shown = sorted([q] + others[: k - 1]) if k > 0 else []
            context = "\n".join([header] + [f"{src[j]} = {dst[j]}" for j in shown] + [f"{src[q]} ="])
            items.append({"shots": k, "episode": i, "context": context, "options": [" " + o for o in opts],
                          "label": opts.index(dst[q])})
    return items


def _test_items(task: str, n: int, seed: int, make) -> list:
    r = _probe_rng(task, seed)
    w = _Writer(r, "test")
    items, seen = [], set()
    for _ in range(200 * n + 1000):
        key, item = make(w)
        if split_of(key) == "test" and key not in seen:
            seen.add(key)
            items.append(item)
            if len(items) == n:
                return items
    raise RuntimeError(f"could not make {n} distinct {task} items")  # pragma: no cover


def math_items(n: int = 100, seed: int = 0) -> list[dict]:
    """Word problems of the test split (never in training): ``prompt`` is "Problem: ...\\n"; the model
    writes the working and "Answer: N"; ``answer`` is N as a string."""
    def make(w):
        q, work, ans = w.math_problem()
        return "math:" + q, {"prompt": f"Problem: {q}\n", "answer": str(ans), "working": work}
    return _test_items("math", n, seed, make)


def code_items(n: int = 100, seed: int = 0) -> list[dict]:
    """Tiny programs of the test split (never in training): ``prompt`` ends with "Output:";
    ``answer`` is exactly what the program prints."""
    def make(w):
        prog, out = w.program()
        return "code:" + prog, {"prompt": f"```\n{prog}\n```\nOutput:", "answer": out, "program": prog}
    return _test_items("code", n, seed, make)


_NUM = re.compile(r"-?\d+")


def trivial_baselines(task: str, n: int = 2000, seed: int = 12345) -> dict[str, float]:
    """Accuracy of answer-free guessers on the math or code probes, measured on ``n`` probe items
    (other seeds than the evaluated ones): always the most common answer; the first / the last
    number written in the prompt. Their maximum is the honest chance level of an exact-match
    task whose answers are not a fixed list."""
    items = {"math": math_items, "code": code_items}[task](n, seed=seed)
    answers = Counter(it["answer"] for it in items)
    out = {"majority": answers.most_common(1)[0][1] / n}
    for which in ("first", "last"):
        hits = 0
        for it in items:
            nums = _NUM.findall(it["prompt"])
            hits += bool(nums) and (nums[0] if which == "first" else nums[-1]) == it["answer"]
        out[f"copy_{which}_number"] = hits / n
    return out


# ============================================================================ real corpora
HUB_DATASETS = {
    "tinystories": {"path": "roneneldan/TinyStories", "name": None, "splits": {"train": "train", "val": "validation",
                                                                                 "validation": "validation"}},
    "wikitext": {"path": "Salesforce/wikitext", "name": "wikitext-2-raw-v1",
                 "splits": {"train": "train", "val": "validation", "validation": "validation", "test": "test"}},
}


def _offline_reason() -> str | None:
    for var in ("HF_DATASETS_OFFLINE", "HF_HUB_OFFLINE"):
        if os.environ.get(var, "").strip().lower() in ("1", "true", "yes", "on"):
            return f"{var}={os.environ[var]} is set"
    import socket

    host = os.environ.get("SLMLAB_HUB_HOST", "huggingface.co")
    try:
        socket.create_connection((host, 443), timeout=2.0).close()
    except OSError as e:
        return f"{host}:443 is not reachable ({e.__class__.__name__}: {e})"
    return None


def load_text_dataset(name_or_path: str | os.PathLike, split: str = "train", n_docs: int | None = None,
                      text_field: str = "text", drop_empty: bool = True) -> list[str]:
    """Texts of a real corpus, as a list of strings (one per row / document).

    ``name_or_path`` is either a hub corpus the book knows — ``"tinystories"``
    (roneneldan/TinyStories; splits train, val) or ``"wikitext"`` (wikitext-2-raw-v1; train, val,
    test) — loaded through ``datasets`` when the hub is reachable, or a local file or folder in
    the same format:

    - ``.jsonl`` / ``.json``: JSON lines (or a JSON list) of objects with a ``text_field``;
    - ``.parquet``: a table with a ``text_field`` column (what the hub serves);
    - ``.txt``: documents separated by ``<|endoftext|>`` (TinyStories' own text files), else by
      blank lines;
    - a folder written by ``datasets``' ``save_to_disk`` (a Dataset or a DatasetDict with ``split``).

    Offline (no network, or ``HF_DATASETS_OFFLINE=1``/``HF_HUB_OFFLINE=1``) a hub name fails at
    once with a message saying how to use a local file. ``drop_empty`` drops blank rows (WikiText
    has many); ``n_docs`` keeps the first rows only.
    """
    path = Path(name_or_path)
    if path.exists():
        texts = _load_local(path, split, text_field)
    else:
        key = str(name_or_path).lower()
        if key not in HUB_DATASETS:
            raise FileNotFoundError(
                f"{name_or_path!r} is neither a file or folder nor a corpus this loader knows "
                f"({sorted(HUB_DATASETS)}); give a path to a .jsonl/.json/.parquet/.txt file or a save_to_disk folder.")
        spec = HUB_DATASETS[key]
        if split not in spec["splits"]:
            raise ValueError(f"{key} has no split {split!r}; use one of {sorted(set(spec['splits']))}")
        reason = _offline_reason()
        if reason:
            raise ConnectionError(
                f"cannot load {key!r} ({spec['path']}) from the Hugging Face hub: {reason}. "
                f"Download it where you have a network, e.g. `datasets.load_dataset({spec['path']!r}"
                f"{', ' + repr(spec['name']) if spec['name'] else ''}, split={spec['splits'][split]!r})"
                f".to_json('{key}-{split}.jsonl')`, copy the file here and call "
                f"load_text_dataset('{key}-{split}.jsonl'). Or use the built-in corpus: slmlab.data.corpus_text().")
        import datasets

        ds = datasets.load_dataset(spec["path"], spec["name"], split=spec["splits"][split])
        texts = _column(ds, text_field, spec["path"])
    if drop_empty:
        texts = [t for t in texts if t.strip()]
    return texts[:n_docs] if n_docs is not None else texts


def _column(rows, field: str, where) -> list[str]:
    cols = getattr(rows, "column_names", None)
    if cols is not None and field not in cols:
        raise KeyError(f"{where} has no column {field!r}; its columns are {cols}. Pass text_field=...")
    out = rows[field] if cols is not None else None
    if out is None:
        out = []
        for i, row in enumerate(rows):
            if not isinstance(row, dict) or field not in row:
                raise KeyError(f"row {i} of {where} has no field {field!r} "
                               f"(it has {sorted(row) if isinstance(row, dict) else type(row).__name__}); pass text_field=...")
            out.append(row[field])
    bad = next((i for i, t in enumerate(out) if not isinstance(t, str)), None)
    if bad is not None:
        raise TypeError(f"{where}: {field!r} of row {bad} is {type(out[bad]).__name__}, not text")
    return list(out)


def _load_local(path: Path, split: str, field: str) -> list[str]:
    if path.is_dir():
        import datasets

        try:
            ds = datasets.load_from_disk(str(path))
        except FileNotFoundError as e:
            raise ValueError(f"{path} is a folder but not one written by datasets' save_to_disk ({e})") from None
        if isinstance(ds, datasets.DatasetDict):
            names = {"val": "validation"}.get(split, split)
            if names not in ds:
                raise ValueError(f"{path} has splits {list(ds)}, not {split!r}")
            ds = ds[names]
        return _column(ds, field, path)
    suffix = "".join(path.suffixes[-2:]) if path.suffix == ".gz" else path.suffix
    if suffix in (".jsonl", ".json"):
        raw = path.read_text(encoding="utf-8")
        stripped = raw.lstrip()
        if stripped.startswith("["):
            rows = json.loads(raw)
        else:
            rows = []
            for i, line in enumerate(raw.splitlines()):
                if line.strip():
                    try:
                        rows.append(json.loads(line))
                    except json.JSONDecodeError as e:
                        raise ValueError(f"{path}, line {i + 1}: not valid JSON ({e})") from None
        return _column(rows, field, path)
    if suffix == ".parquet":
        import pandas as pd

        df = pd.read_parquet(path)
        if field not in df.columns:
            raise KeyError(f"{path} has no column {field!r}; its columns are {list(df.columns)}. Pass text_field=...")
        return _column(df[[field]].to_dict("records"), field, path)
    if suffix == ".txt":
        raw = path.read_text(encoding="utf-8")
        parts = raw.split("<|endoftext|>") if "<|endoftext|>" in raw else re.split(r"\n\s*\n", raw)
        return [p.strip() for p in parts]
    raise ValueError(f"don't know how to read {path}: use .jsonl, .json, .parquet or .txt, or a save_to_disk folder")
