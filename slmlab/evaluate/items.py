"""Probe items: held-out questions about the TinyTales world, in the formats the corpus uses.

Their own random streams ("probe/..."), the held-out (object, behaviour) pairs, test-split word
problems and programs, and invented words from the test bucket: items training never showed.
"""

from __future__ import annotations

import copy
import random
import re
from collections import Counter
from collections.abc import Iterable

from ..data.world import (
    ACTIONS,
    ALL_NAMES,
    ANIMALS,
    FEELINGS,
    HELD_OUT,
    MATERIAL_OF,
    MATERIALS,
    NAMES,
    OBJECT_INFO,
    PLACE_OF,
    PRONOUNS,
    SECRET_WORDS,
    WEATHER,
    article,
    behaviour,
    cap,
    past,
    split_of,
)
from ..data.writer import Writer, action_phrase, feeling_cause

# The capability probes of slmlab.evaluate ask about the same world, in the formats the
# corpus uses, on items training never showed: their own random streams ("probe/..."), the
# held-out (object, behaviour) pairs, test-split word problems and programs, and invented
# words from the test bucket.
#
# Commonsense kinds and their share of the items. "easy": one fact or rule the corpus states
# about things it names; "medium": one step over what the context says about a new thing (its
# material, then the rule); "hard": two steps (how it feels gives its material) or a lure (two
# new things of different materials, and the question about one of them).
COMMONSENSE_KINDS = {
    "material": 0.1,
    "weather": 0.05,
    "feelings": 0.05,
    "animals": 0.05,
    "where": 0.05,
    "new_thing": 0.3,
    "new_thing_feel": 0.2,
    "two_things": 0.2,
}
COMMONSENSE_DIFFICULTY = {
    "material": "easy",
    "weather": "easy",
    "feelings": "easy",
    "animals": "easy",
    "where": "easy",
    "new_thing": "medium",
    "new_thing_feel": "hard",
    "two_things": "hard",
}


def _check_n(n) -> None:
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"n (the number of items) must be a whole number >= 1, got {n!r}")


def _shot_list(shots, most: int | None = None, what: str = "") -> list[int]:
    """``shots`` as a list of whole numbers >= 0 and, when ``most`` is given, at most ``most``."""
    shot_list = [shots] if isinstance(shots, int) else list(shots)
    if not shot_list or any(
        isinstance(k, bool) or not isinstance(k, int) or k < 0 for k in shot_list
    ):
        raise ValueError(f"shots must be whole numbers >= 0, got {shot_list}")
    if most is not None and max(shot_list) > most:
        raise ValueError(
            f"{what} have at most {most} examples (no thing is shown twice), got "
            f"shots={max(shot_list)}: pass fewer shots"
        )
    return shot_list


def _probe_rng(task: str, seed: int) -> random.Random:
    return random.Random(f"tinytales/probe/{task}/{seed}")


def _options(
    r: random.Random, right: str, wrong: Iterable[str], k: int = 4, lure: str | None = None
) -> tuple[list[str], int]:
    """``k`` options: the right one, the ``lure`` if given, and wrong ones drawn at random."""
    wrong = sorted(set(wrong) - {right, lure})
    opts = [right] + ([lure] if lure else [])
    opts += r.sample(wrong, k - len(opts))
    r.shuffle(opts)
    return opts, opts.index(right)


_DO = {
    "drop": "{He} dropped the {o} on the floor.",
    "water": "{He} put the {o} in the water.",
    "fire": "{He} put the {o} near the fire.",
}


def _new_thing(
    r: random.Random, kind: str, name: str, he: str
) -> tuple[str, str, str | None, dict]:
    """(context, right behaviour, lure, extra fields) of a new thing, named by an invented word
    of the test bucket: its material stated ("new_thing"), only how it feels ("new_thing_feel"),
    or stated beside a second new thing of a material that behaves differently ("two_things":
    the lure is what would happen to the other one)."""
    action = r.choice(ACTIONS)
    m = r.choice(sorted(MATERIALS))
    thing, other = r.sample(SECRET_WORDS["test"], 2)
    friend = r.choice([x for x in ALL_NAMES if x != name])
    lure = None
    if kind == "new_thing":
        told = r.choice(
            [
                f"{name} found {article(thing)}. The {thing} was made of {m}.",
                f"{friend} gave {name} {article(thing)} made of {m}.",
                f"{name} had {article(thing)}. It was made of {m}.",
            ]
        )
    elif kind == "new_thing_feel":
        told = r.choice(
            [
                f"{name} found {article(thing)}. It was {MATERIALS[m]['feel']}.",
                f"{friend} gave {name} {article(thing)}. The {thing} felt {MATERIALS[m]['feel']}.",
            ]
        )
    else:
        m2 = r.choice(sorted(x for x in MATERIALS if MATERIALS[x][action] != MATERIALS[m][action]))
        lure = past(MATERIALS[m2][action])
        (a, ma), (b, mb) = r.sample([(thing, m), (other, m2)], 2)
        told = r.choice(
            [
                f"{name} had {article(a)} made of {ma} and {article(b)} made of {mb}.",
                f"{name} found {article(a)} made of {ma}. {friend} found {article(b)} "
                f"made of {mb}.",
            ]
        )
    context = f"{told} {_DO[action].format(He=cap(he), o=thing)} The {thing}"
    return context, past(MATERIALS[m][action]), lure, {"material": m, "action": action}


def commonsense_items(n: int = 200, seed: int = 0, kinds: dict | None = None) -> list[dict]:
    """Four-way multiple choice about the world, scored by log-likelihood (as lm-evaluation-harness
    does): ``context`` ends just before the answer, ``options`` are continuations (each starts with
    a space), ``label`` indexes the right one; ``kind`` says which sort of knowledge it asks and
    ``difficulty`` its grade (:data:`COMMONSENSE_DIFFICULTY`):

    - easy, "material": a held-out (object, behaviour) pair — training text never shows this
      object doing this, only other objects of its material (the context may say the material);
      "weather": a cause and its effect ("It rained all day, so" -> "the ground was wet.");
      "feelings": an event and how it makes a child feel; "animals": the sound, food or home of
      an animal; "where": where an object is found.
    - medium, "new_thing": an invented word names a new thing and the context says what it is
      made of; what happens to it follows from the material's rule (one step).
    - hard, "new_thing_feel": the context says only how the new thing feels, which gives the
      material, which gives what happens (two steps); "two_things": two new things of materials
      that behave differently, the question about one of them, and what would happen to the
      other among the options (a lure).
    """
    _check_n(n)
    kinds = dict(COMMONSENSE_KINDS if kinds is None else kinds)
    bad = set(kinds) - set(COMMONSENSE_KINDS)
    if bad:
        raise ValueError(
            f"unknown commonsense kind(s) {sorted(bad)}; known: {list(COMMONSENSE_KINDS)}"
        )
    if not kinds or any(not isinstance(w, (int, float)) or w < 0 for w in kinds.values()):
        raise ValueError(f"kinds must map kinds to shares >= 0, got {kinds}")
    r = _probe_rng("commonsense", seed)
    names, weights = zip(*kinds.items())
    pairs = sorted(HELD_OUT)
    items = []
    for _ in range(n):
        kind = r.choices(names, weights)[0]
        g = r.choice(("she", "he"))
        name = r.choice(NAMES[g])
        he, him, his = PRONOUNS[g]
        if kind == "material":
            o, action = r.choice(pairs)
            m = MATERIAL_OF[o]
            wrong = {MATERIALS[mm][action] for mm in MATERIALS} - {MATERIALS[m][action]}
            stated = (
                r.random() < 0.5
            )  # the context says the material (else: recall it, then apply the rule)
            if r.random() < 0.5:  # story style, past tense
                verb = _DO[action].format(He=cap(he), o=o)
                made = f" The {o} was made of {m}." if stated else ""
                context = f"{name} had {article(o)}.{made} {verb} The {o}"
                opts, label = _options(r, past(behaviour(o, action)), (past(w) for w in wrong))
            else:  # fact style, present tense
                q = {
                    "drop": f"drop {article(o)}?",
                    "water": f"put {article(o)} in water?",
                    "fire": f"put {article(o)} near a fire?",
                }[action]
                context = (
                    f"The {o} is made of {m}, so if you {action_phrase(action, o)}, it"
                    if stated
                    else f"Q: What happens if you {q}\nA: It"
                )
                opts, label = _options(r, behaviour(o, action), wrong)
            extra = {"object": o, "action": action, "material_stated": stated}
        elif kind in ("new_thing", "new_thing_feel", "two_things"):
            context, right, lure, extra = _new_thing(r, kind, name, he)
            wrong = {past(MATERIALS[mm][extra["action"]]) for mm in MATERIALS}
            opts, label = _options(r, right, wrong, lure=lure)
        elif kind == "weather":
            cause = r.choice(list(WEATHER))
            right = r.choice(WEATHER[cause])
            wrong = [r.choice(WEATHER[c]) for c in WEATHER if c != cause]
            context = r.choice([f"{cap(cause)}, so", f"That day {cause}, so"])
            opts, label = _options(r, right, wrong)
            extra = {"cause": cause}
        elif kind == "feelings":
            feel = r.choice(FEELINGS)
            context = f"{name} {feeling_cause(r, feel, PRONOUNS[g])}. {cap(he)} felt"
            # every other feeling is wrong, except that happy and proud may go together
            pool = [f for f in FEELINGS if f != feel and {f, feel} != {"happy", "proud"}]
            opts, label = _options(r, feel, pool)
            extra = {"feeling": feel}
        elif kind == "animals":
            an = r.choice(list(ANIMALS))
            sound, home, food = ANIMALS[an]
            q = r.randrange(3)
            if q == 0:
                context = f"{name} saw {article(an)} {home}. The {an}"
                opts, label = _options(r, sound, {s for s, _, _ in ANIMALS.values()})
            elif q == 1:
                context = f"Q: What does {article(an)} eat?\nA:"
                opts, label = _options(r, cap(food), {cap(f) for _, _, f in ANIMALS.values()})
            else:
                context = f"Q: Where does {article(an)} live?\nA:"
                opts, label = _options(r, cap(home), {cap(h) for _, h, _ in ANIMALS.values()})
            extra = {"animal": an}
        else:  # where
            o = r.choice(list(OBJECT_INFO))
            context = f"Q: Where can you find {article(o)}?\nA: In"
            opts, label = _options(
                r, PLACE_OF[o].split(" ", 1)[1], {p.split(" ", 1)[1] for p in PLACE_OF.values()}
            )
            opts = ["the " + x for x in opts]
            extra = {"object": o}
        items.append(
            {
                "kind": kind,
                "difficulty": COMMONSENSE_DIFFICULTY[kind],
                "context": context,
                "options": [" " + x + "." for x in opts],
                "label": label,
                **extra,
            }
        )
    return items


_MADE: dict[tuple[str, int, int], list] = {}  # (task, n, seed) -> items: every suite asks again


def _test_items(task: str, n: int, seed: int, make) -> list:
    """``n`` distinct items of the test split, a third of each difficulty (the first ``n % 3``
    grades one more), in the order they were made (a fresh copy of the ones made before: making
    them draws tens of thousands of problems, most of another split or grade)."""
    _check_n(n)
    if (task, n, seed) not in _MADE:
        _MADE[task, n, seed] = _make_test_items(task, n, seed, make)
    return copy.deepcopy(_MADE[task, n, seed])


def _make_test_items(task: str, n: int, seed: int, make) -> list:
    r = _probe_rng(task, seed)
    w = Writer(r, "test")
    quota = {d: n // 3 + (i < n % 3) for i, d in enumerate(DIFFICULTIES)}
    items, seen = [], set()
    for _ in range(400 * n + 1000):
        key, item = make(w)
        level = item["difficulty"]
        if split_of(key) == "test" and key not in seen and quota[level] > 0:
            seen.add(key)
            quota[level] -= 1
            items.append(item)
            if len(items) == n:
                return items
    raise RuntimeError(f"could not make {n} distinct {task} items")  # pragma: no cover


DIFFICULTIES = ("easy", "medium", "hard")


def math_difficulty(working: str) -> str:
    """ "easy": one operation on numbers up to 20; "medium": one operation with a larger
    two-digit number (where the carries are); "hard": two operations, or a three-digit number."""
    lines = working.strip().split("\n")
    largest = max(int(x) for x in _NUM.findall(lines[0].split("=")[0]))
    if len(lines) > 1 or largest >= 100:
        return "hard"
    return "easy" if largest <= 20 else "medium"


def code_difficulty(program: str) -> str:
    """ "easy": one or two lines of straight code; "medium": three or more lines without control
    flow (reassignment); "hard": a loop or an if/else."""
    if re.search(r"^\s*(for|if|while)\b", program, re.M):
        return "hard"
    return "easy" if program.count("\n") <= 1 else "medium"


def math_items(n: int = 100, seed: int = 0) -> list[dict]:
    """Word problems of the test split (never in training), a third of each difficulty
    (:func:`math_difficulty`): ``prompt`` is "Problem: ...\\n"; the model writes the working
    (one line per operation) and "Answer: N"; ``answer`` is N as a string."""

    def make(w):
        q, work, ans = w.math_problem()
        return "math:" + q, {
            "prompt": f"Problem: {q}\n",
            "answer": str(ans),
            "working": work,
            "difficulty": math_difficulty(work),
        }

    return _test_items("math", n, seed, make)


def code_items(n: int = 100, seed: int = 0) -> list[dict]:
    """Tiny programs of the test split (never in training), a third of each difficulty
    (:func:`code_difficulty`): ``prompt`` ends with "Output:"; ``answer`` is exactly what the
    program prints."""

    def make(w):
        prog, out = w.program()
        return "code:" + prog, {
            "prompt": f"```\n{prog}\n```\nOutput:",
            "answer": out,
            "program": prog,
            "difficulty": code_difficulty(prog),
        }

    return _test_items("code", n, seed, make)


_NUM = re.compile(r"-?\d+")


def trivial_baselines(task: str, n: int = 900, seed: int = 12345) -> dict[str, float]:
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
