import json

import pytest
import torch

import slmlab
from slmlab.checkpoint import CheckpointError
from slmlab.reference import available, load_reference, ship, verify
from slmlab.train import train


@pytest.fixture
def shipped(toy_text, tmp_path, monkeypatch):
    """A tiny run shipped into a temporary data/ folder."""
    monkeypatch.setenv("SLMLAB_DATA", str(tmp_path / "data"))
    cfg = {
        "model": {"n_layer": 1, "n_head": 2, "d_model": 16},
        "data": {"text_file": str(toy_text), "tokenizer": {"kind": "char"}},
        "train": {
            "batch_size": 2,
            "seq_len": 16,
            "max_steps": 3,
            "eval_every": 0,
            "progress": False,
            "out_dir": str(tmp_path / "run"),
        },
    }
    res = train(cfg)
    folder = ship(tmp_path / "run", "mini", metrics={"val_loss": 1.0})
    return folder, res


def test_ship_and_load(shipped):
    folder, res = shipped
    assert available() == ["mini"]
    model, tok = slmlab.load_reference("mini")
    x = torch.tensor([tok.encode("the cat")])
    torch.testing.assert_close(model(x), res.model(x))
    assert json.loads((folder / "metrics.json").read_text()) == {"val_loss": 1.0}
    assert json.loads((folder / "train_config.json").read_text())["model"]["d_model"] == 16


def test_unknown_name_suggests(shipped):
    with pytest.raises(
        ValueError, match=r"unknown reference model 'minii'.*Did you mean \['mini'\]"
    ):
        load_reference("minii")


def test_altered_file_is_detected(shipped):
    folder, _ = shipped
    data = bytearray((folder / "model.safetensors").read_bytes())
    data[-1] ^= 0xFF
    (folder / "model.safetensors").write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="altered or is incomplete"):
        load_reference("mini")


def test_missing_file_is_detected(shipped):
    folder, _ = shipped
    (folder / "tokenizer.json").unlink()
    with pytest.raises(CheckpointError, match="tokenizer.json is missing"):
        verify("mini")
    (folder / "SHA256SUMS").unlink()
    with pytest.raises(ValueError, match="unknown reference model"):
        verify("nothing")


def test_the_shipped_models_verify_and_match_the_corpus_generator():
    """The book's reference models are present, intact, and were trained on the corpus that
    slmlab.data generates today (a change to the generator must come with retrained models)."""
    from slmlab.reference import corpus_fingerprint, reference_dir

    names = available()
    assert {"base", "small"} <= set(names), f"shipped reference models missing: {names}"
    fp = corpus_fingerprint()
    for name in names:
        verify(name)
        metrics = json.loads((reference_dir() / name / "metrics.json").read_text())
        assert metrics["corpus_fingerprint"] == fp, (
            f"data/reference/{name} was trained on a different TinyTales corpus: "
            f"retrain it (python -m slmlab train configs/{name}.json) and ship it (python -m "
            f"slmlab ship RUN_DIR {name})"
        )


def test_model_card_shows_seeded_samples(shipped):
    from slmlab.reference import model_card, samples

    model, tok = load_reference("mini")
    a = samples(model, tok, prompts=("the cat", "the"), max_new_tokens=5)
    assert a == samples(model, tok, prompts=("the cat", "the"), max_new_tokens=5)  # seeded
    assert all(x["text"].startswith(x["prompt"]) for x in a)
    card = model_card("mini", {"model": {}, "train": {}}, {"samples": a, "suite": []})
    assert "Samples (temperature 0.8" in card and a[0]["text"].strip() in card


def test_the_frozen_tokenizer_is_what_its_recipe_makes():
    """data/tinytales/tokenizer.json, which every run shares, is the BPE that the recipe its
    README states trains on version 1 of the corpus: it tokenizes version 2's text identically."""
    from slmlab.data import corpus_text
    from slmlab.tokenizer import load_tokenizer
    from slmlab.train.data import _tinytales_docs, build_tokenizer
    from slmlab.utils import PROJECT_ROOT

    recipe = {"kind": "bpe", "vocab_size": 2048, "train_chars": 4_000_000}
    made = build_tokenizer(recipe, lambda n: "\n\n".join(_tinytales_docs("train", n, 0, None, 1)))
    frozen = load_tokenizer(PROJECT_ROOT / "data/tinytales/tokenizer.json")
    text = corpus_text("val", 50_000)
    assert made.vocab_size == frozen.vocab_size == 2048
    assert made.encode(text) == frozen.encode(text)
    for name in ("base", "small"):
        shipped = load_tokenizer(PROJECT_ROOT / f"data/reference/{name}/tokenizer.json")
        assert shipped.encode(text) == frozen.encode(text)
