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
