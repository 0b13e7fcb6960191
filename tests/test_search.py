"""Architecture search (slmlab.train.search): candidates within the budget, scored once each,
mutations one field at a time, evolution that keeps improving on a score whose optimum is known,
and the training proxy on a tiny run."""

import math
import random

import pytest

from slmlab.models import num_params
from slmlab.train import search

BASE = {"vocab_size": 256, "block_size": 32}
SPACE = {
    "n_layer": [1, 2, 3, 4],
    "d_model": [32, 48, 64],
    "n_head": [2, 4],
    "n_kv_head": [1, 2, 4],
    "ffn_ratio": [2.0, 4.0],
}


def params_of(fields):
    return num_params(search.candidate_config(BASE, fields))


def test_combinations_tinylm_refuses_are_not_candidates():
    assert search.candidate_config(BASE, {"n_head": 2, "n_kv_head": 4}) is None
    c = search.candidate_config({**BASE, "d_ff": 100}, {"d_model": 48, "ffn_ratio": 2.0})
    assert c.d_model == 48 and c.hidden_dim == 96  # the ratio replaces a fixed width


def test_random_search_scores_distinct_candidates_within_the_budget():
    calls = []

    def score(fields):
        calls.append(fields)
        return params_of(fields) / 1e5

    rows = search.random_search(SPACE, BASE, score, n=12, max_params=120_000, seed=3)
    assert len(rows) == len(calls) == 12
    keys = {tuple(sorted((k, r[k]) for k in SPACE)) for r in rows}
    assert len(keys) == 12  # each candidate scored once
    assert all(r["params"] == params_of({k: r[k] for k in SPACE}) <= 120_000 for r in rows)
    assert [r["candidate"] for r in rows] == list(range(12))
    again = search.random_search(SPACE, BASE, score, n=12, max_params=120_000, seed=3)
    assert again == rows  # the seed fixes the draws


def test_a_budget_nothing_fits_is_refused():
    with pytest.raises(ValueError, match="no new candidate"):
        search.random_search(SPACE, BASE, lambda f: 0.0, n=2, max_params=100, tries=50)
    with pytest.raises(ValueError, match="not TinyLMConfig fields"):
        search.random_search({"width": [1]}, BASE, lambda f: 0.0, n=1, max_params=10**6)
    with pytest.raises(ValueError, match="tournament"):
        search.evolutionary_search(
            SPACE, BASE, lambda f: 0.0, n=4, max_params=10**6, population=2, tournament=3
        )


def test_a_mutation_moves_one_field_to_a_neighbouring_choice():
    rng = random.Random(0)
    start = {"n_layer": 1, "d_model": 48, "n_head": 4, "n_kv_head": 2, "ffn_ratio": 4.0}
    for _ in range(50):
        child = search.mutate(start, SPACE, rng)
        changed = [k for k in SPACE if child[k] != start[k]]
        assert len(changed) == 1
        k = changed[0]
        assert abs(SPACE[k].index(child[k]) - SPACE[k].index(start[k])) == 1


def test_evolution_improves_on_its_random_start_toward_a_known_optimum():
    """A score with a known best shape: as close as possible to 40,000 parameters, deep."""

    def score(fields):
        return abs(params_of(fields) - 40_000) / 40_000 + 0.05 * (4 - fields["n_layer"])

    rows = search.evolutionary_search(
        SPACE, BASE, score, n=30, max_params=200_000, population=6, tournament=3, seed=1
    )
    start = min(r["score"] for r in rows[:6])
    assert min(r["score"] for r in rows) < start
    assert {r["strategy"] for r in rows} == {"random", "evolution"}
    best = min(rows, key=lambda r: r["score"])
    assert best["n_layer"] >= 3


def test_the_training_proxy_scores_a_shape_by_its_short_run_loss():
    from slmlab.train.data import prepare_data

    run = {
        "model": {"d_model": 32, "n_layer": 1, "n_head": 2, "d_ff": 48, "block_size": 32},
        "data": {"train_chars": 40_000, "val_chars": 10_000},
        "train": {"batch_size": 4, "seq_len": 32, "warmup_steps": 2, "eval_batches": 2},
    }
    data = prepare_data(run["data"])
    score = search.proxy_loss(run, steps=4, data=data)
    small = score({"n_layer": 1, "d_model": 32})
    other = score({"n_layer": 2, "d_model": 48, "ffn_ratio": 2.0})
    assert math.isfinite(small) and math.isfinite(other) and small != other
    assert run["model"]["d_ff"] == 48  # the base run config is left as it was


def test_run_search_scores_each_candidate_once_across_strategies():
    calls = []

    def score(fields):
        calls.append(search._key(fields))
        return params_of(fields) / 1e6  # smaller is better: a known order

    spec = {
        "space": SPACE,
        "max_params": 90_000,
        "strategies": {"random": {"n": 5}, "evolution": {"n": 8, "population": 3}},
        "retrain": 2,
    }
    candidates, best = search.run_search(spec, BASE, search.memoised(score))
    assert [r["search"] for r in candidates] == ["random"] * 5 + ["evolution"] * 8
    assert len(calls) == len(set(calls))  # the shared start is trained once
    first = [r["score"] for r in candidates[:3]]
    assert [r["score"] for r in candidates[5:8]] == first  # the same seed: the same start
    ranked = sorted(candidates, key=lambda r: r["score"])
    (top, top_score), (second, _) = best
    assert top_score == ranked[0]["score"] and top != second
    assert "ffn_ratio" not in top  # run-config options: the ratio is a width
    fields = {name: ranked[0][name] for name in SPACE}
    assert top["d_ff"] == search.candidate_config(BASE, fields).hidden_dim
