"""export_hf: a complete transformers checkpoint (model + tokenizer + generation config) that
AutoModelForCausalLM / AutoTokenizer load offline and that behaves exactly like the TinyLM."""

import json

import pytest
import torch

from slmlab import TinyLM, TinyLMConfig, from_hf
from slmlab.hf import export_hf, to_hf_tokenizer
from slmlab.tokenizer import EOS, BPETokenizer, CharTokenizer, load_tokenizer

TEXTS = [
    "Once upon a time, there was a little dog.",
    "  two leading spaces,   three inside and a trailing one ",
    "new\nlines\n\n\tand a tab",
    "digits 0 7 42 1234567890 3.14",
    "unicode: café naïve 日本語 🙂 e\u0301",
    f"two stories{EOS}One day",
    "",
]
FILES = {
    "config.json",
    "model.safetensors",
    "generation_config.json",
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
}


def load_auto(directory):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    # trust_remote_code=False explicitly: the folder holds no code and must not need any
    hf = AutoModelForCausalLM.from_pretrained(directory, trust_remote_code=False).eval()
    return hf, AutoTokenizer.from_pretrained(directory, trust_remote_code=False)


def check_tokenizer(hf_tok, tok, texts):
    for text in texts:
        ids = tok.encode(text)
        assert hf_tok(text).input_ids == ids, text  # default add_special_tokens=True adds nothing
        assert hf_tok.encode(text, add_special_tokens=False) == ids, text
        assert hf_tok.decode(ids) == tok.decode(ids), text


# ----------------------------------------------------------------------------- tiny random model


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """A byte-level BPE trained on a few lines and a random TinyLM whose EOS logit we boost so that
    greedy decoding reaches the end-of-text token within a few steps; exported once."""
    words = [
        "the",
        "cat",
        "dog",
        "sat",
        "ran",
        "on",
        "a",
        "mat",
        "hill",
        "and",
        "then",
        "big",
        "1",
        "2",
    ]
    lines = [" ".join(words[(i * 7 + j) % len(words)] for j in range(8)) + "." for i in range(200)]
    tok = BPETokenizer.train(lines, vocab_size=300)
    torch.manual_seed(0)
    model = TinyLM(
        TinyLMConfig(
            vocab_size=tok.vocab_size, block_size=64, n_layer=2, n_head=4, n_kv_head=2, d_model=32
        )
    ).eval()
    prompt = torch.tensor([[tok.eos_id] + tok.encode("the cat sat on")])
    free = model.generate(prompt, 8, temperature=0)[0, prompt.shape[1] :]
    with torch.no_grad():  # make EOS outscore the 4th greedy token wherever that token would win
        model.lm_head.weight[tok.eos_id] = 1.5 * model.lm_head.weight[int(free[3])]
    directory = export_hf(model, tok, tmp_path_factory.mktemp("tiny") / "export")
    return model, tok, directory, prompt


def test_folder_is_a_complete_safetensors_checkpoint(tiny):
    model, tok, directory, _ = tiny
    assert FILES <= {p.name for p in directory.iterdir()}
    assert not [p for p in directory.iterdir() if p.suffix in (".bin", ".pt", ".pth", ".pkl")]
    cfg = json.loads((directory / "config.json").read_text())
    assert cfg["model_type"] == "llama" and cfg["architectures"] == ["LlamaForCausalLM"]
    assert cfg["bos_token_id"] == cfg["eos_token_id"] == cfg["pad_token_id"] == tok.eos_id
    assert cfg["max_position_embeddings"] == model.config.block_size
    gen = json.loads((directory / "generation_config.json").read_text())
    assert gen["bos_token_id"] == gen["eos_token_id"] == gen["pad_token_id"] == tok.eos_id
    tcfg = json.loads((directory / "tokenizer_config.json").read_text())
    assert tcfg["tokenizer_class"] == "PreTrainedTokenizerFast"
    assert tcfg["add_bos_token"] is False and tcfg["add_eos_token"] is False
    assert tcfg["eos_token"] == tcfg["bos_token"] == tcfg["pad_token"] == EOS
    assert tcfg["model_max_length"] == model.config.block_size
    assert json.loads((directory / "special_tokens_map.json").read_text())["eos_token"] == EOS
    for name in (
        "config.json",
        "tokenizer_config.json",
    ):  # nothing that would need trust_remote_code
        assert "auto_map" not in json.loads((directory / name).read_text())
    assert not list(directory.glob("*.py"))
    assert not [
        p for p in directory.parent.iterdir() if p.name.startswith(".")
    ]  # no temporary left


def test_auto_classes_load_it_and_match(tiny):
    model, tok, directory, _ = tiny
    hf, hf_tok = load_auto(directory)
    assert type(hf).__name__ == "LlamaForCausalLM" and hf_tok.is_fast
    assert hf.config.eos_token_id == hf_tok.eos_token_id == hf_tok.bos_token_id == tok.eos_id
    assert len(hf_tok) == tok.vocab_size and hf_tok.model_max_length == model.config.block_size
    check_tokenizer(hf_tok, tok, TEXTS)
    x = torch.randint(0, tok.vocab_size, (2, 40))
    with torch.no_grad():
        assert (model(x) - hf(x).logits).abs().max() < 1e-4
    back = from_hf(directory)
    with torch.no_grad():
        assert (back(x) - model(x)).abs().max() < 1e-4
    assert load_tokenizer(directory / "tokenizer.json").encode(TEXTS[4]) == tok.encode(TEXTS[4])


def test_generate_stops_at_end_of_text_like_tinylm(tiny):
    model, tok, directory, prompt = tiny
    hf, _ = load_auto(directory)
    ours = model.generate(prompt, 20, temperature=0, eos_id=tok.eos_id)
    assert ours[0, -1] == tok.eos_id and ours.shape[1] < prompt.shape[1] + 20  # it did stop early
    theirs = hf.generate(
        prompt, max_new_tokens=20
    )  # greedy, eos/pad from the folder's generation config
    assert torch.equal(ours, theirs)


def test_char_tokenizer_exports_an_equivalent_fast_tokenizer(tmp_path):
    texts = [t for t in TEXTS if EOS not in t]
    tok = CharTokenizer.train(texts)
    torch.manual_seed(0)
    config = TinyLMConfig(vocab_size=tok.vocab_size, block_size=32, n_layer=1, n_head=2, d_model=16)
    model = TinyLM(config).eval()
    hf, hf_tok = load_auto(export_hf(model, tok, tmp_path / "char"))
    check_tokenizer(hf_tok, tok, texts)
    assert hf_tok.eos_token_id == hf.config.eos_token_id == 0 and hf_tok.unk_token is None
    x = torch.tensor([[0] + tok.encode(texts[2])])
    with torch.no_grad():
        assert (model(x) - hf(x).logits).abs().max() < 1e-4


def test_export_replaces_a_folder_and_refuses_bad_input(tiny, tmp_path):
    model, tok, _, _ = tiny
    target = tmp_path / "out"
    (target / "stale").mkdir(parents=True)
    export_hf(model, tok, target)
    assert {p.name for p in target.iterdir()} == FILES  # replaced as a whole
    small = TinyLM(
        TinyLMConfig(vocab_size=tok.vocab_size - 1, block_size=16, n_layer=1, n_head=2, d_model=8)
    )
    with pytest.raises(ValueError, match="embedding rows"):
        export_hf(small, tok, tmp_path / "bad")
    with pytest.raises(ValueError, match="Llama.s block"):
        export_hf(
            TinyLM(
                TinyLMConfig(
                    vocab_size=tok.vocab_size,
                    ffn="gelu",
                    norm="layernorm",
                    pos="learned",
                    n_layer=1,
                    d_model=16,
                    n_head=2,
                )
            ),
            tok,
            tmp_path / "bad",
        )
    assert not (tmp_path / "bad").exists()
    with pytest.raises(TypeError, match="BPETokenizer or CharTokenizer"):
        to_hf_tokenizer(object())


def test_chat_template_slot(tiny):
    _, tok, _, _ = tiny
    template = "{% for m in messages %}{{ m['content'] }}{{ eos_token }}{% endfor %}"
    hf_tok = to_hf_tokenizer(tok, chat_template=template)
    ids = hf_tok.apply_chat_template([{"role": "user", "content": "the cat"}], tokenize=True)
    ids = ids["input_ids"] if isinstance(ids, dict) or hasattr(ids, "keys") else ids
    assert list(ids) == tok.encode("the cat") + [tok.eos_id]
    assert to_hf_tokenizer(tok).chat_template is None


# ----------------------------------------------------------------------------- shipped base model


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    import slmlab

    model, tok = slmlab.load_reference("base")
    return model, tok, export_hf(model, tok, tmp_path_factory.mktemp("base") / "export")


# the base model's own greedy continuation of "<|endoftext|>Once upon a time" ends with these words
# and then <|endoftext|>: prompting with them exercises the stop on EOS in a handful of steps
STORY_END = (
    "<|endoftext|>Once upon a time, there was a polite boy named Liam. One day, "
    "Liam ran to the playground with Hannah. Liam had a metal bell in his bag. "
    "He put the bell near the fire. The bell got very hot. Liam laughed. Liam felt happy. "
    "Liam hugged Hannah and said"
)


def test_base_export_loads_offline_and_matches(base):
    model, tok, directory = base
    hf, hf_tok = load_auto(directory)
    assert (
        hf.config.eos_token_id
        == hf.generation_config.eos_token_id
        == tok.eos_id
        == hf_tok.eos_token_id
    )
    check_tokenizer(hf_tok, tok, TEXTS)
    x = torch.tensor(
        [[tok.eos_id] + tok.encode("Once upon a time, there was a little girl named Mia.")]
    )
    with torch.no_grad():
        logits = model(x)
        assert (logits - hf(x).logits).abs().max() < 1e-4
        assert (from_hf(directory)(x) - logits).abs().max() < 1e-4


def test_base_generate_stops_at_end_of_text_like_tinylm(base):
    model, tok, directory = base
    hf, hf_tok = load_auto(directory)
    prompt = torch.tensor([tok.encode(STORY_END)])
    assert hf_tok(STORY_END, return_tensors="pt").input_ids.tolist() == prompt.tolist()
    ours = model.generate(prompt, 24, temperature=0, eos_id=tok.eos_id)
    assert (
        ours[0, -1] == tok.eos_id and ours.shape[1] < prompt.shape[1] + 24
    )  # stopped on EOS, early
    theirs = hf.generate(prompt, max_new_tokens=24, attention_mask=torch.ones_like(prompt))
    assert torch.equal(ours, theirs)
