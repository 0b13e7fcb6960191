"""slmlab.evaluate.harness: slmlab's multiple-choice scorer and lm-evaluation-harness agree.

The twin test runs the harness once (a module fixture) on the shipped base model, on commonsense
and in-context items, and checks that it scores the strings slmlab scores, with the same
log-likelihoods (1e-4) and exactly the same acc and acc_norm, item by item. The writer and the
errors are tested without the harness.
"""

import importlib.util
import json

import pytest
import torch
import yaml

import slmlab
from slmlab import TinyLM, TinyLMConfig
from slmlab import evaluate as E
from slmlab.evaluate import harness as H
from slmlab.evaluate import items as I
from slmlab.evaluate import lessons as L

ITEMS = [
    {
        "context": "The stone fell into the pond. The stone",
        "options": [" sank.", " flew."],
        "label": 0,
    },
    {"context": "A ü line\nand -> ", "options": [" a", " bb", " c c"], "label": 2, "kind": "x"},
]


@pytest.fixture(scope="module")
def base():
    return slmlab.load_reference("base")


@pytest.fixture(scope="module")
def exported(base, tmp_path_factory):
    return H.export_for_harness(*base, tmp_path_factory.mktemp("harness") / "base")


# ----------------------------------------------------------------------------- the task writer
def test_write_task_writes_a_multiple_choice_task_and_its_items(tmp_path):
    path = H.write_task(ITEMS, tmp_path / "tasks", "toy")
    assert path == (tmp_path / "tasks" / "toy.yaml").resolve()
    cfg = yaml.safe_load(path.read_text(encoding="utf-8"))
    data = cfg["dataset_kwargs"]["data_files"]["test"]
    assert data == str((tmp_path / "tasks" / "toy.jsonl").resolve())
    assert {k: v for k, v in cfg.items() if k not in ("dataset_kwargs", "metric_list")} == {
        "task": "toy",
        "dataset_path": "json",
        "test_split": "test",
        "output_type": "multiple_choice",
        "num_fewshot": 0,
        "doc_to_text": "context",
        "doc_to_choice": "choices",
        "doc_to_target": "label",
        "target_delimiter": " ",
        "metadata": {"version": 1.0},
    }
    assert [m["metric"] for m in cfg["metric_list"]] == ["acc", "acc_norm"]
    rows = [json.loads(line) for line in open(data, encoding="utf-8")]
    assert [r["context"] for r in rows] == [it["context"] for it in ITEMS]  # trailing space kept
    assert [r["label"] for r in rows] == [0, 2]
    # the harness scores target_delimiter + choice: exactly slmlab's option
    for r, it in zip(rows, ITEMS):
        assert [cfg["target_delimiter"] + c for c in r["choices"]] == it["options"]
    assert rows[1]["choices"] == ["a", "bb", "c c"]  # len(choice): the text, not the space


@pytest.mark.parametrize(
    "items, match",
    [
        ([], "no items"),
        ([{"context": "a", "label": 0}], r"no \['options'\]"),
        ([{"context": "a", "options": [], "label": 0}], "has no options"),
        ([{"context": "a", "options": ["b", " c"], "label": 0}], "starts with a space"),
        ([{"context": "a", "options": [" ", " c"], "label": 0}], "text after it"),
        ([{"context": "a", "options": [" b", " c"], "label": 2}], "not the index"),
        ([{"context": "a", "options": [" b", " c"], "label": True}], "not the index"),
    ],
)
def test_write_task_refuses_what_is_not_a_multiple_choice_item(tmp_path, items, match):
    with pytest.raises(ValueError, match=match):
        H.write_task(items, tmp_path, "bad")
    assert not list(tmp_path.iterdir())  # nothing written


def test_write_task_refuses_a_name_the_harness_cannot_use(tmp_path):
    with pytest.raises(ValueError, match="task name"):
        H.write_task(ITEMS, tmp_path, "two words")


# ----------------------------------------------------------------------------- the export
def test_exported_tokenizer_prepends_the_end_of_text_token(base, exported):
    from transformers import AutoTokenizer

    model, tok = base
    hf_tok = AutoTokenizer.from_pretrained(exported)
    text = "Mia had a red ball. The ball ->"
    assert hf_tok.bos_token_id == hf_tok.eos_token_id == tok.eos_id == E.LM(model, tok).prefix_id
    assert hf_tok.encode(text) == [tok.eos_id] + tok.encode(text)
    assert hf_tok.encode(text, add_special_tokens=False) == tok.encode(text)
    assert sorted(p.name for p in exported.glob("*.safetensors")) == ["model.safetensors"]
    assert not [p for p in exported.iterdir() if p.suffix in (".bin", ".pt", ".pkl")]


def test_a_transformers_model_is_exported_as_it_is_and_scored_alike(base, exported, tmp_path):
    """A transformers model with its tokenizer: saved as they are; the harness scores it as
    slmlab scores the same model (here the base model converted, with the exported tokenizer)."""
    from transformers import AutoTokenizer

    model, tok = base
    hf_model = slmlab.to_hf(model, tok).eval()
    hf_tok = AutoTokenizer.from_pretrained(exported)
    out = H.export_for_harness(hf_model, hf_tok, tmp_path / "hf")
    assert {"config.json", "model.safetensors", "tokenizer.json"} <= {p.name for p in out.iterdir()}
    if importlib.util.find_spec("lm_eval") is None:
        pytest.skip("lm-eval is not installed: pip install 'slmlab[eval]'")
    items = I.commonsense_items(8, seed=1)
    H.write_task(items, tmp_path / "tasks", "cs8")
    theirs = H.run_harness(out, tmp_path / "tasks", "cs8")["cs8"]
    ours = E.multiple_choice(hf_model, hf_tok, items)
    diff = torch.tensor(ours["loglikelihoods"]) - torch.tensor(theirs["loglikelihoods"])
    assert diff.abs().max().item() < 1e-4
    assert (ours["acc"], ours["acc_norm"]) == (theirs["acc"], theirs["acc_norm"])


def test_a_vocabulary_mismatch_is_refused(base, exported, tmp_path):
    model, tok = base
    small = TinyLM(TinyLMConfig(vocab_size=100, block_size=32, n_layer=1, n_head=2, d_model=16))
    with pytest.raises(ValueError, match="vocabulary mismatch"):
        H.export_for_harness(small, tok, tmp_path / "small")
    with pytest.raises(TypeError, match="slmlab tokenizer"):
        H.export_for_harness(model, object(), tmp_path / "x")
    from transformers import AutoTokenizer

    hf_small = slmlab.to_hf(small)
    with pytest.raises(ValueError, match="vocabulary mismatch"):
        H.export_for_harness(hf_small, AutoTokenizer.from_pretrained(exported), tmp_path / "y")
    with pytest.raises(TypeError, match="transformers tokenizer"):
        H.export_for_harness(hf_small, tok, tmp_path / "z")
    assert not (tmp_path / "small").exists() and not (tmp_path / "y").exists()


def test_run_harness_refuses_a_missing_model_task_or_mismatched_vocabulary(exported, tmp_path):
    H.write_task(ITEMS, tmp_path, "toy")
    with pytest.raises(FileNotFoundError, match="config.json"):
        H.run_harness(tmp_path, tmp_path, "toy")
    with pytest.raises(FileNotFoundError, match="no task"):
        H.run_harness(exported, tmp_path, ["toy", "absent"])
    with pytest.raises(ValueError, match="no tasks"):
        H.run_harness(exported, tmp_path, [])
    # a checkpoint whose embedding is smaller than its tokenizer: refused before the harness runs
    bad = tmp_path / "bad"
    bad.mkdir()
    for f in exported.iterdir():
        (bad / f.name).write_bytes(f.read_bytes())
    cfg = json.loads((bad / "config.json").read_text())
    (bad / "config.json").write_text(json.dumps({**cfg, "vocab_size": 100}))
    with pytest.raises(ValueError, match="vocabulary mismatch"):
        H.run_harness(bad, tmp_path, "toy")


# ----------------------------------------------------------------------------- the twin
TASKS = {
    "commonsense": lambda: I.commonsense_items(48),
    # copy lessons of unequal code lengths: on two of them the two acc_norm definitions (space
    # counted or not) disagree
    "icl": lambda: L.icl_copy_items(30, shots=(1, 5)),
}


@pytest.fixture(scope="module")
def twin(base, exported, tmp_path_factory):
    if importlib.util.find_spec("lm_eval") is None:  # skipped only when absent, not when broken
        pytest.skip("lm-eval is not installed: pip install 'slmlab[eval]'")
    model, tok = base
    items = {name: make() for name, make in TASKS.items()}
    task_dir = tmp_path_factory.mktemp("tasks")
    for name, its in items.items():
        H.write_task(its, task_dir, name)
    ours = {name: E.multiple_choice(model, tok, its) for name, its in items.items()}
    torch.manual_seed(7)
    expected = torch.rand(3)
    torch.manual_seed(7)
    theirs = H.run_harness(exported, task_dir, list(TASKS))
    assert torch.equal(torch.rand(3), expected), "run_harness left torch's generator reseeded"
    return items, ours, theirs


@pytest.mark.parametrize("task", list(TASKS))
def test_the_harness_scores_the_strings_slmlab_scores(twin, task):
    items, _, theirs = twin
    assert theirs[task]["n"] == len(items[task])
    assert theirs[task]["requests"] == [
        [(it["context"], o) for o in it["options"]] for it in items[task]
    ]


@pytest.mark.parametrize("task", list(TASKS))
def test_loglikelihoods_agree_with_the_harness(twin, task):
    _, ours, theirs = twin
    a = torch.tensor(ours[task]["loglikelihoods"], dtype=torch.float64)
    b = torch.tensor(theirs[task]["loglikelihoods"], dtype=torch.float64)
    assert a.shape == b.shape
    assert (a - b).abs().max().item() < 1e-4


@pytest.mark.parametrize("task", list(TASKS))
def test_acc_and_acc_norm_equal_the_harness(twin, task):
    items, ours, theirs = twin
    h = theirs[task]
    assert h["label"] == [it["label"] for it in items[task]]
    assert [float(p == it["label"]) for p, it in zip(ours[task]["pred"], items[task])] == h[
        "correct"
    ]
    assert [float(p == it["label"]) for p, it in zip(ours[task]["pred_norm"], items[task])] == h[
        "correct_norm"
    ]
    assert ours[task]["acc"] == h["acc"] and ours[task]["acc_norm"] == h["acc_norm"]


def test_counting_the_space_would_disagree_with_the_harness(twin):
    """The items include one where dividing by len(option), space included, picks another
    answer: the agreement above pins the definition (without the space)."""
    items, _, theirs = twin
    its, h = items["icl"], theirs["icl"]
    with_space = [
        float(max(range(len(ll)), key=lambda j: ll[j] / len(it["options"][j])) == it["label"])
        for ll, it in zip(h["loglikelihoods"], its)
    ]
    assert with_space != h["correct_norm"]
