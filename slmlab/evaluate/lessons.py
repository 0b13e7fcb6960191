"""In-context lessons for the probes: pattern lessons (task recognition), secret codes at the copy
and the lookup grade, and secret-words lessons (groups), each with ``k`` examples, the same lessons
at every number of shots so that the scores are paired across shots. Invented words come from the
test bucket: training never shows them."""

from __future__ import annotations

from collections.abc import Iterable

from ..data.world import (
    CODE_HEADERS,
    CODE_WORDS_SOURCE,
    ICL_GROUPS,
    PATTERN_HEADERS,
    RELATIONS,
    SECRET_WORDS,
    domain_of,
)
from ..data.writer import icl_episode
from .items import _check_n, _probe_rng, _shot_list


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


def icl_copy_items(
    n: int = 100, shots: int | Iterable[int] = (1, 3, 5, 10), seed: int = 0, n_options: int = 4
) -> list[dict]:
    """Secret-code lessons at the *copy* grade: ``k`` pairs "word = code", then one of the shown
    words again; the options are its code and ``n_options - 1`` codes the prompt never shows
    (chance 1/``n_options``). The other pairs are distractor lines, but no other shown code is an
    option: picking the option that appeared in the prompt is enough. (At the lookup grade,
    :func:`icl_items`, the other options are shown too, paired with other words.) The same
    lessons and query are used for every number of shots, the query's pair at a random place."""
    _check_n(n)
    most = min(len(CODE_WORDS_SOURCE), len(SECRET_WORDS["test"])) - (n_options - 1)
    shot_list = _shot_list(shots, most, "secret-code copy lessons")
    if any(k < 1 for k in shot_list):
        raise ValueError(f"copy lessons show the query's pair: shots must be >= 1, got {shot_list}")
    r = _probe_rng("icl-copy", seed)
    pool = SECRET_WORDS["test"]
    kmax = max(shot_list)
    items = []
    for i in range(n):
        src = r.sample(CODE_WORDS_SOURCE, kmax)
        dst = r.sample(pool, kmax + n_options - 1)  # the last ones are never shown
        header = r.choice(CODE_HEADERS)
        order = list(range(1, kmax))
        r.shuffle(order)
        opts = [dst[0]] + dst[kmax:]
        r.shuffle(opts)
        place = {k: r.randrange(k) for k in shot_list}  # where the query's pair stands
        for k in shot_list:
            shown = order[: k - 1]
            shown.insert(place[k], 0)
            context = "\n".join(
                [header] + [f"{src[j]} = {dst[j]}" for j in shown] + [f"{src[0]} ="]
            )
            items.append(
                {
                    "shots": k,
                    "episode": i,
                    "context": context,
                    "options": [" " + o for o in opts],
                    "label": opts.index(dst[0]),
                }
            )
    return items
