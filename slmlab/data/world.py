"""The TinyTales world: its tables (names, objects and their materials, animals, foods,
weather, feelings, relations), the held-out facts, the splits and the invented words.

Everything else in :mod:`slmlab.data` writes this world out as text; the probes of
:mod:`slmlab.evaluate` ask about it."""

from __future__ import annotations

import hashlib
import re

NAMES = {
    "she": (
        "Mia Lily Emma Anna Sara Lucy Nora Zoe Ella Ruby Maya Ivy Rosa Kate Jane Amy Lena Tara "
        "Nina Clara Alice Daisy Hannah Grace Sophie Julia Eva Molly Hazel Olivia"
    ).split(),
    "he": (
        "Tom Ben Sam Leo Max Jack Finn Owen Noah Liam Adam Luke Eli Omar Hugo Theo Ryan Jake Paul "
        "Oscar Felix Henry Peter Danny Lucas Mark Carl Ivan Tim Oliver"
    ).split(),
}
ALL_NAMES = NAMES["she"] + NAMES["he"]
PRONOUNS = {"she": ("she", "her", "her"), "he": ("he", "him", "his")}  # subject, object, possessive
TRAITS = (
    "kind brave curious shy funny clever quiet cheerful careful gentle busy lazy friendly polite "
    "playful honest patient helpful silly proud"
).split()
KIN = "mom dad grandma grandpa sister brother friend teacher aunt uncle cousin neighbor".split()
# fmt: off
# place -> the objects one finds there (each object lives in exactly one place: a learnable fact)
PLACES = [
    "the park", "the beach", "the forest", "the farm", "the garden", "the kitchen", "the school",
    "the river", "the market", "the library", "the lake", "the hill", "the zoo", "the shop",
    "the yard", "the playground", "the bakery", "the meadow", "the barn", "the cave", "the pond",
    "the street", "the attic", "the bedroom", "the bathroom", "the station", "the village",
    "the field",
]
OUTDOOR = [
    "the park", "the beach", "the forest", "the farm", "the garden", "the river", "the lake",
    "the hill", "the zoo", "the playground", "the meadow", "the pond", "the field", "the market",
    "the school",
]
ANIMAL_ADJ = "big small little young old friendly sleepy shy happy noisy".split()
COLORS = "red blue green yellow white black brown pink purple orange gray golden".split()
SIZES = (
    "big small tiny long short old new round little huge pretty dirty clean funny strange lovely"
).split()
TIMES = [
    "One day", "One morning", "One evening", "On a sunny day", "After lunch", "On Sunday",
    "Last summer", "One cold morning", "After school", "Early in the morning",
    "On a rainy afternoon", "One winter day",
]
# fmt: on

# Materials: the rules every object of the material obeys (these make commonsense learnable).
# "drop" / "water" / "fire" are what happens to a thing of that material; "feel" is how it feels.
MATERIALS = {
    "glass": {
        "drop": "breaks into many pieces",
        "water": "sinks to the bottom",
        "fire": "gets very hot",
        "facts": ["can break", "is hard", "lets light through"],
        "feel": "smooth and hard",
    },
    "wood": {
        "drop": "makes a loud knock",
        "water": "floats on the water",
        "fire": "burns to ashes",
        "facts": ["floats on water", "can burn", "is hard"],
        "feel": "rough and hard",
    },
    "metal": {
        "drop": "makes a loud clang",
        "water": "sinks to the bottom",
        "fire": "gets very hot",
        "facts": ["sinks in water", "is hard", "can get very hot"],
        "feel": "cold and hard",
    },
    "paper": {
        "drop": "floats down slowly",
        "water": "gets wet and soft",
        "fire": "burns to ashes",
        "facts": ["can tear", "can burn", "is light"],
        "feel": "thin and light",
    },
    "cloth": {
        "drop": "falls down softly",
        "water": "gets wet and heavy",
        "fire": "burns to ashes",
        "facts": ["is soft", "can burn", "keeps you warm"],
        "feel": "soft and warm",
    },
    "ice": {
        "drop": "cracks into pieces",
        "water": "floats and melts",
        "fire": "melts away",
        "facts": ["is cold", "melts in the sun", "floats on water"],
        "feel": "cold and wet",
    },
    "stone": {
        "drop": "makes a loud thud",
        "water": "sinks to the bottom",
        "fire": "stays the same",
        "facts": ["is heavy", "sinks in water", "is hard"],
        "feel": "hard and heavy",
    },
    "rubber": {
        "drop": "bounces up high",
        "water": "floats on the water",
        "fire": "melts and smells bad",
        "facts": ["can bounce", "can stretch", "floats on water"],
        "feel": "soft and bouncy",
    },
}
# fmt: off
_PAST = {
    "breaks": "broke", "sinks": "sank", "gets": "got", "makes": "made", "floats": "floated",
    "burns": "burned", "falls": "fell", "cracks": "cracked", "melts": "melted", "stays": "stayed",
    "bounces": "bounced", "smells": "smelled",
}
# fmt: on


def past(phrase: str) -> str:
    """The past tense of a behaviour phrase:
    "breaks into many pieces" -> "broke into many pieces"."""
    return " ".join(_PAST.get(w, w) for w in phrase.split(" "))


ACTIONS = ("drop", "water", "fire")
# object -> (material, where it is found, what it is for)
OBJECT_INFO = {
    # glass
    "cup": ("glass", "the kitchen", "drink milk"),
    "bottle": ("glass", "the kitchen", "keep water"),
    "jar": ("glass", "the kitchen", "keep jam"),
    "vase": ("glass", "the bedroom", "hold flowers"),
    "window": ("glass", "the school", "look outside"),
    "mirror": ("glass", "the bathroom", "see your face"),
    "bowl": ("glass", "the kitchen", "eat soup"),
    "lamp": ("glass", "the attic", "give light"),
    "marble": ("glass", "the playground", "play games"),
    "bead": ("glass", "the shop", "make a necklace"),
    # wood
    "stick": ("wood", "the forest", "draw in the sand"),
    "chair": ("wood", "the school", "sit on"),
    "table": ("wood", "the kitchen", "eat dinner on"),
    "box": ("wood", "the attic", "keep toys"),
    "boat": ("wood", "the lake", "sail on the water"),
    "spoon": ("wood", "the kitchen", "stir the soup"),
    "door": ("wood", "the barn", "keep the animals in"),
    "block": ("wood", "the bedroom", "build towers"),
    "flute": ("wood", "the school", "play music"),
    "stool": ("wood", "the bakery", "reach high shelves"),
    # metal
    "key": ("metal", "the street", "open doors"),
    "coin": ("metal", "the market", "buy things"),
    "nail": ("metal", "the barn", "fix the fence"),
    "bell": ("metal", "the school", "ring at noon"),
    "pot": ("metal", "the kitchen", "cook rice"),
    "fork": ("metal", "the kitchen", "eat cake"),
    "ring": ("metal", "the shop", "wear on a finger"),
    "can": ("metal", "the market", "keep beans"),
    "whistle": ("metal", "the playground", "call the dog"),
    "lock": ("metal", "the station", "keep bikes safe"),
    # paper
    "book": ("paper", "the library", "read stories"),
    "letter": ("paper", "the village", "send news"),
    "map": ("paper", "the station", "find the way"),
    "kite": ("paper", "the field", "fly in the wind"),
    "card": ("paper", "the shop", "say happy birthday"),
    "note": ("paper", "the school", "remember things"),
    "bag": ("paper", "the bakery", "carry bread"),
    "ticket": ("paper", "the station", "ride the train"),
    "poster": ("paper", "the library", "show pictures"),
    "napkin": ("paper", "the bakery", "wipe your mouth"),
    # cloth
    "hat": ("cloth", "the beach", "keep the sun away"),
    "sock": ("cloth", "the bedroom", "keep feet warm"),
    "scarf": ("cloth", "the village", "keep the neck warm"),
    "shirt": ("cloth", "the shop", "wear to school"),
    "blanket": ("cloth", "the bedroom", "stay warm at night"),
    "coat": ("cloth", "the street", "stay warm outside"),
    "glove": ("cloth", "the garden", "keep hands clean"),
    "pillow": ("cloth", "the bedroom", "rest your head"),
    "towel": ("cloth", "the bathroom", "dry your hands"),
    "flag": ("cloth", "the hill", "show the way"),
    # ice
    "ice cube": ("ice", "the kitchen", "cool a drink"),
    "snowball": ("ice", "the field", "throw at friends"),
    "icicle": ("ice", "the cave", "look at"),
    "ice block": ("ice", "the market", "keep fish cold"),
    "snowman": ("ice", "the yard", "play in winter"),
    "ice sculpture": ("ice", "the park", "look at"),
    # stone
    "rock": ("stone", "the hill", "sit on"),
    "pebble": ("stone", "the river", "skip on the water"),
    "brick": ("stone", "the farm", "build walls"),
    "statue": ("stone", "the park", "look at"),
    "boulder": ("stone", "the cave", "block the way"),
    "millstone": ("stone", "the farm", "grind wheat"),
    # rubber
    "ball": ("rubber", "the park", "play catch"),
    "boot": ("rubber", "the garden", "walk in the mud"),
    "duck toy": ("rubber", "the bathroom", "play in the bath"),
    "band": ("rubber", "the school", "hold pencils"),
    "tire": ("rubber", "the street", "roll a bike"),
    "eraser": ("rubber", "the school", "fix mistakes"),
}
OBJECTS = {m: [o for o, (mm, _, _) in OBJECT_INFO.items() if mm == m] for m in MATERIALS}
MATERIAL_OF = {o: info[0] for o, info in OBJECT_INFO.items()}
PLACE_OF = {o: info[1] for o, info in OBJECT_INFO.items()}
USE_OF = {o: info[2] for o, info in OBJECT_INFO.items()}

# Held out from EVERY split's text: the model sees the material of these objects and how the
# material behaves, but never these objects doing it. The commonsense probes ask exactly these.
# fmt: off
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
# fmt: on
HELD_OUT_OBJECTS = frozenset(o for o, _ in HELD_OUT)

ANIMALS = {  # animal: (what it does when happy, where it lives, what it eats)
    "dog": ("barked", "in the yard", "bones"),
    "cat": ("purred", "in the house", "fish"),
    "cow": ("mooed", "on the farm", "grass"),
    "duck": ("quacked", "on the pond", "bread"),
    "bird": ("sang", "in a tree", "seeds"),
    "horse": ("neighed", "in the barn", "hay"),
    "sheep": ("baaed", "in the meadow", "grass"),
    "frog": ("croaked", "in the pond", "flies"),
    "owl": ("hooted", "in the forest", "mice"),
    "bee": ("buzzed", "in the garden", "nectar"),
    "pig": ("oinked", "on the farm", "apples"),
    "mouse": ("squeaked", "in the attic", "cheese"),
    "lion": ("roared", "at the zoo", "meat"),
    "fox": ("yelped", "in the forest", "berries"),
    "goat": ("bleated", "on the hill", "leaves"),
    "rabbit": ("sniffed", "in the field", "carrots"),
    "monkey": ("chattered", "at the zoo", "bananas"),
    "hen": ("clucked", "in the barn", "corn"),
    "wolf": ("howled", "in the forest", "meat"),
    "squirrel": ("chirped", "in the park", "nuts"),
}
# fmt: off
FOODS = {  # food: taste
    "apple": "sweet", "banana": "sweet", "cookie": "sweet", "cake": "sweet", "sandwich": "tasty",
    "pear": "juicy", "carrot": "crunchy", "orange": "juicy", "muffin": "soft", "plum": "juicy",
    "pie": "warm", "grape": "sweet", "lemon": "sour", "cherry": "sweet", "peach": "juicy",
    "bun": "soft", "soup": "hot", "cracker": "salty", "pickle": "sour", "honey cake": "sweet",
}
# fmt: on
WEATHER = {  # cause: the effects it has (every effect belongs to exactly one cause)
    "it rained all day": [
        "the ground was wet",
        "there were puddles everywhere",
        "everyone stayed inside",
    ],
    "the sun was very hot": ["the ice cream melted", "everyone was thirsty", "the grass was dry"],
    "it snowed all night": [
        "the ground was white",
        "the children made a snowman",
        "the road was slippery",
    ],
    "the wind blew hard": [
        "the leaves flew away",
        "the kite went up high",
        "the door slammed shut",
    ],
    "a thick fog came down": [
        "nobody could see far",
        "the cars drove slowly",
        "the hills were hidden",
    ],
    "the night was very cold": [
        "the pond froze",
        "the windows were frosty",
        "everyone wore warm coats",
    ],
}
EFFECT_CAUSE = {e: c for c, es in WEATHER.items() for e in es}
# feelings and what causes them (the causes are templates: {his} = possessive pronoun)
FEELING_CAUSES = {
    "happy": [
        "got a new {toy} for {his} birthday",
        "found the {toy} {he} had lost",
        "got a big hug from {his} {kin}",
    ],
    "sad": [
        "lost {his} favorite {toy}",
        "had to say goodbye to {his} best friend",
        "saw that {his} {toy} was broken",
    ],
    "scared": [
        "heard a loud noise in the dark",
        "saw a big shadow on the wall",
        "was lost in the forest at night",
    ],
    "angry": [
        "saw someone break {his} {toy} on purpose",
        "was pushed by a bully",
        "had {his} {toy} taken away",
    ],
    "tired": [
        "ran around the park all day",
        "walked up the hill three times",
        "helped on the farm from dawn to dusk",
    ],
    "hungry": [
        "had not eaten since breakfast",
        "smelled fresh bread from the bakery",
        "skipped lunch to play",
    ],
    "proud": [
        "won the race at school",
        "built a tall tower all alone",
        "read a whole book by {himself}",
    ],
}
FEELINGS = list(FEELING_CAUSES)
GOOD_FEELINGS = {"happy", "proud"}
# fmt: off
TOYS = [
    "ball", "kite", "duck toy", "doll", "teddy bear", "toy car", "drum", "puzzle", "robot", "yo-yo",
    "marble", "block",
]
COUNTABLE = (
    "apple cookie pencil marble sticker book coin shell flower egg ball card stone toy cupcake "
    "button candy boat kite ring carrot pear bead key sock block plum nut leaf feather"
).split()
PLURAL = {
    "box": "boxes", "glass": "glasses", "brush": "brushes", "peach": "peaches", "mouse": "mice",
    "sheep": "sheep", "fish": "fish", "cherry": "cherries", "pony": "ponies", "bus": "buses",
    "sandwich": "sandwiches", "knife": "knives", "leaf": "leaves", "wolf": "wolves",
    "child": "children", "candy": "candies",
}
# fmt: on

# In-context "secret words": invented words with no meaning outside one document. Each
# belongs to one split by hash, so the probes' secret words never occur in training text.
_ONSETS = "b d f g k l m n p r s t v z bl br dr fl gr kr pl pr sl sn st tr gl sp".split()
_VOWELS = ["a", "e", "i", "o", "u"]
_CODAS = "b d g k m n p t x z ck sh nt mp sk rp lf".split()
# the groups in which secret words sort things
ICL_GROUPS = {
    "animals": list(ANIMALS),
    "foods": list(FOODS),
    "colors": COLORS,
    "names": ALL_NAMES,
    "places": [p.split(" ", 1)[1] for p in PLACES],
    "feelings": FEELINGS + ["glad", "upset", "calm", "lonely", "excited", "worried"],
    "numbers": "one two three four five six seven eight nine ten eleven twelve".split(),
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
PATTERN_HEADERS = (
    "Follow the pattern.",
    "Continue the list.",
    "Do what the examples do.",
    "Answer like the examples.",
)
CODE_WORDS_SOURCE = (
    list(ANIMALS) + list(FOODS) + COLORS + ["sun", "moon", "tree", "house", "river", "star", "shoe"]
)

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


def article(word: str) -> str:
    """``word`` with its indefinite article: "an apple", "a cup", "an honest"."""
    w = word.lower()
    return ("an " if w[0] in "aeiou" or w.startswith(("honest", "hour")) else "a ") + word


def cap(s: str) -> str:
    return s[:1].upper() + s[1:]


def _bucket(text: str) -> int:
    return (
        int.from_bytes(hashlib.blake2b(text.encode("utf-8"), digest_size=4).digest(), "little")
        % 100
    )  # SPLITS cuts these 100 buckets


def split_of(text: str) -> str:
    """The split a document (or problem, program, secret word) belongs to: a stable hash of its
    text, 90% train, 5% val, 5% test."""
    b = _bucket(text)
    return next(name for name, buckets in SPLITS.items() if b in buckets)


def behaviour(obj: str, action: str) -> str:
    """What happens to ``obj`` under ``action`` ("drop", "water", "fire"): its material decides."""
    return MATERIALS[MATERIAL_OF[obj]][action]


def _make_secret_words() -> dict[str, list[str]]:
    words = sorted(
        {o + v + c for o in _ONSETS for v in _VOWELS for c in _CODAS}
        | {o + v + c + "o" for o in _ONSETS[:14] for v in _VOWELS for c in _CODAS[:10]}
    )
    out = {s: [] for s in SPLITS}
    for w in words:
        if w not in _WORLD_WORDS:
            out[split_of("secret:" + w)].append(w)
    return out


CODE_HEADERS = ("Here is a secret code.", "Learn these new words.", "In the secret language:")


def domain_of(name: str) -> list[str]:
    return {"animals": list(ANIMALS), "objects": list(OBJECT_INFO), "foods": list(FOODS)}[name]


def _collect_world_words() -> set[str]:
    words = set()
    # fmt: off
    tables = [ALL_NAMES, TRAITS, KIN, PLACES, COLORS, SIZES, TIMES, list(OBJECT_INFO),
              list(ANIMALS), list(FOODS), TOYS, COUNTABLE, FEELINGS, CODE_WORDS_SOURCE]
    # fmt: on
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
    words.update(
        "bad bat bed big bit bog bug bun but cap cat dad dig dog dot fan fat fig fit fog fox fun "
        "gap gas god got gum gun gut kid kit lab lad lap leg let lid lip lit log lot mad man map "
        "mat men met mix mob mom mop mud mug nap net nod not nut pad pan pat peg pen pet pig pin "
        "pit pod pot pub pup rat red rib rid rim rip rob rod rot rub rug run sad sat set sin sip "
        "sit sob sun tab tag tan tap ten tin tip top tub van vet zip blob blot brag brim drag drip "
        "drop drum flag flap flat flip flop glad grab grid grin grip plan plot plug plum slab slam "
        "slap slim slip slot snap snip snob spot stab step stem stop trap trim trip trot dumb bomb "
        "limb lamb camp damp lamp ramp stamp tent rent dent bent sent went hunt punt tusk musk "
        "desk disk risk task mask bask sick sock suck sack lock luck lick kick pick pack tick tack "
        "dock deck duck neck rock rack back bash dash mash rash sash wish fish dish mush gush rush "
        "push lush box fix mix six wax tax fax sax fox pox lot".split()
    )
    return words


_WORLD_WORDS = _collect_world_words()
SECRET_WORDS = _make_secret_words()
CODE_WORDS = SECRET_WORDS["train"]  # the invented words training documents may use
