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

distinct_ngrams: each distinct row counts once per text (a binarised bag, as NBSVM's).
nb_prior s > 0: each class's logit also gets s_c times the mean, over the text's rows,
of the row's Naive Bayes log-count ratio for that class (one vs rest, from the
training split: `nb_ratios`), s_c trained from s; the NB ratios themselves are frozen.
This is NBSVM's feature weighting (Wang & Manning 2012) as a prior the bag corrects.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from textclf_jax.models.base import TextClassifier
from textclf_jax.models.dropout import Dropout
from textclf_jax.models.embeddings import Embeddings, FrozenEmbedding

PRIME = 116_049_371  # fastText's multiplier (its dictionary.cc)


def ngram_hashes(tokens, n: int, buckets: int, xp=jnp):
  """tokens [..., L] int ids -> buckets [..., L - n + 1] of the n-grams starting at
  each position, in [0, buckets). `xp`: jnp or np (the numpy twin, for tests)."""
  length = tokens.shape[-1]
  h = tokens[..., : length - n + 1].astype(xp.uint32)
  for k in range(1, n):
    h = h * xp.uint32(PRIME) + tokens[..., k: length - n + 1 + k].astype(xp.uint32)
  return (h % xp.uint32(buckets)).astype(xp.int32)


def table_ids(tokens, lengths, word_ngrams: int, buckets: int, offset: int, xp=jnp):
  """tokens [B, L], lengths [B] -> the table rows a text reads, [B, word_ngrams * L]:
  the words, then for each n = 2..word_ngrams the rows `offset` + bucket of its n-grams
  (0 past the text; so are tokens past `lengths`). `xp`: jnp or np."""
  positions = xp.arange(tokens.shape[1])[None, :]
  blocks = [xp.where(positions < lengths[:, None], tokens, 0)]
  for n in range(2, word_ngrams + 1):
    rows = xp.zeros_like(tokens)
    if tokens.shape[1] >= n:
      hashed = (offset + ngram_hashes(tokens, n, buckets, xp)).astype(tokens.dtype)
      rows = xp.concatenate([hashed, rows[:, : n - 1]], axis=1)
    blocks.append(xp.where(positions + n <= lengths[:, None], rows, 0))
  return xp.concatenate(blocks, axis=1)


def distinct(ids, xp=jnp):
  """ids [B, K] -> each row's distinct ids once, the repeats 0 (order not kept)."""
  ids = xp.sort(ids, axis=1)
  first = xp.concatenate([xp.ones_like(ids[:, :1], bool), ids[:, 1:] != ids[:, :-1]], axis=1)
  return xp.where(first, ids, 0)


def nb_ratios(ids, labels, rows: int, alpha: float = 1.0) -> np.ndarray:
  """Naive Bayes log-count ratios (Wang & Manning 2012) of every table row, one vs rest.

  ids [N, K]: each training text's distinct rows (0: none); labels [N, C]: multi-hot
  0/1 (one-hot for single-label). r[v, c] = log(p_c[v] / |p_c|) - log(q_c[v] / |q_c|) with
  p_c = alpha + the texts of label c holding row v, q_c = alpha + the other texts holding
  it, |.| summed over the rows seen in training. Rows never seen get the constant
  log(|q_c| / |p_c|); row 0 gets 0. Returns [rows, C] float32.
  """
  ids = np.asarray(ids)
  held = ids != 0
  return nb_ratios_flat(ids[held], np.nonzero(held)[0], labels, rows, alpha)


def nb_ratios_flat(rows_held, text_of, labels, rows: int, alpha: float = 1.0) -> np.ndarray:
  """`nb_ratios` from the (text, row) pairs alone, each once: text text_of[i] holds row
  rows_held[i] (no 0s, no repeats within a text). The same counts, so the same ratios."""
  labels = np.asarray(labels) > 0
  total = np.bincount(rows_held, minlength=rows).astype(np.float64)
  used = total > 0
  out = np.zeros((rows, labels.shape[1]), np.float32)
  for c in range(labels.shape[1]):
    p = np.bincount(rows_held[labels[text_of, c]], minlength=rows) + alpha
    q = total - p + 2 * alpha
    out[:, c] = (np.log(p / p[used].sum()) - np.log(q / q[used].sum())).astype(np.float32)
  out[0] = 0.0
  return out


def distinct_rows(tokens, lengths, word_ngrams: int, buckets: int, offset: int,
                  chunk: int = 1024) -> tuple:
  """The (text, row) pairs of `table_ids`, each distinct pair once: (rows [P], texts [P]),
  numpy. Texts go by length, `chunk` at a time, each chunk cut to its longest text (a
  text's rows do not depend on the padding after it): on IMDB ~4x fewer ids hashed and
  sorted than at the full width, and no [N, K] matrix."""
  order = np.argsort(lengths, kind="stable")
  rows, texts = [], []
  for start in range(0, len(order), chunk):
    part = order[start: start + chunk]
    width = max(int(lengths[part].max()), 1)
    ids = distinct(table_ids(tokens[part, :width], lengths[part], word_ngrams, buckets, offset,
                             xp=np), xp=np)
    held = ids != 0
    rows.append(ids[held])
    texts.append(np.broadcast_to(part[:, None], ids.shape)[held])
  if not rows:
    return np.zeros(0, np.int32), np.zeros(0, np.int64)
  return np.concatenate(rows), np.concatenate(texts)


class BagOfNgrams(TextClassifier):
  """tokens [B, L], lengths [B] -> logits [B, num_classes].

  `embeddings` must have vocabulary rows + `ngram_buckets` rows
  (`extra_rows(config)` says how many to add); with word_ngrams 1 it is a bag of words.
  """

  def __init__(self, embeddings: Embeddings, num_classes: int, word_ngrams: int = 2,
               ngram_buckets: int = 1, dropout: float = 0.0, distinct_ngrams: bool = False,
               nb_prior: float = 0.0, *, rngs: nnx.Rngs):
    self.embed = embeddings
    self.word_ngrams = int(word_ngrams)
    self.ngram_buckets = int(ngram_buckets)
    self.distinct_ngrams = bool(distinct_ngrams)
    self.dropout = Dropout(dropout)
    self.head = nnx.Linear(embeddings.out_features, num_classes, use_bias=False, rngs=rngs)
    if nb_prior:  # NB ratios [rows, C], filled from the training split by `fit_to_data`
      self.nb = FrozenEmbedding(jnp.zeros((self.table_rows(), num_classes), jnp.float32))
      self.nb_scale = nnx.Param(jnp.full((num_classes,), nb_prior, jnp.float32))

  @classmethod
  def from_config(cls, config, embeddings, num_classes, *, rngs):
    return cls(embeddings, num_classes, config.word_ngrams, config.ngram_buckets,
               config.dropout, config.distinct_ngrams, config.nb_prior, rngs=rngs)

  @staticmethod
  def fit_to_data(config, state: dict, train, multi_label: bool) -> dict:
    """The initial `state` with the NB ratios of `train` (an `Encoded` split) in its
    frozen `nb` table (unchanged without nb_prior)."""
    if not config.nb_prior:
      return state
    leaf = state["frozen"]["nb"]
    rows, num_classes = leaf.shape
    labels = (train.labels if multi_label
              else np.eye(num_classes, dtype=np.float32)[train.labels])
    held, text_of = distinct_rows(train.ids, train.lengths, config.word_ngrams,
                                  config.ngram_buckets, rows - config.ngram_buckets)
    leaf.set_value(jax.device_put(nb_ratios_flat(held, text_of, labels, rows), leaf.sharding))
    return state

  @staticmethod
  def extra_rows(config) -> int:
    """Table rows after the vocabulary's: the n-gram buckets (none for words only)."""
    return config.ngram_buckets if config.word_ngrams > 1 else 0

  def table_rows(self) -> int:
    table = self.embed.trainable if hasattr(self.embed, "trainable") else self.embed.frozen
    return table.shape[0]

  def table_ids(self, tokens, lengths):
    """The rows of the embedding table the texts read, [B, word_ngrams * L] (0: none)."""
    ids = table_ids(tokens, lengths, self.word_ngrams, self.ngram_buckets,
                    self.table_rows() - self.ngram_buckets)
    return distinct(ids) if self.distinct_ngrams else ids

  def __call__(self, tokens, lengths, key=None, trainable_vectors=None, dropout_keep=None):
    """trainable_vectors [B, word_ngrams * L, D]: the trainable table's rows of
    `table_ids`, already looked up (the row-sparse update differentiates them).
    dropout_keep: a group member's 1 - dropout rate (traced), or None: the config's."""
    ids = self.table_ids(tokens, lengths)
    count = jnp.maximum(jnp.sum(ids != 0, axis=1, keepdims=True), 1)
    x = self.embed(ids, trainable_vectors)  # zero where ids == 0
    features = jnp.sum(x, axis=1) / count.astype(x.dtype)  # the mean, [B, D]
    features = self.dropout(features, deterministic=key is None, rngs=key,
                            keep_prob=dropout_keep)
    logits = self.head(features)
    if hasattr(self, "nb"):  # + nb_scale * the mean NB ratio of the text's rows
      ratios = jnp.where((ids != 0)[..., None], jnp.take(self.nb[...], ids, axis=0), 0.0)
      logits = logits + self.nb_scale[...] * jnp.sum(ratios, axis=1) / count.astype(x.dtype)
    return logits

