"""What quantization buys on this CPU, measured side by side in one run.

Prints:
  1. size: bytes of the float model vs its quantized versions (in memory and saved to disk);
  2. speed of a matmul-bound layer (4096 x 4096, batch 64): float32 vs the int8 paths
     (slmlab's W8A8 layer on torch._int_mm and on its exact float product; PyTorch's dynamic
     int8 quantization) and vs
     4-bit weight-only storage (dequantized on the fly);
  3. the same on the base model (a prefill batch and single-token decoding steps);
  4. how long GPTQ and AWQ take to quantize the base model.

Timings interleave the variants (A B A B ...) and report medians, so a neighbour's load on the
shared CPU hits all of them alike. Usage:

    python benchmarks/bench_quant.py [--model DIR] [--repeat 15] [--threads N] [--quality]

``--quality`` also prints the perplexity of every method and bit width on held-out text
(the corpus' validation split, or --text FILE), the table the chapter's claims rest on.

The base model is slmlab.load_reference("base") when it is shipped, else --model DIR (a
TinyLM save_pretrained directory), else an untrained TinyLM of the base model's shape (sizes
and speeds do not depend on training).
"""

from __future__ import annotations

import argparse
import copy
import tempfile
import time
import warnings

import torch
import torch.nn as nn

from slmlab import TinyLM, TinyLMConfig
from slmlab.calibration import calibration_windows, windows_from_ids
from slmlab.quant import QuantLinear, W8A8Linear, quantize, save_quantized, saved_nbytes
from slmlab.quant.llm_int8 import default_int8_kernel
from slmlab.surgery import find_linears, model_nbytes
from slmlab.timing import interleaved


def torch_dynamic_int8(module: nn.Module, only=None):
    """PyTorch's built-in dynamic int8 quantization (deprecated in torch 2.x, still shipped); None
    if absent. ``only``: names of the linear layers to quantize (default: every nn.Linear)."""
    try:
        from torch.ao.quantization import quantize_dynamic
    except ImportError:
        return None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            return quantize_dynamic(
                module, set(only) if only is not None else {nn.Linear}, dtype=torch.qint8
            )
        except Exception as e:  # pragma: no cover - engine missing on some builds
            print(f"  (torch dynamic int8 unavailable: {e})")
            return None


@torch.no_grad()
def race(fns: dict, repeat: int, warmup: int = 3) -> dict:
    """Median seconds per call of each function, measured interleaved
    (slmlab.timing.interleaved)."""
    return interleaved(fns, repeat, warmup=warmup)


def on_kernel(module: nn.Module, kernel: str) -> nn.Module:
    """A copy of ``module`` whose int8 layers multiply with ``kernel`` ("int_mm" or "float")."""
    module = copy.deepcopy(module)
    for m in module.modules():
        if hasattr(m, "kernel"):
            m.kernel = kernel
    return module


def load_base(model_dir):
    try:
        from slmlab import load_reference

        model, tok = load_reference("base")
        return model.eval(), tok, "reference model 'base'"
    except Exception as e:  # not shipped yet
        reason = str(e).split("\n")[0][:80]
    if model_dir:
        from slmlab.tokenizer import load_tokenizer

        return (
            TinyLM.from_pretrained(model_dir).eval(),
            load_tokenizer(f"{model_dir}/tokenizer.json"),
            model_dir,
        )
    torch.manual_seed(0)
    cfg = TinyLMConfig(vocab_size=2048, block_size=256, n_layer=6, n_head=4, d_model=256, d_ff=768)
    return (
        TinyLM(cfg).eval(),
        None,
        f"untrained TinyLM of the base shape (no reference model: {reason})",
    )


def row(name, *cols):
    print(f"  {name:<44}" + "".join(f"{c:>14}" for c in cols))


def main(argv=None):
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument(
        "--model", help="TinyLM directory to use when the reference model is not shipped"
    )
    ap.add_argument("--repeat", type=int, default=15)
    ap.add_argument(
        "--threads", type=int, default=None, help="torch threads (default: torch's choice)"
    )
    ap.add_argument(
        "--quality", action="store_true", help="also print the perplexity table of all methods"
    )
    ap.add_argument(
        "--text", help="held-out text file for --quality (default: the corpus' validation split)"
    )
    ap.add_argument(
        "--calib-text",
        help="text file to cut calibration windows from (default: the corpus' train split)",
    )
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, quantized engine "
        f"{torch.backends.quantized.engine}, CPU capability "
        f"{torch.backends.cpu.get_cpu_capability()} (slmlab's default int8 kernel here: "
        f"{default_int8_kernel(torch.device('cpu'))})"
    )

    model, tok, source = load_base(args.model)
    c = model.config
    print(
        f"base model: {source}: {model.num_params() / 1e6:.2f}M parameters, d_model={c.d_model}, "
        f"n_layer={c.n_layer}, vocab={c.vocab_size}"
    )
    calib = None
    if tok is not None:
        try:
            text = open(args.calib_text, encoding="utf-8").read() if args.calib_text else None
            calib = calibration_windows(tok, text, n_samples=32, seq_len=128)
        except Exception as e:
            print(f"  (no calibration text: {e}; using random token windows)")
    if calib is None:
        calib = windows_from_ids(torch.randint(0, c.vocab_size, (20000,)), 32, 128)
    if args.quality:
        quality(model, tok, calib, args.text)

    # ------------------------------------------------------------------ 4. quantization time
    t = time.perf_counter()
    q_gptq = quantize(model, "gptq", bits=4, group_size=64, calib=calib)
    t_gptq = time.perf_counter() - t
    t = time.perf_counter()
    quantize(model, "awq", bits=4, group_size=64, calib=calib)
    t_awq = time.perf_counter() - t
    t = time.perf_counter()
    q_rtn = quantize(model, "rtn", bits=4, group_size=64)
    t_rtn = time.perf_counter() - t

    # ------------------------------------------------------------------ 1. size
    variants = {
        "float32": model,
        "int8 W8A8 (per-channel)": quantize(model, "w8a8"),
        "int4 g64 (GPTQ, packed)": q_gptq,
        "NF4 (block 64)": quantize(model, "nf4"),
        "int3 g64 (packed)": quantize(model, "rtn", bits=3, group_size=64),
    }
    print("\n1. Size (the LM head and embeddings stay float32, as in bitsandbytes)")
    row("", "memory MB", "ratio", "saved MB")
    f_bytes = model_nbytes(model)
    with tempfile.TemporaryDirectory() as d:
        for name, m in variants.items():
            b = model_nbytes(m)
            if m is model:
                m.save_pretrained(f"{d}/f")
                disk = saved_nbytes(f"{d}/f")
            else:
                save_quantized(m, f"{d}/{len(name)}")
                disk = saved_nbytes(f"{d}/{len(name)}")
            row(name, f"{b / 1e6:.2f}", f"{b / f_bytes:.3f}", f"{disk / 1e6:.2f}")
    lin_f = sum(
        m.weight.numel() * 4
        for n, m in model.named_modules()
        if isinstance(m, nn.Linear) and n != "lm_head"
    )
    lin_q = sum(
        m.qweight.numel() + m.scales.numel() * 2 + m.zeros.numel()
        for m in q_gptq.modules()
        if isinstance(m, QuantLinear)
    )
    print(
        f"  quantized layers alone, int4 g64 vs float32: {lin_q / lin_f:.3f} "
        f"({8 * lin_q / (lin_f / 4):.2f} bits per weight incl. scales and zero-points)"
    )

    # ------------------------------------------------------------------ 2. matmul-bound layer
    print("\n2. A matmul-bound layer: nn.Linear(4096, 4096), batch of 64 tokens")
    lin = nn.Linear(4096, 4096, bias=False).eval()
    x = torch.randn(64, 4096)
    fns = {
        "float32": lambda: lin(x),
        "int8 W8A8 (slmlab, torch._int_mm)": (lambda q: lambda: q(x))(
            on_kernel(W8A8Linear.from_linear(lin), "int_mm")
        ),
        "int8 W8A8 (slmlab, exact float product)": (lambda q: lambda: q(x))(
            on_kernel(W8A8Linear.from_linear(lin), "float")
        ),
    }
    dyn = torch_dynamic_int8(nn.Sequential(lin))
    if dyn is not None:
        fns["int8 dynamic (torch.ao quantize_dynamic)"] = lambda: dyn(x)
    fns["int4 g64 weight-only (dequant on the fly)"] = (lambda q: lambda: q(x))(
        QuantLinear.from_linear(lin, 4, 64)
    )
    times = race(fns, args.repeat)
    row("", "ms", "vs float32")
    for k, v in times.items():
        row(k, f"{v * 1e3:.2f}", f"{times['float32'] / v:.2f}x")
    layer_ratio = times["float32"] / times["int8 W8A8 (slmlab, torch._int_mm)"]
    layer_ratio_f = times["float32"] / times["int8 W8A8 (slmlab, exact float product)"]

    # ------------------------------------------------------------------ 3. the model
    print("\n3. The base model: prefill 8 x 128 tokens, and 32 decode steps (batch 1, KV cache)")
    ids = calib[:8, :128]
    prompt = calib[:1, :16]
    models = {
        "float32": model,
        "int8 W8A8 (slmlab, torch._int_mm)": on_kernel(
            variants["int8 W8A8 (per-channel)"], "int_mm"
        ),
        "int8 W8A8 (slmlab, exact float product)": on_kernel(
            variants["int8 W8A8 (per-channel)"], "float"
        ),
    }
    dyn_m = torch_dynamic_int8(
        _copy(model), only=find_linears(model)
    )  # LM head stays float, as in the others
    if dyn_m is not None:
        models["int8 dynamic (torch.ao quantize_dynamic)"] = dyn_m
    models["int4 g64 weight-only (dequant on the fly)"] = q_rtn
    prefill = race({k: (lambda m: lambda: m(ids))(m) for k, m in models.items()}, args.repeat)
    decode = race(
        {
            k: (lambda m: lambda: m.generate(prompt, 32, temperature=0))(m)
            for k, m in models.items()
        },
        max(3, args.repeat // 3),
        warmup=1,
    )
    row("", "prefill ms", "vs float32", "decode ms/tok", "vs float32")
    for k in models:
        row(
            k,
            f"{prefill[k] * 1e3:.1f}",
            f"{prefill['float32'] / prefill[k]:.2f}x",
            f"{decode[k] / 32 * 1e3:.2f}",
            f"{decode['float32'] / decode[k]:.2f}x",
        )
    model_ratio = prefill["float32"] / prefill["int8 W8A8 (slmlab, torch._int_mm)"]
    model_ratio_f = prefill["float32"] / prefill["int8 W8A8 (slmlab, exact float product)"]

    print("\n4. Quantization time for the base model (calibration: 32 windows x 128 tokens)")
    row("RTN int4 g64", f"{t_rtn:.2f} s")
    row("GPTQ int4 g64", f"{t_gptq:.2f} s")
    row("AWQ int4 g64 (scale grid 20 + clip search)", f"{t_awq:.2f} s")

    print("\nSummary (ratios, measured above):")
    print(f"  size int4-g64 model / float32 model        {model_nbytes(q_gptq) / f_bytes:.3f}")
    print(
        "  size int8 model / float32 model            "
        f"{model_nbytes(variants['int8 W8A8 (per-channel)']) / f_bytes:.3f}"
    )
    print(f"  int8 speed-up, 4096x4096 layer (batch 64)   {layer_ratio:.2f}x (torch._int_mm)")
    print(f"    the same with the exact float product     {layer_ratio_f:.2f}x")
    print(f"  int8 speed-up, base model prefill           {model_ratio:.2f}x (torch._int_mm)")
    print(f"    the same with the exact float product     {model_ratio_f:.2f}x")
    print(f"  GPTQ time for the base model                {t_gptq:.2f} s")


def quality(model, tok, calib, text_file=None):
    """Perplexity of every method and bit width on held-out text (the chapter's claims)."""
    import pandas as pd

    from slmlab.quant import compare_methods

    if tok is None:
        print("--quality needs a trained model with its tokenizer; skipped.")
        return
    if text_file:
        text = open(text_file, encoding="utf-8").read()[:300_000]
    else:
        from slmlab.data import corpus_text

        text = corpus_text("val", 300_000)
    evals = windows_from_ids(tok.encode(text), 64, 128, seed=1)
    runs = [
        dict(method="rtn", bits=8, symmetric=True),
        dict(method="llm_int8"),
        dict(method="w8a8"),
        dict(method="smoothquant", alpha=0.5),
        dict(method="nf4"),
    ]
    for bits, gs in [(4, 128), (4, 64), (4, 32), (3, 128), (3, 64), (3, 32), (2, 32)]:
        for meth in ("rtn", "gptq", "awq"):
            runs.append(dict(method=meth, bits=bits, group_size=gs))
    t = time.perf_counter()
    rows = compare_methods(model, evals, runs, calib=calib)
    print(
        f"\n0. Quality: perplexity on {evals.numel()} held-out tokens "
        f"({time.perf_counter() - t:.0f} s for all)"
    )
    df = pd.DataFrame(rows)
    df["MB"] = df["bytes"] / 1e6
    print(
        df[
            ["method", "bits", "group_size", "ppl", "ppl_ratio", "bits_per_weight", "MB", "seconds"]
        ].to_string(index=False, float_format=lambda v: f"{v:.4f}")
    )


def _copy(m):
    import copy

    return copy.deepcopy(m)


if __name__ == "__main__":
    main()
