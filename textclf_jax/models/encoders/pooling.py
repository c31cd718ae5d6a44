"""From an encoder's hidden states to one vector per text: pick the layers (one, the mean
of the last k, or a learned scalar mix), then pool the tokens ([CLS] or masked mean)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx


def cls_pool(hidden):
  """hidden [B, T, H] -> the first token's vector [B, H] (BERT's [CLS], RoBERTa's <s>)."""
  return hidden[:, 0]


def mean_pool(hidden, mask):
  """hidden [B, T, H], mask [B, T] (1 = token) -> mean over the text's tokens [B, H],
  special tokens included (as sentence-transformers). Padding contributes nothing, so a
  text's vector does not depend on how far its batch is padded. Summed in float32."""
  m = mask.astype(jnp.float32)[..., None]
  total = jnp.sum(hidden.astype(jnp.float32) * m, axis=1)
  return (total / jnp.maximum(jnp.sum(m, axis=1), 1e-9)).astype(hidden.dtype)


def pool(hidden, mask, how: str):
  """`how` in ("cls", "mean")."""
  if how == "cls":
    return cls_pool(hidden)
  if how == "mean":
    return mean_pool(hidden, mask)
  raise ValueError(f"pooling={how!r}: expected 'cls' or 'mean'")


def mean_last(states, k: int):
  """states [L + 1, B, T, H] -> the mean of the last k hidden states [B, T, H]."""
  if not 1 <= k <= states.shape[0]:
    raise ValueError(f"mean of the last {k} hidden states: the encoder has {states.shape[0]}")
  return jnp.mean(states[-k:].astype(jnp.float32), axis=0).astype(states.dtype)


class ScalarMix(nnx.Module):
  """gamma * sum_l softmax(w)_l * states[l] (Peters et al. 2018, ELMo; Flair's
  `layer_mean=False` mix): states [L, B, T, H] -> [B, T, H]. w starts at 0 (the plain
  mean), gamma at 1; both float32, learned with the classifier."""

  def __init__(self, num_states: int):
    self.weights = nnx.Param(jnp.zeros((num_states,), jnp.float32))
    self.gamma = nnx.Param(jnp.ones((), jnp.float32))

  def __call__(self, states):
    if states.shape[0] != self.weights.shape[0]:
      raise ValueError(f"ScalarMix of {self.weights.shape[0]} states given {states.shape[0]}")
    w = jax.nn.softmax(self.weights[...])
    mixed = jnp.einsum("l,l...->...", w, states.astype(jnp.float32))
    return (self.gamma[...] * mixed).astype(states.dtype)
