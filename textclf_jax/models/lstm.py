"""LSTM scanned over time with `jax.lax.scan`, masked by sequence length.

The input projection of every time step is one matmul outside the scan; the
scan carries only the recurrent matmul. Past a sequence's length the state is
frozen, so the final carry is the state at the last real token. The backward
direction reverses each sequence within its own length.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from textclf_jax.models.cnn import split_key
from textclf_jax.models.embeddings import Embeddings


def reverse_within_length(x, lengths):
  """x [B, L, ...] -> each row's first `length` steps reversed, padding left in place."""
  steps = jnp.arange(x.shape[1])[None, :]
  index = jnp.where(steps < lengths[:, None], lengths[:, None] - 1 - steps, steps)
  index = index.reshape(index.shape + (1,) * (x.ndim - 2))
  return jnp.take_along_axis(x, index, axis=1)


class LSTMLayer(nnx.Module):
  """x [B, L, D], lengths [B] -> (outputs [B, L, H] zero past length, final h [B, H])."""

  def __init__(self, in_features: int, hidden: int, *, rngs: nnx.Rngs):
    self.hidden = hidden
    self.input_proj = nnx.Linear(in_features, 4 * hidden, rngs=rngs)
    self.recurrent = nnx.Linear(hidden, 4 * hidden, use_bias=False,
                                kernel_init=nnx.initializers.orthogonal(), rngs=rngs)

  def __call__(self, x, lengths):
    batch, steps = x.shape[:2]
    projected = jnp.swapaxes(self.input_proj(x), 0, 1)  # [L, B, 4H]
    mask = (jnp.arange(steps)[:, None] < lengths[None, :])[..., None]  # [L, B, 1]
    kernel = self.recurrent.kernel[...]

    def step(carry, inputs):
      h, c = carry
      z, m = inputs
      i, f, g, o = jnp.split(z + h @ kernel, 4, axis=-1)
      c_new = jax.nn.sigmoid(f + 1.0) * c + jax.nn.sigmoid(i) * jnp.tanh(g)
      h_new = jax.nn.sigmoid(o) * jnp.tanh(c_new)
      h, c = jnp.where(m, h_new, h), jnp.where(m, c_new, c)
      return (h, c), jnp.where(m, h_new, 0.0)

    zeros = jnp.zeros((batch, self.hidden), projected.dtype)
    (h, _), outputs = jax.lax.scan(step, (zeros, zeros), (projected, mask))
    return jnp.swapaxes(outputs, 0, 1), h


class LSTMEncoder(nnx.Module):
  """Stacked, optionally bidirectional LSTM.

  x [B, L, D], lengths [B] -> (outputs [B, L, H*dirs], final [B, H*dirs]).
  """

  def __init__(self, in_features, hidden, layers=1, bidirectional=False, dropout=0.0,
               *, rngs):
    dirs = 2 if bidirectional else 1
    self.bidirectional = bidirectional
    self.forward_layers = nnx.List([
        LSTMLayer(in_features if i == 0 else hidden * dirs, hidden, rngs=rngs)
        for i in range(layers)])
    self.backward_layers = nnx.List([
        LSTMLayer(in_features if i == 0 else hidden * dirs, hidden, rngs=rngs)
        for i in range(layers)] if bidirectional else [])
    self.dropout = nnx.Dropout(dropout)
    self.out_features = hidden * dirs

  def __call__(self, x, lengths, key=None):
    keys = split_key(key, len(self.forward_layers))
    for i, forward in enumerate(self.forward_layers):
      if i > 0:
        x = self.dropout(x, deterministic=keys[i] is None, rngs=keys[i])
      out, final = forward(x, lengths)
      if self.bidirectional:
        back_out, back_final = self.backward_layers[i](reverse_within_length(x, lengths),
                                                       lengths)
        out = jnp.concatenate([out, reverse_within_length(back_out, lengths)], axis=-1)
        final = jnp.concatenate([final, back_final], axis=-1)
      x = out
    return x, final


class LSTMClassifier(nnx.Module):
  """tokens [B, L], lengths [B] -> logits [B, num_classes] from the final states."""

  def __init__(self, embeddings: Embeddings, num_classes: int, hidden=150, layers=1,
               bidirectional=False, dropout=0.5, *, rngs):
    self.embed = embeddings
    self.encoder = LSTMEncoder(embeddings.out_features, hidden, layers, bidirectional,
                               dropout, rngs=rngs)
    self.dropout = nnx.Dropout(dropout)
    self.head = nnx.Linear(self.encoder.out_features, num_classes, rngs=rngs)

  @classmethod
  def from_config(cls, config, embeddings, num_classes, *, rngs):
    return cls(embeddings, num_classes, config.lstm_hidden, config.lstm_layers,
               config.bidirectional, config.dropout, rngs=rngs)

  def __call__(self, tokens, lengths, key=None):
    k_in, k_enc, k_out = split_key(key, 3)
    x = self.dropout(self.embed(tokens), deterministic=k_in is None, rngs=k_in)
    _, final = self.encoder(x, lengths, k_enc)
    final = self.dropout(final, deterministic=k_out is None, rngs=k_out)
    return self.head(final)
