"""The document writer: stories, facts, word problems, programs and in-context lessons,
each written from one seeded ``random.Random`` about the world of :mod:`slmlab.data.world`."""

from __future__ import annotations

import random
import re

from .stories import StoryWriter, feeling_cause
from .world import (  # the world's tables are this module's vocabulary
    ACTIONS,
    ALL_NAMES,
    ANIMALS,
    CODE_HEADERS,
    CODE_WORDS_SOURCE,
    COUNTABLE,
    FEELINGS,
    ICL_GROUPS,
    MATERIAL_OF,
    MATERIALS,
    OBJECT_INFO,
    PATTERN_HEADERS,
    PLACE_OF,
    PRONOUNS,
    RELATIONS,
    SECRET_WORDS,
    USE_OF,
    WEATHER,
    article,
    behaviour,
    cap,
    domain_of,
    plural,
    split_of,
)


class Writer(StoryWriter):
    """Writes documents of every kind from one seeded ``random.Random``; ``split`` decides which
    word problems, programs and secret words it may use. Stories and the helpers (a person, an
    object, a description) are :class:`~slmlab.data.stories.StoryWriter`'s."""

    def __init__(self, rng: random.Random, split: str, version: int = 2):
        self.r = rng
        self.split = split
        self.version = version

    # ---------------------------------------------------------------- facts
    def facts(self) -> str:
        r = self.r
        out = []
        for _ in range(r.randint(4, 8)):
            k = r.random()
            if k < 0.25:
                o = self.obj()
                m = MATERIAL_OF[o]
                out.append(
                    r.choice(
                        [
                            f"{cap(article(o))} is made of {m}.",
                            f"Q: What is {article(o)} made of?\nA: {cap(m)}.",
                            f"The {o} is made of {m}. It is {MATERIALS[m]['feel']}.",
                            f"{cap(article(o))} is made of {m}, "
                            f"and {m} {r.choice(MATERIALS[m]['facts'])}.",
                        ]
                    )
                )
            elif k < 0.4:
                m = r.choice(list(MATERIALS))
                action = r.choice(ACTIONS)
                what = {
                    "drop": "If you drop something made of {m}, it {b}.",
                    "water": "If you put something made of {m} in water, it {b}.",
                    "fire": "If you put something made of {m} near a fire, it {b}.",
                }[action]
                out.append(
                    r.choice(
                        [
                            f"Things made of {m} are {MATERIALS[m]['feel']}.",
                            f"Anything made of {m} {r.choice(MATERIALS[m]['facts'])}.",
                            what.format(m=m, b=MATERIALS[m][action]),
                        ]
                        # from version 2, the way back from how a thing feels to its material
                        + [f"Something that is {MATERIALS[m]['feel']} is made of {m}."]
                        * (self.version >= 2)
                    )
                )
            elif k < 0.6:
                action = r.choice(ACTIONS)
                o = self.obj(action)
                q = {
                    "drop": f"What happens if you drop {article(o)}?",
                    "water": f"What happens if you put {article(o)} in water?",
                    "fire": f"What happens if you put {article(o)} near a fire?",
                }[action]
                out.append(
                    r.choice(
                        [
                            f"Q: {q}\nA: It {behaviour(o, action)}.",
                            f"The {o} is made of {MATERIAL_OF[o]}, "
                            f"so if you {action_phrase(action, o)}, it {behaviour(o, action)}.",
                        ]
                    )
                )
            elif k < 0.72:
                o = r.choice(list(OBJECT_INFO))
                out.append(
                    r.choice(
                        [
                            f"You can find {article(o)} in {PLACE_OF[o]}.",
                            f"People use {article(o)} to {USE_OF[o]}.",
                            f"Q: Where can you find {article(o)}?\nA: In {PLACE_OF[o]}.",
                            f"Q: What is {article(o)} for?\nA: You use it to {USE_OF[o]}.",
                        ]
                    )
                )
            elif k < 0.85:
                an = r.choice(list(ANIMALS))
                sound, home, food = ANIMALS[an]
                out.append(
                    r.choice(
                        [
                            f"{cap(article(an))} lives {home}.",
                            f"{cap(article(an))} eats {food}.",
                            f"Q: What does {article(an)} eat?\nA: {cap(food)}.",
                            f"Q: Where does {article(an)} live?\nA: {cap(home)}.",
                            f"{cap(article(an))} is an animal. It lives {home} and eats {food}.",
                            f"{cap(plural(an))} are animals.",
                        ]
                    )
                )
            elif k < 0.93:
                cause = r.choice(list(WEATHER))
                effect = r.choice(WEATHER[cause])
                out.append(
                    r.choice(
                        [f"When {cause}, {effect}.", f"Q: Why {_why(effect)}?\nA: Because {cause}."]
                    )
                )
            else:
                feel = r.choice(FEELINGS)
                g = PRONOUNS[r.choice(("she", "he"))]
                out.append(
                    f"If a child {feeling_cause(r, feel, g, generic=True)}, the child feels {feel}."
                )
        return "\n".join(out)

    # ---------------------------------------------------------------- math
    def math_problem(self) -> tuple[str, str, int]:
        """(question, working, answer): add or subtract, operands and answers between 0 and 99,
        mostly up to 20; from version 2, a fifth of the problems do both (one line of working per
        operation) and a tenth of the operands go up to 500."""
        r = self.r
        name, g = self.person()
        he, him, his = PRONOUNS[g]
        friend, _ = self.person(avoid=name)
        noun = r.choice(COUNTABLE)
        things = plural(noun)

        def n_(k: int) -> str:  # "1 apple", "3 apples"
            return f"{k} {noun if k == 1 else things}"

        k = r.random()
        if self.version >= 2 and k < 0.2:
            return self._two_step_problem(name, he, him, friend, n_, things)
        if k < (0.6 if self.version >= 2 else 0.5):
            x, y = _operands(r, add=True, version=self.version)
            q = r.choice(
                [
                    f"{name} has {n_(x)}. {friend} gives {him} {y} more. "
                    f"How many {things} does {name} have now?",
                    f"There are {n_(x)} in a box and {n_(y)} on the table. "
                    f"How many {things} are there in all?",
                    f"{name} found {n_(x)} in the morning and {n_(y)} in the afternoon. "
                    f"How many {things} did {he} find?",
                    f"{name} has {n_(x)} and {friend} has {n_(y)}. "
                    f"How many {things} do they have together?",
                    f"There were {n_(x)} in the bag. {name} put in {y} more. "
                    f"How many {things} are in the bag now?",
                    f"What is {x} plus {y}?",
                ]
            )
            ans, work = x + y, f"{x} + {y} = {x + y}"
        else:
            x, y = _operands(r, add=False, version=self.version)
            q = r.choice(
                [
                    f"{name} had {n_(x)}. {cap(he)} gave {n_(y)} to {friend}. "
                    f"How many {things} does {name} have left?",
                    f"There were {n_(x)} in a basket. {name} took {y} of them. "
                    f"How many {things} are in the basket now?",
                    f"{name} had {n_(x)} and lost {y}. How many {things} does {he} have now?",
                    f"{name} has {n_(x)}. {friend} has {n_(y)}. "
                    f"How many more {things} does {name} have than {friend}?",
                    f"There were {n_(x)} on the shelf. {y} fell off. "
                    f"How many {things} are still on the shelf?",
                    f"What is {x} minus {y}?",
                ]
            )
            ans, work = x - y, f"{x} - {y} = {x - y}"
        return q, work, ans

    def _two_step_problem(self, name, he, him, friend, n_, things) -> tuple[str, str, int]:
        """Two operations, one line of working each: add then take away, or the reverse."""
        r = self.r
        x, y = _operands(r, add=True, version=self.version)
        if r.random() < 0.5:  # x + y - z
            s = x + y
            z = r.randint(0, s)
            q = r.choice(
                [
                    f"{name} had {n_(x)}. {friend} gave {him} {y} more. Then {he} lost {z}. "
                    f"How many {things} does {name} have now?",
                    f"There were {n_(x)} in a box. {name} put in {y} more and took out {z}. "
                    f"How many {things} are in the box now?",
                    f"What is {x} plus {y} minus {z}?",
                ]
            )
            return q, f"{x} + {y} = {s}\n{s} - {z} = {s - z}", s - z
        x, y = _operands(r, add=False, version=self.version)  # x - y + z
        s = x - y
        z = r.randint(0, 20)
        q = r.choice(
            [
                f"{name} had {n_(x)}. {cap(he)} gave {y} to {friend}. Then {he} found {z} "
                f"more. How many {things} does {name} have now?",
                f"There were {n_(x)} on the shelf. {y} fell off, and {name} put {z} back on. "
                f"How many {things} are on the shelf now?",
                f"What is {x} minus {y} plus {z}?",
            ]
        )
        return q, f"{x} - {y} = {s}\n{s} + {z} = {s + z}", s + z

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
            w1, w2 = r.sample(
                ["yes", "no", "big", "small", "hot", "cold", "up", "down", "cat", "dog"], 2
            )
            return (
                f'{v} = {x}\nif {v} {cmp} {t}:\n    print("{w1}")\nelse:\n    print("{w2}")',
                w1 if cond else w2,
            )
        if k < 0.75:
            n = r.randint(1, 5)
            start = r.randint(0, 10)
            step = r.randint(1, 5)
            op = "+" if r.random() < 0.7 or start < n * step else "-"
            end = start + n * step if op == "+" else start - n * step
            return (
                f"{v} = {start}\nfor i in range({n}):\n    {v} = {v} {op} {step}\nprint({v})",
                str(end),
            )
        if k < 0.85:
            word = r.choice(["hi", "cat", "sun", "red", "big", "yes", "no", "go"])
            return f'{v} = "{word}"\nprint({v})', word
        if k < 0.93:
            x, y = r.randint(0, 9), r.randint(0, 9)
            return f"{v} = {x}\n{v} = {v} + {y}\n{v} = {v} + 1\nprint({v})", str(x + y + 1)
        name = r.choice(ALL_NAMES)
        return f'name = "{name}"\nprint("Hello, " + name)', f"Hello, {name}"

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
        if k < (0.45 if self.version >= 2 else 0.65):  # version 2: more secret codes
            return pattern_lesson(r, n_lines=r.randint(3, 10))
        n = r.randint(1, 10 if self.version >= 2 else 7)
        src = r.sample(CODE_WORDS_SOURCE, n)
        dst = r.sample(pool, n)
        lines = [r.choice(CODE_HEADERS)] + [f"{s} = {d}" for s, d in zip(src, dst)]
        lines += [
            f"{src[i]} = {dst[i]}" for i in (r.randrange(n) for _ in range(r.randint(1, n + 1)))
        ]
        return "\n".join(lines)


def pattern_lesson(
    r: random.Random, n_lines: int, relation: str | None = None, things: list[str] | None = None
) -> str:
    """A pattern lesson: a header that does not say the rule, then ``thing -> value`` lines of one
    relation (an animal's food, home or sound; an object's material, place or use; a food's
    taste)."""
    rel = relation or r.choice(sorted(RELATIONS))
    domain, f = RELATIONS[rel]
    if things is None:
        things = [r.choice(domain_of(domain)) for _ in range(n_lines)]
    return "\n".join([r.choice(PATTERN_HEADERS)] + [f"{t} -> {f(t)}" for t in things])


def icl_episode(
    r: random.Random,
    pool: list[str],
    n_lines: int,
    groups: tuple[str, str] | None = None,
    labels: tuple[str, str] | None = None,
    items: list[tuple[str, int]] | None = None,
):
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


def action_phrase(action: str, o: str) -> str:
    return {"drop": "drop it", "water": "put it in water", "fire": "put it near a fire"}[action]


def _why(effect: str) -> str:
    """ "the ground was wet" -> "was the ground wet" (a question about a weather effect)."""
    m = re.match(
        r"(the [a-z ]+?|there|everyone|nobody|the children|the cars) "
        r"(was|were|could|drove|made|went|flew|wore|froze|melted|stayed|slammed)(.*)",
        effect,
    )
    if not m:
        return f"did it happen that {effect}"
    subj, verb, rest = m.groups()
    if verb in ("was", "were", "could"):
        return f"{verb} {subj}{rest}"
    base = {
        "drove": "drive",
        "made": "make",
        "went": "go",
        "flew": "fly",
        "wore": "wear",
        "froze": "freeze",
        "melted": "melt",
        "stayed": "stay",
        "slammed": "slam",
    }[verb]
    return f"did {subj} {base}{rest}"


def _operands(r: random.Random, add: bool, version: int = 2) -> tuple[int, int]:
    """Small operands most of the time (what a tiny model can learn), larger ones sometimes,
    from version 2 three-digit ones rarely; the answer has at most two digits unless an operand
    has three."""
    if version < 2:
        hi = 10 if r.random() < 0.5 else 20 if r.random() < 0.75 else 50
    else:
        k = r.random()
        hi = 10 if k < 0.45 else 20 if k < 0.75 else 50 if k < 0.9 else 500
    if add:
        x, y = r.randint(0, hi), r.randint(0, hi)
        return x, min(y, (999 if hi == 500 else 99) - x)
    x = r.randint(1, hi)
    return x, r.randint(0, x)
