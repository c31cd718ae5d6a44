"""One call from config to encoded arrays: `prepare(config, fold)`.

source -> splits -> tokens -> vocabulary (train only) -> ids, labels; plus the
pretrained vectors matrix when the config names one. Runs reuse their saved
vocabulary and label map (`vocab`, `label_names`) so eval sees what training saw.
max_len 0 is resolved here, from the training split's token counts
(`length_at_percentile`); `Prepared.max_len` is what was used.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from textclf_jax.data import splits as splits_lib
from textclf_jax.data.batching import Encoded, encode_labels, encode_tokens
from textclf_jax.data.errors import DataError
from textclf_jax.data.sources import RawDataset, load_source
from textclf_jax.data.tokenize import Tokenizer
from textclf_jax.data.vectors import load_vectors
from textclf_jax.data.vocab import Vocab


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
  return max(1, int(np.percentile(lengths, percentile, method="higher")))


def prepare(config, fold: int = -1, raw: RawDataset | None = None, vocab: Vocab | None = None,
            label_names: list | None = None, load_vectors_file: bool = True) -> Prepared:
  raw = raw or load_source(config)
  split_stats = {}
  split_data = splits_lib.make_splits(raw, config, fold, split_stats)
  label_names = label_names or splits_lib.build_label_map(raw, split_data)
  # Tokenised once per run, untruncated (to report truncation), cut at encode time.
  tokenizer = dataclasses.replace(Tokenizer.from_config(config), max_len=0)
  tokens = {name: [tokenizer(t) for t in split.texts] for name, split in split_data.items()}
  train_tokens = tokens["train"]
  if sum(map(len, train_tokens)) == 0:
    raise DataError(f"{raw.name}: every training text is empty after tokenisation "
                    "(check text_key and the stop-word settings)")
  vectors, found = None, None
  if config.embedding != "rand" and load_vectors_file and not config.vectors:
    raise DataError(f"embedding={config.embedding!r} needs pretrained vectors: "
                    "set --config.vectors=PATH")
  if vocab is None:
    vocab = Vocab.build(train_tokens, config.min_count, config.max_vocab)
    if config.vectors and load_vectors_file and config.vectors_extend_vocab:
      # Dev/test words that have a pretrained vector join the vocabulary, as in
      # Kim (2014); no labels are involved.
      known = len(vocab)
      vocab = Vocab(vocab.words + sorted({t for name in ("dev", "test") for text in tokens[name]
                                          for t in text if t not in vocab.index}))
      vectors, found = load_vectors(config.vectors, vocab, config.embed_dim,
                                    config.vectors_format, config.unk_init_scale, config.seed)
      keep = (np.arange(len(vocab)) < known) | found
      vocab = Vocab([w for w, k in zip(vocab.words, keep) if k])
      vectors, found = vectors[keep], found[keep]
  if config.vectors and load_vectors_file and vectors is None:
    vectors, found = load_vectors(config.vectors, vocab, config.embed_dim, config.vectors_format,
                                  config.unk_init_scale, seed=config.seed)
  max_len = config.max_len or length_at_percentile(train_tokens, config.max_len_percentile)
  encoded = {name: Encoded(*encode_tokens(tokens[name], vocab, max_len),
                           encode_labels(split.labels, label_names, raw.multi_label))
             for name, split in split_data.items()}
  stats = {
      "dataset": raw.name, "multi_label": raw.multi_label, "fold": fold,
      "num_labels": len(label_names), "vocab_size": len(vocab),
      **{f"num_{k}": len(v) for k, v in encoded.items()},
      "max_len": max_len,
      "mean_length_train": float(np.mean(encoded["train"].lengths)),
      "truncated_train_fraction": float(np.mean(
          [len(t) > max_len for t in train_tokens])),
      **split_stats,
  }
  if found is not None:
    stats.update(vectors=config.vectors, vectors_found=int(found[2:].sum()),
                 vectors_coverage=float(found[2:].mean()))
  return Prepared(raw.name, raw.multi_label, label_names, vocab, encoded, vectors, stats)

