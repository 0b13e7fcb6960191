"""slmlab.evaluate: scoring checked by hand on constructed models, TinyLM and transformers alike."""

import copy
import math
import string
from types import SimpleNamespace

import pytest
import torch
from helpers import tiny_llama
from torch import nn

from slmlab import TinyLM, TinyLMConfig, to_hf
from slmlab import data as D
from slmlab import evaluate as E
from slmlab.evaluate import items as I
from slmlab.evaluate import lessons as L
from slmlab.tokenizer import EOS, BPETokenizer, CharTokenizer

CHARS = string.ascii_letters + string.digits + string.punctuation + " \n"


class TableLM(nn.Module):
    """A bigram model: the logits of the next token are a row of a fixed table (V, V)."""

    def __init__(self, table: torch.Tensor, block_size: int = 512):
        super().__init__()
        self.table = nn.Parameter(table.clone().float())
        self.config = SimpleNamespace(block_size=block_size, vocab_size=table.shape[0])

    def forward(self, idx):
        return self.table[idx]


@pytest.fixture(scope="module")
def char_tok():
    return CharTokenizer(CHARS)


@pytest.fixture(scope="module")
def bpe():
    text = D.corpus_text("train", 200_000)
    return BPETokenizer.train(
        [text[i : i + 10_000] for i in range(0, len(text), 10_000)], vocab_size=400
    )


@pytest.fixture(scope="module")
def tiny(bpe):
    torch.manual_seed(0)
    return TinyLM(
        TinyLMConfig(
            vocab_size=bpe.vocab_size, block_size=128, n_layer=2, n_head=4, n_kv_head=2, d_model=32
        )
    ).eval()


def hf_tokenizer(bpe):
    from transformers import PreTrainedTokenizerFast

    return PreTrainedTokenizerFast(tokenizer_object=bpe._tok, eos_token=EOS)


def chain_table(tok, chain: str, default: str = " ") -> torch.Tensor:
    """Logits under which greedy decoding follows ``chain``: each char's successor wins."""
    V = tok.vocab_size
    t = torch.zeros(V, V)
    t[:, tok.encode(default)[0]] = 1.0
    for a, b in zip(chain, chain[1:]):
        t[tok.encode(a)[0]] = 0.0
        t[tok.encode(a)[0], tok.encode(b)[0]] = 5.0
    return t


# ----------------------------------------------------------------------------- log-likelihood
def test_multiple_choice_matches_a_hand_computation(char_tok):
    """acc picks the highest total log-likelihood, acc_norm the highest per character of the
    option's text: without its leading space, as lm-evaluation-harness counts ``len(choice)``."""
    enc = lambda c: char_tok.encode(c)[0]  # noqa: E731
    V = char_tok.vocab_size
    probs = torch.full((V, V), 1e-9)
    rows = {
        " ": {"a": 0.35, "b": 0.40, "c": 0.20, " ": 0.05},
        "b": {" ": 0.50, "a": 0.50},
        "c": {"c": 0.50, "a": 0.50},
    }
    for prev, nxt in rows.items():
        for ch, p in nxt.items():
            probs[enc(prev), enc(ch)] = p
    probs = probs / probs.sum(-1, keepdim=True)
    model = TableLM(probs.log())
    lp = lambda a, b: math.log(probs[enc(a), enc(b)].item())  # noqa: E731
    ll_a = lp("b", " ") + lp(" ", "a")  # " a" after "ab"
    ll_cc = lp("b", " ") + lp(" ", "c") + lp("c", "c")
    assert ll_a > ll_cc and ll_a / 1 < ll_cc / 2  # the two metrics disagree by construction
    assert ll_a / 2 > ll_cc / 3  # and counting the space would side with acc
    got = E.loglikelihood(model, char_tok, [("ab", " a"), ("ab", " cc")])
    assert got[0][0] == pytest.approx(ll_a, abs=1e-5) and got[1][0] == pytest.approx(
        ll_cc, abs=1e-5
    )
    assert (
        got[0][1] is False
    )  # greedy after "b" is " " (tie with "a" resolved to the first), then "b", not "a"
    res = E.multiple_choice(
        model, char_tok, [{"context": "ab", "options": [" a", " cc"], "label": 1}]
    )
    assert res["acc"] == 0.0 and res["acc_norm"] == 1.0 and res["chance"] == 0.5
    # the trailing space of a context moves to the continuation, as in lm-evaluation-harness
    assert E.loglikelihood(model, char_tok, [("ab ", "a")])[0][0] == pytest.approx(ll_a, abs=1e-5)


def test_long_contexts_keep_their_last_tokens(char_tok):
    model = TableLM(torch.randn(char_tok.vocab_size, char_tok.vocab_size), block_size=16)
    long = "abc " * 40
    a = E.loglikelihood(model, char_tok, [(long, " xyz")])[0][0]
    b = E.loglikelihood(model, char_tok, [(long[-20:], " xyz")])[0][0]
    assert a == pytest.approx(b, abs=1e-5)  # a bigram model only needs the last character


# ----------------------------------------------------------------------------- perplexity
def test_uniform_model_has_perplexity_equal_to_the_vocabulary(bpe):
    V = bpe.vocab_size
    model = TableLM(torch.zeros(V, V))
    r = E.perplexity(model, bpe, n_tokens=3000)
    assert r["ppl"] == pytest.approx(V, rel=1e-5) and r["nll"] == pytest.approx(
        math.log(V), rel=1e-6
    )
    assert r["n_tokens"] >= 3000
    assert r["bits_per_byte"] == pytest.approx(
        math.log2(V) * r["n_tokens"] / r["n_bytes"], rel=1e-6
    )


def test_perplexity_windows_score_every_token_once(bpe):
    """A bigram model's scores do not depend on the window:
    every stride must give the direct sum."""
    torch.manual_seed(0)
    V = bpe.vocab_size
    table = torch.randn(V, V)
    model = TableLM(table, block_size=64)
    texts = D.documents("val", 30)
    stream = []
    for t in texts:
        stream += [bpe.eos_id] + bpe.encode(t)
    logp = torch.log_softmax(table, -1)
    direct = -sum(logp[a, b].item() for a, b in zip(stream, stream[1:])) / (len(stream) - 1)
    n_bytes = sum(len(t.encode()) for t in texts) + len(texts) - 1
    for stride in (None, 64, 17, 1):
        r = E.perplexity(model, bpe, texts=texts, n_tokens=None, stride=stride, batch_size=5)
        assert r["n_tokens"] == len(stream) - 1 and r["n_bytes"] == n_bytes
        assert r["nll"] == pytest.approx(direct, rel=1e-5), stride


def test_sliding_windows_lower_a_transformers_perplexity(tiny, bpe):
    docs = D.documents("val", 40)
    full = E.perplexity(tiny, bpe, texts=docs, n_tokens=None)
    slide = E.perplexity(tiny, bpe, texts=docs, n_tokens=None, stride=32)
    assert full["n_tokens"] == slide["n_tokens"] and full["seq_len"] == 128
    assert slide["nll"] != full["nll"]
    with pytest.raises(ValueError, match="stride"):
        E.perplexity(tiny, bpe, texts=docs, stride=500)


# ----------------------------------------------------------------------------- transformers
def test_transformers_model_and_tokenizer_give_the_same_numbers(tiny, bpe):
    hf_model, hf_tok = to_hf(tiny).eval(), hf_tokenizer(bpe)
    a = E.perplexity(tiny, bpe, n_tokens=1500)
    b = E.perplexity(hf_model, hf_tok, n_tokens=1500)
    assert a["n_tokens"] == b["n_tokens"] and a["nll"] == pytest.approx(b["nll"], rel=1e-5)
    items = I.commonsense_items(12)
    ra, rb = E.multiple_choice(tiny, bpe, items), E.multiple_choice(hf_model, hf_tok, items)
    assert torch.allclose(
        torch.tensor(ra["loglikelihoods"]), torch.tensor(rb["loglikelihoods"]), atol=1e-3
    )
    prompts = [it["prompt"] for it in I.math_items(6)]
    g = E.greedy_generate(tiny, bpe, prompts, max_new_tokens=8, stop=())
    assert g == E.greedy_generate(hf_model, hf_tok, prompts, max_new_tokens=8, stop=())
    assert g == E.greedy_generate(
        hf_model, hf_tok, prompts, max_new_tokens=8, stop=(), use_cache=False
    )


def test_suite_runs_on_a_randomly_initialised_llama(bpe):
    model = tiny_llama(vocab=bpe.vocab_size, hidden=32, ffn=64, positions=96)
    table = E.suite(model, hf_tokenizer(bpe), n_per_task=6, include_perplexity=True)
    assert list(table.columns) == [
        "task",
        "difficulty",
        "metric",
        "score",
        "ci_low",
        "ci_high",
        "chance",
        "n",
        "above_chance",
    ]
    assert list(table.task) == (
        ["commonsense"] * 2
        + ["icl"] * 5
        + ["icl_lookup"] * 5
        + ["math", "code", "perplexity", "perplexity"]
    )
    # in-context: every lesson with at least one example ("all"), then each number of shots
    shots = ["all", "1-shot", "3-shot", "5-shot", "10-shot"]
    assert list(table.difficulty[:14]) == ["all", "all"] + shots + shots + ["all", "all"]
    assert list(table.metric[:14]) == ["acc", "acc_norm"] + ["acc"] * 10 + ["exact_match"] * 2
    scored = table.iloc[:14]
    assert scored.score.between(0, 1).all()
    assert (scored.ci_low <= scored.score).all() and (scored.score <= scored.ci_high).all()
    assert list(scored.n) == [12, 12] + ([24] + [6] * 4) * 2 + [6, 6]
    assert list(table.chance.iloc[:12]) == pytest.approx([0.25, 0.25] + [1 / 3] * 5 + [0.25] * 5)
    assert table.chance.iloc[14] == bpe.vocab_size


def test_suite_intervals_difficulties_and_paired_comparison(tiny, bpe):
    from slmlab.evaluate.stats import wilson_interval

    tasks = ["commonsense", "icl_lookup", "code"]
    table, details = E.suite(
        tiny,
        bpe,
        n_per_task=20,
        tasks=tasks,
        shots=(1, 3),
        by_difficulty=True,
        return_details=True,
    )
    row = table[(table.task == "commonsense") & (table.metric == "acc")].iloc[0]
    hits = sum(details["commonsense"]["correct"])
    assert row.difficulty == "all" and row.n == 40 and row.score == hits / 40
    assert (row.ci_low, row.ci_high) == pytest.approx(wilson_interval(hits, 40))
    assert row.above_chance == (row.ci_low > 0.25)
    # each difficulty's rows count its own items; together they are all the items
    graded = table[(table.task == "code") & (table.difficulty != "all")]
    assert set(graded.difficulty) <= {"easy", "medium", "hard"} and graded.n.sum() == 20
    assert list(table[table.task == "icl_lookup"].difficulty) == ["all", "1-shot", "3-shot"]
    pooled = table[(table.task == "icl_lookup") & (table.difficulty == "all")].iloc[0]
    assert pooled.n == 40 and pooled.score == sum(details["icl_lookup"]["correct"]) / 40
    # grades by name; an unknown one says which exist
    some = E.suite(tiny, bpe, n_per_task=6, tasks=["code"], by_difficulty=["hard"])
    assert list(some.difficulty) == ["all", "hard"]
    with pytest.raises(ValueError, match=r"unknown difficulty \['tricky'\]; pass True or"):
        E.suite(tiny, bpe, n_per_task=6, tasks=["code"], by_difficulty=["tricky"])
    with pytest.raises(TypeError, match="list of grades"):
        E.suite(tiny, bpe, n_per_task=6, tasks=["code"], by_difficulty="hard")
    # a model compared with itself: the same outcomes, no evidence of a difference
    same = E.compare(details, details)
    assert (same.difference == 0).all() and (same.verdict == "no evidence").all()
    assert list(same.task.unique()) == tasks
    # a model that loses every item it got right
    broken = copy.deepcopy(details)
    for task in tasks:
        broken[task]["correct"] = [False] * len(broken[task]["correct"])
        if task == "commonsense":
            broken[task]["correct_norm"] = [False] * len(broken[task]["correct_norm"])
    lost = E.compare(details, broken)
    assert (lost.only_b == 0).all() and (lost.difference <= 0).all()
    assert ((lost.only_a >= 6) <= (lost.verdict == "lost")).all()
    # Holm's adjustment over the table: never more verdicts than unadjusted, p never smaller
    held = E.compare(details, broken, adjust="holm")
    assert (held.p_adjusted >= held.p_value).all()
    assert ((held.verdict == "lost") <= (lost.verdict == "lost")).all()
    assert ((held.verdict == "lost") == (held.p_adjusted < 0.05)).all()
    with pytest.raises(ValueError, match="adjust must be None or 'holm'"):
        E.compare(details, broken, adjust="bonferroni")
    with pytest.raises(ValueError, match="share no task"):
        E.compare(details, {"math": details["code"]})
    other = E.suite(tiny, bpe, n_per_task=20, tasks=["code"], seed=1, return_details=True)[1]
    with pytest.raises(ValueError, match="different items"):
        E.compare(details, other)


# ----------------------------------------------------------------------------- generation
def test_greedy_generation_with_and_without_cache_agree(tiny, bpe):
    prompts = [it["prompt"] for it in I.code_items(10)] + ["Once upon a time"]
    a = E.greedy_generate(tiny, bpe, prompts, max_new_tokens=10, stop=())
    b = E.greedy_generate(tiny, bpe, prompts, max_new_tokens=10, stop=(), use_cache=False)
    assert a == b and len(a) == 11


def test_code_probe_scores_exact_output(char_tok):
    """A model that always prints 5 gets exactly the programs whose output is 5."""
    model = TableLM(chain_table(char_tok, "Output: 5\n\n"))
    res = E.programs(model, char_tok, n=60)
    assert all(p == "5" for p in res["pred"])
    assert res["exact_match"] == sum(it["answer"] == "5" for it in res["items"]) / 60
    assert res["chance"] == E.chance_level("code") == max(I.trivial_baselines("code").values())


def test_math_probe_reads_the_number_after_answer(char_tok):
    model = TableLM(chain_table(char_tok, "\nAnswer: 7"))
    res = E.arithmetic(model, char_tok, n=60)
    assert all(g.startswith("Answer: 7") for g in res["generations"])
    assert res["exact_match"] == sum(it["answer"] == "7" for it in res["items"]) / 60
    assert E.extract_answer("3 + 4 = 7\nAnswer: 7") == "7" and E.extract_answer("no idea") is None


def test_in_context_probe(tiny, bpe):
    pattern = E.in_context(tiny, bpe, n=30)
    assert set(pattern["acc"]) == {0, 1, 5} and pattern["chance"] == pytest.approx(
        1 / 3
    ) == E.chance_level("icl")
    assert all(len(it["options"]) == 3 for it in pattern["items"])
    res = E.in_context(tiny, bpe, n=40, kind="code")
    assert set(res["acc"]) == {0, 1, 5} and res["chance"] == 0.25 == E.chance_level("icl_lookup")
    assert len(res["pred"]) == 120 and all(len(ll) == 4 for ll in res["loglikelihoods"])
    # the answer's position is balanced, so a model with a fixed preference scores about chance
    first = sum(it["label"] == 0 for it in res["items"]) / len(res["items"])
    assert 0.1 < first < 0.4
    groups = E.in_context(tiny, bpe, n=10, kind="groups")
    assert groups["chance"] == 0.5 and set(groups["acc"]) == {0, 1, 5}
    with pytest.raises(ValueError, match="kind"):
        E.in_context(tiny, bpe, n=2, kind="poems")


# ----------------------------------------------------------------------------- errors
def test_bad_inputs(tiny, bpe):
    with pytest.raises(TypeError, match="model"):
        E.perplexity("not a model", bpe)
    with pytest.raises(TypeError, match="tokenizer"):
        E.perplexity(tiny, object())
    with pytest.raises(ValueError, match="unknown task"):
        E.suite(tiny, bpe, tasks=["poetry"])
    with pytest.raises(TypeError, match="list of task names"):
        E.suite(tiny, bpe, tasks="math")
    with pytest.raises(ValueError, match="no tasks"):
        E.suite(tiny, bpe, tasks=[])
    with pytest.raises(ValueError, match="shots"):
        E.suite(tiny, bpe, tasks=["icl"], shots=(1, -2))
    with pytest.raises(ValueError, match="unknown task"):
        E.chance_level("poetry")
    with pytest.raises(ValueError, match="context length"):
        E.LM(nn.Linear(2, 2), bpe)


# ----------------------------------------------------------------------------- bad input
def test_bad_input_says_what_to_pass_instead(tiny, bpe, char_tok):
    item = {"context": "The cup", "options": [" broke.", " sank."], "label": 0}
    with pytest.raises(ValueError, match="no items to score"):
        E.multiple_choice(tiny, bpe, [])
    with pytest.raises(ValueError, match="label 2 is not an index of its 2 options"):
        E.multiple_choice(tiny, bpe, [{**item, "label": 2}])
    with pytest.raises(ValueError, match=r"1 option\(s\): pass at least 2"):
        E.multiple_choice(tiny, bpe, [{**item, "options": [" broke."]}])
    with pytest.raises(ValueError, match=r"lacks \['label'\]"):
        E.multiple_choice(tiny, bpe, [{"context": "x", "options": [" a", " b"]}])
    # a tokenizer that is not the model's: other size than this TinyLM's vocabulary
    with pytest.raises(ValueError, match="trained with another tokenizer"):
        E.multiple_choice(tiny, char_tok, [item])
    # a tokenizer with ids past the vocabulary of any model
    big = SimpleNamespace(encode=bpe.encode, decode=bpe.decode, eos_id=0, vocab_size=10**6)
    llama = TableLM(torch.zeros(50, 50))
    with pytest.raises(ValueError, match="do not belong together"):
        E.multiple_choice(llama, big, [item])
    # no end-of-text token
    no_eos = SimpleNamespace(encode=bpe.encode, decode=bpe.decode, vocab_size=bpe.vocab_size)
    with pytest.raises(ValueError, match="no end-of-text token"):
        E.perplexity(tiny, no_eos, n_tokens=50)
    # more shots than a lesson can show; no items
    with pytest.raises(ValueError, match="pattern lessons have at most 19 examples"):
        E.in_context(tiny, bpe, n=2, shots=(1, 50), kind="pattern")
    with pytest.raises(ValueError, match="secret-words lessons have at most"):
        L.icl_group_items(2, shots=12)
    with pytest.raises(ValueError, match="shots must be whole numbers"):
        L.icl_items(2, shots=(-1,))
    with pytest.raises(ValueError, match="copy lessons show the query's pair"):
        L.icl_copy_items(2, shots=(0, 1))
    with pytest.raises(ValueError, match="unknown commonsense kind"):
        I.commonsense_items(4, kinds={"riddles": 1.0})
    for make in (I.commonsense_items, I.math_items, I.code_items, L.icl_items, L.icl_copy_items):
        with pytest.raises(ValueError, match="number of items"):
            make(0)
    with pytest.raises(ValueError, match=r"unknown task\(s\) \['arc'\]"):
        E.suite(tiny, bpe, tasks=["arc"])
