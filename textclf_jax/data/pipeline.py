"""One call from config to encoded arrays: `prepare(config, fold)`.

source -> splits -> tokens -> vocabulary (train only) -> ids, labels; plus the
pretrained vectors matrix when the config names one. Runs reuse their saved
vocabulary and label map (`vocab`, `label_names`) so eval sees what training saw.
max_len 0 is resolved here, from the training split's token counts
(`length_at_percentile`); `Prepared.max_len` is what was used.
"""

from __future__ import annotations

import collections
import dataclasses
import itertools

import numpy as np

from textclf_jax.data import splits as splits_lib
from textclf_jax.data.batching import Encoded, encode_flat, encode_labels
from textclf_jax.errors import DataError
from textclf_jax.data.sources import RawDataset, load_source
from textclf_jax.text.tokenize import Tokenizer, numbered
from textclf_jax.data.vectors import load_vectors
from textclf_jax.text.vocab import UNK_ID, Vocab


@dataclasses.dataclass
class Prepared:
  """Everything a run needs from the data, encoded once."""
  name: str
  multi_label: bool
  label_names: list
  vocab: Vocab
  splits: dict  # name -> Encoded
  vectors: np.ndarray | None
  stats: dict  # data.json: sizes, lengths, max_len (resolved), truncation, vectors

  @property
  def max_len(self) -> int:
    """Tokens kept per text (config.max_len, or what max_len 0 resolved to)."""
    return self.stats["max_len"]


def length_at_percentile(token_lists: list, percentile: float) -> int:
  """The text length (tokens, at least 1) at `percentile` of `token_lists` (100: the
  longest): config.max_len 0's value, from the training split."""
  lengths = np.fromiter(map(len, token_lists), dtype=np.int64, count=len(token_lists))
  return _length_at_percentile(lengths, percentile)


def _length_at_percentile(lengths: np.ndarray, percentile: float) -> int:
  return max(1, int(np.percentile(lengths, percentile, method="higher")))


@dataclasses.dataclass
class _SplitIds:
  """A split's tokens as numbers (`_number_splits`): `flat` holds text i's after those of
  texts 0..i-1, `lengths` [N] their token counts (untruncated)."""
  flat: np.ndarray
  lengths: np.ndarray


def _number_splits(split_data: dict, tokenizer: Tokenizer) -> tuple:
  """Every split's tokens as numbers, words numbered in the order first seen (`words`:
  word i first), without keeping the token strings. Returns ({split: _SplitIds}, words).

  (Tokenising the test split in a child process meanwhile was tried: on this project's
  2-CPU machine, shared with other jobs, it cost ~0.8 CPU s more and 2-3 s more wall
  time than this, the other CPU being busy.)"""
  seen = collections.defaultdict(itertools.count().__next__)
  out = {}
  for name, split in split_data.items():
    _, ids, lengths = numbered(tokenizer, split.texts, seen)
    out[name] = _SplitIds(np.frombuffer(ids, np.intc).astype(np.int32, copy=False),
                          np.frombuffer(lengths, np.int64))
  return out, list(seen)


def prepare(config, fold: int = -1, raw: RawDataset | None = None, vocab: Vocab | None = None,
            label_names: list | None = None, load_vectors_file: bool = True) -> Prepared:
  raw = raw or load_source(config)
  split_stats = {}
  split_data = splits_lib.make_splits(raw, config, fold, split_stats)
  label_names = label_names or splits_lib.build_label_map(raw, split_data)
  # Tokenised once per run, untruncated (to report truncation), cut at encode time. Every
  # split's tokens are numbered by first sight (`_number_splits`); the vocabulary (the training
  # split's counts) then maps those numbers to its ids, as Vocab.build + encode_tokens
  # would map the tokens (tests/test_data.py checks they agree).
  tokenizer = dataclasses.replace(Tokenizer.from_config(config), max_len=0)
  split_ids, words = _number_splits(split_data, tokenizer)  # words[i]: the token numbered i
  train_ids = split_ids["train"]
  if not train_ids.lengths.sum():
    raise DataError(f"{raw.name}: every training text is empty after tokenisation "
                    "(check text_key and the stop-word settings)")
  vectors, found = None, None
  if config.embedding != "rand" and load_vectors_file and not config.vectors:
    raise DataError(f"embedding={config.embedding!r} needs pretrained vectors: "
                    "set --config.vectors=PATH")
  if vocab is None:
    counts = np.bincount(train_ids.flat, minlength=len(words))
    vocab = Vocab.from_counts(dict(zip(words, counts.tolist())), config.min_count,
                              config.max_vocab)
    if config.vectors and load_vectors_file and config.vectors_extend_vocab:
      # Dev/test words that have a pretrained vector join the vocabulary, as in
      # Kim (2014); no labels are involved.
      known = len(vocab)
      elsewhere = np.unique(np.concatenate([split_ids[name].flat for name in ("dev", "test")]))
      vocab = Vocab(vocab.words + sorted({words[i] for i in elsewhere.tolist()
                                          if words[i] not in vocab.index}))
      vectors, found = load_vectors(config.vectors, vocab, config.embed_dim,
                                    config.vectors_format, config.unk_init_scale, config.seed)
      keep = (np.arange(len(vocab)) < known) | found
      vocab = Vocab([w for w, k in zip(vocab.words, keep) if k])
      vectors, found = vectors[keep], found[keep]
  if config.vectors and load_vectors_file and vectors is None:
    vectors, found = load_vectors(config.vectors, vocab, config.embed_dim, config.vectors_format,
                                  config.unk_init_scale, seed=config.seed)
  max_len = config.max_len or _length_at_percentile(train_ids.lengths,
                                                    config.max_len_percentile)
  to_vocab = np.fromiter(map(vocab.index.get, words, itertools.repeat(UNK_ID)), dtype=np.int32,
                         count=len(words))
  encoded = {name: Encoded(*encode_flat(to_vocab[split_ids[name].flat],
                                        split_ids[name].lengths, max_len),
                           encode_labels(split.labels, label_names, raw.multi_label))
             for name, split in split_data.items()}
  stats = {
      "dataset": raw.name, "multi_label": raw.multi_label, "fold": fold,
      "num_labels": len(label_names), "vocab_size": len(vocab),
      **{f"num_{k}": len(v) for k, v in encoded.items()},
      "max_len": max_len,
      "mean_length_train": float(np.mean(encoded["train"].lengths)),
      "truncated_train_fraction": float(np.mean(train_ids.lengths > max_len)),
      **split_stats,
  }
  if found is not None:
    stats.update(vectors=config.vectors, vectors_found=int(found[2:].sum()),
                 vectors_coverage=float(found[2:].mean()))
  return Prepared(raw.name, raw.multi_label, label_names, vocab, encoded, vectors, stats)



def encode_split(config, split: str, vocab: Vocab, label_names: list, fold: int = -1,
                 raw: RawDataset | None = None) -> Encoded:
  """One split of a saved run (`eval`, `export`'s parity check), encoded with the run's
  vocabulary and label map: the same ids, lengths and labels that `prepare(config, fold,
  vocab=vocab, label_names=label_names).splits[split]` gives, tokenising only that split
  (and the training split too when config.max_len is 0, to resolve it as prepare does).
  A split the dataset does not have is a DataError naming it."""
  raw = raw or load_source(config)
  split_data = splits_lib.make_splits(raw, config, fold)
  if split not in split_data:
    raise DataError(f"split {split!r}: {raw.name} has splits {', '.join(split_data)}")
  tokenizer = dataclasses.replace(Tokenizer.from_config(config), max_len=0)
  wanted = {split: split_data[split]}
  if not config.max_len:
    wanted["train"] = split_data["train"]
  split_ids, words = _number_splits(wanted, tokenizer)
  max_len = config.max_len or _length_at_percentile(split_ids["train"].lengths,
                                                    config.max_len_percentile)
  to_vocab = np.fromiter(map(vocab.index.get, words, itertools.repeat(UNK_ID)), dtype=np.int32,
                         count=len(words))
  ids = split_ids[split]
  return Encoded(*encode_flat(to_vocab[ids.flat], ids.lengths, max_len),
                 encode_labels(split_data[split].labels, label_names, raw.multi_label))
