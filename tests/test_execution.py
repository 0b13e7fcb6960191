"""slmlab.evaluate.execution and .sandbox: pass@k checked by hand, hostile programs that cannot
escape, the shipped probe programs run for real, and sampling on a tiny model."""

import math
import string
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from fractions import Fraction

import pytest
import torch

from slmlab import TinyLM, TinyLMConfig
from slmlab import evaluate as E
from slmlab.evaluate import execution as X
from slmlab.evaluate import sandbox as SB
from slmlab.evaluate.items import code_items
from slmlab.tokenizer import CharTokenizer


# ----------------------------------------------------------------------------- pass@k
@pytest.mark.parametrize(
    "n, c, k, want",
    [
        (10, 3, 1, 0.3),  # pass@1 is c / n
        (10, 3, 10, 1.0),  # k = n: some sample is right whenever c > 0
        (10, 1, 10, 1.0),
        (10, 0, 1, 0.0),  # c = 0: never
        (10, 0, 10, 0.0),
        (10, 1, 5, 0.5),  # C(9, 5) / C(10, 5) = 126 / 252
        (5, 5, 1, 1.0),
        (4, 2, 2, 1 - 1 / 6),  # the one pair of wrong samples out of C(4, 2) = 6 pairs
    ],
)
def test_pass_at_k_hand_values(n, c, k, want):
    assert X.pass_at_k(n, c, k) == pytest.approx(want, abs=1e-12)


def test_pass_at_k_agrees_with_the_binomial_formula():
    for n in range(1, 26):
        for c in range(n + 1):
            for k in range(1, n + 1):
                naive = 1 - math.comb(n - c, k) / math.comb(n, k)
                assert X.pass_at_k(n, c, k) == pytest.approx(naive, abs=1e-12), (n, c, k)
    # large n: the product form stays exact where the coefficients have hundreds of digits
    exact = 1 - Fraction(math.comb(1000 - 37, 100), math.comb(1000, 100))
    assert X.pass_at_k(1000, 37, 100) == pytest.approx(float(exact), rel=1e-12)


def test_pass_at_k_is_unbiased():
    """Averaged over the binomial distribution of c, the estimate is 1 - (1 - p)^k exactly;
    the plug-in 1 - (1 - c/n)^k falls short."""
    n, k, p = 10, 5, 0.2
    law = [math.comb(n, c) * p**c * (1 - p) ** (n - c) for c in range(n + 1)]
    unbiased = sum(w * X.pass_at_k(n, c, k) for c, w in enumerate(law))
    plug_in = sum(w * (1 - (1 - c / n) ** k) for c, w in enumerate(law))
    assert unbiased == pytest.approx(1 - (1 - p) ** k, abs=1e-12)
    assert plug_in < unbiased - 0.05


@pytest.mark.parametrize(
    "args, error, match",
    [
        ((5, 2, 6), ValueError, "sample n >= 6"),
        ((5, 6, 1), ValueError, "c must be <= n"),
        ((-1, 0, 1), ValueError, "n must be >= 0"),
        ((5, -1, 1), ValueError, "c must be >= 0"),
        ((5, 1, 0), ValueError, "k must be >= 1"),
        ((5.0, 1, 1), TypeError, "integer count"),
        ((5, True, 1), TypeError, "integer count"),
    ],
)
def test_pass_at_k_errors(args, error, match):
    with pytest.raises(error, match=match):
        X.pass_at_k(*args)


def test_score_samples_compares_first_lines_and_averages_over_problems():
    samples = [[" 7", "7\nprint(8)", "8", " 7 "], ["Hello, Tom", "Hello", "", "Hello, Tom!"]]
    res = X.score_samples(samples, ["7", "Hello, Tom"], ks=(1, 2, 4))
    assert res["correct"] == [3, 1]
    assert res["hits"][0] == [True, True, False, True]
    assert res["pass@1"] == pytest.approx((3 / 4 + 1 / 4) / 2)
    assert res["pass@2"] == pytest.approx((1 + X.pass_at_k(4, 1, 2)) / 2)
    assert res["pass@4"] == 1.0
    with pytest.raises(ValueError, match="pass ks <= 4"):
        X.score_samples(samples, ["7", "x"], ks=(5,))
    with pytest.raises(ValueError, match="2 problems of samples but 1"):
        X.score_samples(samples, ["7"], ks=(1,))
    with pytest.raises(TypeError, match="a list of sampled strings per problem"):
        X.score_samples(["7", "8"], ["7", "8"], ks=(1,))


def test_score_samples_can_execute_programs():
    programs = [["print(2 + 5)", "print(8)", "import os\nprint(7)"], ["print(1/0)", "print(3)"]]
    res = X.score_samples(programs, ["7", "3"], ks=(1, 2), execute=True)
    assert res["hits"] == [[True, False, False], [False, True]]
    assert res["pass@1"] == pytest.approx((1 / 3 + 1 / 2) / 2)


# ----------------------------------------------------------------------------- run_program
@pytest.mark.parametrize(
    "source, output",
    [
        ("print(1 + 2)", "3\n"),
        ("x = 5\nfor i in range(3):\n    x = x + 2\nprint(x)", "11\n"),
        ('name = "Tom"\nprint("Hello, " + name)', "Hello, Tom\n"),
        ("print(1, 2, sep='-', end='!')\nprint()", "1-2!\n"),
        ("def f(n):\n    return 1 if n < 2 else n * f(n - 1)\nprint(f(10))", "3628800\n"),
        (
            "xs = sorted([3, 1, 2], reverse=True)\nprint([x * x for x in xs], sum(xs))",
            "[9, 4, 1] 6\n",
        ),
        (
            "d = dict(zip('ab', range(2)))\nprint(list(enumerate(d)), max(d.values()))",
            "[(0, 'a'), (1, 'b')] 1\n",
        ),
        ("s = 'a,b'.split(',')\nprint(f'{len(s)} {s[1].upper()}')", "2 B\n"),
    ],
)
def test_benign_programs_print_what_python_prints(source, output):
    assert SB.run_program(source) == {"ok": True, "output": output, "error": None}


def test_errors_of_a_program_are_reported():
    r = SB.run_program("print('before')\nprint(1 / 0)")
    assert r == {"ok": False, "output": "before\n", "error": "ZeroDivisionError: division by zero"}
    assert SB.run_program("print(")["error"].startswith("SyntaxError")
    with pytest.raises(TypeError, match="the program's text"):
        SB.run_program(b"print(1)")
    with pytest.raises(ValueError, match="timeout must be > 0"):
        SB.run_program("print(1)", timeout=0)


def test_check_source_names_what_it_rejects():
    assert SB.check_source("x = [1, 2]\nx.append(3)\nprint(x)") == []
    assert SB.check_source("import os") == ["import statements are not allowed (line 1)"]
    assert SB.check_source("print(1)\n().__class__") == [
        "attribute .__class__ is not allowed (line 2)"
    ]


def test_the_restricted_namespace_alone_is_not_enough():
    """Why the attribute denylist and the process exist: in a namespace with almost no builtins,
    a generator's frame still leads back to the real ones."""
    escape = "def f():\n    yield g.gi_frame.f_back\ng = f()\nreal = next(g).f_back.f_globals"
    ns = {"__builtins__": {"next": next}}
    exec(escape, ns)  # trusted here: we wrote it
    assert "__builtins__" in ns["real"]  # the caller's globals: the real builtins, __import__
    assert SB.run_program(escape + "\nprint(real)")["error"].startswith("rejected: attribute .gi_")


HOSTILE = {
    "import os": ("import os\nos.system('echo pwned')", "rejected: import"),
    "from import": ("from os import system\nsystem('echo pwned')", "rejected: import"),
    "__import__": ("__import__('os').system('echo pwned')", "rejected: name __import__"),
    "open /etc/passwd": ("print(open('/etc/passwd').read())", "NameError: name 'open'"),
    "subclasses": ("print(().__class__.__base__.__subclasses__())", "rejected: attribute"),
    "builtins dict": ("print(__builtins__)", "rejected: name __builtins__"),
    "eval": ("print(eval('1'))", "NameError: name 'eval'"),
    "exec": ("exec('x=1')", "NameError: name 'exec'"),
    "compile": ("compile('1', 'f', 'eval')", "NameError: name 'compile'"),
    "getattr": ("getattr(print, 'x')", "NameError: name 'getattr'"),
    "globals": ("print(globals())", "NameError: name 'globals'"),
    "vars": ("print(vars())", "NameError: name 'vars'"),
    "input": ("input()", "NameError: name 'input'"),
    "breakpoint": ("breakpoint()", "NameError: name 'breakpoint'"),
    "type": ("print(type(1))", "NameError: name 'type'"),
    "frame escape": ("g = (x for x in [1])\nprint(g.gi_frame.f_back)", "rejected: attribute"),
    "format escape": ("print('{0.__class__}'.format(1))", "rejected: attribute"),
    "class": ("class A:\n    pass", "NameError: __build_class__"),
    "socket": ("import socket\nsocket.create_connection(('1.1.1.1', 80))", "rejected: import"),
    "memory bomb": ("x = [0] * (10**9)", "MemoryError"),
    "string bomb": ("x = 'a' * (10**10)", "MemoryError"),
    "deep recursion": ("def f(n):\n    return f(n + 1)\nf(0)", "RecursionError"),
    "nested repr": ("x = []\nfor i in range(100000):\n    x = [x]\nprint(x)", "RecursionError"),
    "huge source": ("x = 1\n" * 20_000, "rejected: the source has"),
}


@pytest.mark.parametrize("source, error", HOSTILE.values(), ids=HOSTILE.keys())
def test_hostile_programs_are_stopped(source, error):
    r = SB.run_program(source)
    assert r["ok"] is False
    assert r["error"].startswith(error) or error in r["error"], r
    assert "pwned" not in r["output"]


def test_writing_a_file_leaves_no_trace(tmp_path):
    target = tmp_path / "pwned.txt"
    for source in [
        f"open({str(target)!r}, 'w').write('pwned')",
        f"f = open({str(target)!r}, 'x')",
        "import pathlib\npathlib.Path(" + repr(str(target)) + ").write_text('pwned')",
    ]:
        r = SB.run_program(source)
        assert r["ok"] is False and r["error"]
    assert not target.exists()
    assert list(tmp_path.iterdir()) == []


def test_an_infinite_loop_is_killed_on_time():
    start = time.perf_counter()
    r = SB.run_program("while True:\n    pass", timeout=1.0)
    assert time.perf_counter() - start < 1.0 + 2.0
    assert r["ok"] is False and r["error"].startswith("timeout")


@pytest.mark.parametrize("source", ["print('x' * 10**6)", "while True:\n    print('spam')"])
def test_output_is_truncated(source):
    r = SB.run_program(source, max_output=1000)
    assert r["ok"] is False and r["error"].startswith("output limit")
    assert len(r["output"]) == 1000


def test_caught_output_limit_still_counts():
    # 10^4 caught exceptions end well inside the time limit, even on a loaded machine (10^6 of
    # them took about 1 s here, and the timeout then came first)
    r = SB.run_program(
        "for i in range(10**4):\n    try:\n        print(i)\n    except:\n        pass",
        timeout=10,
    )
    assert r["ok"] is False and r["error"].startswith("output limit")
    assert len(r["output"]) == 10_000


def test_the_kernel_limits_hold_even_with_every_builtin(tmp_path):
    """The second line of defence on its own: after the child's limits, code with the real
    builtins cannot open a file, create a socket, import a module or allocate 300 MB."""
    target = tmp_path / "pwned.txt"
    attempts = [
        f"open({str(target)!r}, 'w')",
        "open('/etc/passwd').read()",
        "socket.socket()",
        "__import__('json.tool')",
        "bytearray(300 * 2**20)",
    ]
    code = "\n".join(
        [
            "import runpy, socket",
            f"m = runpy.run_path({SB.__file__!r})",
            "m['_set_limits'](1.0, 256 * 2**20)",
            f"for a in {attempts!r}:",
            "    try:",
            "        eval(a)",
            "        print('NOT STOPPED', a)",
            "    except BaseException as e:",
            "        print(type(e).__name__)",
        ]
    )
    run = subprocess.run(
        [sys.executable, "-I", "-S", "-c", code], capture_output=True, text=True, timeout=20
    )
    assert run.stdout.split() == ["OSError"] * 4 + ["MemoryError"], run.stdout + run.stderr
    assert not target.exists()


def test_every_shipped_probe_program_prints_its_answer():
    items = code_items(200)
    with ThreadPoolExecutor(2) as pool:
        runs = list(pool.map(lambda it: SB.run_program(it["program"]), items))
    for it, r in zip(items, runs):
        assert r == {"ok": True, "output": it["answer"] + "\n", "error": None}, it["program"]


# ----------------------------------------------------------------------------- sampling
CHARS = string.ascii_letters + string.digits + string.punctuation + " \n"


@pytest.fixture(scope="module")
def char_lm():
    tok = CharTokenizer(CHARS)
    torch.manual_seed(0)
    cfg = TinyLMConfig(
        vocab_size=tok.vocab_size, block_size=128, n_layer=1, n_head=2, n_kv_head=1, d_model=16
    )
    return TinyLM(cfg).eval(), tok


def test_sample_outputs_is_seeded_per_prompt_and_greedy_at_temperature_zero(char_lm):
    model, tok = char_lm
    items = code_items(3)
    a = X.sample_outputs(model, tok, items, n=4, max_new_tokens=8, seed=0, temperature=1.5)
    assert [len(s) for s in a] == [4, 4, 4]
    assert all("\n" not in x for s in a for x in s)
    assert (
        X.sample_outputs(model, tok, items[::-1], n=4, max_new_tokens=8, temperature=1.5) == a[::-1]
    )
    assert X.sample_outputs(model, tok, items, n=4, max_new_tokens=8, seed=1, temperature=1.5) != a
    greedy = E.greedy_generate(model, tok, [it["prompt"] for it in items], 8, stop=("\n",))
    assert X.sample_outputs(model, tok, items, n=2, max_new_tokens=8, temperature=0) == [
        [g, g] for g in greedy
    ]
    with pytest.raises(ValueError, match="temperature must be >= 0"):
        X.sample_outputs(model, tok, items, temperature=-1)


def test_pass_at_k_probe_on_a_tiny_model(char_lm):
    model, tok = char_lm
    res = X.pass_at_k_probe(model, tok, n_items=4, n=5, ks=(1, 5), max_new_tokens=6)
    assert 0 <= res["pass@1"] <= res["pass@5"] <= 1
    assert len(res["samples"]) == 4 and all(len(s) == 5 for s in res["samples"])
    assert res["expected"] == [it["answer"] for it in res["items"]]
    assert sum(d["n_items"] for d in res["by_difficulty"].values()) == 4
    assert 0 <= res["greedy_exact_match"] <= 1
