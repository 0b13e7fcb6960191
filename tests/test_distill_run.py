"""Distillation as a training run: the run config's ``distill`` section, the loss it makes, and the
sweep's runs with and without it."""

import copy

import pytest
import torch
import torch.nn.functional as F

from slmlab import TinyLM, TinyLMConfig
from slmlab.train import distillation_loss, train
from slmlab.train.sweep import run_config as sweep_run_config


def _config(toy_text, **train_kw):
    t = dict(batch_size=4, seq_len=32, max_steps=6, warmup_steps=2, eval_every=6, log_every=1)
    t.update(progress=False, **train_kw)
    return {
        "model": {"n_layer": 2, "n_head": 4, "d_model": 32},
        "data": {"text_file": str(toy_text), "tokenizer": {"kind": "bpe", "vocab_size": 280}},
        "train": t,
    }


@pytest.fixture(scope="module")
def teacher_dir(toy_text, tmp_path_factory):
    """A TinyLM trained for a few steps, saved with its tokenizer: a teacher directory."""
    out = tmp_path_factory.mktemp("teacher")
    train(_config(toy_text, out_dir=str(out), max_steps=8))
    return out / "model"


def _student(toy_text, teacher_dir, model=None, **distill):
    cfg = _config(toy_text)
    cfg["data"]["tokenizer"] = {"path": str(teacher_dir / "tokenizer.json")}
    if model is not None:
        cfg["model"] = model
    cfg["distill"] = {"teacher": str(teacher_dir), **distill}
    return cfg


def test_hard_weight_mixes_the_cross_entropy_by_hand():
    torch.manual_seed(0)
    cfg = TinyLMConfig(vocab_size=32, d_model=32, n_layer=1, n_head=2, block_size=16)
    teacher, student = TinyLM(cfg).eval(), TinyLM(cfg).eval()
    x, y = torch.randint(0, 32, (3, 8)), torch.randint(0, 32, (3, 8))
    kl_only, _ = distillation_loss(teacher)(student, (x, y))
    mixed, metrics = distillation_loss(teacher, hard_weight=0.25)(student, (x, y))
    ce = F.cross_entropy(student(x).reshape(-1, 32), y.reshape(-1))
    torch.testing.assert_close(mixed, 0.75 * kl_only + 0.25 * ce)
    assert float(metrics["ce"]) == pytest.approx(ce.item(), rel=1e-5)
    for bad in (-0.1, 1.5, True):
        with pytest.raises(ValueError, match="hard_weight"):
            distillation_loss(teacher, hard_weight=bad)


def test_a_student_of_its_own_initialisation_starts_at_zero_kl(toy_text, teacher_dir, tmp_path):
    """A teacher that *is* the student's initialisation (same config, same seed): the first
    step's KL is zero, and training moves it off (the batches are the run's own)."""
    from slmlab.checkpoint import save_pretrained
    from slmlab.tokenizer import load_tokenizer
    from slmlab.utils import set_seed

    tok = load_tokenizer(teacher_dir / "tokenizer.json")
    model = {"n_layer": 1, "n_head": 2, "d_model": 32, "vocab_size": tok.vocab_size}
    set_seed(0)
    twin = TinyLM(TinyLMConfig(block_size=32, **model))
    save_pretrained(twin, tmp_path / "twin", tok)
    cfg = _student(toy_text, tmp_path / "twin", model=model)
    history = train(cfg).history
    assert history[0]["kl"] == pytest.approx(0.0, abs=1e-6)
    assert history[-1]["kl"] > 0


def test_distillation_trains_the_student_towards_the_teacher(toy_text, teacher_dir):
    res = train(_student(toy_text, teacher_dir, direction="reverse", temperature=2.0))
    kls = [h["kl"] for h in res.history]
    assert kls[-1] < kls[0]
    mixed = train(_student(toy_text, teacher_dir, hard_weight=0.5)).history
    assert "ce" in mixed[0] and "kl" in mixed[0]


def test_bad_distill_sections(toy_text, teacher_dir, tmp_path):
    cases = [
        ({"teacher": str(teacher_dir), "alpha": 1}, "unknown distill option"),
        ({"direction": "forward"}, "needs a dict with a 'teacher'"),
        ({"teacher": str(tmp_path / "nowhere")}, "not a save_pretrained directory"),
        ({"teacher": str(teacher_dir), "direction": "up"}, "direction"),
        ({"teacher": str(teacher_dir), "temperature": 0}, "temperature"),
    ]
    for distill, message in cases:
        cfg = _student(toy_text, teacher_dir)
        cfg["distill"] = distill
        with pytest.raises((ValueError, FileNotFoundError), match=message):
            train(cfg)
    other = _config(toy_text)  # a tokenizer trained anew, not the teacher's
    other["data"]["tokenizer"] = {"kind": "bpe", "vocab_size": 300}
    other["distill"] = {"teacher": str(teacher_dir)}
    with pytest.raises(ValueError, match="encodes text differently"):
        train(other)


def test_sweep_runs_with_and_without_a_teacher():
    exp = {
        "name": "distill-test",
        "base": {"model": {}, "data": {}, "train": {}},
        "runs": {
            "hard labels": {},
            "forward KL": {"distill": {"teacher": "data/reference/base", "direction": "forward"}},
        },
    }
    hard = sweep_run_config(copy.deepcopy(exp), "hard labels", 0)
    soft = sweep_run_config(copy.deepcopy(exp), "forward KL", 1)
    assert "distill" not in hard
    assert soft["distill"]["direction"] == "forward"
    assert soft["distill"]["teacher"].endswith("data/reference/base")
    assert soft["distill"]["teacher"].startswith("/")  # resolved against the repository
