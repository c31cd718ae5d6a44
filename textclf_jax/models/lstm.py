"""LSTM scanned over time with `jax.lax.scan`, masked by sequence length.

The input projection of every time step is one matmul outside the scan; the
scan carries only the recurrent matmul. Past a sequence's length the state is
frozen, so the final carry is the state at the last real token. The backward
direction reverses each sequence within its own length, and both directions
run in the same scan (one batched matmul per step). The recurrence has a
hand-written VJP: its backward scan carries only dh, dc, and the recurrent
kernel's gradient is one matmul over all steps afterwards (autodiff of a scan
would accumulate it with a matmul per step).
"""

from __future__ import annotations

import functools

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


def _cell(z, h, c, kernel):
  """One step for G directions: z [G, B, 4H], h, c [G, B, H], kernel [G, H, 4H]."""
  a = z + jnp.einsum("gbh,ghk->gbk", h, kernel)
  a_i, a_f, a_g, a_o = jnp.split(a, 4, axis=-1)
  i, f, g, o = (jax.nn.sigmoid(a_i), jax.nn.sigmoid(a_f + 1.0), jnp.tanh(a_g),
                jax.nn.sigmoid(a_o))
  c_new = f * c + i * g
  return i, f, g, o, c_new, o * jnp.tanh(c_new)


def _recurrence_fwd(z, mask, kernel, unroll):
  steps, dirs, batch, four_h = z.shape
  zeros = jnp.zeros((dirs, batch, four_h // 4), z.dtype)

  def step(carry, inputs):
    h, c = carry
    z_t, m = inputs
    i, f, g, o, c_new, h_new = _cell(z_t, h, c, kernel)
    saved = (h, c, jnp.concatenate([i, f, g, o], axis=-1))
    return (jnp.where(m, h_new, h), jnp.where(m, c_new, c)), (jnp.where(m, h_new, 0.0), saved)

  (h, _), (outputs, saved) = jax.lax.scan(step, (zeros, zeros), (z, mask), unroll=unroll)
  return (outputs, h), (saved, mask, kernel)


@functools.partial(jax.custom_vjp, nondiff_argnums=(3,))
def recurrence(z, mask, kernel, unroll=1):
  """Masked LSTM recurrence for G stacked directions.

  z [L, G, B, 4H] (input projections, gates i, f, g, o), mask [L, 1, B, 1]
  bool, kernel [G, H, 4H] -> (outputs [L, G, B, H] zero where masked, final
  h [G, B, H]). The forget gate gets +1 before its sigmoid.
  """
  return _recurrence_fwd(z, mask, kernel, unroll)[0]


def _recurrence_vjp_fwd(z, mask, kernel, unroll=1):
  return _recurrence_fwd(z, mask, kernel, unroll)


def _recurrence_vjp_bwd(unroll, res, cotangents):
  (h_prev, c_prev, gates), mask, kernel = res
  d_outputs, d_final = cotangents
  kernel_t = jnp.swapaxes(kernel, 1, 2)

  def step(carry, inputs):
    dh, dc = carry
    dy, m, h_p, c_p, gates_t = inputs
    i, f, g, o = jnp.split(gates_t, 4, axis=-1)
    tanh_c = jnp.tanh(f * c_p + i * g)
    dh_new = jnp.where(m, dh + dy, 0.0)
    dc_new = jnp.where(m, dc, 0.0) + dh_new * o * (1.0 - tanh_c * tanh_c)
    da = jnp.concatenate([dc_new * g * i * (1.0 - i), dc_new * c_p * f * (1.0 - f),
                          dc_new * i * (1.0 - g * g), dh_new * tanh_c * o * (1.0 - o)], axis=-1)
    dh_prev = jnp.einsum("gbk,gkh->gbh", da, kernel_t) + jnp.where(m, 0.0, dh)
    dc_prev = dc_new * f + jnp.where(m, 0.0, dc)
    return (dh_prev, dc_prev), da

  zeros = jnp.zeros_like(d_final)
  _, dz = jax.lax.scan(step, (d_final, zeros), (d_outputs, mask, h_prev, c_prev, gates),
                       reverse=True, unroll=unroll)
  d_kernel = jnp.einsum("lgbh,lgbk->ghk", h_prev, dz)
  return dz, None, d_kernel


recurrence.defvjp(_recurrence_vjp_fwd, _recurrence_vjp_bwd)


class LSTMLayer(nnx.Module):
  """x [B, L, D], lengths [B] -> (outputs [B, L, H] zero past length, final h [B, H])."""

  def __init__(self, in_features: int, hidden: int, *, rngs: nnx.Rngs):
    self.hidden = hidden
    self.input_proj = nnx.Linear(in_features, 4 * hidden, rngs=rngs)
    self.recurrent = nnx.Linear(hidden, 4 * hidden, use_bias=False,
                                kernel_init=nnx.initializers.orthogonal(), rngs=rngs)

  def __call__(self, x, lengths):
    outputs, final = run_directions([self], [x], lengths)
    return outputs[0], final[0]


def time_mask(steps, lengths):
  """[L, 1, B, 1] bool: step < length."""
  return (jnp.arange(steps)[:, None] < lengths[None, :])[:, None, :, None]


def run_directions(layers, inputs, lengths, unroll=1):
  """LSTM layers over their inputs [B, L, D] in one scan.

  Returns (outputs [G, B, L, H], final h [G, B, H]) for the G layers.
  """
  z = jnp.stack([layer.input_proj(x) for layer, x in zip(layers, inputs)])  # [G, B, L, 4H]
  kernel = jnp.stack([layer.recurrent.kernel[...] for layer in layers]).astype(z.dtype)
  mask = time_mask(z.shape[2], lengths)
  outputs, final = recurrence(jnp.transpose(z, (2, 0, 1, 3)), mask, kernel, unroll)
  return jnp.transpose(outputs, (1, 2, 0, 3)), final


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
      if self.bidirectional:
        outs, finals = run_directions([forward, self.backward_layers[i]],
                                      [x, reverse_within_length(x, lengths)], lengths)
        x = jnp.concatenate([outs[0], reverse_within_length(outs[1], lengths)], axis=-1)
        final = jnp.concatenate([finals[0], finals[1]], axis=-1)
      else:
        outs, finals = run_directions([forward], [x], lengths)
        x, final = outs[0], finals[0]
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

  def __call__(self, tokens, lengths, key=None, trainable_vectors=None):
    k_in, k_enc, k_out = split_key(key, 3)
    x = self.dropout(self.embed(tokens, trainable_vectors), deterministic=k_in is None, rngs=k_in)
    _, final = self.encoder(x, lengths, k_enc)
    final = self.dropout(final, deterministic=k_out is None, rngs=k_out)
    return self.head(final)
