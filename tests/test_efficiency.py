"""slmlab.evaluate.efficiency: bytes, latency and peak memory beside the scores. Exact where the
answer is known (bytes, the peak of tensors allocated in a known order); latencies only checked to
be measured (positive, finite), never against a time."""

import math
from types import SimpleNamespace

import pandas as pd
import pytest
import torch
from helpers import tiny_llama

from slmlab import TinyLM, TinyLMConfig
from slmlab import evaluate as E
from slmlab.evaluate.efficiency import COLUMNS, efficiency, peak_allocated_bytes
from slmlab.surgery import model_nbytes

TOK = SimpleNamespace(encode=lambda s: [1] * len(s), decode=lambda ids: "x" * len(ids), eos_id=0)


@pytest.fixture(scope="module")
def tiny():
    torch.manual_seed(0)
    cfg = TinyLMConfig(vocab_size=97, block_size=64, n_layer=2, n_head=4, n_kv_head=2, d_model=32)
    return TinyLM(cfg).eval()


def test_peak_of_tensors_allocated_in_a_known_order():
    def work():
        a = torch.empty(250_000)  # 1 MB
        b = torch.empty(500_000)  # 2 MB, a still alive: 3 MB
        del a
        c = torch.empty(250_000)  # 1 MB, b alive: 3 MB again, not more
        del b, c
        d = torch.empty(100_000)
        return d

    assert peak_allocated_bytes(work) == 3_000_000
    assert peak_allocated_bytes(lambda: None) == 0


def test_efficiency_of_tinylm(tiny):
    before = {k: v.clone() for k, v in tiny.state_dict().items()}
    e = efficiency(tiny, TOK, prompt_tokens=16, new_tokens=4, repeats=2)
    assert e["MB"] == model_nbytes(tiny) / 1e6
    # a generation's tensors (KV cache, logits) come on top of the weights
    assert e["peak_MB"] > e["MB"]
    assert e["prefill_ms"] > 0 and math.isfinite(e["decode_ms_per_token"])
    assert e["decode_ms_per_token"] >= 0
    # the model is left as it was: same weights, still in eval mode
    assert all(torch.equal(v, tiny.state_dict()[k]) for k, v in before.items())
    assert not tiny.training
    # a larger batch holds more at its peak
    e8 = efficiency(tiny, TOK, prompt_tokens=16, new_tokens=4, repeats=1, batch_size=8)
    assert e8["peak_MB"] > e["peak_MB"]


def test_efficiency_of_a_transformers_model():
    model = tiny_llama(vocab=97, hidden=32, ffn=64)
    e = efficiency(model, TOK, prompt_tokens=8, new_tokens=4, repeats=1)
    assert e["MB"] == model_nbytes(model) / 1e6 and e["peak_MB"] > e["MB"]


def test_efficiency_bad_input(tiny):
    with pytest.raises(ValueError, match="exceeds the model's context of 64"):
        efficiency(tiny, TOK, prompt_tokens=60, new_tokens=8)
    for bad in (0, -1, 1.5, True):
        with pytest.raises(ValueError, match="new_tokens must be a whole number"):
            efficiency(tiny, TOK, new_tokens=bad)
    with pytest.raises(TypeError, match="tokenizer must have encode"):
        efficiency(tiny, object())


def test_efficiency_columns_and_the_suite(tiny):
    table = pd.DataFrame({"ppl": [2.0, 2.1]}, index=["float", "copy"])
    kw = dict(prompt_tokens=16, new_tokens=4, repeats=1)
    out = E.efficiency_columns(table, {"float": tiny, "copy": tiny}, TOK, **kw)
    assert list(out.columns) == ["ppl", *COLUMNS] and list(out.index) == ["float", "copy"]
    assert out.loc["float", "MB"] == out.loc["copy", "MB"] == model_nbytes(tiny) / 1e6
    assert "MB" not in table  # the given table is not changed
    with pytest.raises(ValueError, match=r"no model given for the rows \['copy'\]"):
        E.efficiency_columns(table, {"float": tiny}, TOK)


def test_suite_adds_efficiency_rows():
    from slmlab import load_reference

    model, tok = load_reference("base")
    table = E.suite(model, tok, n_per_task=2, tasks=["math"], include_efficiency=True)
    rows = table[table.task == "efficiency"]
    assert list(rows.metric) == list(COLUMNS)
    assert rows.set_index("metric").loc["MB", "score"] == model_nbytes(model) / 1e6
    assert rows.ci_low.isna().all() and rows.chance.isna().all()
