"""Convolution, ReLU and max-over-time pooling as one op with a sparse backward pass.

Kim's CNN keeps one value per (text, filter): the largest window. So the gradient
of the pooled features reaches exactly one window per (text, filter), and the
backward pass of the convolution only needs those windows:

  d kernel[k, :, f] = sum_b g[b, f] * x[b, t*(b, f) + k]      (B x F windows of w x D)
  d x[b, t*(b, f) + k] += g[b, f] * kernel[k, :, f]             (a scatter-add, same size)

where t*(b, f) is the argmax window. That is O(B F w D) work instead of the two
dense backward convolutions' O(B L F w D): at 50 x 400 tokens the backward pass
costs ~1% of the forward convolution's FLOPs, where autodiff's costs twice
them. Nothing of size [B, L, F] is kept for the backward pass either, only the
argmax indices [B, F].

It is the same function and the same gradient as autodiff of
relu(conv + bias) -> masked max, except where two windows of one text tie for
the maximum: autodiff splits the gradient between them, this sends it to the
first. Tied windows hold the same tokens (identical vectors), so the table's
gradient, summed by token id, is the same either way up to float rounding.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from textclf_jax.models.member_axis import per_member


def _conv(padded, kernel):
  return jax.lax.conv_general_dilated(padded, kernel, (1,), "VALID",
                                      dimension_numbers=("NWC", "WIO", "NWC"))


_member_conv = per_member(_conv)
_member_conv_vjp = per_member(
    lambda padded, kernel, dy: jnp.concatenate(
        [a.reshape(-1) for a in jax.vjp(_conv, padded, kernel)[1](dy)]))


@jax.custom_vjp
def valid_conv(padded, kernel):
  """padded [B, P, D], kernel [w, D, F] -> [B, P - w + 1, F]: a VALID 1-D
  convolution, with autodiff's gradient, run per member under vmap."""
  return _member_conv(padded, kernel)


def _valid_conv_fwd(padded, kernel):
  return _member_conv(padded, kernel), (padded, kernel)


def _valid_conv_bwd(res, dy):
  padded, kernel = res
  flat = _member_conv_vjp(padded, kernel, dy)
  return flat[:padded.size].reshape(padded.shape), flat[padded.size:].reshape(kernel.shape)


valid_conv.defvjp(_valid_conv_fwd, _valid_conv_bwd)


def window_scores(x, kernel, width: int):
  """x [B, L, D], kernel [w, D, F] -> [B, L + w - 1, F] without bias.

  Wide convolution as in Kim's code: w - 1 zero vectors on each side of the
  text, so n-grams that overlap its start or end are seen too. Window t covers
  positions t - w + 1 .. t.
  """
  # Padding the input, not the convolution: XLA:CPU runs a padded
  # convolution ~10x slower than a VALID one on a padded input.
  padded = jnp.pad(x, ((0, 0), (width - 1, width - 1), (0, 0)))
  return valid_conv(padded, kernel)


def _forward(x, kernels, biases, lengths):
  features, residuals = [], []
  for kernel, bias in zip(kernels, biases):
    width = kernel.shape[0]
    h = window_scores(x, kernel, width)  # [B, T, F]
    valid = jnp.arange(h.shape[1])[None, :] < (lengths + width - 1)[:, None]  # [B, T]
    masked = jnp.where(valid[..., None], h, -jnp.inf)
    top = jnp.max(masked, axis=1)  # [B, F]
    # The first maximal window (argmax's tie rule), as a min-reduce: XLA:CPU
    # vectorises it, unlike its argmax (a variadic reduce, ~40x slower).
    steps = jnp.arange(h.shape[1], dtype=jnp.int32)[None, :, None]
    best = jnp.min(jnp.where(masked == top[:, None, :], steps, h.shape[1]), axis=1)
    top = top + bias
    # A window is valid while it overlaps the text; width 1 and an empty text have none.
    active = (top > 0) & valid.any(axis=1)[:, None]
    features.append(jnp.where(active, top, 0.0))
    residuals.append((best, active))
  return jnp.concatenate(features, axis=-1), residuals


@jax.custom_vjp
def conv_relu_max(x, kernels, biases, lengths):
  """Kim's feature extractor for several filter widths.

  x [B, L, D] (zero past each length), kernels: per width [w, D, F], biases:
  per width [F], lengths [B] -> [B, F * widths]: for each width and filter,
  relu(max over the windows that overlap the text of conv(x) + bias); 0 for a
  text with no such window.
  """
  return _forward(x, kernels, biases, lengths)[0]


def _conv_relu_max_fwd(x, kernels, biases, lengths):
  features, residuals = _forward(x, kernels, biases, lengths)
  margin = max(kernel.shape[0] for kernel in kernels) - 1
  padded = jnp.pad(x, ((0, 0), (margin, margin), (0, 0)))  # the widest conv's input
  return features, (padded, kernels, residuals)


def _conv_relu_max_bwd(res, grad):
  padded, kernels, residuals = res
  batch, padded_length, dim = padded.shape
  margin = max(kernel.shape[0] for kernel in kernels) - 1
  flat = padded.reshape(batch * padded_length, dim)
  # Filter-major ([F, B, w, ...]) throughout: the per-filter sums over the batch
  # are then batched dots with no transposes of the gathered windows.
  row_start = (jnp.arange(batch, dtype=jnp.int32) * padded_length)[None, :, None]
  d_flat = jnp.zeros_like(flat)
  d_kernels, d_biases, start = [], [], 0
  for kernel, (best, active) in zip(kernels, residuals):
    width, _, filters = kernel.shape
    g = jnp.where(active, grad[:, start:start + filters], 0.0)  # [B, F]
    start += filters
    # Summed over the batch in [B, F]: the same order of additions with and
    # without a vmapped member axis (a [F, B] row sum is not).
    d_biases.append(g.sum(axis=0))
    g = g.T  # [F, B]
    # Rows of the chosen windows in the widest padding: t + k + margin - (w - 1).
    offsets = jnp.arange(width, dtype=jnp.int32) + margin - (width - 1)
    rows = row_start + best.T[:, :, None] + offsets  # [F, B, w]
    windows = jnp.take(flat, rows, axis=0)  # [F, B, w, D]
    d_kernel = jnp.einsum("fb,fbkd->fkd", g, windows)
    d_kernels.append(jnp.transpose(d_kernel, (1, 2, 0)).astype(kernel.dtype))  # [w, D, F]
    contribution = g[:, :, None, None] * jnp.transpose(kernel, (2, 0, 1))[:, None]
    d_flat = d_flat.at[rows.reshape(-1)].add(contribution.reshape(-1, dim).astype(flat.dtype))
  length = padded_length - 2 * margin
  dx = d_flat.reshape(padded.shape)[:, margin:margin + length]  # padding rows dropped
  return dx, tuple(d_kernels), tuple(d_biases), None


conv_relu_max.defvjp(_conv_relu_max_fwd, _conv_relu_max_bwd)
