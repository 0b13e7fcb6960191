"""Evaluating a language model: perplexity and capability probes, on any causal LM.

Every function takes ``(model, tokenizer)``: slmlab's :class:`~slmlab.TinyLM` with an slmlab
tokenizer, or a transformers causal LM with its tokenizer.

==============  ================================================================
``scoring``     the :class:`LM` adapter; log-likelihood, multiple choice, greedy generation
``perplexity``  perplexity, NLL and bits per byte over windows of the model's context
``items``       the probe items: held-out questions about the TinyTales world
``probes``      commonsense, in-context learning, arithmetic, programs; chance levels
``suite``       every probe as one tidy table
==============  ================================================================
"""

from .perplexity import perplexity
from .probes import (
    TASKS,
    arithmetic,
    chance_level,
    commonsense,
    extract_answer,
    in_context,
    programs,
)
from .scoring import LM, greedy_generate, loglikelihood, multiple_choice
from .suite import suite

__all__ = [
    "LM",
    "perplexity",
    "loglikelihood",
    "multiple_choice",
    "greedy_generate",
    "commonsense",
    "in_context",
    "arithmetic",
    "programs",
    "extract_answer",
    "chance_level",
    "suite",
    "TASKS",
]
