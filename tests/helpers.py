"""Reference computations several test files compare against (imported as ``helpers``: pytest
puts this folder on the path)."""

import torch


@torch.no_grad()
def greedy_by_recomputation(model, prompt: torch.Tensor, n: int) -> torch.Tensor:
    """``prompt`` (B, T) with ``n`` greedy tokens appended, each from a full forward over the
    whole sequence so far: no cache, the definition a cached ``generate`` must equal."""
    ids = prompt
    for _ in range(n):
        ids = torch.cat([ids, model(ids)[:, -1].argmax(-1, keepdim=True)], dim=1)
    return ids


@torch.no_grad()
def through_the_cache(model, ids: torch.Tensor, cuts: list[int]) -> torch.Tensor:
    """The logits of ``ids`` (B, T) fed in pieces, ending at each of ``cuts`` and then at T,
    through the cache generation would use (:func:`slmlab.models.cache_class`): what a single
    full forward must equal."""
    from slmlab.models import cache_class

    B, T = ids.shape
    cache = cache_class(model.config)(model.config, B, T, "cpu", torch.float32)
    bounds = [0, *cuts, T]
    return torch.cat([model(ids[:, a:b], cache) for a, b in zip(bounds, bounds[1:])], dim=1)


def correlated_inputs(n: int = 2048, d: int = 128, seed: int = 0, outliers: float = 8.0):
    """Layer inputs (n tokens, d channels) with correlated channels and four large ones, like a
    language model's activations: what GPTQ and SparseGPT are tested on."""
    g = torch.Generator().manual_seed(seed)
    mix = torch.randn(d, d, generator=g) / d**0.5 + torch.eye(d)
    x = torch.randn(n, d, generator=g) @ mix
    x[:, :4] *= outliers
    return x


def tiny_llama(
    vocab: int = 96,
    hidden: int = 64,
    ffn: int = 128,
    layers: int = 2,
    heads: int = 4,
    kv_heads: int = 2,
    positions: int = 64,
    seed: int = 0,
):
    """A randomly initialised transformers ``LlamaForCausalLM`` (GQA), in eval mode: the hub
    model every technique's transformers path is tested on."""
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    cfg = LlamaConfig(
        vocab_size=vocab,
        hidden_size=hidden,
        intermediate_size=ffn,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        num_key_value_heads=kv_heads,
        max_position_embeddings=positions,
    )
    return LlamaForCausalLM(cfg).eval()
