"""Dropout whose rate can differ between the members of a vmapped group."""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx


class Dropout(nnx.Dropout):
  """nnx.Dropout, plus `keep_prob`: a traced float32 scalar (1 - a group member's
  own rate, `textclf_jax.training.group`) that replaces 1 - rate for this call.

  With keep_prob = float32(1 - rate) the mask and the scaling are nnx.Dropout's
  to the bit (the same uniform draws compared with the same float32 threshold),
  so a member matches its solo run.
  """

  def __call__(self, inputs, *, deterministic=None, rngs=None, keep_prob=None):
    if keep_prob is None or deterministic:
      return super().__call__(inputs, deterministic=deterministic, rngs=rngs)
    mask = jax.random.bernoulli(rngs, p=keep_prob, shape=inputs.shape)
    return jax.lax.select(mask, inputs / keep_prob.astype(inputs.dtype), jnp.zeros_like(inputs))
