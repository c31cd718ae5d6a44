"""Word embeddings in Kim's four flavours.

rand: one trainable table, randomly initialised. static: pretrained, frozen.
non-static: pretrained, fine-tuned. multichannel: a frozen and a fine-tuned copy,
concatenated on the feature axis (a convolution over the two channels is a
convolution over the concatenation).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

KINDS = ("rand", "static", "non-static", "multichannel")


class FrozenEmbedding(nnx.Variable):
  """An embedding table the optimiser never sees (split off with `nnx.Param`)."""


class Embeddings(nnx.Module):
  """tokens [B, L] int32 -> vectors [B, L, out_features]; padding rows are zero."""

  def __init__(self, vocab_size: int, dim: int, kind: str = "rand",
               vectors: np.ndarray | None = None, init_scale: float = 0.25, *, rngs: nnx.Rngs):
    """init_scale: `rand` rows are drawn from U[-init_scale, init_scale] (Kim's 0.25)."""
    if vectors is not None and vectors.shape != (vocab_size, dim):
      raise ValueError(f"vectors shape {vectors.shape} != (vocab {vocab_size}, dim {dim})")
    self.kind = kind
    if kind == "rand":
      init = jax.random.uniform(rngs.params(), (vocab_size, dim), minval=-init_scale,
                                maxval=init_scale)
      self.trainable = nnx.Param(init.at[0].set(0.0))
    if kind in ("non-static", "multichannel"):
      self.trainable = nnx.Param(jnp.asarray(vectors))
    if kind in ("static", "multichannel"):
      self.frozen = FrozenEmbedding(jnp.asarray(vectors))
    self.out_features = dim * (2 if kind == "multichannel" else 1)

  def __call__(self, tokens: jax.Array, trainable_vectors: jax.Array | None = None) -> jax.Array:
    """`trainable_vectors` [B, L, D]: the trainable table's rows of `tokens`, already
    looked up (the sparse update differentiates them, not the table)."""
    mask = (tokens != 0)[..., None]
    parts = []
    if self.kind in ("static", "multichannel"):
      parts.append(jnp.take(self.frozen[...], tokens, axis=0))
    if self.kind != "static":
      parts.append(jnp.take(self.trainable[...], tokens, axis=0)
                   if trainable_vectors is None else trainable_vectors)
    return jnp.where(mask, jnp.concatenate(parts, axis=-1), 0.0)
