"""A hub checkpoint's shape through the lean decoder: SmolLM2-135M's widths, heads and tied
embeddings, cut to 2 layers and a 4096-token vocabulary so that it runs in a few seconds. Its q|k|v,
gate|up and LM head matrices are all above PACK_MAX_ELEMENTS, so they are read in place, as the 135M
model's are. ``python -m slmlab bench --config tests/fixtures/hf_configs/smollm2-135m/config.json``
runs the full-size model."""

import json
from pathlib import Path

import pytest
import torch

from slmlab import from_hf
from slmlab.models.decoder import Decoder, _packable, unsupported

SMOLLM2 = Path(__file__).parent / "fixtures" / "hf_configs" / "smollm2-135m" / "config.json"


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    from slmlab.runtime.bench import write_random_checkpoint

    d = json.loads(SMOLLM2.read_text())
    d.update(num_hidden_layers=2, vocab_size=4096)
    config = tmp_path_factory.mktemp("config") / "config.json"
    config.write_text(json.dumps(d))
    return write_random_checkpoint(config, tmp_path_factory.mktemp("smollm2-2layer"))


def test_a_hub_shaped_checkpoint_decodes_as_transformers_does(checkpoint):
    from transformers import AutoModelForCausalLM

    theirs = AutoModelForCausalLM.from_pretrained(checkpoint, dtype=torch.float32).eval()
    theirs.generation_config.eos_token_id = None
    ours = from_hf(checkpoint)
    assert ours.config.tie_embeddings and ours.config.n_kv_head == 3 and unsupported(ours) is None
    b = ours.blocks[0]
    assert not any(
        _packable(group)
        for group in [
            (b.attn.q_proj, b.attn.k_proj, b.attn.v_proj),
            (b.ffn.gate_proj, b.ffn.up_proj),
            (ours.lm_head,),
        ]
    )
    prompt = torch.randint(0, 4096, (1, 16), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        want = theirs.generate(
            prompt,
            max_new_tokens=12,
            do_sample=False,
            pad_token_id=0,
            attention_mask=torch.ones_like(prompt),
        )
        logits = theirs(want).logits
    before = Decoder.builds
    assert torch.equal(ours.generate(prompt, 12, temperature=0), want)
    assert torch.equal(ours.generate(prompt, 12, temperature=0), want)
    assert Decoder.builds - before == 1
    torch.testing.assert_close(ours(want), logits, atol=1e-4, rtol=1e-4)
