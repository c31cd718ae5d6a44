"""fastText-style bag of n-grams (Joulin et al. 2017): the mean of the embeddings of a
text's words and of its hashed word n-grams, then a linear head.

One table holds both: rows [0, V) are the words (the vocabulary's ids), the last
`ngram_buckets` rows are the n-gram buckets. The n-gram of vocabulary ids
(a_1, ..., a_n) goes to bucket h mod ngram_buckets with h = a_1, h = h * PRIME + a_k
in uint32 arithmetic (wrapping mod 2^32), as fastText chains its hash: fixed integer
arithmetic, the same in every process and on every device (never Python's `hash`).
A text's ids are laid out as n blocks of L positions (block k: the k-gram starting
at each position; 0, the padding row, where it would run past the text), so a text
of length l has sum_k max(l - k + 1, 0) ids, and padding tokens change nothing.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from textclf_jax.models.dropout import Dropout
from textclf_jax.models.embeddings import Embeddings

PRIME = 116_049_371  # fastText's multiplier (its dictionary.cc)


def ngram_hashes(tokens, n: int, buckets: int, xp=jnp):
  """tokens [..., L] int ids -> buckets [..., L - n + 1] of the n-grams starting at
  each position, in [0, buckets). `xp`: jnp or np (the numpy twin, for tests)."""
  length = tokens.shape[-1]
  h = tokens[..., : length - n + 1].astype(xp.uint32)
  for k in range(1, n):
    h = h * xp.uint32(PRIME) + tokens[..., k: length - n + 1 + k].astype(xp.uint32)
  return (h % xp.uint32(buckets)).astype(xp.int32)


def table_ids(tokens, lengths, word_ngrams: int, buckets: int, offset: int):
  """tokens [B, L], lengths [B] -> the table rows a text reads, [B, word_ngrams * L]:
  the words, then for each n = 2..word_ngrams the rows `offset` + bucket of its n-grams
  (0 past the text)."""
  blocks = [tokens]
  positions = jnp.arange(tokens.shape[1])[None, :]
  for n in range(2, word_ngrams + 1):
    rows = jnp.zeros_like(tokens)
    if tokens.shape[1] >= n:
      hashed = offset + ngram_hashes(tokens, n, buckets)
      rows = rows.at[:, : hashed.shape[1]].set(hashed)
    blocks.append(jnp.where(positions + n <= lengths[:, None], rows, 0))
  return jnp.concatenate(blocks, axis=1)


class BagOfNgrams(nnx.Module):
  """tokens [B, L], lengths [B] -> logits [B, num_classes].

  `embeddings` must have vocabulary rows + `ngram_buckets` rows
  (`extra_rows(config)` says how many to add); with word_ngrams 1 it is a bag of words.
  """

  def __init__(self, embeddings: Embeddings, num_classes: int, word_ngrams: int = 2,
               ngram_buckets: int = 1, dropout: float = 0.0, *, rngs: nnx.Rngs):
    self.embed = embeddings
    self.word_ngrams = int(word_ngrams)
    self.ngram_buckets = int(ngram_buckets)
    self.dropout = Dropout(dropout)
    self.head = nnx.Linear(embeddings.out_features, num_classes, use_bias=False, rngs=rngs)

  @classmethod
  def from_config(cls, config, embeddings, num_classes, *, rngs):
    return cls(embeddings, num_classes, config.word_ngrams, config.ngram_buckets,
               config.dropout, rngs=rngs)

  @staticmethod
  def extra_rows(config) -> int:
    """Table rows after the vocabulary's: the n-gram buckets (none for words only)."""
    return config.ngram_buckets if config.word_ngrams > 1 else 0

  def table_rows(self) -> int:
    table = self.embed.trainable if hasattr(self.embed, "trainable") else self.embed.frozen
    return table.shape[0]

  def table_ids(self, tokens, lengths):
    """The rows of the embedding table the texts read, [B, word_ngrams * L] (0: none)."""
    return table_ids(tokens, lengths, self.word_ngrams, self.ngram_buckets,
                     self.table_rows() - self.ngram_buckets)

  def features(self, tokens, lengths, trainable_vectors=None):
    """The mean of the texts' word and n-gram vectors, [B, D].

    trainable_vectors [B, word_ngrams * L, D]: the trainable table's rows of
    `table_ids`, already looked up (the row-sparse update differentiates them)."""
    ids = self.table_ids(tokens, lengths)
    x = self.embed(ids, trainable_vectors)  # zero where ids == 0
    count = jnp.maximum(jnp.sum(ids != 0, axis=1, keepdims=True), 1)
    return jnp.sum(x, axis=1) / count.astype(x.dtype)

  def __call__(self, tokens, lengths, key=None, trainable_vectors=None, dropout_keep=None):
    """dropout_keep: a group member's 1 - dropout rate (traced), or None: the config's."""
    features = self.features(tokens, lengths, trainable_vectors)
    features = self.dropout(features, deterministic=key is None, rngs=key,
                            keep_prob=dropout_keep)
    return self.head(features)


def numpy_ngram_hashes(tokens: np.ndarray, n: int, buckets: int) -> np.ndarray:
  """`ngram_hashes` in numpy (uint32 wraps the same way)."""
  with np.errstate(over="ignore"):
    return ngram_hashes(np.asarray(tokens), n, buckets, xp=np)
