"""quantize()'s registry: one Method record per method,
arguments checked before anything is copied."""

import dataclasses

import pytest
import torch

from slmlab import TinyLM, TinyLMConfig
from slmlab.quant import METHODS, quantize
from slmlab.quant.apply import Method


def test_every_method_is_a_record_with_what_quantize_needs():
    for name, m in METHODS.items():
        assert isinstance(m, Method) and dataclasses.is_dataclass(m) and m.name == name
        assert m.default_bits in m.allowed_bits and callable(m.apply)
    assert {n for n, m in METHODS.items() if m.needs_calib} == {"gptq", "awq", "smoothquant", "qat"}
    assert METHODS["nf4"].default_group_size == 64 and not METHODS["w8a8"].grouped


@pytest.mark.parametrize(
    "kwargs, error",
    [
        ({"method": "nope"}, "unknown quantization method"),
        ({"method": "rtn", "bits": 5}, "unsupported bit width 5"),
        ({"method": "nf4", "bits": 3}, "supports bits in \\(4,\\)"),
        ({"method": "fp16", "bits": 8}, "leave bits unset"),
        ({"method": "w8a8", "group_size": 16}, "does not use groups"),
        ({"method": "gptq"}, "needs a calibration set"),
        ({"method": "rtn", "group_size": 7}, "group_size"),
        (
            {"method": "awq", "calib": torch.zeros(2, 8, dtype=torch.long), "alpha": 1},
            "unknown option",
        ),
    ],
)
def test_bad_arguments_leave_the_model_unchanged(kwargs, error):
    torch.manual_seed(0)
    m = TinyLM(TinyLMConfig(vocab_size=64, block_size=16, n_layer=1, n_head=2, d_model=32))
    before = {k: v.clone() for k, v in m.state_dict().items()}
    with pytest.raises((ValueError, TypeError), match=error):
        quantize(m, **kwargs)
    assert all(torch.equal(before[k], v) for k, v in m.state_dict().items())
    assert all(type(x) is torch.nn.Linear for x in [m.blocks[0].attn.q_proj, m.lm_head])


def test_quantizing_a_quantized_model_is_refused():
    m = TinyLM(TinyLMConfig(vocab_size=64, block_size=16, n_layer=1, n_head=2, d_model=32))
    q = quantize(m, "rtn", bits=4, group_size=16)
    with pytest.raises(TypeError, match="not an nn.Linear"):
        quantize(q, "rtn", bits=4)
