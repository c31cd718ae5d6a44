"""Kim (2014) CNN: parallel convolutions, ReLU, max-over-time, dropout, dense head."""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from textclf_jax.models import chunked
from textclf_jax.models.base import TextClassifier
from textclf_jax.models.conv_pool import conv_relu_max, window_scores
from textclf_jax.models.dropout import Dropout
from textclf_jax.models.embeddings import Embeddings

CONV_BACKWARD = ("auto", "dense", "sparse")
# `auto` takes the sparse backward pass for batches longer than this many tokens.
# Whole train steps on the 2-core CPU (batch 50, D 128, widths 3/4/5 x 100), dense
# against sparse: 5.8 / 8.3 ms at 16 tokens, 8.7 / 10.0 at 32, 14.3 / 11.4 at 64.
# 64-token batches stay dense all the same: the README's tables (Kim 2014, the
# ablations; max_len <= 64) were made that way, and re-running them with `auto`
# must give the same bits. `conv_backward=sparse` takes the faster pass there.
SPARSE_BACKWARD_MIN_LENGTH = 64


def uses_sparse_backward(conv_backward: str, length: int) -> bool:
  """config.conv_backward's choice for a batch of `length` tokens."""
  if conv_backward == "auto":
    return length > SPARSE_BACKWARD_MIN_LENGTH
  return conv_backward == "sparse"


def split_key(key, n):
  return [None] * n if key is None else list(jax.random.split(key, n))


class KimCNN(TextClassifier):
  """tokens [B, L], lengths [B] -> logits [B, num_classes]."""

  reads_windows = True
  reads_states = True

  def __init__(self, embeddings: Embeddings, num_classes: int, filter_widths=(3, 4, 5),
               num_filters: int = 100, dropout: float = 0.5, conv_backward: str = "auto",
               *, rngs: nnx.Rngs):
    self.embed = embeddings
    self.conv_backward = conv_backward
    self.widths = tuple(int(w) for w in filter_widths)
    self.convs = nnx.List([
        nnx.Conv(embeddings.out_features, num_filters, kernel_size=(w,), padding="VALID",
                 rngs=rngs) for w in self.widths])
    self.dropout = Dropout(dropout)
    self.head = nnx.Linear(num_filters * len(self.widths), num_classes, rngs=rngs)
    self.chunks = None  # a chunked.ChunkPool when config.chunk_len > 0 (models.build_model)

  @classmethod
  def from_config(cls, config, embeddings, num_classes, *, rngs):
    return cls(embeddings, num_classes, config.filter_widths, config.num_filters,
               config.dropout, config.conv_backward, rngs=rngs)

  @staticmethod
  def min_length(config) -> int:
    """Batches are padded to at least the widest filter, so every filter has a window."""
    return max(config.filter_widths)

  def sparse_backward(self, length: int) -> bool:
    """Whether a batch of `length` tokens takes conv_pool's sparse backward pass."""
    return uses_sparse_backward(self.conv_backward, length)

  def features(self, tokens, lengths, trainable_vectors=None):
    """Max-over-time features [B, num_filters * len(widths)], ignoring padding."""
    return self.pool(self.embed(tokens, trainable_vectors), lengths)

  def pool(self, x, lengths):
    """Embedded texts x [B, L, E] -> max-over-time features [B, num_filters * len(widths)].

    Wide convolution as in Kim's code: w - 1 zero vectors on each side of the
    text, so n-grams that overlap its start or end are seen too. Window t covers
    positions t - w + 1 .. t; it is valid while it overlaps the text (t < length + w - 1).
    Same function both ways; the sparse backward pass (conv_pool.py) only
    differs in how the gradient is computed.
    """
    if self.sparse_backward(x.shape[1]):
      return conv_relu_max(x, tuple(conv.kernel[...] for conv in self.convs),
                           tuple(conv.bias[...] for conv in self.convs), lengths)
    pooled = []
    for width, conv in zip(self.widths, self.convs):
      h = jax.nn.relu(window_scores(x, conv.kernel[...], width) + conv.bias[...])  # [B, L+w-1, F]
      valid = jnp.arange(h.shape[1])[None, :] < (lengths + width - 1)[:, None]
      pooled.append(jnp.max(jnp.where(valid[..., None], h, 0.0), axis=1))  # ReLU >= 0
    return jnp.concatenate(pooled, axis=-1)

  def __call__(self, tokens, lengths, key=None, trainable_vectors=None, dropout_keep=None,
               states=None):
    """dropout_keep: a group member's 1 - dropout rate (traced), or None: the config's.
    states: a frozen encoder's cached states (`TextClassifier.embed_tokens`), or None."""
    return self.classify(self.embed_tokens(tokens, trainable_vectors, states), lengths, key,
                         dropout_keep)

  def classify(self, x, lengths, key=None, dropout_keep=None):
    """Embedded texts x [B, L, E] (zero past each length) -> logits [B, num_classes]."""
    features = chunked.encode(self.chunks, self.pool, x, lengths)
    features = self.dropout(features, deterministic=key is None, rngs=key,
                            keep_prob=dropout_keep)
    return self.head(features)
