"""Architecture search on a budget: TinyLM shapes sampled within a parameter budget, ranked by a
cheap proxy, the best kept.

The surveys describe neural architecture search for SLMs as a search over depth, width, heads and
FFN ratio under a memory or latency constraint of the target device, scored by a proxy cheaper
than full training (Nguyen et al., 2024). Here each part is explicit and small:

- a **search space**: TinyLMConfig field -> its choices (:data:`DEFAULT_SPACE`); a combination
  that TinyLMConfig refuses (a width the heads do not divide) is not a candidate;
- a **budget**: the candidate's parameters (:func:`slmlab.models.num_params`) between
  ``min_params`` and ``max_params``;
- a **proxy**: any ``score(fields) -> float``, lower is better; :func:`proxy_loss` trains the
  candidate for a few steps and returns its validation loss;
- two **strategies**: :func:`random_search` (candidates drawn at random within the budget) and
  :func:`evolutionary_search` (regularised evolution, Real et al. 2019: a population, a
  tournament picks a parent, its child differs in one field, the oldest member leaves).

Both return one row per scored candidate, in the order scored: its fields, its parameters and
its score. A candidate is scored once; drawing it again costs nothing.
"""

from __future__ import annotations

import random
from collections.abc import Callable

from ..models import TinyLMConfig, num_params

DEFAULT_SPACE: dict[str, list] = {
    "n_layer": [2, 3, 4, 6, 8, 12],
    "d_model": [64, 80, 96, 112, 128],
    "n_head": [2, 4, 8],
    "n_kv_head": [1, 2, 4],
    "ffn_ratio": [2.0, 8 / 3, 4.0],
    "tie_embeddings": [False, True],
}


def with_fields(base: dict, fields: dict) -> dict:
    """Model options ``base`` with ``fields`` changed; an ``ffn_ratio`` among the fields replaces
    a fixed ``d_ff`` of the base (which would otherwise win)."""
    options = {**base, **fields}
    if "ffn_ratio" in fields:
        options.pop("d_ff", None)
    return options


def candidate_config(base: dict, fields: dict) -> TinyLMConfig | None:
    """The TinyLMConfig of ``base`` (model options) with ``fields`` changed (:func:`with_fields`),
    or None when TinyLMConfig refuses the combination."""
    try:
        return TinyLMConfig(**with_fields(base, fields))
    except ValueError:
        return None


def _key(fields: dict) -> tuple:
    return tuple(sorted(fields.items()))


class _Budget:
    """Which candidates may be scored, and the score of each one scored (scored once)."""

    def __init__(self, space, base, score, max_params, min_params):
        unknown = sorted(set(space) - set(TinyLMConfig.__dataclass_fields__))
        if unknown:
            raise ValueError(f"search space fields {unknown} are not TinyLMConfig fields")
        if not space or any(not choices for choices in space.values()):
            raise ValueError("every field of the search space needs at least one choice")
        if max_params <= min_params:
            raise ValueError(f"max_params={max_params} must exceed min_params={min_params}")
        self.space, self.base, self.score = space, base, score
        self.max_params, self.min_params = max_params, min_params
        self.rows: list[dict] = []
        self.scores: dict[tuple, float] = {}

    def params(self, fields: dict) -> int | None:
        """The candidate's parameters, or None if it is invalid or outside the budget."""
        config = candidate_config(self.base, fields)
        if config is None:
            return None
        n = num_params(config)
        return n if self.min_params <= n <= self.max_params else None

    def evaluate(self, fields: dict, params: int, strategy: str) -> float:
        key = _key(fields)
        if key not in self.scores:
            self.scores[key] = float(self.score(dict(fields)))
            row = {"candidate": len(self.rows), **fields, "params": params}
            self.rows.append({**row, "score": self.scores[key], "strategy": strategy})
        return self.scores[key]


def sample(space: dict, rng: random.Random) -> dict:
    """One choice per field, uniformly."""
    return {name: rng.choice(choices) for name, choices in space.items()}


def mutate(fields: dict, space: dict, rng: random.Random) -> dict:
    """``fields`` with one field (of more than one choice) moved to a neighbouring choice."""
    movable = [name for name, choices in space.items() if len(choices) > 1]
    if not movable:
        return dict(fields)
    name = rng.choice(movable)
    choices = space[name]
    i = choices.index(fields[name])
    j = i + rng.choice([-1, 1]) if 0 < i < len(choices) - 1 else (1 if i == 0 else i - 1)
    return {**fields, name: choices[j]}


def _draw(budget: _Budget, make, tries: int) -> tuple[dict, int]:
    for _ in range(tries):
        fields = make()
        params = budget.params(fields)
        if params is not None and _key(fields) not in budget.scores:
            return fields, params
    raise ValueError(
        f"no new candidate within the budget [{budget.min_params:,}, {budget.max_params:,}] "
        f"in {tries} draws: widen the budget or the search space"
    )


def random_search(
    space: dict,
    base: dict,
    score: Callable[[dict], float],
    n: int,
    max_params: int,
    min_params: int = 0,
    seed: int = 0,
    tries: int = 1000,
) -> list[dict]:
    """Score ``n`` distinct candidates drawn at random from ``space`` within the budget."""
    budget, rng = _Budget(space, base, score, max_params, min_params), random.Random(seed)
    for _ in range(n):
        fields, params = _draw(budget, lambda: sample(space, rng), tries)
        budget.evaluate(fields, params, "random")
    return budget.rows


def evolutionary_search(
    space: dict,
    base: dict,
    score: Callable[[dict], float],
    n: int,
    max_params: int,
    min_params: int = 0,
    population: int = 6,
    tournament: int = 3,
    seed: int = 0,
    tries: int = 1000,
) -> list[dict]:
    """Regularised evolution over ``n`` scored candidates: the first ``population`` drawn at
    random, then each child the mutation of the best of ``tournament`` members drawn from the
    population, which it joins while its oldest member leaves."""
    if not 1 <= tournament <= population <= n:
        raise ValueError(
            f"need 1 <= tournament ({tournament}) <= population ({population}) <= n ({n})"
        )
    budget, rng = _Budget(space, base, score, max_params, min_params), random.Random(seed)
    members: list[tuple[dict, float]] = []
    for _ in range(population):
        fields, params = _draw(budget, lambda: sample(space, rng), tries)
        members.append((fields, budget.evaluate(fields, params, "random")))
    for _ in range(n - population):
        parent = min(rng.sample(members, tournament), key=lambda m: m[1])[0]
        fields, params = _draw(budget, lambda: mutate(parent, space, rng), tries)
        members.append((fields, budget.evaluate(fields, params, "evolution")))
        members.pop(0)  # the oldest leaves, however good: "regularised" evolution
    return budget.rows


def proxy_loss(run_config: dict, steps: int, data) -> Callable[[dict], float]:
    """A proxy ``score(fields)``: the validation loss of the run ``run_config`` with the model
    fields changed, trained for ``steps`` steps on ``data`` (tokenizer, train ids, val ids); a
    diverged run scores infinity."""
    import copy
    import math

    from .run import train

    def score(fields: dict) -> float:
        cfg = copy.deepcopy(run_config)
        cfg["model"] = with_fields(cfg.get("model", {}), fields)
        cfg["train"].update(max_steps=steps, eval_every=steps, out_dir=None, progress=False)
        cfg["train"]["warmup_steps"] = min(cfg["train"].get("warmup_steps", 0), steps // 4)
        loss = train(cfg, resume=False, data=data).final_val_loss
        return loss if loss is not None and math.isfinite(loss) else math.inf

    return score


STRATEGIES = {"random": random_search, "evolution": evolutionary_search}
SPEC_KEYS = {"space", "max_params", "min_params", "proxy_steps", "strategies", "seed", "retrain"}


def check_spec(spec: dict) -> None:
    """Refuse a search spec (an experiment's ``"search"`` section) with unknown keys, no budget,
    or a strategy that is not in :data:`STRATEGIES`."""
    unknown = sorted(set(spec) - SPEC_KEYS)
    if unknown:
        raise ValueError(f"unknown search key(s) {unknown}; known: {sorted(SPEC_KEYS)}")
    for key in ("max_params", "strategies"):
        if key not in spec:
            raise ValueError(f"a search needs {key!r}")
    bad = sorted(set(spec["strategies"]) - set(STRATEGIES))
    if bad:
        raise ValueError(f"unknown search strategy {bad}; known: {sorted(STRATEGIES)}")


def memoised(score: Callable[[dict], float]) -> Callable[[dict], float]:
    """``score``, computed once for each distinct set of fields (so that two strategies, or a
    strategy and a hand-designed run, that reach the same candidate train it once)."""
    seen: dict[tuple, float] = {}

    def once(fields: dict) -> float:
        if _key(fields) not in seen:
            seen[_key(fields)] = score(fields)
        return seen[_key(fields)]

    return once


def run_search(
    spec: dict, base: dict, score: Callable[[dict], float]
) -> tuple[list[dict], list[tuple[dict, float]]]:
    """Every strategy of ``spec`` searched from the model options ``base`` with the same
    ``score`` (e.g. :func:`memoised` :func:`proxy_loss`) and the same budget; returns
    ``(candidates, best)``: one row per candidate each strategy scored (column ``search`` names
    the strategy), and the ``retrain`` distinct best candidates, best first, as ``(model options,
    score)`` (an ``ffn_ratio`` turned into the ``d_ff`` it gives).

    ``spec``: ``space`` (default :data:`DEFAULT_SPACE`), ``max_params``, ``min_params``,
    ``proxy_steps`` (for the caller's proxy), ``strategies`` (name -> keyword arguments, e.g.
    ``{"evolution": {"n": 20, "population": 6}}``), ``seed`` and ``retrain`` (default 2)."""
    check_spec(spec)
    space = spec.get("space", DEFAULT_SPACE)
    candidates = []
    for name, options in spec["strategies"].items():
        rows = STRATEGIES[name](
            space,
            base,
            score,
            max_params=spec["max_params"],
            min_params=spec.get("min_params", 0),
            seed=spec.get("seed", 0),
            **options,
        )
        candidates += [{"search": name, **row} for row in rows]
    best: list[tuple[dict, float]] = []
    for row in sorted(candidates, key=lambda r: r["score"]):
        fields = model_options(base, {name: row[name] for name in space})
        if all(fields != kept for kept, _ in best):
            best.append((fields, row["score"]))
    return candidates, best[: spec.get("retrain", 2)]


def model_options(base: dict, fields: dict) -> dict:
    """``fields`` as the model options a run config takes: an ``ffn_ratio`` becomes the ``d_ff``
    it gives on ``base`` (which a base's own ``d_ff`` would otherwise override)."""
    options = {k: v for k, v in fields.items() if k != "ffn_ratio"}
    if "ffn_ratio" in fields:
        options["d_ff"] = candidate_config(base, fields).hidden_dim
    return options
