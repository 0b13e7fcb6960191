"""TinyTales: determinism, splits that never overlap, held-out pairs, probe items, stats,
loaders."""

import contextlib
import io
import itertools
import math
import random
import re
import time
from collections import Counter
from pathlib import Path

import pytest

from slmlab import data as D
from slmlab.data.writer import action_phrase
from slmlab.evaluate import items as I
from slmlab.evaluate import lessons as L

FIXTURES = Path(__file__).parent / "fixtures" / "corpora"


def take(split="train", n=400, seed=0, mix=None):
    return list(itertools.islice(D.iter_documents(split, seed=seed, mix=mix), n))


def sentences(doc):
    return [s for s in re.split(r"(?<=[.!?])\s+|\n", doc) if s.strip()]


# ----------------------------------------------------------------------------- the stream
def test_deterministic_per_seed_and_different_across_seeds():
    assert take(seed=0, n=200) == take(seed=0, n=200)
    assert take(seed=0, n=200) != take(seed=1, n=200)
    assert D.corpus_text("val", 5000, seed=3) == D.corpus_text("val", 5000, seed=3)


def test_every_kind_appears_and_docs_hold_no_eos_marker():
    docs = take(n=300)
    kinds = Counter(D.kind_of(d) for d in docs)
    assert set(kinds) == set(D.KINDS), kinds
    assert not any("<|endoftext|>" in d for d in docs)
    assert all(d.strip() == d and d for d in docs)


def test_mix_is_a_share_of_characters():
    mix = {"story": 0.5, "facts": 0.1, "math": 0.2, "code": 0.1, "icl": 0.1}
    chars = Counter()
    for d in take(n=1500, mix=mix):
        chars[D.kind_of(d)] += len(d)
    total = sum(chars.values())
    for k, share in mix.items():
        assert abs(chars[k] / total - share) < 0.01, (k, chars[k] / total)


def test_a_kind_stream_does_not_depend_on_the_mix():
    only_math = take(n=30, mix={"math": 1.0})
    mixed = [d for d in take(n=400) if D.kind_of(d) == "math"][:30]
    assert all(D.kind_of(d) == "math" for d in only_math)
    assert only_math == mixed


# sha256 of the first 200,000 characters of the train split of version 1, the corpus of Part 3's
# shipped experiments (and of the reference models before version 2): it must never change
VERSION_1_FINGERPRINT = "539c4a820ae5a4470c3b2e46633f90cf794282667f87ce21badc7c5fb63291eb"


def test_corpus_version_1_stays_byte_identical_and_2_is_the_default():
    import hashlib

    v1 = D.corpus_text("train", 200_000, version=1)
    assert hashlib.sha256(v1.encode("utf-8")).hexdigest() == VERSION_1_FINGERPRINT
    assert D.CORPUS_VERSION == 2 and D.DEFAULT_MIX == D.MIXES[2]
    assert D.corpus_text("train", 50_000) == D.corpus_text("train", 50_000, version=2)
    v2 = D.corpus_text("train", 200_000)
    # what version 2 adds: new things named by invented words, two-step word problems
    train_words = set(D.SECRET_WORDS["train"])

    def invented_words_in_stories(version):  # (a few invented words are English: "ran")
        stories = D.documents("train", 300, mix={"story": 1.0}, version=version)
        return {w for d in stories for w in re.findall(r"[a-z]+", d)} & train_words

    assert len(invented_words_in_stories(1)) < 10 < 200 < len(invented_words_in_stories(2))
    assert re.search(r"\n\d+ [+-] \d+ = \d+\n\d+ [+-] \d+ = \d+\nAnswer:", v2)
    assert not re.search(r"\n\d+ [+-] \d+ = \d+\n\d+ [+-] \d+ = \d+\nAnswer:", v1)


def test_bad_arguments_are_refused_clearly():
    with pytest.raises(ValueError, match=r"TinyTales has versions \[1, 2\]"):
        next(D.iter_documents("train", version=3))
    with pytest.raises(ValueError, match="split must be one of"):
        next(D.iter_documents("training"))
    with pytest.raises(ValueError, match="unknown document kind"):
        next(D.iter_documents("train", mix={"poems": 1.0}))
    with pytest.raises(ValueError, match="non-negative"):
        next(D.iter_documents("train", mix={"story": -1.0, "math": 2.0}))
    with pytest.raises(ValueError, match="not all zero"):
        next(D.iter_documents("train", mix={"story": 0.0}))
    with pytest.raises(ValueError, match="n_chars"):
        D.corpus_text("train", -5)


def test_corpus_text_joins_whole_documents():
    docs = take("val", n=50)
    text = D.corpus_text("val", 4000, sep="\n\n")
    assert len(text) >= 4000 - 2
    joined = "\n\n".join(docs)
    assert joined.startswith(text)  # whole documents, in stream order
    assert D.corpus_text("val", 0) == ""


# ----------------------------------------------------------------------------- splits
def test_splits_never_share_a_document_problem_program_or_secret_word():
    docs = {s: take(s, n=600) for s in D.SPLITS}
    sets = {s: set(d) for s, d in docs.items()}
    assert (
        not sets["train"] & sets["val"]
        and not sets["train"] & sets["test"]
        and not sets["val"] & sets["test"]
    )
    for split, ds in docs.items():
        for d in ds:
            kind = D.kind_of(d)
            if kind in ("story", "facts"):
                assert D.split_of(d) == split
            elif kind == "math":
                for q in re.findall(r"Problem: (.*)\n", d):
                    assert D.split_of("math:" + q) == split
            elif kind == "code":
                for prog in re.findall(r"```\n(.*?)\n```", d, flags=re.S):
                    assert D.split_of("code:" + prog) == split
    train_words = set(
        re.findall(r"[a-z]+", " ".join(d for d in docs["train"] if D.kind_of(d) == "icl"))
    )
    assert not train_words & set(D.SECRET_WORDS["test"])
    assert not train_words & set(D.SECRET_WORDS["val"])


def test_held_out_pairs_never_appear_in_any_split():
    """No sentence of any split says what a held-out object does under its held-out action, in
    any wording: the generator's own (story, rule, question/answer) or any sentence naming both."""
    checks = []
    for o, act in sorted(D.HELD_OUT):
        b = D.behaviour(o, act)
        q = {
            "drop": f"drop {D.article(o)}?",
            "water": f"put {D.article(o)} in water?",
            "fire": f"put {D.article(o)} near a fire?",
        }[act]
        checks.append(
            (
                (o, act),
                re.compile(rf"\b{o}\b"),
                (b, D.past(b)),
                [
                    f"The {o} {D.past(b)}",
                    f"{o} is made of {D.MATERIAL_OF[o]}, so if you {action_phrase(act, o)}, it {b}",
                    f"{q}\nA: It {b}",
                ],
            )
        )
    n_checked = 0
    for split in D.SPLITS:
        for d in take(split, n=1500, mix={"story": 0.6, "facts": 0.4}):
            for pair, _pat, (_b, _bp), exact in checks:
                assert not any(e in d for e in exact), (pair, split, d)
            for s in sentences(d):
                n_checked += 1
                for pair, pat, (b, bp), _ in checks:
                    assert not ((b in s or bp in s) and pat.search(s)), (pair, split, s)
    assert n_checked > 10_000


def test_held_out_objects_are_learnable_from_their_material():
    """The premise of the held-out probes: training states each held-out object's material and
    shows other objects of that material under the held-out action."""
    text = "\n".join(take("train", n=3000, mix={"story": 0.6, "facts": 0.4}))
    for o, act in sorted(D.HELD_OUT):
        m = D.MATERIAL_OF[o]
        assert f"{o} is made of {m}" in text or f"{o} was made of {m}" in text, o
        others = [x for x in D.OBJECTS[m] if (x, act) not in D.HELD_OUT]
        assert any(f"The {x} {D.past(D.behaviour(x, act))}" in text for x in others), (o, act)


# ----------------------------------------------------------------------------- content
def test_programs_print_what_the_corpus_says():
    progs = [
        (p, out)
        for d in take(n=300, mix={"code": 1.0})
        for p, out in re.findall(r"```\n(.*?)\n```\nOutput: ([^\n]*)", d, flags=re.S)
    ]
    progs += [(it["program"], it["answer"]) for it in I.code_items(100)]
    assert len(progs) > 500
    for prog, out in progs:
        buf = io.StringIO()
        with contextlib.redirect_stdout(buf):
            exec(prog, {})  # noqa: S102 - programs the generator wrote
        assert buf.getvalue() == out + "\n", prog


def test_word_problems_are_right_and_small():
    docs = take(n=300, mix={"math": 1.0})
    step = r"(\d+) ([+-]) (\d+) = (\d+)"
    one = [m for d in docs for m in re.findall(rf"Problem: (.*)\n{step}\nAnswer: (\d+)", d)]
    assert len(one) > 400
    for q, x, op, y, z, ans in one:
        x, y, z = int(x), int(y), int(z)
        assert z == (x + y if op == "+" else x - y) == int(ans)
        assert 0 <= z <= (999 if max(x, y) >= 100 else 99) and f"{x}" in q and f"{y}" in q
        assert ("plus" not in q or op == "+") and ("minus" not in q or op == "-")
    assert any(max(int(x), int(y)) >= 100 for _, x, _, y, _, _ in one)  # three-digit, rarely
    # two operations: the second line works on the first line's result; add one way, take
    # away the other
    two = [m for d in docs for m in re.findall(rf"Problem: (.*)\n{step}\n{step}\nAnswer: (\d+)", d)]
    assert len(two) > 100
    for q, x, op, y, s_, s2, op2, z, t, ans in two:
        x, y, s_, s2, z, t = map(int, (x, y, s_, s2, z, t))
        assert s_ == (x + y if op == "+" else x - y) == s2 and {op, op2} == {"+", "-"}
        assert t == (s_ + z if op2 == "+" else s_ - z) == int(ans) >= 0
        assert all(f"{v}" in q for v in (x, y, z))


def test_stories_read_as_sentences():
    for d in take(n=200, mix={"story": 1.0}):
        for s in sentences(d):
            assert s[0].isupper() or s[0] == '"', s
            assert s[-1] in '.!?"', s
        assert "  " not in d and " ." not in d and " ," not in d
        assert not re.search(r"\ba [aeiou]", d) and not re.search(
            r"\ban [bcdfgjklmnpqrstvwxyz]", d
        ), d


# ----------------------------------------------------------------------------- probes
def test_probe_items_are_deterministic_and_well_formed():
    assert I.commonsense_items(50, seed=1) == I.commonsense_items(50, seed=1)
    assert I.commonsense_items(50, seed=1) != I.commonsense_items(50, seed=2)
    items = I.commonsense_items(600)
    assert set(Counter(it["kind"] for it in items)) == set(I.COMMONSENSE_KINDS)
    test_words = set(D.SECRET_WORDS["test"])
    for it in items:
        assert it["difficulty"] == I.COMMONSENSE_DIFFICULTY[it["kind"]]
        assert len(it["options"]) == 4 == len(set(it["options"]))
        if it["kind"] in ("new_thing", "new_thing_feel", "two_things"):
            # the new thing is an invented word of the test bucket, never in training text;
            # the right option is what its material does, whatever the context says it is
            thing = it["context"].rsplit(" ", 1)[1]
            assert thing in test_words
            right = D.past(D.MATERIALS[it["material"]][it["action"]])
            assert it["options"][it["label"]] == f" {right}."
            said = it["material"] if it["kind"] != "new_thing_feel" else None
            assert said is None or f"made of {said}" in it["context"]
            if said is None:
                assert D.MATERIALS[it["material"]]["feel"] in it["context"]
                assert "made of" not in it["context"]
        assert all(o.startswith(" ") for o in it["options"]) and 0 <= it["label"] < 4
        if it["kind"] == "material":
            assert (it["object"], it["action"]) in D.HELD_OUT
            assert it["options"][it["label"]].strip(" .") in (
                D.behaviour(it["object"], it["action"]),
                D.past(D.behaviour(it["object"], it["action"])),
            )
    labels = Counter(it["label"] for it in items)
    assert min(labels.values()) > 40  # the right answer is not always in one place


def test_icl_items_pair_the_same_lessons_across_shots():
    items = L.icl_items(40, shots=(0, 1, 5))
    by_ep = {}
    for it in items:
        by_ep.setdefault(it["episode"], {})[it["shots"]] = it
    labels = Counter()
    for ep in by_ep.values():
        z, one, five = ep[0], ep[1], ep[5]
        assert (
            z["options"] == one["options"] == five["options"]
            and z["label"] == one["label"] == five["label"]
        )
        answer = five["options"][five["label"]].strip()
        labels[five["label"]] += 1
        query = five["context"].rsplit("\n", 1)[1]
        assert (
            query.endswith(" =")
            and z["context"].endswith("\n" + query)
            and one["context"].endswith("\n" + query)
        )
        assert (
            z["context"].count("\n") == 1
            and one["context"].count("\n") == 2
            and five["context"].count("\n") == 6
        )
        pairs = dict(ln.split(" = ") for ln in five["context"].split("\n")[1:-1])
        assert pairs[query[:-2]] == answer and f"{query} {answer}" in one["context"]
        shown = set(pairs.values())
        assert (
            sum(o.strip() in shown for o in five["options"]) >= 4
        )  # the distractors are shown too
        for o in z["options"]:
            assert o.strip() in D.SECRET_WORDS["test"] and o.strip() not in z["context"]
    assert len(labels) == 4


def test_icl_copy_items_show_only_the_right_option():
    items = L.icl_copy_items(30, shots=(1, 3, 10))
    by_ep = {}
    for it in items:
        by_ep.setdefault(it["episode"], {})[it["shots"]] = it
    places = Counter()
    for ep in by_ep.values():
        assert len({(it["label"], tuple(it["options"])) for it in ep.values()}) == 1
        for k, it in ep.items():
            lines = it["context"].split("\n")
            pairs = dict(ln.split(" = ") for ln in lines[1:-1])
            query = lines[-1][: -len(" =")]
            answer = it["options"][it["label"]].strip()
            assert len(pairs) == k and pairs[query] == answer
            # the wrong options are codes the prompt never shows
            wrong = [o.strip() for j, o in enumerate(it["options"]) if j != it["label"]]
            assert not set(wrong) & set(pairs.values()) and len(set(wrong)) == 3
            assert set(wrong) <= set(D.SECRET_WORDS["test"])
            if k == 10:
                places[list(pairs).index(query)] += 1
    assert len(places) > 3  # the query's pair is not always in one place


def test_icl_pattern_items_only_the_examples_say_which_relation():
    items = L.icl_pattern_items(60, shots=(0, 1, 5))
    by_ep = {}
    for it in items:
        by_ep.setdefault(it["episode"], {})[it["shots"]] = it
    labels, relations = Counter(), Counter()
    for ep in by_ep.values():
        z, one, five = ep[0], ep[1], ep[5]
        assert (
            z["options"] == one["options"] == five["options"]
            and z["label"] == one["label"] == five["label"]
        )
        lines = five["context"].split("\n")
        assert lines[0] in D.PATTERN_HEADERS and len(lines) == 7 and z["context"].count("\n") == 1
        query = lines[-1][: -len(" ->")]
        domain, f = D.RELATIONS[five["relation"]]
        # every shown line follows the item's relation, the answer is the query's value under it
        assert all(ln == f"{t} -> {f(t)}" for ln in lines[1:-1] for t in [ln.split(" -> ")[0]])
        assert five["options"][five["label"]] == " " + f(query)
        # the options are the query's values under every relation of its domain, all different
        rels = [r for r, (d, _) in D.RELATIONS.items() if d == domain]
        assert sorted(o.strip() for o in z["options"]) == sorted(
            D.RELATIONS[r][1](query) for r in rels
        )
        assert len(set(z["options"])) == len(z["options"]) == 3
        labels[five["label"]] += 1
        relations[five["relation"]] += 1
    assert len(labels) == 3 and len(relations) == 6
    # training documents hold pattern lessons of the same format
    lesson = D.pattern_lesson(random.Random(0), n_lines=4, relation="sound")
    assert D.kind_of(lesson) == "icl" and all(" -> " in ln for ln in lesson.split("\n")[1:])


def test_icl_group_items_pair_the_same_lessons_across_shots():
    items = L.icl_group_items(40, shots=(0, 1, 5))
    by_ep = {}
    for it in items:
        by_ep.setdefault(it["episode"], {})[it["shots"]] = it
    for ep in by_ep.values():
        z, one, five = ep[0], ep[1], ep[5]
        assert z["options"] == one["options"] == five["options"] and z["label"] == five["label"]
        assert five["context"].startswith(one["context"].rsplit("\n", 1)[0])
        lines = five["context"].split("\n")
        assert len(lines) == 7 and lines[0].startswith("Secret words:")
        words = {ln.split(" -> ")[1] for ln in lines[1:-1]}
        assert words == {o.strip() for o in five["options"]}  # both words shown in 5 shots
        assert lines[-1].endswith("->") and lines[-1][:-3] not in [
            ln.split(" -> ")[0] for ln in lines[1:-1]
        ]
        for o in z["options"]:
            assert o.strip() in D.SECRET_WORDS["test"]


def test_math_and_code_probes_come_from_the_test_split():
    train_probs = {
        q
        for d in take(n=3000, mix={"math": 0.5, "code": 0.5})
        for q in re.findall(r"Problem: (.*)\n", d) + re.findall(r"```\n(.*?)\n```", d, flags=re.S)
    }
    m = I.math_items(200)
    c = I.code_items(200)
    assert len({it["prompt"] for it in m}) == 200 and len({it["prompt"] for it in c}) == 200
    for it in m:
        q = it["prompt"][len("Problem: ") : -1]
        assert D.split_of("math:" + q) == "test" and q not in train_probs
    for it in c:
        assert D.split_of("code:" + it["program"]) == "test" and it["program"] not in train_probs
        assert it["prompt"].endswith("```\nOutput:")


def test_trivial_baselines_are_probabilities_and_small():
    for task in ("math", "code"):
        b = I.trivial_baselines(task, n=500)
        assert set(b) == {"majority", "copy_first_number", "copy_last_number"}
        assert all(0 <= v < 0.25 for v in b.values()), b
    # hand check on the definition: the majority baseline is the top answer's frequency
    items = I.math_items(500, seed=12345)
    top = Counter(it["answer"] for it in items).most_common(1)[0][1] / 500
    assert I.trivial_baselines("math", n=500)["majority"] == top


# ----------------------------------------------------------------------------- statistics
def test_corpus_stats_by_hand():
    s = D.corpus_stats(["The cat sat. The cat ran!", "A dog sat.\nThe cat sat."])
    assert s["n_docs"] == 2 and s["n_chars"] == 25 + 23
    assert s["n_words"] == 12 and s["vocabulary"] == 6  # the cat sat ran a dog
    assert s["n_sentences"] == 4 and s["distinct_sentences"] == 3
    p = Counter({"the": 3, "cat": 3, "sat": 3, "ran": 1, "a": 1, "dog": 1})
    h = -sum(c / 12 * math.log2(c / 12) for c in p.values())
    assert s["unigram_entropy_bits"] == pytest.approx(h)
    assert D.corpus_stats("a a a a")["unigram_entropy_bits"] == 0.0
    with pytest.raises(TypeError):
        D.corpus_stats([b"bytes"])


def test_corpus_is_varied():
    s = D.corpus_stats(take(n=2000))
    assert s["vocabulary"] > 700
    assert s["distinct_sentences"] > 8000
    assert s["unigram_entropy_bits"] > 7.5


# ----------------------------------------------------------------------------- real corpora
def test_load_jsonl_and_txt_fixtures():
    js = D.load_text_dataset(FIXTURES / "tinystories_sample.jsonl")
    txt = D.load_text_dataset(FIXTURES / "tinystories_sample.txt")
    assert len(js) == 6 and js == txt
    assert (
        js[0].startswith("Once upon a time")
        and D.load_text_dataset(FIXTURES / "tinystories_sample.jsonl", n_docs=2) == js[:2]
    )
    wiki = D.load_text_dataset(FIXTURES / "wikitext_sample.jsonl")
    raw = D.load_text_dataset(FIXTURES / "wikitext_sample.jsonl", drop_empty=False)
    assert len(raw) == 14 and len(wiki) == 7 and wiki[0] == " = Marble Lake = \n"


def test_load_parquet_and_save_to_disk(tmp_path):
    import datasets
    import pandas as pd

    rows = D.load_text_dataset(FIXTURES / "wikitext_sample.jsonl", drop_empty=False)
    pd.DataFrame({"text": rows}).to_parquet(tmp_path / "w.parquet")
    assert D.load_text_dataset(tmp_path / "w.parquet", drop_empty=False) == rows
    ds = datasets.DatasetDict(
        {
            "train": datasets.Dataset.from_dict({"text": rows}),
            "validation": datasets.Dataset.from_dict({"text": rows[:5]}),
        }
    )
    ds.save_to_disk(str(tmp_path / "dd"))
    assert D.load_text_dataset(tmp_path / "dd", split="val", drop_empty=False) == rows[:5]
    ds["train"].save_to_disk(str(tmp_path / "d"))
    assert D.load_text_dataset(tmp_path / "d") == [r for r in rows if r.strip()]


def test_loader_errors_say_what_to_do(tmp_path, monkeypatch):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"story": "x"}\n')
    with pytest.raises(KeyError, match="text_field"):
        D.load_text_dataset(bad)
    assert D.load_text_dataset(bad, text_field="story") == ["x"]
    (tmp_path / "broken.jsonl").write_text('{"text": "a"}\n{oops\n')
    with pytest.raises(ValueError, match="line 2"):
        D.load_text_dataset(tmp_path / "broken.jsonl")
    with pytest.raises(FileNotFoundError, match="neither a file"):
        D.load_text_dataset("no-such-corpus")
    (tmp_path / "x.csv").write_text("text\nhi\n")
    with pytest.raises(ValueError, match="jsonl"):
        D.load_text_dataset(tmp_path / "x.csv")
    with pytest.raises(ValueError, match="no split"):
        D.load_text_dataset("tinystories", split="test")


def test_hub_names_fail_fast_offline(monkeypatch):
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    t = time.perf_counter()
    with pytest.raises(ConnectionError) as e:
        D.load_text_dataset("tinystories")
    assert time.perf_counter() - t < 5
    msg = str(e.value)
    assert (
        "HF_DATASETS_OFFLINE" in msg
        and "roneneldan/TinyStories" in msg
        and "load_text_dataset('tinystories-train.jsonl')" in msg
    )


def test_hub_names_fail_fast_without_network(monkeypatch):
    monkeypatch.delenv("HF_DATASETS_OFFLINE", raising=False)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setenv("SLMLAB_HUB_HOST", "host.invalid")  # never resolves (RFC 2606)
    with pytest.raises(ConnectionError, match="not reachable.*wikitext-2-raw-v1"):
        D.load_text_dataset("wikitext", split="test")
