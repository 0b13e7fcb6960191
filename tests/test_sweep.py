"""Experiments longer than a notebook (slmlab.train.sweep): configs merged per run, results and
logs written with a manifest, shipped results verified, and a shipped run's first steps
reproduced from its config."""

import json

import pytest

from slmlab.checkpoint import CheckpointError
from slmlab.train import sweep
from slmlab.utils import PROJECT_ROOT

TINY = {
    "name": "tiny",
    "base": {
        "model": {"d_model": 32, "n_layer": 1, "n_head": 2, "d_ff": 48, "block_size": 32},
        "data": {
            "train_chars": 60_000,
            "val_chars": 20_000,
            "tokenizer": {"path": "data/reference/base/tokenizer.json"},
        },
        "train": {
            "batch_size": 4,
            "seq_len": 32,
            "max_steps": 6,
            "warmup_steps": 2,
            "eval_every": 6,
            "eval_batches": 2,
            "log_every": 2,
        },
    },
    "runs": {"rope": {}, "learned": {"model": {"pos": "learned"}}},
    "seeds": [0, 1],
    "eval_lengths": [32, 64],
}


def write(tmp_path, exp):
    path = tmp_path / "exp.json"
    path.write_text(json.dumps(exp))
    return path


def test_run_config_merges_the_runs_changes_into_the_base():
    cfg = sweep.run_config(TINY, "learned", 1)
    assert cfg["model"]["pos"] == "learned" and cfg["model"]["d_model"] == 32
    assert cfg["train"]["seed"] == 1 and cfg["train"]["out_dir"] is None
    assert cfg["data"]["tokenizer"]["path"] == str(
        PROJECT_ROOT / "data/reference/base/tokenizer.json"
    )
    assert TINY["base"]["train"].get("seed") is None  # the experiment itself is not changed
    with pytest.raises(ValueError, match="no run 'alibi'"):
        sweep.run_config(TINY, "alibi", 0)


@pytest.mark.parametrize(
    "change,match",
    [
        ({"extra": 1}, "unknown key"),
        ({"runs": {"x": {"optimizer": {}}}}, "changes only"),
        ({"base": None}, None),
    ],
)
def test_bad_experiments_are_refused(tmp_path, change, match):
    exp = {**TINY, **change}
    if exp["base"] is None:
        del exp["base"]
        match = "has no 'base'"
    with pytest.raises(ValueError, match=match):
        sweep.load_experiment(write(tmp_path, exp))
    with pytest.raises(FileNotFoundError):
        sweep.load_experiment(tmp_path / "missing.json")


def test_a_run_may_not_change_the_shared_data(tmp_path):
    exp = {**TINY, "runs": {"other": {"data": {"seed": 3}}}}
    with pytest.raises(ValueError, match="shares it"):
        sweep.run_experiment(exp, tmp_path)


def test_a_sweep_writes_rows_logs_and_a_manifest_that_load_results_checks(tmp_path, monkeypatch):
    rows = sweep.run_experiment(TINY, tmp_path / "tiny")
    assert [(r["run"], r["seed"]) for r in rows] == [
        ("rope", 0),
        ("rope", 1),
        ("learned", 0),
        ("learned", 1),
    ]
    assert all(r["steps"] == 6 and not r["diverged"] for r in rows)
    # more windows than the training run's own evaluation, at its length: close to it
    assert rows[0]["val_loss@32"] == pytest.approx(rows[0]["val_loss"], rel=0.05)
    assert rows[2]["val_loss@64"] is None  # no learned position past block_size
    assert rows[0]["val_loss@64"] > 0
    assert rows[0]["val_loss"] != rows[1]["val_loss"]  # the seeds differ
    monkeypatch.setattr(sweep, "experiments_dir", lambda: tmp_path)
    exp, shipped = sweep.load_results("tiny")
    assert exp == TINY and shipped == rows
    log = sweep.shipped_log("tiny", "rope", 0)
    assert [h["step"] for h in log] == [2, 4, 6]
    # the first steps retrain to the same losses
    shipped_losses, again = sweep.first_steps("tiny", "rope", 0, steps=2)
    assert again == pytest.approx(shipped_losses, rel=1e-4)
    # an altered file is caught
    (tmp_path / "tiny" / "logs" / "rope-s0.jsonl").write_text("{}\n")
    with pytest.raises(CheckpointError, match="altered"):
        sweep.load_results("tiny")
    with pytest.raises(ValueError, match="no shipped experiment"):
        sweep.load_results("nothing")


def test_a_sweep_scores_the_probes_and_reports_the_expert_load(tmp_path):
    exp = {
        **TINY,
        "runs": {"moe": {"model": {"n_experts": 3, "top_k": 1}}},
        "seeds": [0],
        "probes": {"tasks": ["icl_lookup"], "n_per_task": 8, "shots": [1, 5]},
    }
    (row,) = sweep.run_experiment(exp, tmp_path / "probes")
    assert row["icl_lookup@chance"] == 0.25
    assert {row["icl_lookup@1-shot"] * 8, row["icl_lookup@5-shot"] * 8} <= set(range(9))
    (load,) = row["expert_load"]  # one layer, three experts, shares of its assignments
    assert len(load) == 3 and sum(load) == pytest.approx(1.0, abs=1e-3)


SEARCH = {
    "space": {"n_layer": [1, 2], "d_model": [32, 48], "tie_embeddings": [False, True]},
    "max_params": 150_000,
    "proxy_steps": 2,
    "strategies": {"random": {"n": 3}, "evolution": {"n": 3, "population": 2, "tournament": 1}},
    "retrain": 1,
}


def test_a_sweep_with_a_search_trains_its_best_candidate_beside_the_base(tmp_path, monkeypatch):
    exp = {**TINY, "runs": {"base": {}}, "seeds": [0], "eval_lengths": [], "search": SEARCH}
    rows = sweep.run_experiment(exp, tmp_path / "nas")
    monkeypatch.setattr(sweep, "experiments_dir", lambda: tmp_path)
    shipped, _ = sweep.load_results("nas")
    candidates = sweep.shipped_search("nas")
    assert [r["search"] for r in candidates] == ["random"] * 3 + ["evolution"] * 3
    assert all(r["params"] <= 150_000 for r in candidates)
    best = min(candidates, key=lambda r: r["score"])
    assert list(shipped["runs"]) == ["base", "search #1"]  # what was trained, in order
    change = shipped["runs"]["search #1"]["model"]
    assert {k: change[k] for k in SEARCH["space"]} == {k: best[k] for k in SEARCH["space"]}
    assert [r["run"] for r in rows] == ["base", "search #1"]
    assert rows[1]["proxy_loss"] == best["score"] and rows[1]["params"] == best["params"]
    assert rows[0]["proxy_loss"] > 0 and rows[0]["steps"] == rows[1]["steps"] == 6
    shipped_losses, again = sweep.first_steps("nas", "search #1", 0, steps=2)
    assert again == pytest.approx(shipped_losses, rel=1e-4)
    plain = tmp_path / "none"  # an experiment without a search
    plain.mkdir()
    (plain / "experiment.json").write_text(json.dumps(TINY))
    (plain / "results.json").write_text("[]")
    sweep.write_manifest(plain)
    with pytest.raises(ValueError, match="ran no architecture search"):
        sweep.shipped_search("none")


@pytest.mark.parametrize(
    "search,match",
    [
        ({**SEARCH, "budget": 1}, "unknown search key"),
        ({k: v for k, v in SEARCH.items() if k != "max_params"}, "needs 'max_params'"),
        ({**SEARCH, "strategies": {"annealing": {}}}, "unknown search strategy"),
    ],
)
def test_bad_searches_are_refused(tmp_path, search, match):
    with pytest.raises(ValueError, match=match):
        sweep.load_experiment(write(tmp_path, {**TINY, "search": search}))
    with pytest.raises(ValueError, match="are the search's"):
        exp = {**TINY, "runs": {"search #1": {}}, "search": SEARCH}
        sweep.load_experiment(write(tmp_path, exp))


def test_every_shipped_experiment_has_its_config_and_passes_its_checksums():
    shipped = sorted(p.name for p in sweep.experiments_dir().glob("*") if p.is_dir())
    for name in shipped:
        exp, rows = sweep.load_results(name)
        config = sweep.load_experiment(PROJECT_ROOT / "configs" / "experiments" / f"{name}.json")
        searched = {k: v for k, v in exp["runs"].items() if k.startswith(sweep.SEARCHED)}
        assert len(searched) == config.get("search", {}).get("retrain", 2 if searched else 0)
        config["runs"].update(searched)  # the search's best, added when it ran
        assert config == exp, f"configs/experiments/{name}.json differs from what was shipped"
        assert {r["run"] for r in rows} == set(exp["runs"])
        assert len(rows) == len(exp["runs"]) * len(exp.get("seeds", [0]))


@pytest.mark.parametrize(
    "name,label",
    [
        ("block-choices", None),
        ("attention", "MLA r=32"),
        ("attention", "window 32"),
        ("shape", "repeat x2"),
        ("shape", "layer-wise"),
        ("beyond-attention", "Mamba"),
        ("beyond-attention", "RWKV"),
        ("beyond-attention", "MoE 4 x top-1, same total"),
        ("search", "search #1"),
    ],
)
def test_a_shipped_experiments_first_steps_reproduce_from_its_config(name, label):
    exp, _ = sweep.load_results(name)
    label = label or next(iter(exp["runs"]))
    shipped, again = sweep.first_steps(name, label, exp["seeds"][0], steps=2)
    # float32 on another CPU: the same data and initialisation, summation order may differ
    assert again == pytest.approx(shipped, rel=2e-3)
