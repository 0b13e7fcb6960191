"""``python -m slmlab bench``: TinyLM against transformers' LlamaForCausalLM of the same
configuration, measured side by side in one run on this machine.

Reported, never asserted (machines are shared and noisy): training tokens/s of both, decode
tokens/s with a KV cache of both, and the training step's achieved FLOP/s as a fraction of the
machine's measured float32 matmul FLOP/s. Repetitions of the two peers are interleaved
(A B A B ...) and the medians compared, so a burst of load hits both alike.

``python -m slmlab bench --checkpoint DIR`` (a transformers ``save_pretrained`` directory of the
Llama family) or ``--config config.json`` (a random model of that configuration, written by
``save_pretrained`` to a temporary directory first) compares ``generate`` of a hub-sized model
instead: the same checkpoint loaded by ``AutoModelForCausalLM`` and by :func:`slmlab.from_hf`,
greedy, batch 1, for each number of new tokens. Each call is timed as a user makes it: the first
call on a freshly loaded model (for TinyLM, that includes building its lean decoder) and the
median of repeated calls (which reuse it).
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

import torch

from ..hf import from_hf, to_hf
from ..lm import lm_loss
from ..models import TinyLM, TinyLMConfig, flops_per_token
from ..timing import interleaved

BENCH_CONFIG = dict(
    vocab_size=2048, block_size=256, n_layer=6, n_head=6, n_kv_head=2, d_model=192, d_ff=512
)
TARGETS = {"train_speedup": 1.3, "decode_speedup": 2.0}


def matmul_flops(n: int = 2048, reps: int = 5) -> float:
    """Best-of-``reps`` float32 FLOP/s of an n x n x n matmul: this machine's practical peak."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    a @ b
    best = float("inf")
    for _ in range(reps):
        t = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - t)
    return 2 * n**3 / best


def _train_step_fn(model, batch: int, seq: int, vocab: int, hf: bool):
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, foreach=True)
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, vocab, (batch, seq), generator=g)
    y = torch.randint(0, vocab, (batch, seq), generator=g)
    model.train()

    def step():
        out = model(x)
        logits = out.logits if hf else out
        loss = lm_loss(logits, y)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    return step


# the operators both implementations must run: matrix products and the attention kernel
KERNELS = ("aten::mm", "aten::addmm", "aten::bmm", "aten::_scaled_dot_product")


def kernel_share(step, reps: int = 2) -> float:
    """Fraction of a step's operator time spent in matrix products and attention (torch.profiler).

    Both implementations of the same model run the same products and the same attention kernel, so
    this share of the slower peer's step is a floor no implementation goes below: a speedup over
    it is at most 1 / share."""
    os.environ.setdefault(
        "KINETO_LOG_LEVEL", "6"
    )  # else the profiler's C++ side logs its start and stop
    from torch.profiler import ProfilerActivity, profile

    step()
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(reps):
            step()
    events = prof.key_averages()
    total = sum(e.self_cpu_time_total for e in events)
    kernels = sum(e.self_cpu_time_total for e in events if e.key.startswith(KERNELS))
    return kernels / total


def run(
    config: TinyLMConfig | None = None,
    batch: int = 8,
    seq: int = 256,
    new_tokens: int = 200,
    reps: int = 5,
    matmul_n: int = 2048,
) -> dict:
    """Measure and return the report (a dict); ``main`` prints it."""
    torch.manual_seed(0)
    config = config or TinyLMConfig(**BENCH_CONFIG)
    ours = TinyLM(config)
    theirs = to_hf(ours)
    report = {
        "config": config.to_dict(),
        "parameters": ours.num_params(),
        "batch": batch,
        "seq_len": seq,
        "threads": torch.get_num_threads(),
    }

    # training: forward + backward + AdamW step, same weights, same batch
    t = interleaved(
        {
            "tinylm": _train_step_fn(ours, batch, seq, config.vocab_size, hf=False),
            "transformers": _train_step_fn(theirs, batch, seq, config.vocab_size, hf=True),
        },
        reps,
    )
    report["train_tokens_per_s"] = {k: batch * seq / v for k, v in t.items()}
    report["train_speedup"] = t["transformers"] / t["tinylm"]
    report["train_kernel_share"] = kernel_share(
        _train_step_fn(theirs, batch, seq, config.vocab_size, hf=True)
    )

    # the same TinyLM with its input embedding and LM head tied: one weight, two uses
    tied = TinyLM(TinyLMConfig(**{**config.to_dict(), "tie_embeddings": True}))
    t = interleaved(
        {
            "untied": _train_step_fn(ours, batch, seq, config.vocab_size, hf=False),
            "tied": _train_step_fn(tied, batch, seq, config.vocab_size, hf=False),
        },
        reps,
    )
    report["tied_step_slowdown"] = t["tied"] / t["untied"]

    # decode: greedy, batch 1, KV cache, same prompt and length. transformers gets its leanest
    # setting: no end-of-sequence token (so no min-length logits processor is needed to force the
    # length). Fresh copies of the initial weights: the training steps above changed both models,
    # differently.
    torch.manual_seed(0)
    ours = TinyLM(config).eval()
    theirs = to_hf(ours)
    theirs.generation_config.eos_token_id = None
    prompt = torch.randint(
        0, config.vocab_size, (1, 16), generator=torch.Generator().manual_seed(1)
    )
    n = min(new_tokens, config.block_size - prompt.shape[1])
    calls = _generate_calls(ours, theirs, prompt, n)
    with torch.no_grad():
        report["decode_same_tokens"] = torch.equal(calls["tinylm"](), calls["transformers"]())
        t = interleaved(calls, max(3, 2 * reps))
    report["decode_tokens_per_s"] = {k: n / v for k, v in t.items()}
    report["decode_speedup"] = t["transformers"] / t["tinylm"]

    # achieved FLOP/s of our training step vs the machine's matmul FLOP/s
    peak = matmul_flops(matmul_n)
    achieved = flops_per_token(config, seq, training=True) * report["train_tokens_per_s"]["tinylm"]
    report["matmul_flops"] = peak
    report["train_flops"] = achieved
    report["train_flops_fraction"] = achieved / peak
    return report


def _generate_calls(ours, theirs, prompt: torch.Tensor, n: int) -> dict:
    """Greedy ``generate`` of ``n`` new tokens after ``prompt`` by TinyLM and by transformers (which
    gets its leanest setting: no end-of-sequence token,
    so no logits processor forces the length)."""
    theirs.generation_config.eos_token_id = None
    hf_kw = {
        "max_new_tokens": n,
        "do_sample": False,
        "pad_token_id": 0,
        "attention_mask": torch.ones_like(prompt),
    }
    return {
        "tinylm": lambda: ours.generate(prompt, n, temperature=0),
        "transformers": lambda: theirs.generate(prompt, **hf_kw),
    }


def format_report(r: dict) -> str:
    lines = [
        (
            f"TinyLM vs transformers LlamaForCausalLM, same config ({r['parameters'] / 1e6:.2f}M "
            f"parameters), batch {r['batch']} x seq {r['seq_len']}, {r['threads']} threads"
        ),
        f"{'':28}{'TinyLM':>14}{'transformers':>14}{'ratio':>9}  target",
    ]
    for key, label, target in [
        ("train", "training tokens/s", "train_speedup"),
        ("decode", "decode tokens/s (KV cache)", "decode_speedup"),
    ]:
        a, b = r[f"{key}_tokens_per_s"]["tinylm"], r[f"{key}_tokens_per_s"]["transformers"]
        ratio = r[target]
        verdict = "PASS" if ratio >= TARGETS[target] else "MISS"
        lines.append(
            f"{label:28}{a:14,.0f}{b:14,.0f}{ratio:8.2f}x  >= {TARGETS[target]}x {verdict}"
        )
    share = r["train_kernel_share"]
    lines.append(
        f"matrix products + attention kernels: {100 * share:.0f}% of transformers' training step; "
        f"with these kernels no implementation of this model can train more than {1 / share:.2f}x "
        "faster here"
    )
    same = r["decode_same_tokens"]
    lines.append("greedy decode: " + ("the same tokens from both" if same else "the tokens DIFFER"))
    lines.append(
        f"tied embedding / LM head: a training step takes {r['tied_step_slowdown']:.2f}x the "
        "untied one"
    )
    lines.append(
        f"training step: {r['train_flops'] / 1e9:.1f} GFLOP/s achieved = "
        f"{100 * r['train_flops_fraction']:.1f}% of this machine's fp32 matmul "
        f"({r['matmul_flops'] / 1e9:.1f} GFLOP/s)"
    )
    return "\n".join(lines)


# --------------------------------------------------------------------------- a hub-sized checkpoint
CHECKPOINT_NEW_TOKENS = (8, 128)
CHECKPOINT_TARGET = 1.0  # TinyLM's generate faster than transformers'


def write_random_checkpoint(config_path, directory, seed: int = 0) -> Path:
    """``directory`` with a randomly initialised float32 model of a transformers ``config.json``
    (e.g. SmolLM2-135M's), written by ``save_pretrained``: a checkpoint of the real shape without a
    download."""
    import json

    from transformers import AutoConfig, AutoModelForCausalLM

    d = json.loads(Path(config_path).read_text(encoding="utf-8"))
    d.pop("torch_dtype", None)
    d.pop("dtype", None)
    config = AutoConfig.for_model(d.pop("model_type"), **d)
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    model.save_pretrained(directory)
    return Path(directory)


def run_checkpoint(
    path, new_tokens=CHECKPOINT_NEW_TOKENS, prompt_len: int = 16, reps: int = 5
) -> dict:
    """``generate`` of the checkpoint at ``path`` by TinyLM (``from_hf``) and by transformers
    (``AutoModelForCausalLM``): greedy, batch 1, transformers without an end-of-sequence token (its
    leanest setting, as in :func:`run`).

    For each number of new tokens: the first call of each (for TinyLM, on a model whose decoder is
    not built yet: :func:`~slmlab.models.decoder.forget` makes every first call pay for packing),
    then ``reps`` repeated calls, interleaved, and their medians."""
    from transformers import AutoModelForCausalLM

    from ..models.decoder import Decoder, forget

    theirs = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32).eval()
    ours = from_hf(path)
    config = ours.config
    prompt = torch.randint(
        0, config.vocab_size, (1, prompt_len), generator=torch.Generator().manual_seed(1)
    )
    report = {
        "checkpoint": str(path),
        "parameters": sum(p.numel() for p in ours.parameters()),
        "prompt_len": prompt_len,
        "threads": torch.get_num_threads(),
        "reps": reps,
        "generate": {},
    }
    with torch.no_grad():
        for n in new_tokens:
            calls = _generate_calls(ours, theirs, prompt, n)
            forget(ours)
            out, first = {}, {}
            for name, call in calls.items():
                t = time.perf_counter()
                out[name] = call()
                first[name] = time.perf_counter() - t
            repeated = interleaved(calls, reps, warmup=0)
            report["generate"][n] = {
                "same_tokens": torch.equal(out["tinylm"], out["transformers"]),
                "first_s": first,
                "first_speedup": first["transformers"] / first["tinylm"],
                "repeated_s": repeated,
                "repeated_speedup": repeated["transformers"] / repeated["tinylm"],
            }
        forget(ours)
        t = time.perf_counter()
        Decoder.for_model(ours)
        report["decoder_build_s"] = time.perf_counter() - t
    return report


def format_checkpoint_report(r: dict) -> str:
    lines = [
        (
            "generate: TinyLM (slmlab.from_hf) vs transformers (AutoModelForCausalLM), "
            f"the same checkpoint ({r['parameters'] / 1e6:.1f}M parameters), "
            f"{r['prompt_len']}-token prompt, greedy, batch 1, {r['threads']} threads"
        ),
        f"{'new tokens':>10}  {'call':<24}{'TinyLM s':>10}{'transformers s':>16}{'ratio':>9}  "
        "target",
    ]
    for n, g in r["generate"].items():
        for key, label in (
            ("first", "first call (cold)"),
            ("repeated", f"repeated (median of {r['reps']})"),
        ):
            a, b, ratio = (
                g[f"{key}_s"]["tinylm"],
                g[f"{key}_s"]["transformers"],
                g[f"{key}_speedup"],
            )
            verdict = "PASS" if ratio > CHECKPOINT_TARGET else "MISS"
            lines.append(
                f"{n:>10}  {label:<24}{a:10.3f}{b:16.3f}{ratio:8.2f}x  > {CHECKPOINT_TARGET}x "
                f"{verdict}"
            )
    same = all(g["same_tokens"] for g in r["generate"].values())
    lines.append(
        "greedy generate: "
        + ("the same tokens from both" if same else "the tokens DIFFER")
        + f" ({' and '.join(str(n) for n in r['generate'])} new tokens)"
    )
    lines.append(
        "TinyLM's decoder (built once per model, in its first call): "
        f"{r['decoder_build_s']:.3f} s to build"
    )
    return "\n".join(lines)


def main(
    quick: bool = False,
    checkpoint=None,
    config=None,
    new_tokens=CHECKPOINT_NEW_TOKENS,
    reps: int | None = None,
) -> dict:
    """Print and return a report: the base-model-shaped comparison by default, or ``generate`` of a
    checkpoint directory (``checkpoint``) or of a random model of a transformers ``config.json``."""
    if checkpoint is not None or config is not None:
        reps = reps or (2 if quick else 5)
        if checkpoint is not None:
            report = run_checkpoint(checkpoint, new_tokens, reps=reps)
        else:
            with tempfile.TemporaryDirectory(prefix="slmlab-bench-") as tmp:
                report = run_checkpoint(write_random_checkpoint(config, tmp), new_tokens, reps=reps)
                report["config"] = str(config)
        print(format_checkpoint_report(report))
        return report
    if quick:
        cfg = TinyLMConfig(
            **{
                **BENCH_CONFIG,
                "n_layer": 2,
                "d_model": 96,
                "n_head": 3,
                "n_kv_head": 1,
                "d_ff": 256,
            }
        )
        report = run(cfg, batch=2, seq=128, new_tokens=40, reps=reps or 2, matmul_n=512)
    else:
        report = run(reps=reps or 5)
    print(format_report(report))
    return report
