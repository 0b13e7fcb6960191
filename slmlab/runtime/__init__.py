"""Running a model: benchmarks against the field's libraries (``bench``); serving, batching,
speculative decoding and export land here. Generation itself is the model's own
(:mod:`slmlab.models.generation`, ``TinyLM.generate``), as in transformers."""
