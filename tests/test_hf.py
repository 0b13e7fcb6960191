import pytest
import torch

from slmlab import TinyLM, TinyLMConfig, from_hf, to_hf
from slmlab.hf import OfflineError, config_from_hf


@pytest.mark.parametrize("tie,kv", [(False, 4), (True, 2), (False, 1)])
def test_round_trip_logits(tmp_path, tie, kv):
    torch.manual_seed(0)
    m = TinyLM(
        TinyLMConfig(
            vocab_size=300,
            block_size=64,
            n_layer=2,
            n_head=4,
            n_kv_head=kv,
            d_model=64,
            tie_embeddings=tie,
        )
    ).eval()
    x = torch.randint(0, 300, (2, 40))
    hf = to_hf(m)
    assert (m(x) - hf(x).logits).abs().max() < 1e-4
    hf.save_pretrained(tmp_path)
    back = from_hf(tmp_path)
    assert (back(x) - hf(x).logits).abs().max() < 1e-4
    assert back.config.tie_embeddings == tie and back.config.n_kv_head == kv
    out = m.generate(x[:1, :5], 12, temperature=0)
    ref = hf.generate(x[:1, :5], max_new_tokens=12, min_new_tokens=12, do_sample=False)
    assert torch.equal(out, ref)


def test_from_hf_of_a_transformers_initialised_model(tmp_path):
    from transformers import LlamaConfig, LlamaForCausalLM

    cfg = LlamaConfig(
        vocab_size=128,
        hidden_size=48,
        intermediate_size=100,
        num_hidden_layers=2,
        num_attention_heads=6,
        num_key_value_heads=2,
        max_position_embeddings=64,
        rope_theta=500000.0,
        rms_norm_eps=1e-6,
    )
    torch.manual_seed(0)
    LlamaForCausalLM(cfg).save_pretrained(tmp_path)
    hf = LlamaForCausalLM.from_pretrained(tmp_path)
    m = from_hf(tmp_path)
    x = torch.randint(0, 128, (1, 30))
    assert (m(x) - hf(x).logits).abs().max() < 1e-4
    assert m.config.d_ff == 100 and m.config.rope_theta == 500000.0


def test_non_llama_config_is_refused():
    with pytest.raises(ValueError, match="Llama.s block"):
        to_hf(TinyLM(TinyLMConfig(ffn="gelu", norm="layernorm", pos="learned")))
    with pytest.raises(ValueError, match="hidden_act"):
        config_from_hf({"hidden_act": "gelu_new", "num_attention_heads": 4, "hidden_size": 64})


def test_offline_hub_id_fails_fast_and_clearly(monkeypatch):
    import time

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    t = time.perf_counter()
    with pytest.raises(OfflineError, match="offline"):
        from_hf("HuggingFaceTB/SmolLM2-135M")
    assert time.perf_counter() - t < 10  # no retry storm


def test_missing_directory(tmp_path):
    with pytest.raises(FileNotFoundError, match="config.json"):
        from_hf(tmp_path)
    with pytest.raises(FileNotFoundError):
        from_hf(str(tmp_path / "nope"))


def test_without_a_tokenizer_the_special_ids_are_none_not_llamas_1_and_2():
    torch.manual_seed(0)
    m = TinyLM(TinyLMConfig(vocab_size=300, block_size=64, n_layer=2, n_head=4, d_model=64)).eval()
    hf = to_hf(m)
    for cfg in (hf.config, hf.generation_config):
        assert cfg.bos_token_id is None and cfg.eos_token_id is None and cfg.pad_token_id is None
    x = torch.randint(0, 300, (1, 5))
    free = m.generate(x, 10, temperature=0)
    eos = int(free[0, 8])  # pretend the 4th generated token is the end of text: both stop on it
    ours = m.generate(x, 10, temperature=0, eos_id=eos)
    theirs = hf.generate(x, max_new_tokens=10, do_sample=False, eos_token_id=eos, pad_token_id=eos)
    assert torch.equal(ours, theirs) and ours.shape[1] <= 9
