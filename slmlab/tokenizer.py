"""Tokenizers: a byte-level BPE trained with the `tokenizers` library, and a character tokenizer.

Both share one small interface that the rest of slmlab relies on:
``encode(text) -> list[int]``, ``decode(ids) -> str``, ``vocab_size``, ``eos_id``,
``save(path)``; ``load_tokenizer(path)`` reads either kind back from its JSON file.
``to_tokenizers()`` gives either kind as a `tokenizers.Tokenizer` with the same ids, which is what
:func:`slmlab.hf.to_hf_tokenizer` wraps for transformers.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path

from .utils import atomic_write_text

EOS = "<|endoftext|>"


class BPETokenizer:
    """Byte-level BPE (GPT-2 style): every string round-trips exactly, no unknown tokens."""

    kind = "bpe"

    def __init__(self, tok):
        self._tok = tok
        self.eos_id = tok.token_to_id(EOS)
        if self.eos_id is None:
            raise ValueError(
                f"tokenizer has no {EOS!r} token; train it with slmlab.tokenizer.BPETokenizer.train"
            )

    @classmethod
    def train(
        cls, texts: Iterable[str], vocab_size: int = 1024, min_frequency: int = 2
    ) -> BPETokenizer:
        from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

        if vocab_size < 257 + 1:
            raise ValueError(
                f"a byte-level BPE needs vocab_size >= 258 (256 bytes + {EOS}), got {vocab_size}"
            )
        tok = Tokenizer(models.BPE())
        tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        tok.decoder = decoders.ByteLevel()
        trainer = trainers.BpeTrainer(
            vocab_size=vocab_size,
            min_frequency=min_frequency,
            special_tokens=[EOS],
            initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
            show_progress=False,
        )
        tok.train_from_iterator(texts, trainer=trainer)
        return cls(tok)

    @property
    def vocab_size(self) -> int:
        return self._tok.get_vocab_size()

    def encode(self, text: str, add_special_tokens: bool = False) -> list[int]:
        return self._tok.encode(text, add_special_tokens=False).ids

    def encode_batch(self, texts: list[str]) -> list[list[int]]:
        return [e.ids for e in self._tok.encode_batch(texts, add_special_tokens=False)]

    def decode(self, ids) -> str:
        return self._tok.decode([int(i) for i in ids], skip_special_tokens=False)

    def to_json(self) -> str:
        return self._tok.to_str()

    def to_tokenizers(self):
        """A copy of the underlying ``tokenizers.Tokenizer``
        (changing it does not change ``self``)."""
        from tokenizers import Tokenizer

        return Tokenizer.from_str(self._tok.to_str())

    def save(self, path) -> None:
        atomic_write_text(path, self.to_json())


class CharTokenizer:
    """One id per character seen in training; id 0 is the end-of-text token."""

    kind = "char"

    def __init__(self, chars: Iterable[str]):
        self.chars = [EOS] + sorted(set(chars) - {EOS})
        self._index = {c: i for i, c in enumerate(self.chars)}
        self.eos_id = 0

    @classmethod
    def train(cls, texts: Iterable[str]) -> CharTokenizer:
        seen: set[str] = set()
        for t in texts:
            seen.update(t)
        return cls(seen)

    @property
    def vocab_size(self) -> int:
        return len(self.chars)

    def encode(self, text: str, add_special_tokens: bool = False) -> list[int]:
        try:
            return [self._index[c] for c in text]
        except KeyError as e:
            raise ValueError(
                f"character {e.args[0]!r} was not in the training text of this CharTokenizer"
            ) from None

    def encode_batch(self, texts: list[str]) -> list[list[int]]:
        return [self.encode(t) for t in texts]

    def decode(self, ids) -> str:
        return "".join(self.chars[int(i)] for i in ids)

    def to_json(self) -> str:
        return json.dumps({"slmlab_char_tokenizer": 1, "chars": self.chars[1:]}, ensure_ascii=False)

    def to_tokenizers(self):
        """An equivalent ``tokenizers.Tokenizer``: every character is split off on its own (a regex
        split into single code points) and looked up in a word-level vocabulary with the same ids;
        the decoder joins the pieces with nothing in between.

        Two differences remain, both at the edges: the literal text ``<|endoftext|>`` becomes the
        single id 0 (it is a special token there, as in the BPE), where :meth:`encode` would look up
        its 13 characters; and a character outside the vocabulary raises the `tokenizers` error
        "Missing [UNK] token" (there is no unknown token) instead of this class's ValueError."""
        from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, pre_tokenizers

        tok = Tokenizer(models.WordLevel(vocab=dict(self._index), unk_token="[UNK]"))
        tok.pre_tokenizer = pre_tokenizers.Split(Regex(r"[\s\S]"), behavior="isolated")
        tok.decoder = decoders.Fuse()
        tok.add_special_tokens([AddedToken(EOS, special=True, normalized=False)])
        return tok

    def save(self, path) -> None:
        atomic_write_text(path, self.to_json())


def load_tokenizer(path) -> BPETokenizer | CharTokenizer:
    """Load a tokenizer saved by ``save`` (either kind) from its JSON file."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no tokenizer file at {path}")
    try:
        obj = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise ValueError(
            f"{path} is not a valid tokenizer JSON file ({e}); re-create it with .save()"
        ) from None
    if isinstance(obj, dict) and "slmlab_char_tokenizer" in obj:
        return CharTokenizer(obj["chars"])
    from tokenizers import Tokenizer

    try:
        return BPETokenizer(Tokenizer.from_str(json.dumps(obj)))
    except Exception as e:  # noqa: BLE001 -- tokenizers raises a bare Exception on malformed files
        raise ValueError(f"{path} is not a tokenizer this project can read: {e}") from None
