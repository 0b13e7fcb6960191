"""Running untrusted programs safely: a separate process, kernel limits, a restricted language.

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

=======================  ===================================================================
:func:`run_program`      run one untrusted program: ``{"ok", "output", "error"}``
:func:`check_source`     the reasons a source is rejected before it runs (empty: allowed)
=======================  ===================================================================
"""

from __future__ import annotations

import ast
import json
import math
import os
import sys
from collections.abc import Sequence

# This file is also the program the child process runs (``python -I -S sandbox.py``): at the
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


def run_programs(sources: Sequence[str], timeout: float = 1.0, workers: int = 2) -> list[dict]:
    """:func:`run_program` on each source, ``workers`` processes at a time."""
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max(1, min(workers, len(sources)))) as pool:
        return list(pool.map(lambda s: run_program(s, timeout=timeout), sources))


if __name__ == "__main__":
    _child_main()
