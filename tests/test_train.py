import json
import os
import shutil
import subprocess
import sys

import pytest
import torch

from slmlab import TinyLM
from slmlab.checkpoint import CheckpointError
from slmlab.models import load_model as load_pretrained
from slmlab.train import TrainConfig, lr_at, train


def run_config(toy_text, out_dir=None, **train_kw):
    t = dict(batch_size=4, seq_len=32, max_steps=12, warmup_steps=3, eval_every=6, log_every=3,
             progress=False, out_dir=str(out_dir) if out_dir else None)
    t.update(train_kw)
    return {"model": {"n_layer": 2, "n_head": 4, "d_model": 32, "dropout": 0.1},
            "data": {"text_file": str(toy_text), "tokenizer": {"kind": "bpe", "vocab_size": 280}},
            "train": t}


def test_training_lowers_the_loss(toy_text):
    res = train(run_config(toy_text, max_steps=30, lr=3e-3))
    assert res.history[-1]["loss"] < res.history[0]["loss"] - 0.5
    assert res.final_val_loss is not None and all(h["tokens_per_s"] > 0 for h in res.history)


def test_same_seed_same_run(toy_text):
    a, b = train(run_config(toy_text)), train(run_config(toy_text))
    assert [h["loss"] for h in a.history] == [h["loss"] for h in b.history]


def test_resume_continues_the_exact_same_trajectory(toy_text, tmp_path):
    full = train(run_config(toy_text, tmp_path / "full"))
    cfg = run_config(toy_text, tmp_path / "resumed")
    train(cfg, stop_at=6)  # "interrupted" after 6 steps, checkpoint written
    assert json.loads((tmp_path / "resumed/checkpoint/state.json").read_text())["step"] == 6
    resumed = train(cfg)
    assert [h["loss"] for h in resumed.history] == [h["loss"] for h in full.history]
    for (k, a), b in zip(full.model.state_dict().items(), resumed.model.state_dict().values()):
        assert torch.equal(a, b), k
    log = [json.loads(line) for line in (tmp_path / "resumed/log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log] == [3, 6, 9, 12]
    model = load_pretrained(tmp_path / "resumed/model")
    x = torch.randint(0, 100, (1, 10))
    torch.testing.assert_close(model(x), resumed.model(x))


def test_grad_accumulation_matches_a_bigger_batch(toy_text):
    """Accumulating 2 micro-batches of 4 ~ one batch of 8 (the same windows, as the sampler is per micro-step)."""
    a = train(run_config(toy_text, batch_size=4, grad_accum=2, max_steps=4, eval_every=0))
    assert len(a.history) >= 1 and a.history[-1]["tokens"] == 4 * 2 * 32 * 4


def test_schedules():
    c = TrainConfig(max_steps=100, warmup_steps=10, lr=1.0, min_lr=0.1, schedule="cosine")
    assert lr_at(0, c) == pytest.approx(0.1) and lr_at(9, c) == pytest.approx(1.0)
    assert lr_at(100, c) == pytest.approx(0.1)
    w = TrainConfig(max_steps=100, warmup_steps=10, lr=1.0, min_lr=0.1, schedule="wsd", decay_frac=0.2)
    assert lr_at(50, w) == 1.0 and lr_at(79, w) == 1.0 and lr_at(90, w) == pytest.approx(0.55)
    assert lr_at(100, w) == pytest.approx(0.1)


@pytest.mark.parametrize(
    "cfg,match",
    [
        ({"train": {"schedule": "linear"}}, "schedule"),
        ({"train": {"batchsize": 4}}, r"Unknown train option\(s\) \['batchsize'\]"),
        ({"model": {"d_model": 30, "n_head": 4}}, "not divisible"),
        ({"optim": {}}, "Unknown top-level"),
    ],
)
def test_bad_run_configs(toy_text, cfg, match):
    base = run_config(toy_text)
    for k, v in cfg.items():
        base[k] = {**base.get(k, {}), **v}
    with pytest.raises(ValueError, match=match):
        train(base)


def test_missing_and_corrupt_checkpoints(toy_text, tmp_path):
    res = train(run_config(toy_text, tmp_path / "run"))
    model_dir = tmp_path / "run/model"
    with pytest.raises(CheckpointError, match="no model directory"):
        load_pretrained(tmp_path / "nowhere")
    broken = tmp_path / "broken"
    shutil.copytree(model_dir, broken)
    data = (broken / "model.safetensors").read_bytes()
    (broken / "model.safetensors").write_bytes(data[: len(data) // 2])  # truncated download
    with pytest.raises(CheckpointError, match="truncated or corrupt"):
        load_pretrained(broken)
    (broken / "model.safetensors").unlink()
    with pytest.raises(CheckpointError, match="missing"):
        load_pretrained(broken)
    other = tmp_path / "other"
    shutil.copytree(model_dir, other)
    cfg = json.loads((other / "config.json").read_text())
    cfg["d_model"] = 64
    (other / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(CheckpointError, match="does not match its config"):
        load_pretrained(other)
    # a corrupt training checkpoint is refused on resume, and nothing is overwritten
    state = tmp_path / "run/checkpoint/state.json"
    before = {p.name: p.read_bytes() for p in (tmp_path / "run/checkpoint").iterdir()}
    state.write_text("{oops")
    with pytest.raises(CheckpointError, match="corrupt"):
        train(run_config(toy_text, tmp_path / "run", max_steps=20))
    after = {p.name: p.read_bytes() for p in (tmp_path / "run/checkpoint").iterdir()}
    assert after.keys() == before.keys() and after["model.safetensors"] == before["model.safetensors"]


def test_failed_save_leaves_nothing_partial(tmp_path, monkeypatch):
    from slmlab import TinyLMConfig
    from slmlab import checkpoint as ck

    m = TinyLM(TinyLMConfig(vocab_size=50, n_layer=1, n_head=2, d_model=16))
    m.save_pretrained(tmp_path / "m")
    good = (tmp_path / "m/model.safetensors").read_bytes()

    def boom(*a, **k):
        raise OSError("disk full")

    monkeypatch.setattr(ck, "save_file", boom)
    with pytest.raises(OSError, match="disk full"):
        m.save_pretrained(tmp_path / "m")
    assert (tmp_path / "m/model.safetensors").read_bytes() == good
    assert not [p for p in (tmp_path / "m").iterdir() if p.name.endswith(".tmp")]


@pytest.mark.slow
def test_ddp_two_processes_equal_one_process_with_twice_the_batch(toy_text, tmp_path):
    cfg = run_config(toy_text, None, batch_size=4, max_steps=8, eval_every=4, log_every=4)
    cfg["model"]["dropout"] = 0.0
    (tmp_path / "cfg.json").write_text(json.dumps(cfg))
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
         "-m", "slmlab", "train", str(tmp_path / "cfg.json"), "--out-dir", str(tmp_path / "ddp")],
        capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    ddp = [json.loads(line)["loss"] for line in (tmp_path / "ddp/log.jsonl").read_text().splitlines()]
    cfg["train"]["batch_size"] = 8
    single = [h["loss"] for h in train(cfg).history]
    assert ddp == pytest.approx(single, abs=1e-4)


def test_cli_train(toy_text, tmp_path):
    cfg = run_config(toy_text, max_steps=3, eval_every=0)
    (tmp_path / "c.json").write_text(json.dumps(cfg))
    proc = subprocess.run([sys.executable, "-m", "slmlab", "train", str(tmp_path / "c.json"), "--out-dir",
                           str(tmp_path / "out")], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert (tmp_path / "out/model/model.safetensors").is_file()
    assert json.loads(proc.stdout.strip().splitlines()[-1])["final"]["step"] == 3
