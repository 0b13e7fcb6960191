"""Mixture of experts: ``n_experts`` feed-forward networks, each token sent to ``top_k`` of them.

A router (one linear layer, ``d_model -> n_experts``) scores the experts for each token; the
token goes to the ``top_k`` best, and their outputs are summed, weighted by the router's
probabilities renormalised over the chosen ones (Mixtral's rule; Shazeer et al., 2017; Fedus et
al.'s Switch Transformer with ``top_k = 1``):

    p = softmax(x W_r^T),    y = sum_{e in topk(p)} (p_e / sum_{topk} p) * FFN_e(x)

Parameters grow with ``n_experts``, the compute per token only with ``top_k``: *total* against
*active* parameters (:func:`slmlab.models.num_params`, :func:`slmlab.models.active_params`).
Nothing forces the router to spread the tokens, and one that sends everything to one expert
wastes the others, so training adds Switch's load-balancing loss, ``n_experts * sum_e f_e P_e``,
with ``f_e`` the share of the token-to-expert assignments that went to ``e`` and ``P_e`` the mean
router probability of ``e``: 1 when the load is uniform, up to ``n_experts`` when it all goes to
one expert. Each layer keeps its last loss and load (``last_aux_loss``, ``last_load``) for
:meth:`TinyLM.loss` and for reporting.

With one expert (``top_k = 1``) the layer is exactly the dense FFN of that expert's weights.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from .config import TinyLMConfig
from .ffn import FeedForward


def route(
    router_logits: torch.Tensor, top_k: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(probabilities (N, E) float32, chosen experts (N, top_k), their renormalised weights
    (N, top_k) float32) from router logits (N, E)."""
    probs = router_logits.float().softmax(-1)
    weights, experts = probs.topk(top_k, dim=-1)
    return probs, experts, weights / weights.sum(-1, keepdim=True)


def load_balancing_loss(probs: torch.Tensor, experts: torch.Tensor) -> torch.Tensor:
    """Switch's auxiliary loss ``E * sum_e f_e P_e`` of one layer: ``probs`` (N, E) the router's
    probabilities, ``experts`` (N, top_k) the experts chosen; ``f_e`` counts the assignments
    (top_k per token) per expert over N tokens, as Mixtral's ``load_balancing_loss_func``."""
    n_experts = probs.shape[-1]
    chosen = F.one_hot(experts, n_experts).float()  # (N, top_k, E)
    share = chosen.mean(0)  # (top_k, E): per rank, the share of tokens each expert got
    return n_experts * (share * probs.mean(0)).sum()


class MoEFeedForward(nn.Module):
    """A router and ``n_experts`` :class:`~slmlab.models.layers.FeedForward` experts of the
    config's FFN kind and width; (B, T, d_model) -> (B, T, d_model)."""

    def __init__(self, c: TinyLMConfig, hidden_dim: int | None = None):
        super().__init__()
        self.n_experts, self.top_k = c.n_experts, c.top_k
        self.router = nn.Linear(c.d_model, c.n_experts, bias=False)
        self.experts = nn.ModuleList(FeedForward(c, hidden_dim) for _ in range(c.n_experts))
        self.last_aux_loss: torch.Tensor | None = None
        self.last_load: torch.Tensor | None = None  # tokens per expert in the last call

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shape = x.shape
        x = x.reshape(-1, shape[-1])
        probs, experts, weights = route(self.router(x), self.top_k)
        self.last_aux_loss = load_balancing_loss(probs, experts)
        self.last_load = torch.bincount(experts.reshape(-1), minlength=self.n_experts).detach()
        out = torch.zeros_like(x)
        for e, expert in enumerate(self.experts):
            token, rank = torch.where(experts == e)  # the tokens routed to e, and at which rank
            if token.numel():
                y = expert(x[token]) * weights[token, rank, None].to(x.dtype)
                out.index_add_(0, token, y)
        return out.reshape(shape)
