"""LSTM scanned over time with `jax.lax.scan`, masked by sequence length.

Everything runs time-major ([L, ...]): the input projection of every step is one
matmul outside the scan, made directly in the layout the scan reads, and the
scan carries only the recurrent matmul. Past a sequence's length the state is
frozen, so the final carry is the state at the last real token. The backward
direction reverses each sequence within its own length, and both directions
run in the same scan (one batched matmul per step). The recurrence has a
hand-written VJP: its backward scan carries only dh, dc, and the recurrent
kernel's gradient is one matmul over all steps afterwards (autodiff of a scan
would accumulate it with a matmul per step). A layer whose per-step outputs
nobody reads (the last layer of a classifier) neither stores them nor reads
their (zero) gradients.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
from flax import nnx

from textclf_jax.models import chunked
from textclf_jax.models.base import TextClassifier
from textclf_jax.models.cnn import split_key
from textclf_jax.models.dropout import Dropout
from textclf_jax.models.embeddings import Embeddings


def reverse_within_length(x, lengths, axis=1):
  """x with each row's first `length` steps along `axis` (1: [B, L, ...], 0:
  [L, B, ...]) reversed, padding left in place."""
  steps = jnp.arange(x.shape[axis])[:, None]  # [L, 1]
  index = jnp.where(steps < lengths[None, :], lengths[None, :] - 1 - steps, steps)  # [L, B]
  index = index if axis == 0 else index.T
  index = index.reshape(index.shape + (1,) * (x.ndim - 2))
  return jnp.take_along_axis(x, index, axis=axis)


def _gate_lanes(four_h):
  """[4H] bool (the tanh lanes, gate g) and [4H] float (+1 on the forget lanes)."""
  lane = jnp.arange(four_h) // (four_h // 4)
  return lane == 2, (lane == 1).astype(jnp.float32)


def _cell(z, h, c, kernel):
  """One step for G directions: z [G, B, 4H], h, c [G, B, H], kernel [G, H, 4H].

  Returns the activated gates [G, B, 4H] (i, f, g, o), the new c and h."""
  a = z + jnp.einsum("gbh,ghk->gbk", h, kernel)
  is_tanh, forget_bias = _gate_lanes(a.shape[-1])
  gates = jnp.where(is_tanh, jnp.tanh(a), jax.nn.sigmoid(a + forget_bias.astype(a.dtype)))
  i, f, g, o = jnp.split(gates, 4, axis=-1)
  c_new = f * c + i * g
  return gates, c_new, o * jnp.tanh(c_new)


def _recurrence_fwd(z, mask, kernel, unroll, with_outputs=True):
  steps, batch, four_h = z[0].shape
  zeros = jnp.zeros((len(z), batch, four_h // 4), z[0].dtype)

  def step(carry, inputs):
    h, c = carry
    z_t, m = inputs
    gates, c_new, h_new = _cell(jnp.stack(z_t), h, c, kernel)
    saved = (h, c, gates)
    out = tuple(jnp.where(m[0], h_new, 0.0)) if with_outputs else None
    return (jnp.where(m, h_new, h), jnp.where(m, c_new, c)), (out, saved)

  (h, _), (outputs, saved) = jax.lax.scan(step, (zeros, zeros), (z, mask), unroll=unroll)
  return ((outputs, h) if with_outputs else h), (saved, mask, kernel)


@functools.partial(jax.custom_vjp, nondiff_argnums=(3, 4))
def recurrence(z, mask, kernel, unroll=1, with_outputs=True):
  """Masked LSTM recurrence for G stacked directions.

  z: G arrays [L, B, 4H] (input projections, gates i, f, g, o; one per
  direction, so that each is its own matmul's output and its gradient its own
  matmul's input), mask [L, 1, B, 1] bool, kernel [G, H, 4H] -> (outputs: G
  arrays [L, B, H] zero where masked, final h [G, B, H]), or only the final h
  if not `with_outputs`. The forget gate gets +1 before its sigmoid.
  """
  return _recurrence_fwd(z, mask, kernel, unroll, with_outputs)[0]


def _recurrence_vjp_fwd(z, mask, kernel, unroll=1, with_outputs=True):
  return _recurrence_fwd(z, mask, kernel, unroll, with_outputs)


def _recurrence_vjp_bwd(unroll, with_outputs, res, cotangents):
  (h_prev, c_prev, gates), mask, kernel = res
  d_outputs, d_final = cotangents if with_outputs else (None, cotangents)
  kernel_t = jnp.swapaxes(kernel, 1, 2)
  is_tanh, _ = _gate_lanes(gates.shape[-1])

  def step(carry, inputs):
    dh, dc = carry
    dy, m, h_p, c_p, gates_t = inputs
    i, f, g, o = jnp.split(gates_t, 4, axis=-1)
    tanh_c = jnp.tanh(f * c_p + i * g)
    dh_new = jnp.where(m, dh if dy is None else dh + dy, 0.0)
    dc_new = jnp.where(m, dc, 0.0) + dh_new * o * (1.0 - tanh_c * tanh_c)
    d_gates = jnp.concatenate([dc_new * g, dc_new * c_p, dc_new * i, dh_new * tanh_c], axis=-1)
    da = d_gates * jnp.where(is_tanh, 1.0 - gates_t * gates_t, gates_t * (1.0 - gates_t))
    dh_prev = jnp.einsum("gbk,gkh->gbh", da, kernel_t) + jnp.where(m, 0.0, dh)
    dc_prev = dc_new * f + jnp.where(m, 0.0, dc)
    return (dh_prev, dc_prev), tuple(da)

  zeros = jnp.zeros_like(d_final)
  if d_outputs is not None:
    d_outputs = jnp.stack(d_outputs, axis=1)  # [L, G, B, H]
  _, dz = jax.lax.scan(step, (d_final, zeros), (d_outputs, mask, h_prev, c_prev, gates),
                       reverse=True, unroll=unroll)
  d_kernel = jnp.stack([jnp.einsum("lbh,lbk->hk", h_prev[:, g], dz_g)
                        for g, dz_g in enumerate(dz)])
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
    outputs, final = run_directions([self], [jnp.swapaxes(x, 0, 1)], lengths)
    return jnp.swapaxes(outputs[0], 0, 1), final[0]


def time_mask(steps, lengths):
  """[L, 1, B, 1] bool: step < length."""
  return (jnp.arange(steps)[:, None] < lengths[None, :])[:, None, :, None]


def run_directions(layers, inputs, lengths, unroll=1, with_outputs=True):
  """LSTM layers over their time-major inputs [L, B, D] in one scan.

  Returns (outputs: G arrays [L, B, H], final h [G, B, H]) for the G layers,
  or only the final h if not `with_outputs`.
  """
  z = tuple(layer.input_proj(x) for layer, x in zip(layers, inputs))
  kernel = jnp.stack([layer.recurrent.kernel[...] for layer in layers]).astype(z[0].dtype)
  return recurrence(z, time_mask(z[0].shape[0], lengths), kernel, unroll, with_outputs)


class LSTMEncoder(nnx.Module):
  """Stacked, optionally bidirectional LSTM.

  x [B, L, D], lengths [B] -> (outputs [B, L, H*dirs], final [B, H*dirs]);
  outputs is None with `final_only` (then the last layer stores no per-step outputs).
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
    self.dropout = Dropout(dropout)
    self.out_features = hidden * dirs

  def __call__(self, x, lengths, key=None, final_only=False, dropout_keep=None):
    keys = split_key(key, len(self.forward_layers))
    x = jnp.swapaxes(x, 0, 1)  # time-major [L, B, D] from here on
    last = len(self.forward_layers) - 1
    for i, forward in enumerate(self.forward_layers):
      if i > 0:
        x = self.dropout(x, deterministic=keys[i] is None, rngs=keys[i],
                         keep_prob=dropout_keep)
      with_outputs = not (final_only and i == last)
      layers, inputs = [forward], [x]
      if self.bidirectional:
        layers.append(self.backward_layers[i])
        inputs.append(reverse_within_length(x, lengths, axis=0))
      result = run_directions(layers, inputs, lengths, with_outputs=with_outputs)
      outs, finals = result if with_outputs else (None, result)
      final = jnp.concatenate(list(finals), axis=-1)  # [B, H * dirs]
      if with_outputs:
        parts = [outs[0]]
        if self.bidirectional:
          parts.append(reverse_within_length(outs[1], lengths, axis=0))
        x = jnp.concatenate(parts, axis=-1)  # [L, B, H * dirs]
    return (None if final_only else jnp.swapaxes(x, 0, 1)), final


def add_encoder_and_head(model: nnx.Module, in_features: int, num_classes: int, hidden: int,
                         layers: int, bidirectional: bool, dropout: float, rngs) -> None:
  """Gives an LSTM classifier (plain or CNN-fed) its recurrent part: .encoder over
  in_features, .dropout, .head [H * dirs -> num_classes] and .chunks, drawn in that
  order (a run's parameters depend on the order)."""
  model.encoder = LSTMEncoder(in_features, hidden, layers, bidirectional, dropout, rngs=rngs)
  model.dropout = Dropout(dropout)
  model.head = nnx.Linear(model.encoder.out_features, num_classes, rngs=rngs)
  model.chunks = None  # a chunked.ChunkPool when config.chunk_len > 0 (models.build_model)


POOLS = ("final", "max")


class LSTMClassifier(TextClassifier):
  """tokens [B, L], lengths [B] -> logits [B, num_classes] from the final states
  (pool final) or the max over time of the last layer's states (pool max)."""

  reads_windows = True
  reads_states = True

  def __init__(self, embeddings: Embeddings, num_classes: int, hidden=150, layers=1,
               bidirectional=False, dropout=0.5, pool="final", *, rngs):
    self.pool = pool
    self.embed = embeddings
    add_encoder_and_head(self, embeddings.out_features, num_classes, hidden, layers,
                         bidirectional, dropout, rngs)

  @classmethod
  def from_config(cls, config, embeddings, num_classes, *, rngs):
    return cls(embeddings, num_classes, config.lstm_hidden, config.lstm_layers,
               config.bidirectional, config.dropout, config.get("lstm_pool", "final"),
               rngs=rngs)

  def encode(self, x, lengths, key=None, dropout_keep=None):
    """x [B, L, E] -> [B, H * dirs]: the final states, or their max over the text's steps
    (0 for a text without steps, an empty window)."""
    if self.pool == "final":
      return self.encoder(x, lengths, key, final_only=True, dropout_keep=dropout_keep)[1]
    outputs, _ = self.encoder(x, lengths, key, dropout_keep=dropout_keep)  # [B, L, H * dirs]
    valid = (jnp.arange(x.shape[1])[None, :] < lengths[:, None])[..., None]
    top = jnp.max(jnp.where(valid, outputs, -jnp.inf), axis=1)
    return jnp.where(lengths[:, None] > 0, top, 0.0)

  def __call__(self, tokens, lengths, key=None, trainable_vectors=None, dropout_keep=None,
               states=None):
    """dropout_keep: a group member's 1 - dropout rate (traced), or None: the config's.
    states: a frozen encoder's cached states (`TextClassifier.embed_tokens`), or None."""
    return self.classify(self.embed_tokens(tokens, trainable_vectors, states), lengths, key,
                         dropout_keep)

  def classify(self, x, lengths, key=None, dropout_keep=None):
    """Embedded texts x [B, L, E] (zero past each length) -> logits [B, num_classes]."""
    k_in, k_enc, k_out = split_key(key, 3)
    x = self.dropout(x, deterministic=k_in is None, rngs=k_in, keep_prob=dropout_keep)
    final = chunked.encode(self.chunks, lambda x, lengths: self.encode(
        x, lengths, k_enc, dropout_keep), x, lengths)
    final = self.dropout(final, deterministic=k_out is None, rngs=k_out, keep_prob=dropout_keep)
    return self.head(final)
