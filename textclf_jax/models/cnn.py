"""Kim (2014) CNN: parallel convolutions, ReLU, max-over-time, dropout, dense head."""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from textclf_jax.models.embeddings import Embeddings


def split_key(key, n):
  return [None] * n if key is None else list(jax.random.split(key, n))


class KimCNN(nnx.Module):
  """tokens [B, L], lengths [B] -> logits [B, num_classes]. Needs L >= max(widths)."""

  def __init__(self, embeddings: Embeddings, num_classes: int, filter_widths=(3, 4, 5),
               num_filters: int = 100, dropout: float = 0.5, *, rngs: nnx.Rngs):
    self.embed = embeddings
    self.widths = tuple(int(w) for w in filter_widths)
    self.convs = nnx.List([
        nnx.Conv(embeddings.out_features, num_filters, kernel_size=(w,), padding="VALID",
                 rngs=rngs) for w in self.widths])
    self.dropout = nnx.Dropout(dropout)
    self.head = nnx.Linear(num_filters * len(self.widths), num_classes, rngs=rngs)

  @classmethod
  def from_config(cls, config, embeddings, num_classes, *, rngs):
    return cls(embeddings, num_classes, config.filter_widths, config.num_filters,
               config.dropout, rngs=rngs)

  def features(self, tokens, lengths):
    """Max-over-time features [B, num_filters * len(widths)], ignoring padding."""
    x = self.embed(tokens)
    pooled = []
    for width, conv in zip(self.widths, self.convs):
      h = jax.nn.relu(conv(x))  # [B, L - w + 1, F]
      # A window is valid if it ends inside the text; a text shorter than the
      # window keeps position 0 (padding embeddings are zero).
      last = jnp.maximum(lengths - width + 1, 1)
      valid = jnp.arange(h.shape[1])[None, :] < last[:, None]
      pooled.append(jnp.max(jnp.where(valid[..., None], h, 0.0), axis=1))  # ReLU >= 0
    return jnp.concatenate(pooled, axis=-1)

  def __call__(self, tokens, lengths, key=None):
    features = self.features(tokens, lengths)
    features = self.dropout(features, deterministic=key is None, rngs=key)
    return self.head(features)
