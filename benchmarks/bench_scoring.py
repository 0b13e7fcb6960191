"""How fast the evaluation suite scores a TinyLM, its two batching shortcuts against the plain way,
measured side by side in one run.

Prints, for the base model on 100 items of each task:
  1. multiple choice (commonsense, 4 options): each context run once into a KV cache with the
     options on top (slmlab.evaluate.shared_context) vs every option as a whole sequence (the
     lm-evaluation-harness way), and the largest difference of their log-likelihoods;
  2. greedy generation (math, 48 new tokens): prompts of all lengths in one left-padded batch
     (generate(..., pad=)) vs one batch per prompt length, and whether both give the same texts;
  3. one whole suite call (n_per_task=100, shots 1 and 5), for scale.

Usage: python benchmarks/bench_scoring.py [--repeat 5] [--threads 1]
"""

from __future__ import annotations

import argparse
from unittest import mock

import torch

import slmlab
from slmlab import evaluate
from slmlab.evaluate import items, scoring
from slmlab.timing import interleaved


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    model, tok = slmlab.load_reference("base")
    model.eval()

    mc = items.commonsense_items(100)
    requests = [(it["context"], opt) for it in mc for opt in it["options"]]

    def whole():
        with mock.patch.object(scoring, "can_share_context", lambda m: False):
            return scoring.loglikelihood(model, tok, requests)

    def shared():
        return scoring.loglikelihood(model, tok, requests)

    diff = max(abs(a[0] - b[0]) for a, b in zip(shared(), whole()))
    t = interleaved({"shared": shared, "whole": whole}, args.repeat)
    print(f"multiple choice, {len(requests)} requests: shared context {t['shared']:.2f} s,")
    print(f"  whole sequences {t['whole']:.2f} s: {t['whole'] / t['shared']:.2f}x faster")
    print(f"  largest log-likelihood difference {diff:.1e}")

    prompts = [it["prompt"] for it in items.math_items(100)]

    def padded():
        return scoring.greedy_generate(model, tok, prompts, max_new_tokens=48)

    def by_length():
        with mock.patch.object(scoring, "unsupported", lambda m: "benchmark: no padding"):
            return scoring.greedy_generate(model, tok, prompts, max_new_tokens=48)

    same = padded() == by_length()
    t = interleaved({"padded": padded, "by_length": by_length}, args.repeat)
    print(f"greedy generation, {len(prompts)} prompts: one padded batch {t['padded']:.2f} s,")
    print(
        f"  a batch per length {t['by_length']:.2f} s: {t['by_length'] / t['padded']:.2f}x faster"
    )
    print(f"  same texts: {same}")

    t = interleaved(
        {"suite": lambda: evaluate.suite(model, tok, n_per_task=100, shots=(1, 5))}, args.repeat
    )
    print(f"one suite call (100 items per task): {t['suite']:.2f} s")


if __name__ == "__main__":
    main()
