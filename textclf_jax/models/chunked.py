"""Chunk-and-pool for long documents: a text is read as fixed windows, each encoded
by the model's own encoder, and the windows' features are pooled.

A batch of embedded texts x [B, L, E] longer than chunk_len C is cut into
W = ceil((L - C) / s) + 1 windows starting every s (chunk_stride) tokens, the
last one zero-padded; window w of a text of n tokens holds
clip(n - w s, 0, C) of them. The encoder sees the B W windows as one batch
[B W, C, E] (for the LSTM: C sequential steps instead of L) and gives features
[B, W, F]. A text of n tokens has num_windows(n) windows of its own, the last
one reaching its end; the others (empty, or holding only tokens that its last
window holds too) are masked out of the pooling. max and mean pool the features;
attention (Yang et al. 2016) scores tanh(A f + b) . q per window, a masked
softmax over the windows, and takes the weighted sum. A batch no longer than C
is read whole, as by the plain model: one window, which every pooling passes
through unchanged.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

POOLS = ("max", "mean", "attention")


def num_windows(length: int, chunk_len: int, stride: int) -> int:
  """Windows of `chunk_len` every `stride` tokens that cover `length` tokens."""
  return 1 if length <= chunk_len else math.ceil((length - chunk_len) / stride) + 1


def fit_length(length: int, chunk_len: int, stride: int) -> int:
  """The padded length >= `length` whose windows have no padding past the last one."""
  return length if length <= chunk_len else (
      chunk_len + (num_windows(length, chunk_len, stride) - 1) * stride)


def to_windows(x, lengths, chunk_len: int, stride: int):
  """x [B, L, ...], lengths [B] -> windows [B, W, chunk_len, ...], their lengths [B, W]."""
  batch, length = x.shape[:2]
  count = num_windows(length, chunk_len, stride)
  padded = fit_length(length, chunk_len, stride)
  x = jnp.pad(x, [(0, 0), (0, padded - length)] + [(0, 0)] * (x.ndim - 2))
  starts = np.arange(count) * stride
  if stride == chunk_len:  # back to back: a reshape
    windows = x.reshape((batch, count, chunk_len) + x.shape[2:])
  else:  # overlapping (or gapped): a gather of [W, C] positions
    windows = jnp.take(x, starts[:, None] + np.arange(chunk_len)[None, :], axis=1)
  window_lengths = jnp.clip(lengths[:, None] - starts[None, :], 0, chunk_len)
  return windows, window_lengths.astype(lengths.dtype)


class ChunkPool(nnx.Module):
  """Runs an encoder over windows of the text and pools the windows' features.

  features: F, the encoder's output size. chunk_len, stride: C and s (0: C).
  pool: max | mean | attention (which has params: A [F, F], b [F], q [F]).
  """

  def __init__(self, features: int, chunk_len: int, stride: int = 0, pool: str = "max",
               *, rngs: nnx.Rngs):
    self.chunk_len, self.stride, self.pool = int(chunk_len), int(stride or chunk_len), pool
    if pool == "attention":
      self.attend = nnx.Linear(features, features, rngs=rngs)
      self.query = nnx.Param(nnx.initializers.normal(features ** -0.5)(
          rngs.params(), (features,)))

  @classmethod
  def from_config(cls, config, features: int, *, rngs):
    return cls(features, config.chunk_len, config.chunk_stride, config.chunk_pool, rngs=rngs)

  def fit_length(self, length: int) -> int:
    return fit_length(length, self.chunk_len, self.stride)

  def __call__(self, encode, x, lengths):
    """encode(x [N, T, E], lengths [N]) -> [N, F]; x [B, L, E], lengths [B] -> [B, F]."""
    if x.shape[1] <= self.chunk_len:
      return encode(x, lengths)
    windows, window_lengths = to_windows(x, lengths, self.chunk_len, self.stride)
    batch, count = window_lengths.shape
    features = encode(windows.reshape((batch * count,) + windows.shape[2:]),
                      window_lengths.reshape(-1))
    features = features.reshape(batch, count, -1)
    # A text of n tokens has its own windows 0 .. num_windows(n) - 1; later ones are
    # empty or (overlapping) hold only tokens its last window holds too.
    needed = (jnp.maximum(lengths - self.chunk_len, 0) + self.stride - 1) // self.stride + 1
    return self.pool_windows(features, jnp.arange(count)[None, :] < needed[:, None])

  def pool_windows(self, features, mask):
    """features [B, W, F], mask [B, W] bool (window 0 set for every text) -> [B, F]."""
    if self.pool == "max":
      return jnp.max(jnp.where(mask[..., None], features, -jnp.inf), axis=1)
    if self.pool == "mean":
      total = jnp.sum(jnp.where(mask[..., None], features, 0.0), axis=1)
      return total / jnp.sum(mask, axis=1, keepdims=True).astype(features.dtype)
    scores = jnp.tanh(self.attend(features)) @ self.query[...].astype(features.dtype)  # [B, W]
    weights = jax.nn.softmax(jnp.where(mask, scores, -jnp.inf), axis=1)
    return jnp.einsum("bw,bwf->bf", weights, jnp.where(mask[..., None], features, 0.0))


def encode(chunks: ChunkPool | None, encoder, x, lengths):
  """encoder(x, lengths) -> [B, F] on the whole text, or chunk-and-pooled by `chunks`."""
  return encoder(x, lengths) if chunks is None else chunks(encoder, x, lengths)
