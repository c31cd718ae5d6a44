"""One call from config to encoded arrays: `prepare(config, fold)`.

source -> splits -> encoder (text/encoder.py, fitted on train only) -> ids, labels;
plus the pretrained vectors matrix when the config names one. Runs reuse their saved
encoder and label map (`encoder`, `label_names`) so eval sees what training saw.
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
from textclf_jax.data.vectors import load_vectors
from textclf_jax.text.encoder import TextEncoder, WordEncoder, encoder_for
from textclf_jax.text.vocab import Vocab


@dataclasses.dataclass
class Prepared:
  """Everything a run needs from the data, encoded once."""
  name: str
  multi_label: bool
  label_names: list
  encoder: TextEncoder  # fitted on the training split (or the run's, loaded)
  splits: dict  # name -> Encoded
  vectors: np.ndarray | None
  stats: dict  # data.json: sizes, lengths, max_len (resolved), truncation, vectors

  @property
  def vocab(self) -> Vocab:
    """The word encoder's vocabulary (callers from before encoders; new code: `encoder`)."""
    return getattr(self.encoder, "vocab", None)

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
  """A split's tokens as numbers: `flat` holds text i's after those of texts 0..i-1,
  `lengths` [N] their token counts (untruncated)."""
  flat: np.ndarray
  lengths: np.ndarray


def _number_splits(split_data: dict, encoder: WordEncoder) -> tuple:
  """Every split's tokens as numbers, words numbered in the order first seen (`words`:
  word i first), without keeping the token strings. Returns ({split: _SplitIds}, words).

  (Tokenising the test split in a child process meanwhile was tried: on this project's
  2-CPU machine, shared with other jobs, it cost ~0.8 CPU s more and 2-3 s more wall
  time than this, the other CPU being busy.)"""
  seen = collections.defaultdict(itertools.count().__next__)
  out = {}
  for name, split in split_data.items():
    _, flat, lengths = encoder.number(split.texts, seen)
    out[name] = _SplitIds(flat, lengths)
  return out, list(seen)


def _require_tokens(name: str, train_ids: _SplitIds):
  if not train_ids.lengths.sum():
    raise DataError(f"{name}: every training text is empty after tokenisation "
                    "(check text_key and the stop-word settings)")


def _word_ids(config, dataset: str, split_data: dict, encoder: WordEncoder, fit: bool,
              load_vectors_file: bool) -> tuple:
  """The word encoder's fast path: every split tokenised once, untruncated, its tokens
  numbered by first sight (`_number_splits`); when `fit`, the vocabulary (the training
  split's counts, plus dev/test words with a pretrained vector when vectors_extend_vocab)
  then maps those numbers to its ids, as WordEncoder.fit + encode would map the tokens
  (tests/test_data.py checks they agree). Returns (encoder, {split: _SplitIds of vocabulary
  ids}, vectors, found)."""
  split_ids, words = _number_splits(split_data, encoder)  # words[i]: the token numbered i
  _require_tokens(dataset, split_ids["train"])
  vectors = found = None
  if fit:
    encoder = encoder.fit_counts(words, np.bincount(split_ids["train"].flat,
                                                    minlength=len(words)))
    if config.vectors and load_vectors_file and config.vectors_extend_vocab:
      # Dev/test words that have a pretrained vector join the vocabulary, as in
      # Kim (2014); no labels are involved.
      vocab = encoder.vocab
      known = len(vocab)
      elsewhere = np.unique(np.concatenate([split_ids[name].flat for name in ("dev", "test")]))
      vocab = Vocab(vocab.words + sorted({words[i] for i in elsewhere.tolist()
                                          if words[i] not in vocab.index}))
      vectors, found = load_vectors(config.vectors, vocab, config.embed_dim,
                                    config.vectors_format, config.unk_init_scale, config.seed)
      keep = (np.arange(len(vocab)) < known) | found
      encoder = encoder.with_vocab(Vocab([w for w, k in zip(vocab.words, keep) if k]))
      vectors, found = vectors[keep], found[keep]
  to_vocab = encoder.to_ids(words)
  return (encoder, {name: _SplitIds(to_vocab[ids.flat], ids.lengths)
                    for name, ids in split_ids.items()}, vectors, found)


def prepare(config, fold: int = -1, raw: RawDataset | None = None,
            encoder: TextEncoder | None = None, label_names: list | None = None,
            load_vectors_file: bool = True, vocab: Vocab | None = None) -> Prepared:
  """The run's data, encoded. `encoder`: a run's fitted encoder (eval sees what training
  saw); None fits the config's on the training split. `vocab`: a word encoder's
  vocabulary instead of `encoder` (what callers passed before encoders existed)."""
  raw = raw or load_source(config)
  split_stats = {}
  split_data = splits_lib.make_splits(raw, config, fold, split_stats)
  label_names = label_names or splits_lib.build_label_map(raw, split_data)
  if vocab is not None:
    encoder = WordEncoder.from_config(config).with_vocab(vocab)
  fit = encoder is None
  if fit:
    encoder = encoder_for(config)
  # Tokenised once per run, untruncated (to report truncation), cut at encode time.
  if isinstance(encoder, WordEncoder):
    encoder, split_ids, vectors, found = _word_ids(config, raw.name, split_data, encoder, fit,
                                                   load_vectors_file)
  else:
    vectors, found = None, None
    if config.vectors and load_vectors_file:
      raise DataError(f"vectors={config.vectors!r}: pretrained word vectors need the word "
                      f"encoder, not {encoder.name!r}")
    if fit:
      encoder = encoder.fit(split_data["train"].texts)
    split_ids = {name: _SplitIds(*encoder.encode_flat(split.texts))
                 for name, split in split_data.items()}
    _require_tokens(raw.name, split_ids["train"])
  train_ids = split_ids["train"]
  if config.embedding not in ("rand", "contextual") and load_vectors_file and not config.vectors:
    raise DataError(f"embedding={config.embedding!r} needs pretrained vectors: "
                    "set --config.vectors=PATH")
  if config.vectors and load_vectors_file and vectors is None:
    vectors, found = load_vectors(config.vectors, encoder.vocab, config.embed_dim,
                                  config.vectors_format, config.unk_init_scale, seed=config.seed)
  max_len = config.max_len or _length_at_percentile(train_ids.lengths,
                                                    config.max_len_percentile)
  encoded = {name: Encoded(*encode_flat(split_ids[name].flat, split_ids[name].lengths, max_len),
                           encode_labels(split.labels, label_names, raw.multi_label))
             for name, split in split_data.items()}
  stats = {
      "dataset": raw.name, "multi_label": raw.multi_label, "fold": fold,
      "num_labels": len(label_names), "vocab_size": encoder.vocab_size,
      **{f"num_{k}": len(v) for k, v in encoded.items()},
      "max_len": max_len,
      "mean_length_train": float(np.mean(encoded["train"].lengths)),
      "truncated_train_fraction": float(np.mean(train_ids.lengths > max_len)),
      **split_stats,
  }
  if found is not None:
    stats.update(vectors=config.vectors, vectors_found=int(found[2:].sum()),
                 vectors_coverage=float(found[2:].mean()))
  return Prepared(raw.name, raw.multi_label, label_names, encoder, encoded, vectors, stats)


def encode_split(config, split: str, encoder: TextEncoder, label_names: list, fold: int = -1,
                 raw: RawDataset | None = None) -> Encoded:
  """One split of a saved run (`eval`, `export`'s parity check), encoded with the run's
  fitted encoder and label map: the same ids, lengths and labels that `prepare(config,
  fold, encoder=encoder, label_names=label_names).splits[split]` gives, tokenising only that
  split (and the training split too when config.max_len is 0, to resolve it as prepare
  does). A split the dataset does not have is a DataError naming it."""
  raw = raw or load_source(config)
  split_data = splits_lib.make_splits(raw, config, fold)
  if split not in split_data:
    raise DataError(f"split {split!r}: {raw.name} has splits {', '.join(split_data)}")
  wanted = {split: split_data[split]}
  if not config.max_len:
    wanted["train"] = split_data["train"]
  if isinstance(encoder, WordEncoder):
    split_ids, words = _number_splits(wanted, encoder)
    to_vocab = encoder.to_ids(words)
    split_ids = {k: _SplitIds(to_vocab[v.flat], v.lengths) for k, v in split_ids.items()}
  else:
    split_ids = {k: _SplitIds(*encoder.encode_flat(v.texts)) for k, v in wanted.items()}
  max_len = config.max_len or _length_at_percentile(split_ids["train"].lengths,
                                                    config.max_len_percentile)
  ids = split_ids[split]
  return Encoded(*encode_flat(ids.flat, ids.lengths, max_len),
                 encode_labels(split_data[split].labels, label_names, raw.multi_label))
