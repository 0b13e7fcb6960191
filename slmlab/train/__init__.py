"""Training: from a notebook (``train(config)``) or a shell (``python -m slmlab train CONFIG``).

==============  ================================================================
``config``      :class:`TrainConfig` and the learning-rate schedule
``data``        tokenizer, token stream, the batch of each step, validation loss
``checkpoints`` model + optimizer checkpoints, written atomically, for exact resumption
``loop``        :func:`train`: one loop (autocast, accumulation, clipping, DDP, resume)
==============  ================================================================
"""
from .checkpoints import load_checkpoint, save_checkpoint
from .config import TrainConfig, lr_at
from .data import build_tokenizer, encode_docs, evaluate_loss, get_batch, prepare_data
from .loop import TrainResult, load_run_config, main_train, train

__all__ = ["TrainConfig", "lr_at", "train", "main_train", "TrainResult", "load_run_config", "prepare_data",
           "build_tokenizer", "encode_docs", "get_batch", "evaluate_loss", "save_checkpoint", "load_checkpoint"]
