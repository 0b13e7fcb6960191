"""Evaluating a language model: perplexity and capability probes, on any causal LM.

Every function takes ``(model, tokenizer)``: slmlab's :class:`~slmlab.TinyLM` with an slmlab
tokenizer, or a transformers causal LM with its tokenizer.

=================  ==============================================================================
``scoring``        the :class:`LM` adapter; log-likelihood, multiple choice, greedy generation
``perplexity``     perplexity, NLL and bits per byte over windows of the model's context
``items``          the probe items: held-out questions about the TinyTales world
``probes``         commonsense, in-context learning, arithmetic, programs; chance levels
``sandbox``        running untrusted programs safely: a process, kernel limits, a small language
``execution``      pass@k of sampled outputs, the programs' truths from the sandbox
``stats``          95% intervals of a score; paired comparison of two models (McNemar, bootstrap)
``efficiency``     what a model costs: bytes, prefill and decode latency, peak memory
``suite``          every probe as one tidy table; ``compare`` of two models on the same items
``reliability``    calibration: confidence against accuracy, ECE, the reliability diagram
``contamination``  n-gram overlap between evaluation items and a training corpus
``catalogue``      the surveys' benchmarks, and the probe that mirrors each
``harness``        the library twin: the same items scored by lm-evaluation-harness
                   (the ``eval`` extra; imported on its own, ``slmlab.evaluate.harness``)
=================  ==============================================================================
"""

from .catalogue import benchmarks
from .contamination import overlap as contamination_overlap
from .efficiency import efficiency, efficiency_columns
from .execution import pass_at_k
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
from .reliability import calibration, expected_calibration_error
from .sandbox import run_program
from .scoring import LM, greedy_generate, loglikelihood, multiple_choice
from .stats import paired_comparison, wilson_interval
from .suite import compare, suite

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
    "compare",
    "paired_comparison",
    "wilson_interval",
    "calibration",
    "expected_calibration_error",
    "contamination_overlap",
    "TASKS",
    "benchmarks",
    "run_program",
    "pass_at_k",
    "efficiency",
    "efficiency_columns",
]
