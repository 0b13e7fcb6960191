"""``python -m slmlab bench``: TinyLM against transformers' LlamaForCausalLM of the same
configuration, measured side by side in one run on this machine.

Reported, never asserted (machines are shared and noisy): training tokens/s of both, decode
tokens/s with a KV cache of both, and the training step's achieved FLOP/s as a fraction of the
machine's measured float32 matmul FLOP/s. Repetitions of the two peers are interleaved
(A B A B ...) and the medians compared, so a burst of load hits both alike.
"""
from __future__ import annotations

import os
import time

import torch

from ..hf import to_hf
from ..lm import lm_loss
from ..models import TinyLM, TinyLMConfig, flops_per_token
from ..timing import interleaved

BENCH_CONFIG = dict(vocab_size=2048, block_size=256, n_layer=6, n_head=6, n_kv_head=2, d_model=192, d_ff=512)
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
    os.environ.setdefault("KINETO_LOG_LEVEL", "6")  # else the profiler's C++ side logs its start and stop
    from torch.profiler import ProfilerActivity, profile

    step()
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(reps):
            step()
    events = prof.key_averages()
    total = sum(e.self_cpu_time_total for e in events)
    kernels = sum(e.self_cpu_time_total for e in events if e.key.startswith(KERNELS))
    return kernels / total


def run(config: TinyLMConfig | None = None, batch: int = 8, seq: int = 256, new_tokens: int = 200,
        reps: int = 5, matmul_n: int = 2048) -> dict:
    """Measure and return the report (a dict); ``main`` prints it."""
    torch.manual_seed(0)
    config = config or TinyLMConfig(**BENCH_CONFIG)
    ours = TinyLM(config)
    theirs = to_hf(ours)
    report = {"config": config.to_dict(), "parameters": ours.num_params(), "batch": batch, "seq_len": seq,
              "threads": torch.get_num_threads()}

    # training: forward + backward + AdamW step, same weights, same batch
    t = interleaved({"tinylm": _train_step_fn(ours, batch, seq, config.vocab_size, hf=False),
                     "transformers": _train_step_fn(theirs, batch, seq, config.vocab_size, hf=True)}, reps)
    report["train_tokens_per_s"] = {k: batch * seq / v for k, v in t.items()}
    report["train_speedup"] = t["transformers"] / t["tinylm"]
    report["train_kernel_share"] = kernel_share(_train_step_fn(theirs, batch, seq, config.vocab_size, hf=True))

    # the same TinyLM with its input embedding and LM head tied: one weight, two uses
    tied = TinyLM(TinyLMConfig(**{**config.to_dict(), "tie_embeddings": True}))
    t = interleaved({"untied": _train_step_fn(ours, batch, seq, config.vocab_size, hf=False),
                     "tied": _train_step_fn(tied, batch, seq, config.vocab_size, hf=False)}, reps)
    report["tied_step_slowdown"] = t["tied"] / t["untied"]

    # decode: greedy, batch 1, KV cache, same prompt and length. transformers gets its leanest setting:
    # no end-of-sequence token (so no min-length logits processor is needed to force the length).
    # Fresh copies of the initial weights: the training steps above changed both models, differently.
    torch.manual_seed(0)
    ours = TinyLM(config).eval()
    theirs = to_hf(ours)
    theirs.generation_config.eos_token_id = None
    prompt = torch.randint(0, config.vocab_size, (1, 16), generator=torch.Generator().manual_seed(1))
    n = min(new_tokens, config.block_size - prompt.shape[1])
    hf_kw = dict(max_new_tokens=n, do_sample=False, pad_token_id=0, attention_mask=torch.ones_like(prompt))
    with torch.no_grad():
        report["decode_same_tokens"] = torch.equal(ours.generate(prompt, n, temperature=0), theirs.generate(prompt, **hf_kw))
        t = interleaved({
            "tinylm": lambda: ours.generate(prompt, n, temperature=0),
            "transformers": lambda: theirs.generate(prompt, **hf_kw),
        }, max(3, 2 * reps))
    report["decode_tokens_per_s"] = {k: n / v for k, v in t.items()}
    report["decode_speedup"] = t["transformers"] / t["tinylm"]

    # achieved FLOP/s of our training step vs the machine's matmul FLOP/s
    peak = matmul_flops(matmul_n)
    achieved = flops_per_token(config, seq, training=True) * report["train_tokens_per_s"]["tinylm"]
    report["matmul_flops"] = peak
    report["train_flops"] = achieved
    report["train_flops_fraction"] = achieved / peak
    return report


def format_report(r: dict) -> str:
    lines = [f"TinyLM vs transformers LlamaForCausalLM, same config ({r['parameters'] / 1e6:.2f}M parameters), "
             f"batch {r['batch']} x seq {r['seq_len']}, {r['threads']} threads",
             f"{'':28}{'TinyLM':>14}{'transformers':>14}{'ratio':>9}  target"]
    for key, label, target in [("train", "training tokens/s", "train_speedup"),
                               ("decode", "decode tokens/s (KV cache)", "decode_speedup")]:
        a, b = r[f"{key}_tokens_per_s"]["tinylm"], r[f"{key}_tokens_per_s"]["transformers"]
        ratio = r[target]
        verdict = "PASS" if ratio >= TARGETS[target] else "MISS"
        lines.append(f"{label:28}{a:14,.0f}{b:14,.0f}{ratio:8.2f}x  >= {TARGETS[target]}x {verdict}")
    share = r["train_kernel_share"]
    lines.append(f"matrix products + attention kernels: {100 * share:.0f}% of transformers' training step; with "
                 f"these kernels no implementation of this model can train more than {1 / share:.2f}x faster here")
    lines.append("greedy decode: " + ("the same tokens from both" if r["decode_same_tokens"] else "the tokens DIFFER"))
    lines.append(f"tied embedding / LM head: a training step takes {r['tied_step_slowdown']:.2f}x the untied one")
    lines.append(f"training step: {r['train_flops'] / 1e9:.1f} GFLOP/s achieved = "
                 f"{100 * r['train_flops_fraction']:.1f}% of this machine's fp32 matmul "
                 f"({r['matmul_flops'] / 1e9:.1f} GFLOP/s)")
    return "\n".join(lines)


def main(quick: bool = False) -> dict:
    if quick:
        cfg = TinyLMConfig(**{**BENCH_CONFIG, "n_layer": 2, "d_model": 96, "n_head": 3, "n_kv_head": 1, "d_ff": 256})
        report = run(cfg, batch=2, seq=128, new_tokens=40, reps=2, matmul_n=512)
    else:
        report = run()
    print(format_report(report))
    return report
