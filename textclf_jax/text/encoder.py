"""Text -> token ids, owned in one place: the `TextEncoder` protocol and its registry.

    encoder = encoder_for(config).fit(train_texts)    # a new run
    encoder.save(run_dir)                             # RUN/vocab.json for the word encoder
    encoder = load_encoder(run_dir, config)           # eval / predict / explain / export
    ids, lengths = encoder.encode(texts, max_len)     # [N, max_len] int32, [N] int32

An encoder is chosen by name (config key `encoder`, "words" when a config has none,
as every run made before encoders existed). `WordEncoder` is today's regex tokenizer
(text/tokenize.py, settings from the config) and training-split vocabulary
(text/vocab.py); a subword encoder registers itself under its own name (see
docs/extending.md) and nothing else changes. Id 0 is padding in every encoder (batches
and models pad with it). No JAX here: exported models are served without it.
"""

from __future__ import annotations

import dataclasses
import os
from typing import ClassVar, Protocol, Sequence, runtime_checkable

import numpy as np

from textclf_jax.errors import DataError
from textclf_jax.text.tokenize import Tokenizer, numbered
from textclf_jax.text.vocab import PAD_ID, UNK_ID, Vocab

VOCAB_FILE = "vocab.json"  # the word encoder's file in a run (and an export) directory
DEFAULT = "words"  # the encoder of a config without an `encoder` key


@runtime_checkable
class TextEncoder(Protocol):
  """Raw texts -> ids. Fitted on the training split's texts only; saved as JSON."""
  name: ClassVar[str]  # its registry name (the config's `encoder`)
  pad_id: ClassVar[int]  # 0 (checked by `register`)
  unk_id: int  # what an unknown piece maps to (may differ per vocabulary)

  @property
  def vocab_size(self) -> int:
    """Rows an embedding table needs: every id is below it."""

  @classmethod
  def from_config(cls, config) -> "TextEncoder":
    """An unfitted encoder with the settings of `config` (a run's config, or an export
    manifest's "tokenizer" dict: anything with item access and `in`)."""

  def fit(self, texts: Sequence[str]) -> "TextEncoder":
    """A fitted copy, learned from `texts` (the training split)."""

  def encode_flat(self, texts: Sequence[str]) -> tuple:
    """Untruncated ids back to back: flat [sum(lengths)] int32, text i's after those of
    texts 0..i-1, and lengths [N] int64 (pieces per text, 0 for an empty one)."""

  def encode(self, texts: Sequence[str], max_len: int) -> tuple:
    """ids [N, max_len] int32 (0-padded, cut at max_len), lengths [N] int32 (at least 1:
    an empty text is one padding token)."""

  def pieces(self, text: str, max_len: int = 0) -> list:
    """The strings of `text`'s ids, one per id, the first max_len (0: all): what
    explanations show, and the TF-IDF family's tokens. Works unfitted where the pieces
    do not depend on fitting (the word encoder's)."""

  def decode(self, ids) -> list:
    """ids [L] -> their strings (padding included, as its own string)."""

  def settings(self) -> dict:
    """The config keys (JSON) it was built from: with its saved files they load it again
    where there is no run config (an export's manifest)."""

  def save(self, directory: str) -> None:
    """Writes its files (JSON) into `directory`."""

  @classmethod
  def load(cls, directory: str, config) -> "TextEncoder":
    """The encoder `save` wrote into `directory`; `config` as for `from_config`."""


def pad_flat(flat: np.ndarray, lengths: np.ndarray, max_len: int) -> tuple:
  """Texts encoded back to back (flat [sum(lengths)], text i's the lengths[i] after those
  of texts 0..i-1) -> ids [N, max_len] int32 (0-padded, cut at max_len) and lengths [N]
  int32 (at least 1: an empty text is one padding token)."""
  lengths = np.asarray(lengths, dtype=np.int64)
  ids = np.zeros((len(lengths), max_len), dtype=np.int32)
  kept = np.minimum(lengths, max_len)
  starts = np.cumsum(lengths) - lengths
  for row, (start, n) in enumerate(zip(starts.tolist(), kept.tolist())):
    ids[row, :n] = flat[start: start + n]
  return ids, np.maximum(kept, 1).astype(np.int32)


def _tokenizer(config) -> Tokenizer:
  """The config's tokenizer settings (Tokenizer's fields are config keys), untruncated:
  encoders cut at encode time. A key a config lacks (an old run's) keeps its default."""
  fields = {f.name: config[f.name] for f in dataclasses.fields(Tokenizer)
            if f.name != "max_len" and f.name in config}
  return Tokenizer(**{k: bool(v) for k, v in fields.items()})


class WordEncoder:
  """Words and punctuation (`Tokenizer`) numbered by the training split's vocabulary
  (`Vocab`: id 0 padding, 1 unknown, then most frequent first). Saved as vocab.json
  ({"words": [...]}, the format runs have always had); the tokenizer settings, min_count
  and max_vocab come from the run's config."""
  name = "words"
  pad_id = PAD_ID
  unk_id = UNK_ID

  def __init__(self, tokenizer: Tokenizer, vocab: Vocab | None = None, min_count: int = 1,
               max_size: int = 0):
    self.tokenizer = dataclasses.replace(tokenizer, max_len=0)
    self.vocab = vocab
    self.min_count = min_count
    self.max_size = max_size

  @classmethod
  def from_config(cls, config) -> "WordEncoder":
    return cls(_tokenizer(config), None,
               int(config["min_count"]) if "min_count" in config else 1,
               int(config["max_vocab"]) if "max_vocab" in config else 0)

  def with_vocab(self, vocab: Vocab) -> "WordEncoder":
    """This encoder's settings with `vocab`."""
    return WordEncoder(self.tokenizer, vocab, self.min_count, self.max_size)

  @property
  def vocab_size(self) -> int:
    return len(self._vocab())

  def _vocab(self) -> Vocab:
    if self.vocab is None:
      raise ValueError("WordEncoder: not fitted (call fit, or load a run's)")
    return self.vocab

  # -- fitting ------------------------------------------------------------------------

  def number(self, texts: Sequence[str], seen=None) -> tuple:
    """`tokenize.numbered` with this encoder's tokenizer: (seen, flat, lengths) with
    words numbered in the order first seen, flat int32, lengths int64 (untruncated)."""
    seen, ids, lengths = numbered(self.tokenizer, texts, seen)
    return (seen, np.frombuffer(ids, np.intc).astype(np.int32, copy=False),
            np.frombuffer(lengths, np.int64))

  def fit_counts(self, words: list, counts) -> "WordEncoder":
    """Fitted on training counts: counts[i] is how often words[i] is in the training split
    (words counted 0, seen only elsewhere, are left out)."""
    counts = np.asarray(counts).tolist()
    return self.with_vocab(Vocab.from_counts(dict(zip(words, counts)), self.min_count,
                                             self.max_size))

  def fit(self, texts: Sequence[str]) -> "WordEncoder":
    seen, flat, _ = self.number(texts)
    return self.fit_counts(list(seen), np.bincount(flat, minlength=len(seen)))

  # -- encoding -----------------------------------------------------------------------

  def to_ids(self, words: list) -> np.ndarray:
    """words -> their ids [len(words)] int32 (UNK_ID for a word not in the vocabulary)."""
    return self._vocab().encode(words)

  def encode_flat(self, texts: Sequence[str]) -> tuple:
    seen, flat, lengths = self.number(texts)
    return self.to_ids(list(seen))[flat], lengths

  def encode(self, texts: Sequence[str], max_len: int) -> tuple:
    flat, lengths = self.encode_flat(texts)
    return pad_flat(flat, lengths, max_len)

  def pieces(self, text: str, max_len: int = 0) -> list:
    tokens = self.tokenizer(text)
    return tokens[:max_len] if max_len else tokens

  def decode(self, ids) -> list:
    words = self._vocab().words
    return [words[i] for i in np.asarray(ids).tolist()]

  # -- files --------------------------------------------------------------------------

  def settings(self) -> dict:
    return dataclasses.asdict(self.tokenizer)

  def save(self, directory: str) -> None:
    self._vocab().to_json(os.path.join(directory, VOCAB_FILE))

  @classmethod
  def load(cls, directory: str, config) -> "WordEncoder":
    return cls.from_config(config).with_vocab(
        Vocab.from_json(os.path.join(directory, VOCAB_FILE)))


ENCODERS: dict = {}
# Built-in encoders whose module is imported when first named (tokenizers loads only then).
BUILTIN = {"subword": ("textclf_jax.text.subword", "SubwordEncoder")}


def register(cls):
  """Adds an encoder class to the registry under `cls.name` (usable as a decorator)."""
  if cls.pad_id != PAD_ID:
    raise ValueError(f"encoder {cls.name!r}: pad_id must be {PAD_ID} (batches and models "
                     f"pad with it), not {cls.pad_id}")
  ENCODERS[cls.name] = cls
  return cls


register(WordEncoder)


def _import_builtin(name: str):
  if name in BUILTIN and name not in ENCODERS:
    import importlib
    module, attr = BUILTIN[name]
    register(getattr(importlib.import_module(module), attr))


def encoder_name(config) -> str:
  """The config's encoder (`encoder` key; "words" for a config without one)."""
  name = config["encoder"] if "encoder" in config else DEFAULT
  _import_builtin(name)
  if name not in ENCODERS:
    raise DataError(f"config key \"encoder\": expected one of {', '.join(sorted(ENCODERS))}, "
                    f"found {name!r}")
  return name


def encoder_for(config) -> TextEncoder:
  """An unfitted encoder of the config's kind and settings."""
  return ENCODERS[encoder_name(config)].from_config(config)


def load_encoder(directory: str, config, name: str | None = None) -> TextEncoder:
  """The fitted encoder saved in `directory` (a run or an export directory); `name`
  overrides the config's (an export's manifest names it)."""
  if name is not None:
    _import_builtin(name)
  if name is not None and name not in ENCODERS:
    raise DataError(f"{directory}: encoder {name!r} is not one of "
                    f"{', '.join(sorted(ENCODERS))}")
  return ENCODERS[name or encoder_name(config)].load(directory, config)
