"""Generation scored by execution: running untrusted programs safely, and pass@k.

A code benchmark (HumanEval, MBPP) scores a model by *running* what it wrote: a completion
passes when the program behaves as it should. The ``programs`` probe
(:func:`slmlab.evaluate.probes.programs`) turns this around: the model reads a tiny program and
predicts what it prints; the truth is what the program prints when it runs. Either way, text
that came out of a model (or off the internet) gets executed, and this module is about doing
that without regret, then about counting successes fairly.

**The threat model.** A program to run is untrusted: written by a model that copies whatever
it saw, it may loop forever, allocate all the memory there is, recurse until the interpreter
crashes, print without end, or (copied from a shell script, or by design) read files, delete
them, or talk to the network. The caller, a notebook or a test run, must survive all of it and
learn what happened. :func:`run_program` stacks three layers, each enough for the programs the
probes run and together enough for careless code, though not for a determined attacker:

1. *A separate process.* The program runs in a fresh interpreter (``sys.executable -I -S``:
   isolated mode, no ``site``, no user or environment settings), started with an empty
   environment, in an empty temporary directory that is deleted afterwards, in a session of its
   own. A crash, a segfault or an exhausted heap ends that process, never the caller; the caller
   kills it after ``timeout`` seconds of wall clock.
2. *Kernel limits* (``resource.setrlimit``, Linux and macOS), set in the child before the
   program is even parsed: CPU seconds (``RLIMIT_CPU``: a runaway loop dies even if the caller
   is gone), address space (``RLIMIT_AS``, 256 MB: a memory bomb gets a ``MemoryError``), file
   size 0 (``RLIMIT_FSIZE``: nothing can be written to a file), no new file descriptors
   (``RLIMIT_NOFILE`` at 3, which stdin, stdout and stderr already use: no file can be opened,
   no socket or pipe created, no module imported), no new processes (``RLIMIT_NPROC`` 0, which
   the kernel does not apply to root) and no core dumps.
3. *A restricted language.* Before running, the source is parsed and rejected if it imports
   anything, uses a name or attribute that starts with an underscore (``__import__``,
   ``().__class__.__base__.__subclasses__()``, the classic ways out of a sandboxed namespace), or
   an attribute that reaches frames, code or tracebacks (``gi_frame``, ``f_back``, ``f_globals``,
   ``tb_frame``, ...) or formats attributes by name (``"{0.__class__}".format``). It then runs
   with only :data:`SAFE_BUILTINS` (``print``, ``range``, ``len``, ``sorted``, ...): no
   ``open``, ``eval``, ``exec``, ``compile``, ``getattr``, ``globals``, ``input``... A program
   that uses them fails with a ``NameError``. ``print`` writes to a buffer that stops the
   program once it holds ``max_output`` characters.

Layer 3 alone is famously escapable (Python was not designed to be sandboxed from inside; the
denylist is closed for the escapes known here, not proven complete), which is why layers 1 and 2
exist: even a program that got the real builtins back could not open a file or a socket, write
to disk, fork, or outlast its limits. For code from a real adversary, run it where the operating
system draws the line: a container or VM without network, seccomp, gVisor, nsjail.

**pass@k.** Sample ``n`` completions per problem at a temperature above 0, count the ``c`` that
are correct, and estimate the probability that at least one of ``k`` samples is correct with
the unbiased estimator of Chen et al. (2021, the Codex paper): :func:`pass_at_k`. pass@1 at
temperature 0.8 is the expected accuracy of *one* sample, lower than greedy decoding's exact
match; pass@10 says how often the right answer is among the model's guesses at all.

=======================  ===================================================================
:func:`run_program`      run one untrusted program: ``{"ok", "output", "error"}``
:func:`check_source`     the reasons a source is rejected before it runs (empty: allowed)
:func:`pass_at_k`        the unbiased pass@k estimator, in its numerically stable form
:func:`score_samples`    pass@k over problems, of predicted outputs or of programs to run
:func:`sample_outputs`   ``n`` sampled continuations per probe item (TinyLM or transformers)
:func:`pass_at_k_probe`  the ``programs`` probe scored by pass@k, truths from running them
=======================  ===================================================================
"""

from __future__ import annotations

import ast
import json
import math
import operator
import os
import sys
from collections.abc import Sequence

# This file is also the program the child process runs (``python -I -S execution.py``): at the
# top only the standard library modules the child needs are imported; the parent's (subprocess,
# torch, the rest of slmlab) are imported in the functions that use them.

SAFE_BUILTINS = (
    "print",
    "range",
    "len",
    "int",
    "str",
    "abs",
    "min",
    "max",
    "sum",
    "sorted",
    "list",
    "dict",
    "set",
    "tuple",
    "enumerate",
    "zip",
    "bool",
    "float",
    "round",
    "isinstance",
    "reversed",
    "any",
    "all",
    "map",
    "filter",
)
"""The only builtins a program sees (``print`` replaced by one that writes to a bounded buffer)."""

# Attributes that lead from an ordinary object to the interpreter's machinery: frames (and from
# a frame its caller's globals, where the real builtins live), code objects, tracebacks; and the
# string methods that look attributes up by name inside a format string.
_FORBIDDEN_PREFIXES = ("_", "gi_", "cr_", "ag_", "f_", "tb_", "co_")
_FORBIDDEN_ATTRIBUTES = {"format", "format_map", "mro"}

MEMORY_LIMIT = 256 * 2**20  # bytes of address space for the child
MAX_SOURCE_CHARS = 100_000  # longer sources are rejected before a process starts
_MAX_ERROR_CHARS = 1_000


def check_source(source: str) -> list[str]:
    """The reasons ``source`` may not run (an empty list: it may): import statements, names or
    attributes starting with an underscore, and attributes that reach frames, code objects or
    tracebacks or format by attribute name. Raises ``SyntaxError`` for a source that does not
    parse. :func:`run_program` calls it in the child process, after the limits are set."""
    problems = []
    for node in ast.walk(ast.parse(source, "<program>")):
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            why = "import statements are not allowed"
        elif isinstance(node, ast.Attribute) and (
            node.attr.startswith(_FORBIDDEN_PREFIXES) or node.attr in _FORBIDDEN_ATTRIBUTES
        ):
            why = f"attribute .{node.attr} is not allowed"
        elif isinstance(node, ast.Name) and node.id.startswith("__"):
            why = f"name {node.id} is not allowed"
        else:
            continue
        problems.append((node.lineno, node.end_col_offset, f"{why} (line {node.lineno})"))
    return [why for *_, why in sorted(problems)]


# ----------------------------------------------------------------------------- the child
class _OutputLimit(BaseException):
    """Raised by the buffered ``print`` when the output is full. A program's bare ``except:``
    may catch it, but the output stays truncated and the run counts as failed."""


def _bounded_print(limit: int):
    """``(print, output)``: a ``print`` that appends to the list ``output`` until ``limit``
    characters are held, then keeps the first ``limit`` and raises :class:`_OutputLimit`. The
    list ends with ``None`` once the output was truncated."""
    parts: list = []
    size = 0

    def safe_print(*args, sep=" ", end="\n", flush=False):
        nonlocal size
        sep = " " if sep is None else sep
        end = "\n" if end is None else end
        if not isinstance(sep, str) or not isinstance(end, str):
            raise TypeError("print's sep and end must be strings")
        if parts and parts[-1] is None:
            raise _OutputLimit
        text = sep.join(str(a) for a in args) + end
        if size + len(text) > limit:
            parts.extend([text[: limit - size], None])
            size = limit
            raise _OutputLimit
        parts.append(text)
        size += len(text)

    return safe_print, parts


def _set_limits(timeout: float, memory_limit: int) -> None:
    """Kernel limits for this (child) process; see the module docstring. Each is lowered only:
    a limit the system already sets lower stays."""
    import resource

    def lower(which, value):
        now = [v for v in resource.getrlimit(which) if v != resource.RLIM_INFINITY]
        value = min([value, *now])
        try:
            resource.setrlimit(which, (value, value))
        except (ValueError, OSError):  # e.g. macOS refuses some address-space limits
            pass

    cpu = math.ceil(timeout) + 1  # a backstop: the parent kills the child after `timeout`
    soft, hard = resource.getrlimit(resource.RLIMIT_CPU)
    if hard == resource.RLIM_INFINITY or hard >= cpu + 1:
        resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 1))  # SIGXCPU, then SIGKILL
    lower(resource.RLIMIT_AS, memory_limit)
    lower(resource.RLIMIT_FSIZE, 0)
    lower(resource.RLIMIT_CORE, 0)
    if hasattr(resource, "RLIMIT_NPROC"):
        lower(resource.RLIMIT_NPROC, 0)
    lower(resource.RLIMIT_NOFILE, 3)  # last: stdin, stdout, stderr stay; nothing new opens


def _execute(source: str, max_output: int) -> dict:
    """Check, compile and run ``source`` in a namespace of :data:`SAFE_BUILTINS` (in the child,
    after :func:`_set_limits`)."""
    import builtins

    safe_print, parts = _bounded_print(max_output)
    error = None
    try:
        problems = check_source(source)
        if problems:
            return {"ok": False, "output": "", "error": "rejected: " + "; ".join(problems)}
        code = compile(source, "<program>", "exec")
        namespace = {"__builtins__": {n: getattr(builtins, n) for n in SAFE_BUILTINS}}
        namespace["__builtins__"]["print"] = safe_print
        exec(code, namespace)
    except BaseException as e:  # noqa: B036 -- everything the program raises is a result
        namespace = None  # free what the program held before describing what went wrong
        error = f"{type(e).__name__}: {e}" if str(e) else type(e).__name__
    truncated = bool(parts) and parts[-1] is None
    if truncated:
        error = f"output limit: the program printed more than {max_output} characters"
    output = "".join(p for p in parts if p is not None)
    return {"ok": error is None, "output": output, "error": error and error[:_MAX_ERROR_CHARS]}


def _child_main() -> None:
    """The child process: read the job (JSON) from stdin, set the limits, run, write the result
    (JSON) to stdout. The program itself never sees stdout: it prints into a buffer."""
    job = json.loads(sys.stdin.read())
    _set_limits(job["timeout"], job["memory_limit"])
    result = _execute(job["source"], job["max_output"])
    sys.stdout.write(json.dumps(result))
    sys.stdout.flush()


# ----------------------------------------------------------------------------- the parent
def run_program(
    source: str,
    timeout: float = 1.0,
    max_output: int = 10_000,
    memory_limit: int = MEMORY_LIMIT,
) -> dict:
    """Run the untrusted Python program ``source`` in a separate, limited process (see the
    module docstring) and return ``{"ok": bool, "output": str, "error": str | None}``.

    ``output`` is what the program printed, at most ``max_output`` characters; ``ok`` is True
    when it ran to its end without an exception and within every limit, else ``error`` says
    what stopped it: ``"rejected: ..."`` (by :func:`check_source`), the exception
    (``"NameError: name 'open' is not defined"``, ``"MemoryError"``), ``"timeout: ..."`` (killed
    after ``timeout`` seconds of wall clock, the interpreter's start included),
    ``"output limit: ..."``, or the signal that ended the process."""
    import signal
    import subprocess
    import tempfile

    if not isinstance(source, str):
        raise TypeError(f"source must be the program's text (a str), got {type(source).__name__}")
    if not timeout > 0:
        raise ValueError(f"timeout must be > 0 seconds, got {timeout}")
    if max_output < 0:
        raise ValueError(f"max_output must be >= 0 characters, got {max_output}")
    if len(source) > MAX_SOURCE_CHARS:
        return {
            "ok": False,
            "output": "",
            "error": f"rejected: the source has {len(source)} characters, "
            f"more than {MAX_SOURCE_CHARS}",
        }
    job = json.dumps(
        {
            "source": source,
            "timeout": timeout,
            "max_output": max_output,
            "memory_limit": memory_limit,
        }
    )
    with tempfile.TemporaryDirectory(prefix="slmlab-run-") as workdir:
        proc = subprocess.Popen(
            [sys.executable, "-I", "-S", os.path.abspath(__file__)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            cwd=workdir,
            env={},
            start_new_session=True,  # its own process group, killed as one
        )
        try:
            out, err = proc.communicate(job.encode(), timeout=timeout)
        except subprocess.TimeoutExpired:
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:  # pragma: no cover - ended just now
                pass
            proc.communicate()
            return {
                "ok": False,
                "output": "",
                "error": f"timeout: killed after {timeout:g} s of wall clock",
            }
    if proc.returncode == 0:
        try:
            return json.loads(out)
        except ValueError:  # pragma: no cover - the child always writes JSON when it ends
            pass
    if proc.returncode < 0:
        sig = signal.Signals(-proc.returncode)
        why = {
            signal.SIGXCPU: "CPU time limit exceeded",
            signal.SIGKILL: "killed",
            signal.SIGSEGV: "crashed (segmentation fault)",
        }.get(sig, "ended by a signal")
        error = f"{why} ({sig.name})"
    else:
        error = f"the interpreter exited with status {proc.returncode}"
    tail = err.decode(errors="replace").strip().splitlines()[-3:]
    if tail:
        error += ": " + " | ".join(tail)
    return {"ok": False, "output": "", "error": error[:_MAX_ERROR_CHARS]}


def _run_many(sources: Sequence[str], timeout: float = 1.0, workers: int = 2) -> list[dict]:
    """:func:`run_program` on each source, ``workers`` processes at a time."""
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max(1, min(workers, len(sources)))) as pool:
        return list(pool.map(lambda s: run_program(s, timeout=timeout), sources))


# ----------------------------------------------------------------------------- pass@k
def _count(name: str, value) -> int:
    if isinstance(value, bool):
        raise TypeError(f"{name} must be an integer count, got {value!r}")
    try:
        value = operator.index(value)
    except TypeError:
        raise TypeError(
            f"{name} must be an integer count, got {type(value).__name__} {value!r}"
        ) from None
    if value < 0:
        raise ValueError(f"{name} must be >= 0, got {value}")
    return value


def pass_at_k(n: int, c: int, k: int) -> float:
    """The unbiased estimate of pass@k from ``n`` samples of which ``c`` are correct (Chen et
    al. 2021, arXiv 2107.03374): the probability that ``k`` of the ``n`` samples, drawn without
    replacement, include at least one correct one, ``1 - C(n-c, k) / C(n, k)``.

    Computed as ``1 - prod_{i=n-c+1}^{n} (1 - k/i)``, which never forms the huge binomial
    coefficients. ``1 - (1 - c/n)**k``, the plug-in estimate, is biased low."""
    n, c, k = _count("n", n), _count("c", c), _count("k", k)
    if k < 1:
        raise ValueError("k must be >= 1 (pass@k: at least one of k samples is correct)")
    if k > n:
        raise ValueError(
            f"k={k} is more than the n={n} samples: pass@k needs at least k samples per "
            f"problem; sample n >= {k} or pass a smaller k"
        )
    if c > n:
        raise ValueError(f"c={c} correct samples out of n={n}: c must be <= n")
    if n - c < k:  # every choice of k samples holds a correct one
        return 1.0
    return 1.0 - math.prod(1.0 - k / i for i in range(n - c + 1, n + 1))


def _first_line(completion: str) -> str:
    """What the ``programs`` probe compares: the completion up to its first newline, stripped."""
    return completion.split("\n")[0].strip()


def score_samples(
    samples: Sequence[Sequence[str]],
    expected: Sequence[str],
    ks: Sequence[int] = (1, 5, 10),
    execute: bool = False,
    timeout: float = 1.0,
) -> dict:
    """pass@k averaged over problems. ``samples[i]`` holds the ``n`` samples of problem ``i``
    (``n`` may differ between problems, but must be at least every ``k``), ``expected[i]`` its
    right output.

    - ``execute=False`` (the ``programs`` probe): a sample is the text a model generated after
      "Output:"; it is correct when its first line, stripped, equals ``expected[i]`` stripped.
    - ``execute=True``: a sample is a program; it is correct when :func:`run_program` runs it
      to its end (``ok``) and what it prints, stripped, equals ``expected[i]`` stripped.

    Returns ``{"pass@1": ..., "pass@5": ..., "n": [n_i], "correct": [c_i], "hits": [[bool]]}``
    (``hits[i][j]``: sample ``j`` of problem ``i`` is correct)."""
    if isinstance(samples, str) or any(isinstance(s, str) for s in samples):
        raise TypeError(
            "samples must hold a list of sampled strings per problem, e.g. [['7', ' 8'], ...]"
        )
    if isinstance(expected, str):
        raise TypeError("expected must hold one string per problem, e.g. ['7', 'Hello, Tom']")
    if len(samples) != len(expected):
        raise ValueError(f"{len(samples)} problems of samples but {len(expected)} expected outputs")
    if not samples:
        raise ValueError("no problems to score")
    ks = [ks] if isinstance(ks, int) else list(ks)
    fewest = min(len(s) for s in samples)
    if any(k > fewest for k in ks):
        raise ValueError(
            f"ks={ks} but a problem has only {fewest} samples: pass ks <= {fewest} or sample more"
        )
    if execute:
        flat = [p for s in samples for p in s]
        runs = iter(_run_many(flat, timeout=timeout))
        hits = [
            [(r := next(runs))["ok"] and r["output"].strip() == want.strip() for _ in s]
            for s, want in zip(samples, expected)
        ]
    else:
        hits = [[_first_line(x) == want.strip() for x in s] for s, want in zip(samples, expected)]
    correct = [sum(h) for h in hits]
    ns = [len(s) for s in samples]
    scores = {
        f"pass@{k}": sum(pass_at_k(n, c, k) for n, c in zip(ns, correct)) / len(ns) for k in ks
    }
    return {**scores, "n": ns, "correct": correct, "hits": hits}


# ----------------------------------------------------------------------------- sampling
def sample_outputs(
    model,
    tokenizer,
    items: Sequence,
    n: int = 10,
    temperature: float = 0.8,
    max_new_tokens: int = 16,
    seed: int = 0,
    top_p: float | None = None,
    _lm=None,
) -> list[list[str]]:
    """``n`` sampled continuations of each item's ``prompt`` (an item of
    :func:`~slmlab.evaluate.items.code_items`, or a prompt string), each cut at the end-of-text
    token and before its first newline: ``out[i][j]`` is sample ``j`` of item ``i``.

    The ``n`` samples of an item are one batch, drawn with a random generator seeded by
    ``seed`` and the prompt: an item's samples do not depend on which other items are sampled
    with it, nor in what order. ``temperature=0`` is greedy decoding (``n`` equal
    continuations, those of the ``programs`` probe); ``top_p`` keeps the nucleus only. A
    TinyLM samples with its own ``generate``; a transformers model with
    ``generate(do_sample=True)`` (no top-k)."""
    import random

    import torch

    from ..lm import eval_mode
    from .scoring import LM

    if n < 1:
        raise ValueError(f"n must be >= 1 samples per item, got {n}")
    if temperature < 0:
        raise ValueError(f"temperature must be >= 0 (0: greedy), got {temperature}")
    lm = _lm or LM(model, tokenizer)
    keep = lm.max_len - max_new_tokens
    if keep < 1:
        raise ValueError(
            f"max_new_tokens={max_new_tokens} leaves no room for a prompt in a context of "
            f"{lm.max_len}"
        )
    out = []
    with eval_mode(model), torch.no_grad():
        for item in items:
            prompt = item if isinstance(item, str) else item["prompt"]
            ids = lm.with_prefix(lm.encode(prompt))[-keep:]
            x = torch.tensor([ids] * n, dtype=torch.long, device=lm.device)
            item_seed = random.Random(f"slmlab/sample/{seed}/{prompt}").getrandbits(63)
            new = _sample_batch(lm, x, max_new_tokens, temperature, top_p, item_seed)
            texts = []
            for toks in new.tolist():
                if lm.eos_id is not None and lm.eos_id in toks:
                    toks = toks[: toks.index(lm.eos_id)]
                texts.append(lm.decode(toks).split("\n")[0])
            out.append(texts)
    return out


def _sample_batch(lm, x, max_new_tokens: int, temperature: float, top_p, seed: int):
    """(B, <= max_new_tokens) sampled new tokens after the equal-length prompts ``x`` (B, T)."""
    import torch

    from ..models import TinyLM
    from ..models.generation import sample_next

    model = lm.model
    g = torch.Generator(device=lm.device).manual_seed(seed)
    if isinstance(model, TinyLM):
        out = model.generate(
            x, max_new_tokens, temperature=temperature, top_p=top_p, eos_id=lm.eos_id, generator=g
        )
        return out[:, x.shape[1] :]
    if hasattr(model, "generate") and hasattr(model, "generation_config"):
        from transformers import GenerationConfig

        sample = temperature > 0
        gc = GenerationConfig(
            max_new_tokens=max_new_tokens,
            do_sample=sample,
            temperature=temperature if sample else None,
            top_p=top_p if sample else None,
            top_k=0 if sample else None,  # transformers' default is top-k 50
            eos_token_id=lm.eos_id,
            pad_token_id=lm.eos_id if lm.eos_id is not None else 0,
        )
        devices = [lm.device] if lm.device.type == "cuda" else []
        with torch.random.fork_rng(devices=devices):  # seeded without touching the global RNG
            torch.manual_seed(seed)
            out = model.generate(x, attention_mask=torch.ones_like(x), generation_config=gc)
        return out[:, x.shape[1] :]
    seq = x  # any other causal LM: full forward passes, no cache
    for _ in range(max_new_tokens):
        nxt = sample_next(lm.logits(seq)[:, -1], temperature, None, top_p, g)
        seq = torch.cat([seq, nxt[:, None].to(seq.device)], dim=1)
    return seq[:, x.shape[1] :]


def pass_at_k_probe(
    model,
    tokenizer,
    n_items: int = 30,
    n: int = 10,
    ks: Sequence[int] = (1, 5, 10),
    temperature: float = 0.8,
    seed: int = 0,
    max_new_tokens: int = 16,
    top_p: float | None = None,
    greedy: bool = True,
    _lm=None,
) -> dict:
    """The ``programs`` probe scored by pass@k: ``n`` samples at ``temperature`` for each of
    ``n_items`` programs of :func:`~slmlab.evaluate.items.code_items` (``seed`` picks the items
    and seeds the sampling); the right output of each is what :func:`run_program` prints when it
    runs the program. Returns ``pass@k`` for each k of ``ks``, ``greedy_exact_match`` (the
    ``programs`` probe's score on the same items, when ``greedy``), pass@k per difficulty in
    ``by_difficulty``, per-item ``correct`` counts, the ``samples``, ``expected`` and ``items``."""
    from .items import DIFFICULTIES, code_items
    from .scoring import LM, greedy_generate

    lm = _lm or LM(model, tokenizer)
    items = code_items(n_items, seed=seed)
    runs = _run_many([it["program"] for it in items])
    bad = [(it["program"], r["error"]) for it, r in zip(items, runs) if not r["ok"]]
    if bad:  # pragma: no cover - the tests run every shipped program
        raise RuntimeError(f"a probe program failed to run: {bad[0]}")
    expected = [r["output"].strip() for r in runs]
    samples = sample_outputs(
        model, tokenizer, items, n, temperature, max_new_tokens, seed, top_p, _lm=lm
    )
    ks = [ks] if isinstance(ks, int) else list(ks)
    res = score_samples(samples, expected, ks)
    by_difficulty = {}
    for d in DIFFICULTIES:
        sel = [i for i, it in enumerate(items) if it["difficulty"] == d]
        if sel:
            sub = score_samples([samples[i] for i in sel], [expected[i] for i in sel], ks)
            by_difficulty[d] = {f"pass@{k}": sub[f"pass@{k}"] for k in ks} | {"n_items": len(sel)}
    out = {
        **{f"pass@{k}": res[f"pass@{k}"] for k in ks},
        "n": n,
        "n_items": n_items,
        "temperature": temperature,
        "by_difficulty": by_difficulty,
        "correct": res["correct"],
        "samples": samples,
        "expected": expected,
        "items": items,
    }
    if greedy:
        gens = greedy_generate(
            model,
            tokenizer,
            [it["prompt"] for it in items],
            max_new_tokens=max_new_tokens,
            stop=("\n",),
            _lm=lm,
        )
        out["greedy_exact_match"] = sum(_first_line(g) == e for g, e in zip(gens, expected)) / len(
            items
        )
    return out


if __name__ == "__main__":
    _child_main()
