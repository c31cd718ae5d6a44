"""Integrated gradients (Sundararajan et al. 2017) over a text's embedded tokens.

For an embedded text x [L, E] and the baseline x' = 0 (every position's vector
zero, which is also what the padding id embeds to here), the attribution of
token l to the logit F of one label is

    a_l = sum_e x[l, e] * integral_0^1 dF/dx[l, e] (alpha * x) d alpha,

the integral taken by a quadrature rule over `steps` points of the straight path.
Completeness: sum_l a_l = F(x) - F(x') up to the quadrature error, which is
measured and reported per text. For multichannel embeddings (a frozen and a
fine-tuned copy, concatenated on the feature axis) e runs over both channels, so
a token's attribution is the sum over its two vectors.

All path points of all explained labels are rows of one batch, and one
`jax.grad` of the sum of their selected logits gives each row's own gradient
(the rows of these models are independent in eval mode: no dropout, no
batch statistics).
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

RULES = ("trapezoid", "gausslegendre")
BASELINE = "zero embeddings (the padding vector)"


def path_points(steps: int, rule: str = "gausslegendre"):
  """Quadrature nodes alphas [S] in [0, 1] and weights [S] summing to 1.

  trapezoid: steps + 1 evenly spaced points, ends included (exact on each linear
  piece of a ReLU/max network's path). gausslegendre: `steps` Gauss-Legendre
  nodes (Captum's default; faster convergence on smooth models such as the LSTM).
  """
  if steps < 1:
    raise ValueError(f"steps={steps}: expected >= 1")
  if rule == "trapezoid":
    alphas = np.linspace(0.0, 1.0, steps + 1)
    weights = np.full(steps + 1, 1.0 / steps)
    weights[[0, -1]] /= 2
  elif rule == "gausslegendre":
    nodes, weights = np.polynomial.legendre.leggauss(steps)
    alphas, weights = (nodes + 1) / 2, weights / 2
  else:
    raise ValueError(f"rule={rule!r}: expected one of {', '.join(RULES)}")
  return alphas.astype(np.float32), weights.astype(np.float32)


def completeness(attributions, logit: float, baseline_logit: float, tolerance: float) -> dict:
  """The check sum(a) = F(x) - F(x'): the gap and whether |gap| <= tolerance *
  max(1, |F(x) - F(x')|) (relative for large differences, absolute for small)."""
  total = float(np.sum(attributions, dtype=np.float64))
  delta = float(logit) - float(baseline_logit)
  gap = total - delta
  return {"sum": total, "delta": delta, "gap": gap, "tolerance": tolerance,
          "ok": bool(abs(gap) <= tolerance * max(1.0, abs(delta)))}


@functools.partial(jax.jit, static_argnums=(0,))
def _embed(graphdef, params, frozen, tokens):
  """tokens [L] -> embedded [L, E] (float32)."""
  model = nnx.merge(graphdef, params, frozen)
  return model.embed(tokens[None])[0].astype(jnp.float32)


@functools.partial(jax.jit, static_argnums=(0,))
def _logits(graphdef, params, frozen, x, lengths):
  """x [B, L, E], lengths [B] -> logits [B, C] in eval mode (no dropout)."""
  return nnx.merge(graphdef, params, frozen).classify(x, lengths).astype(jnp.float32)


@functools.partial(jax.jit, static_argnums=(0,))
def _path_gradients(graphdef, params, frozen, x, length, targets, alphas, weights):
  """x [L, E], length [], targets [K], alphas/weights [S] -> the path integral of the
  gradient, weighted by the quadrature, for each target: [K, L, E]."""
  model = nnx.merge(graphdef, params, frozen)
  k, s = targets.shape[0], alphas.shape[0]
  rows = jnp.tile(alphas, k)[:, None, None] * x[None]  # [K * S, L, E], target-major
  row_targets = jnp.repeat(targets, s)
  lengths = jnp.full((k * s,), length, jnp.int32)

  def selected(rows):
    logits = model.classify(rows, lengths).astype(jnp.float32)
    return jnp.sum(jnp.take_along_axis(logits, row_targets[:, None], axis=1))

  grads = jax.grad(selected)(rows).reshape(k, s, *x.shape)
  return jnp.einsum("s,ksle->kle", weights, grads)


class Attributor:
  """Integrated gradients for a restored model (graphdef + params + frozen state)."""

  def __init__(self, graphdef, params, frozen, steps: int = 50, rule: str = "gausslegendre"):
    self.graphdef, self.params, self.frozen = graphdef, params, frozen
    self.steps, self.rule = steps, rule
    self.alphas, self.weights = path_points(steps, rule)

  def embed(self, ids: np.ndarray) -> jax.Array:
    """ids [L] int32 (0-padded) -> x [L, E]; padding positions are zero."""
    return _embed(self.graphdef, self.params, self.frozen, jnp.asarray(ids, jnp.int32))

  def logits(self, x, lengths) -> np.ndarray:
    """x [B, L, E], lengths [B] -> logits [B, C]."""
    return np.asarray(_logits(self.graphdef, self.params, self.frozen, jnp.asarray(x),
                              jnp.asarray(lengths, jnp.int32)))

  def attribute(self, ids: np.ndarray, length: int, targets) -> dict:
    """Attributions of one text to the logits of `targets` (label indices).

    ids [L] int32 (0-padded), `length` tokens of it are the text. Returns
    {attributions [K, length], logits [C] at x, baseline_logits [C] at x' = 0}.
    """
    x = self.embed(ids)
    both = self.logits(jnp.stack([x, jnp.zeros_like(x)]), [length, length])
    integrated = _path_gradients(self.graphdef, self.params, self.frozen, x,
                                 jnp.asarray(length, jnp.int32),
                                 jnp.asarray(targets, jnp.int32), jnp.asarray(self.alphas),
                                 jnp.asarray(self.weights))
    per_token = np.asarray(jnp.einsum("le,kle->kl", x, integrated), np.float64)
    return {"attributions": per_token[:, :length], "logits": both[0],
            "baseline_logits": both[1]}
