"""CNN -> LSTM: same-padded convolutions extract n-gram features per position, an
LSTM reads them in order, its final state feeds the head."""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from textclf_jax.models import chunked
from textclf_jax.models.base import TextClassifier
from textclf_jax.models.cnn import split_key
from textclf_jax.models.embeddings import Embeddings
from textclf_jax.models.lstm import add_encoder_and_head


class CNNLSTM(TextClassifier):
  """tokens [B, L], lengths [B] -> logits [B, num_classes]."""

  reads_windows = True
  reads_states = True

  def __init__(self, embeddings: Embeddings, num_classes: int, filter_widths=(3,),
               num_filters=128, hidden=128, layers=1, bidirectional=False, dropout=0.5,
               *, rngs):
    self.embed = embeddings
    self.convs = nnx.List([
        nnx.Conv(embeddings.out_features, num_filters, kernel_size=(int(w),),
                 padding="SAME", rngs=rngs) for w in filter_widths])
    add_encoder_and_head(self, num_filters * len(filter_widths), num_classes, hidden, layers,
                         bidirectional, dropout, rngs)

  @classmethod
  def from_config(cls, config, embeddings, num_classes, *, rngs):
    return cls(embeddings, num_classes, config.filter_widths, config.num_filters,
               config.lstm_hidden, config.lstm_layers, config.bidirectional,
               config.dropout, rngs=rngs)

  @staticmethod
  def min_length(config) -> int:
    """At least the widest filter (kept from the CNN, so batch shapes are unchanged)."""
    return max(config.filter_widths)

  def __call__(self, tokens, lengths, key=None, trainable_vectors=None, dropout_keep=None,
               states=None):
    """dropout_keep: a group member's 1 - dropout rate (traced), or None: the config's.
    states: a frozen encoder's cached states (`TextClassifier.embed_tokens`), or None."""
    return self.classify(self.embed_tokens(tokens, trainable_vectors, states), lengths, key,
                         dropout_keep)

  def classify(self, x, lengths, key=None, dropout_keep=None):
    """Embedded texts x [B, L, E] (zero past each length) -> logits [B, num_classes]."""
    k_in, k_enc, k_out = split_key(key, 3)
    valid = (jnp.arange(x.shape[1])[None, :] < lengths[:, None])[..., None]
    x = jnp.concatenate([jax.nn.relu(conv(x)) for conv in self.convs], axis=-1)
    x = self.dropout(jnp.where(valid, x, 0.0), deterministic=k_in is None, rngs=k_in,
                     keep_prob=dropout_keep)
    final = chunked.encode(self.chunks, lambda x, lengths: self.encoder(
        x, lengths, k_enc, final_only=True, dropout_keep=dropout_keep)[1], x, lengths)
    final = self.dropout(final, deterministic=k_out is None, rngs=k_out, keep_prob=dropout_keep)
    return self.head(final)
