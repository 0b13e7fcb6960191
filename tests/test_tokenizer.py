import pytest

from slmlab.tokenizer import EOS, BPETokenizer, CharTokenizer, load_tokenizer

TEXTS = [
    "Tom has a red ball. The ball is round.",
    "x = 3\nprint(x + 2)\nOutput: 5",
    "Mia felt happy.",
] * 30
TRICKY = "Tom  has\ta café ☕ — 3+4=7!\n\n  λx. 😀 " + EOS + " end"


def test_bpe_round_trip_and_save(tmp_path):
    tok = BPETokenizer.train(TEXTS, vocab_size=300)
    assert 258 <= tok.vocab_size <= 300
    for s in TEXTS[:3] + [TRICKY, ""]:
        assert tok.decode(tok.encode(s)) == s
    tok.save(tmp_path / "tok.json")
    again = load_tokenizer(tmp_path / "tok.json")
    assert again.encode(TRICKY) == tok.encode(TRICKY)
    assert again.eos_id == tok.eos_id
    assert len(tok.encode(TEXTS[0])) < len(TEXTS[0])  # merges compress


def test_char_round_trip_and_save(tmp_path):
    tok = CharTokenizer.train(TEXTS + [TRICKY])
    assert tok.decode(tok.encode(TRICKY)) == TRICKY
    tok.save(tmp_path / "c.json")
    again = load_tokenizer(tmp_path / "c.json")
    assert again.encode(TRICKY) == tok.encode(TRICKY)
    with pytest.raises(ValueError, match="not in the training text"):
        tok.encode("Ω")


def test_bad_inputs(tmp_path):
    with pytest.raises(ValueError, match="vocab_size >= 258"):
        BPETokenizer.train(TEXTS, vocab_size=100)
    with pytest.raises(FileNotFoundError):
        load_tokenizer(tmp_path / "missing.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(ValueError, match="not a valid tokenizer JSON"):
        load_tokenizer(bad)
