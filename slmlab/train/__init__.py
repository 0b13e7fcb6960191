"""Training: one loop for every objective, and pre-training from a run config.

================  ==============================================================================
``config``        :class:`TrainConfig` and the learning-rate schedule :func:`lr_at`
``data``          tokenizer, token stream, the batch of each step, validation loss
``losses``        the objectives by name (:data:`LOSSES`): :func:`causal_lm_loss`
                  (pre-training, QAT); :func:`distillation_loss` (a teacher's distributions)
``loop``          :func:`fit`: the loop (schedule, autocast, accumulation, clipping, DDP, resume)
``finetune``      a short fine-tune on token windows (QAT, recovery after pruning)
``distributed``   which ``torchrun`` process this is, its device, averaging over processes
``checkpoints``   model + optimizer checkpoints, written atomically, for exact resumption
``run``           :func:`train`: a TinyLM pre-trained from a run config (``python -m slmlab train``)
``sweep``         experiments: many runs from one config, results shipped in ``data/experiments``
                  (``python -m slmlab sweep``)
``search``        architecture search on a budget: random and evolutionary, a training proxy
================  ==============================================================================
"""

from .checkpoints import load_checkpoint, save_checkpoint
from .config import TrainConfig, lr_at
from .data import build_tokenizer, encode_docs, evaluate_loss, get_batch, prepare_data
from .distributed import dist_info
from .finetune import finetune_on_windows
from .loop import fit
from .losses import LOSSES, causal_lm_loss, distillation_loss, get_loss
from .run import TrainResult, load_run_config, main_train, pretraining_batches, train

__all__ = [
    "TrainConfig",
    "lr_at",
    "fit",
    "finetune_on_windows",
    "LOSSES",
    "causal_lm_loss",
    "distillation_loss",
    "get_loss",
    "train",
    "main_train",
    "TrainResult",
    "load_run_config",
    "pretraining_batches",
    "prepare_data",
    "build_tokenizer",
    "encode_docs",
    "get_batch",
    "evaluate_loss",
    "save_checkpoint",
    "load_checkpoint",
    "dist_info",
]
