"""Probe items: held-out questions about the TinyTales world, in the formats the corpus uses.

Their own random streams ("probe/..."), the held-out (object, behaviour) pairs, test-split word
problems and programs, and invented words from the test bucket: items training never showed.
"""

from __future__ import annotations

import random
import re
from collections import Counter
from collections.abc import Iterable

from ..data.world import (
    ANIMALS,
    CODE_HEADERS,
    CODE_WORDS_SOURCE,
    FEELINGS,
    HELD_OUT,
    ICL_GROUPS,
    MATERIAL_OF,
    MATERIALS,
    NAMES,
    OBJECT_INFO,
    PATTERN_HEADERS,
    PLACE_OF,
    PRONOUNS,
    RELATIONS,
    SECRET_WORDS,
    WEATHER,
    article,
    behaviour,
    cap,
    domain_of,
    past,
    split_of,
)
from ..data.writer import Writer, action_phrase, feeling_cause, icl_episode

# The capability probes of slmlab.evaluate ask about the same world, in the formats the
# corpus uses, on items training never showed: their own random streams ("probe/..."), the
# held-out (object, behaviour) pairs, test-split word problems and programs, and invented
# words from the test bucket.
COMMONSENSE_KINDS = {
    "material": 0.4,
    "weather": 0.15,
    "feelings": 0.15,
    "animals": 0.15,
    "where": 0.15,
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
    r: random.Random, right: str, wrong: Iterable[str], k: int = 4
) -> tuple[list[str], int]:
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
    _check_n(n)
    kinds = dict(COMMONSENSE_KINDS if kinds is None else kinds)
    bad = set(kinds) - set(COMMONSENSE_KINDS)
    if bad:
        raise ValueError(
            f"unknown commonsense kind(s) {sorted(bad)}; known: {list(COMMONSENSE_KINDS)}"
        )
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
                verb = {
                    "drop": f"{cap(he)} dropped the {o} on the floor.",
                    "water": f"{cap(he)} put the {o} in the water.",
                    "fire": f"{cap(he)} put the {o} near the fire.",
                }[action]
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
        if kind != "material":
            difficulty = "easy"  # a fact the corpus states
        else:  # one rule applied to a stated material, or the material recalled first
            difficulty = "medium" if extra["material_stated"] else "hard"
        items.append(
            {
                "kind": kind,
                "difficulty": difficulty,
                "context": context,
                "options": [" " + x + "." for x in opts],
                "label": label,
                **extra,
            }
        )
    return items


def icl_group_items(
    n: int = 100, shots: int | Iterable[int] = (0, 1, 5), seed: int = 0
) -> list[dict]:
    """Secret-words lessons with ``shots`` examples: two invented words (from the test bucket,
    never in training text) each name one group of things (animals, colors, names, ...); the
    query is a new thing of one group, the options are the two words (chance 1/2). The same
    lessons are used for every number of shots (the k-shot prompt shows the first k examples;
    with 5 shots both groups appear), so the scores are paired across shots."""
    _check_n(n)
    # every example and the query are different things, possibly all of the smaller group
    most = min(len(g) for g in ICL_GROUPS.values()) - 1
    shot_list = _shot_list(shots, most, "secret-words lessons")
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
            items.append(
                {
                    "shots": k,
                    "episode": i,
                    "context": context,
                    "options": [" " + labels[0], " " + labels[1]],
                    "label": qj,
                    "groups": groups,
                }
            )
    return items


def icl_pattern_items(
    n: int = 100, shots: int | Iterable[int] = (0, 1, 5), seed: int = 0
) -> list[dict]:
    """Pattern lessons: ``k`` examples ``thing -> value`` of one relation, then a new thing of the
    same domain. The options are the query's values under each relation of its domain (an
    animal's food, home and sound; an object's material, place and use), so only the examples
    say which is meant: at 0 shots every relation is equally likely and the chance level is 1/3
    whatever the model does. The same lessons are used for every number of shots."""
    _check_n(n)
    most = min(len(domain_of(d)) for d in ("animals", "objects")) - 1  # + the query
    shot_list = _shot_list(shots, most, "pattern lessons")
    r = _probe_rng("icl-pattern", seed)
    kmax = max(shot_list + [5])
    items = []
    for i in range(n):
        domain = r.choice(["animals", "objects"])
        rels = sorted(k for k, (d, _) in RELATIONS.items() if d == domain)
        rel = r.choice(rels)
        things = r.sample(domain_of(domain), kmax + 1)
        query, shown = things[-1], things[:-1]
        header = r.choice(PATTERN_HEADERS)
        opts = [RELATIONS[x][1](query) for x in rels]
        r.shuffle(opts)
        f = RELATIONS[rel][1]
        right = f(query)
        for k in shot_list:
            context = "\n".join([header] + [f"{t} -> {f(t)}" for t in shown[:k]] + [f"{query} ->"])
            items.append(
                {
                    "shots": k,
                    "episode": i,
                    "context": context,
                    "options": [" " + o for o in opts],
                    "label": opts.index(right),
                    "relation": rel,
                }
            )
    return items


def icl_items(
    n: int = 100, shots: int | Iterable[int] = (0, 1, 5), seed: int = 0, n_options: int = 4
) -> list[dict]:
    """Secret-code lessons: ``k`` pairs "word = code" in the prompt, then one of the shown words
    again; the answer is its code, an invented word (from the test bucket: never in training) that
    only the prompt gives. The options are the codes of one lesson (chance 1/``n_options``): at 0
    shots nothing in the prompt tells them apart; at 1 shot the answer is the one code shown; at 5
    shots the other options are shown too, paired with other words. The same lessons, query and
    options are used for every number of shots (paired scores)."""
    _check_n(n)
    most = min(len(CODE_WORDS_SOURCE), len(SECRET_WORDS["test"]))  # one code per word
    shot_list = _shot_list(shots, most, "secret-code lessons")
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
            context = "\n".join(
                [header] + [f"{src[j]} = {dst[j]}" for j in shown] + [f"{src[q]} ="]
            )
            items.append(
                {
                    "shots": k,
                    "episode": i,
                    "context": context,
                    "options": [" " + o for o in opts],
                    "label": opts.index(dst[q]),
                }
            )
    return items


def _test_items(task: str, n: int, seed: int, make) -> list:
    _check_n(n)
    r = _probe_rng(task, seed)
    w = Writer(r, "test")
    items, seen = [], set()
    for _ in range(200 * n + 1000):
        key, item = make(w)
        if split_of(key) == "test" and key not in seen:
            seen.add(key)
            items.append(item)
            if len(items) == n:
                return items
    raise RuntimeError(f"could not make {n} distinct {task} items")  # pragma: no cover


DIFFICULTIES = ("easy", "medium", "hard")


def math_difficulty(working: str) -> str:
    """ "easy" when both numbers of the working are at most 10, "medium" up to 20, else "hard"."""
    largest = max(int(x) for x in _NUM.findall(working.split("=")[0]))
    return "easy" if largest <= 10 else "medium" if largest <= 20 else "hard"


def code_difficulty(program: str) -> str:
    """ "easy": one or two lines of straight code; "medium": three or more lines without control
    flow (reassignment); "hard": a loop or an if/else."""
    if re.search(r"^\s*(for|if|while)\b", program, re.M):
        return "hard"
    return "easy" if program.count("\n") <= 1 else "medium"


def math_items(n: int = 100, seed: int = 0) -> list[dict]:
    """Word problems of the test split (never in training): ``prompt`` is "Problem: ...\\n"; the
    model writes the working and "Answer: N"; ``answer`` is N as a string; ``difficulty`` by the
    size of the numbers (:func:`math_difficulty`)."""

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
    """Tiny programs of the test split (never in training): ``prompt`` ends with "Output:";
    ``answer`` is exactly what the program prints; ``difficulty`` by its control flow
    (:func:`code_difficulty`)."""

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
