"""Pruning: remove the weights, neurons or blocks that matter least.

* :mod:`.masks` — importance scores (magnitude, Wanda) and masks (unstructured by row or by
  layer, N:M) of one weight matrix;
* :mod:`.sparsegpt` — SparseGPT's second-order mask and weight update of one matrix;
* :mod:`.apply` — the entry point ``prune(model, method, sparsity, pattern=..., calib=...)``, its
  registry :data:`METHODS`, how sparse a model is (:func:`sparsity_report`) and a comparison
  table (:func:`compare_pruning`);
* :mod:`.allocation` — per-layer sensitivity and OWL's non-uniform sparsity;
* :mod:`.sparse` — CSR storage of a pruned layer and where it gets faster than dense;
* :mod:`.structured` — FFN neurons and whole blocks removed, the shapes shrinking;
* :mod:`.recovery` — a short fine-tune of the pruned model (zeros kept zero).
"""

from .allocation import (
    layer_sensitivity,
    outlier_ratios,
    owl_sparsities,
    sensitivity_sparsities,
)
from .apply import METHODS, Method, compare_pruning, prune, sparsity_report
from .masks import (
    is_nm,
    magnitude_scores,
    mask_from_scores,
    nm_mask,
    parse_pattern,
    unstructured_mask,
    wanda_scores,
    zero_fraction,
)
from .recovery import recover
from .sparse import SparseLinear, crossover, csr_nbytes, time_sparse_vs_dense, to_sparse
from .sparsegpt import sparsegpt_prune_weight
from .structured import block_influence, drop_blocks, neuron_scores, prune_ffn_neurons

__all__ = [
    "METHODS",
    "Method",
    "SparseLinear",
    "block_influence",
    "compare_pruning",
    "crossover",
    "csr_nbytes",
    "drop_blocks",
    "is_nm",
    "layer_sensitivity",
    "magnitude_scores",
    "mask_from_scores",
    "neuron_scores",
    "nm_mask",
    "outlier_ratios",
    "owl_sparsities",
    "parse_pattern",
    "prune",
    "prune_ffn_neurons",
    "recover",
    "sensitivity_sparsities",
    "sparsegpt_prune_weight",
    "sparsity_report",
    "time_sparse_vs_dense",
    "to_sparse",
    "unstructured_mask",
    "wanda_scores",
    "zero_fraction",
]
