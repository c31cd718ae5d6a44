"""Vocabulary from the training split: id 0 is padding, id 1 unknown words."""

from __future__ import annotations

import collections
import itertools
import json
from typing import Iterable

import numpy as np

from textclf_jax.errors import DataError

PAD, UNK = "<pad>", "<unk>"
PAD_ID, UNK_ID = 0, 1


class Vocab:
  """Maps tokens to ids. `words[i]` is the token of id i."""

  def __init__(self, words: list):
    self.words = list(words)
    self.index = {w: i for i, w in enumerate(self.words)}

  def __len__(self):
    return len(self.words)

  @classmethod
  def build(cls, token_lists: Iterable[list], min_count: int = 1, max_size: int = 0,
            extra: Iterable[str] = ()) -> "Vocab":
    """Most frequent first (ties alphabetical); `extra` words are appended."""
    return cls.from_counts(collections.Counter(itertools.chain.from_iterable(token_lists)),
                           min_count, max_size, extra)

  @classmethod
  def from_counts(cls, counts: dict, min_count: int = 1, max_size: int = 0,
                  extra: Iterable[str] = ()) -> "Vocab":
    """`build` from {word: count in the training split} (words counted 0 are left out)."""
    ranked = sorted((w for w, c in counts.items() if c >= min_count and c > 0),
                    key=lambda w: (-counts[w], w))
    if max_size:
      ranked = ranked[: max(0, max_size - 2)]
    words = [PAD, UNK] + ranked
    seen = set(words)
    words += sorted(w for w in set(extra) if w not in seen)
    return cls(words)

  def encode(self, tokens: list) -> np.ndarray:
    # map over dict.get: ~1.5x faster than a comprehension on IMDB-sized splits
    return np.fromiter(map(self.index.get, tokens, itertools.repeat(UNK_ID)), dtype=np.int32,
                       count=len(tokens))

  def to_json(self, path: str):
    with open(path, "w", encoding="utf-8") as f:
      json.dump({"words": self.words}, f, ensure_ascii=False)

  @classmethod
  def from_json(cls, path: str) -> "Vocab":
    try:
      with open(path, encoding="utf-8") as f:
        words = json.load(f)["words"]
    except FileNotFoundError:
      raise DataError(f"{path}: missing (is this a run directory?)") from None
    except (ValueError, KeyError, TypeError) as e:  # ValueError: bad JSON or UTF-8
      raise DataError(f"{path}: not a vocabulary file ({e})") from None
    if not isinstance(words, list) or not all(isinstance(w, str) for w in words):
      raise DataError(f"{path}: key \"words\": expected a list of strings")
    if words[:2] != [PAD, UNK]:
      raise DataError(f"{path}: expected the first two words to be {PAD}, {UNK}")
    if len(set(words)) != len(words):
      raise DataError(f"{path}: key \"words\": a word is listed twice")
    return cls(words)
