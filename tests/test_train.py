import json
import os
import shutil
import subprocess
import sys
import warnings

import pytest
import torch
import torch.nn.functional as F
from helpers import tiny_llama

from slmlab import TinyLM, TinyLMConfig
from slmlab.checkpoint import CheckpointError
from slmlab.models import load_model as load_pretrained
from slmlab.train import TrainConfig, causal_lm_loss, fit, get_batch, lr_at, prepare_data, train
from slmlab.utils import set_seed


def run_config(toy_text, out_dir=None, **train_kw):
    t = dict(
        batch_size=4,
        seq_len=32,
        max_steps=12,
        warmup_steps=3,
        eval_every=6,
        log_every=3,
        progress=False,
        out_dir=str(out_dir) if out_dir else None,
    )
    t.update(train_kw)
    return {
        "model": {"n_layer": 2, "n_head": 4, "d_model": 32, "dropout": 0.1},
        "data": {"text_file": str(toy_text), "tokenizer": {"kind": "bpe", "vocab_size": 280}},
        "train": t,
    }


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
    for (k, a), b in zip(
        full.model.state_dict().items(), resumed.model.state_dict().values(), strict=True
    ):
        assert torch.equal(a, b), k
    log = [json.loads(line) for line in (tmp_path / "resumed/log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log] == [3, 6, 9, 12]
    model = load_pretrained(tmp_path / "resumed/model")
    x = torch.randint(0, 100, (1, 10))
    torch.testing.assert_close(model(x), resumed.model(x))


def test_grad_accumulation_matches_a_bigger_batch(toy_text):
    """Accumulating 2 micro-batches of 4 ~ one batch of 8 (the same windows, as the sampler is per
    micro-step)."""
    a = train(run_config(toy_text, batch_size=4, grad_accum=2, max_steps=4, eval_every=0))
    assert len(a.history) >= 1 and a.history[-1]["tokens"] == 4 * 2 * 32 * 4


def test_train_takes_the_steps_of_a_plain_reference_loop(toy_text):
    """train() is a driver over fit(); its trajectory is the pre-refactor loop's, written out here:
    the same losses at every step and bit-identical weights (dropout on, accumulation, WSD)."""
    cfg = run_config(
        toy_text,
        max_steps=8,
        grad_accum=2,
        log_every=1,
        eval_every=0,
        schedule="wsd",
        decay_frac=0.5,
    )
    tok, train_ids, val_ids = prepare_data(cfg["data"])
    res = train(cfg, data=(tok, train_ids, val_ids))
    c = TrainConfig.from_dict(cfg["train"])
    set_seed(c.seed)
    model = TinyLM(
        TinyLMConfig.from_dict(
            {**cfg["model"], "vocab_size": tok.vocab_size, "block_size": c.seq_len}
        )
    )
    params = list(model.parameters())
    opt = torch.optim.AdamW(
        [
            {"params": [p for p in params if p.dim() >= 2], "weight_decay": c.weight_decay},
            {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0},
        ],
        betas=(c.beta1, c.beta2),
    )
    model.train()
    losses = []
    for step in range(c.max_steps):
        for g in opt.param_groups:
            g["lr"] = lr_at(step, c)
        torch.manual_seed(c.seed * 7_919 + step)  # dropout noise of step `step`
        total = 0.0
        for micro in range(c.grad_accum):
            x, y = get_batch(
                train_ids, step * c.grad_accum + micro, c.seed, c.batch_size, c.seq_len
            )
            loss = F.cross_entropy(model(x).flatten(0, 1), y.flatten()) / c.grad_accum
            loss.backward()
            total += loss.item()
        torch.nn.utils.clip_grad_norm_(params, c.grad_clip)
        opt.step()
        opt.zero_grad()
        losses.append(total)
    assert [h["loss"] for h in res.history] == losses
    for (k, a), b in zip(res.model.state_dict().items(), model.state_dict().values(), strict=True):
        assert torch.equal(a, b), k


def _tiny_llama():
    pytest.importorskip("transformers")
    return tiny_llama(vocab=64, hidden=32, ffn=64).train()  # as constructed: training mode


def _pattern_batches(seed=0, batch=8, T=24, V=64):
    """Windows of a learnable pattern (i, i+3, i+6, ... mod V); the batch of step s is a function
    of (seed, s)."""

    def batches(step):
        g = torch.Generator().manual_seed(seed * 1_000_003 + step)
        start = torch.randint(0, V, (batch, 1), generator=g)
        return (start + 3 * torch.arange(T + 1)) % V

    return batches


def test_fit_trains_a_transformers_causal_lm_and_resumes_exactly(tmp_path):
    c = TrainConfig(
        max_steps=10,
        warmup_steps=2,
        lr=3e-3,
        min_lr=3e-4,
        log_every=2,
        eval_every=0,
        progress=False,
        grad_accum=2,
        device="cpu",
    )
    full = _tiny_llama()
    history = fit(full, _pattern_batches(), "causal_lm", c)
    assert history[-1]["loss"] < history[0]["loss"] - 0.5
    assert history[-1]["tokens"] == 10 * 8 * 25  # every entry of the windows, over 10 steps
    c.out_dir = str(tmp_path / "run")
    resumed = _tiny_llama()
    fit(resumed, _pattern_batches(), causal_lm_loss, c, stop_at=5)
    assert json.loads((tmp_path / "run/checkpoint/state.json").read_text())["step"] == 5
    again = _tiny_llama().eval()  # a fresh process: a new model, filled from the checkpoint
    rest = fit(again, _pattern_batches(), causal_lm_loss, c)
    assert [h["loss"] for h in rest] == [h["loss"] for h in history]
    assert [h["tokens"] for h in rest] == [h["tokens"] for h in history]
    for (k, a), b in zip(full.state_dict().items(), again.state_dict().values(), strict=True):
        assert torch.equal(a, b), k
    assert not again.training  # back in the mode it came in


def test_fit_trains_only_parameters_with_requires_grad_and_logs_metrics():
    m = TinyLM(TinyLMConfig(vocab_size=64, n_layer=1, n_head=2, d_model=16, block_size=32))
    m.embed.weight.requires_grad_(False)  # a frozen part (a LoRA base, say)
    frozen, before = m.embed.weight.clone(), {k: v.clone() for k, v in m.state_dict().items()}
    seen = []

    def loss_and_rows(model, batch):
        seen.append(batch.shape[0])
        loss, _ = causal_lm_loss(model, batch)
        return loss, {"rows": batch.shape[0], "loss_x2": 2 * loss.detach()}

    c = TrainConfig(
        max_steps=3,
        warmup_steps=1,
        log_every=1,
        eval_every=0,
        grad_accum=2,
        progress=False,
        device="cpu",
    )
    history = fit(m, _pattern_batches(batch=6), loss_and_rows, c)
    assert torch.equal(m.embed.weight, frozen) and m.embed.weight.grad is None
    assert any(
        not torch.equal(before[k], v) for k, v in m.state_dict().items() if k != "embed.weight"
    )
    assert seen == [3] * 6  # two micro-batches of 3 rows per step
    assert all(
        h["rows"] == 3 and h["loss_x2"] == pytest.approx(2 * h["loss"], rel=1e-6) for h in history
    )


def _bad_fit(model, monkeypatch, what):
    c = TrainConfig(max_steps=4, warmup_steps=1, eval_every=0, progress=False, device="cpu")
    loss, batches = causal_lm_loss, _pattern_batches(batch=4)
    if what == "unknown loss":
        loss = "causal"
    elif what == "decay_frac":
        c.decay_frac = 1.5  # changed after the config was made: fit checks again
    elif what == "grad_accum":
        c.grad_accum = 3
    elif what == "bf16":
        import slmlab.train.loop as loop

        monkeypatch.setattr(loop, "bf16_supported", lambda device: False)
        c.dtype = "bfloat16"
    elif what == "frozen":
        model.requires_grad_(False)
    fit(model, batches, loss, c)


@pytest.mark.parametrize(
    "what,match",
    [
        (
            "unknown loss",
            r"unknown loss 'causal'; the known losses are \['causal_lm'\]\. Did you mean",
        ),
        ("decay_frac", r"decay_frac must be in \(0, 1\]"),
        ("grad_accum", r"grad_accum=3 must divide .* shape \(4, 25\)"),
        ("bf16", r"bfloat16.*cannot run bfloat16 autocast"),
        ("frozen", "nothing to train"),
    ],
)
def test_fit_errors_leave_the_model_unchanged(monkeypatch, what, match):
    m = TinyLM(TinyLMConfig(vocab_size=64, n_layer=1, n_head=2, d_model=16, block_size=32)).eval()
    before = {k: v.clone() for k, v in m.state_dict().items()}
    with pytest.raises(ValueError, match=match):
        _bad_fit(m, monkeypatch, what)
    assert not m.training and all(p.grad is None for p in m.parameters())
    assert all(torch.equal(before[k], v) for k, v in m.state_dict().items())


def test_config_errors():
    with pytest.raises(ValueError, match=r"decay_frac must be in \(0, 1\], got 0"):
        TrainConfig(schedule="wsd", decay_frac=0)
    with pytest.raises(ValueError, match="warmup_steps must be >= 0"):
        TrainConfig(warmup_steps=-1)
    # a warm-up longer than the run is a run cut short in its warm-up (notebook 21's one-step check)
    c = TrainConfig(max_steps=1, warmup_steps=30, lr=3.0)
    assert lr_at(0, c) == pytest.approx(0.1)


def test_schedules():
    c = TrainConfig(max_steps=100, warmup_steps=10, lr=1.0, min_lr=0.1, schedule="cosine")
    assert lr_at(0, c) == pytest.approx(0.1) and lr_at(9, c) == pytest.approx(1.0)
    assert lr_at(100, c) == pytest.approx(0.1)
    w = TrainConfig(
        max_steps=100, warmup_steps=10, lr=1.0, min_lr=0.1, schedule="wsd", decay_frac=0.2
    )
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
    train(run_config(toy_text, tmp_path / "run"))
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
    assert (
        after.keys() == before.keys() and after["model.safetensors"] == before["model.safetensors"]
    )


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
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            "--nproc_per_node=2",
            "-m",
            "slmlab",
            "train",
            str(tmp_path / "cfg.json"),
            "--out-dir",
            str(tmp_path / "ddp"),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    ddp = [
        json.loads(line)["loss"] for line in (tmp_path / "ddp/log.jsonl").read_text().splitlines()
    ]
    cfg["train"]["batch_size"] = 8
    single = [h["loss"] for h in train(cfg).history]
    assert ddp == pytest.approx(single, abs=1e-4)


def test_cli_train(toy_text, tmp_path):
    cfg = run_config(toy_text, max_steps=3, eval_every=0)
    (tmp_path / "c.json").write_text(json.dumps(cfg))
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "slmlab",
            "train",
            str(tmp_path / "c.json"),
            "--out-dir",
            str(tmp_path / "out"),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert (tmp_path / "out/model/model.safetensors").is_file()
    assert json.loads(proc.stdout.strip().splitlines()[-1])["final"]["step"] == 3


def test_bf16_on_a_cpu_that_emulates_it_warns(monkeypatch):
    import slmlab.train.loop as loop

    m = TinyLM(TinyLMConfig(vocab_size=64, n_layer=1, n_head=2, d_model=16, block_size=32))
    c = TrainConfig(max_steps=1, warmup_steps=0, eval_every=0, progress=False, device="cpu")
    c.dtype = "bfloat16"
    monkeypatch.setattr(loop, "cpu_has_native_bf16", lambda: False)
    with pytest.warns(UserWarning, match="emulates bfloat16 here.*Set train.dtype to 'float32'"):
        fit(m, _pattern_batches(batch=4), causal_lm_loss, c)
    # where the CPU has it (or cannot tell), nothing is said
    for answer in (True, None):
        monkeypatch.setattr(loop, "cpu_has_native_bf16", lambda a=answer: a)
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            fit(m, _pattern_batches(batch=4), causal_lm_loss, c)


def test_cpu_flags_are_read():
    import slmlab.train.loop as loop

    assert loop.cpu_has_native_bf16() in (True, False, None)
