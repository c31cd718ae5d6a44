"""Kim-style n-grams of a CNN run: the window that wins max-over-time pooling.

Filter f of width w scores window t (positions t - w + 1 .. t of the wide
convolution, so windows may overlap the zero vectors around the text) as
conv(x)[t, f] + bias[f]; its feature is relu of the best score. The winning
n-gram is that window's tokens. What a filter does for class c is

    contribution[f, c] = feature[f] * W[f, c]              (multi-label: sigmoid per label)
    contribution[f, c] = feature[f] * (W[f, c] - mean_c' W[f, c'])   (single-label)

with W the head's kernel [features, classes]. For a softmax only the logits'
differences count (adding one number to every logit changes nothing), so a
single-label run's contributions are taken against the mean over classes; they
sum to (logit[c] - mean logit) - (bias[c] - mean bias) over the filters.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from textclf_jax.models.cnn import KimCNN
from textclf_jax.models.conv_pool import window_scores


def is_cnn(model) -> bool:
  return isinstance(model, KimCNN)


@functools.partial(jax.jit, static_argnums=(0,))
def _winners(graphdef, params, frozen, ids, lengths):
  """ids [B, L], lengths [B] -> (features [B, F_total], window end t [B, F_total])."""
  model = nnx.merge(graphdef, params, frozen)
  x = model.embed(ids).astype(jnp.float32)
  features, ends = [], []
  for width, conv in zip(model.widths, model.convs):
    h = window_scores(x, conv.kernel[...].astype(jnp.float32), width)  # [B, L + w - 1, F]
    valid = jnp.arange(h.shape[1])[None, :] < (lengths + width - 1)[:, None]
    masked = jnp.where(valid[..., None], h, -jnp.inf)
    ends.append(jnp.argmax(masked, axis=1).astype(jnp.int32))  # the first best window
    features.append(jax.nn.relu(jnp.max(masked, axis=1) + conv.bias[...]))
  return jnp.concatenate(features, axis=-1), jnp.concatenate(ends, axis=-1)


class FilterWinners:
  """The winning windows of a restored KimCNN's filters, and their contributions."""

  def __init__(self, graphdef, params, frozen, multi_label: bool):
    self.graphdef, self.params, self.frozen = graphdef, params, frozen
    model = nnx.merge(graphdef, params, frozen)
    self.widths = tuple(model.widths)
    self.num_filters = int(model.convs[0].kernel.shape[-1])
    # Per feature: its filter width and its index among that width's filters.
    self.feature_width = np.repeat(self.widths, self.num_filters)
    self.feature_index = np.tile(np.arange(self.num_filters), len(self.widths))
    kernel = np.asarray(model.head.kernel[...], np.float64)  # [F_total, C]
    self.weights = kernel if multi_label else kernel - kernel.mean(axis=1, keepdims=True)

  def winners(self, ids: np.ndarray, lengths: np.ndarray):
    """ids [B, L] int32, lengths [B] -> (features [B, F_total], first position of the
    winning window [B, F_total]; negative where it starts before the text)."""
    features, ends = _winners(self.graphdef, self.params, self.frozen,
                              jnp.asarray(ids, jnp.int32), jnp.asarray(lengths, jnp.int32))
    return (np.asarray(features, np.float64),
            np.asarray(ends) - (self.feature_width[None, :] - 1))

  def top_filters(self, ids, length: int, tokens: list, label: int, k: int) -> list:
    """The k filters with the largest contribution to `label` for one text (ids [L]):
    [{width, filter, ngram, start, end, activation, contribution}], end exclusive."""
    features, starts = self.winners(ids[None], np.asarray([length]))
    contribution = features[0] * self.weights[:, label]
    order = [f for f in np.argsort(-contribution, kind="stable")[:k] if contribution[f] > 0]
    rows = []
    for f in order:
      start = int(starts[0, f])
      lo, hi = max(start, 0), min(start + int(self.feature_width[f]), length)
      rows.append({"width": int(self.feature_width[f]), "filter": int(self.feature_index[f]),
                   "ngram": " ".join(tokens[lo:hi]), "start": lo, "end": hi,
                   "activation": round(float(features[0, f]), 6),
                   "contribution": round(float(contribution[f]), 6)})
    return rows

  def top_ngrams(self, ids: np.ndarray, lengths: np.ndarray, words: list, k: int,
                 batch_size: int = 256) -> list:
    """Over a split (ids [N, L], lengths [N]): per filter width and class, the k n-grams
    whose winning windows contribute most to that class in total.

    Returns [{width, label (index), top: [{ngram, contribution, texts (where it wins
    for at least one filter), wins ((text, filter) pairs), mean_activation}]}],
    widths ascending, then labels.
    """
    features, starts = [], []
    for lo in range(0, len(lengths), batch_size):
      f, s = self.winners(ids[lo:lo + batch_size], lengths[lo:lo + batch_size])
      features.append(f)
      starts.append(s)
    features, starts = np.concatenate(features), np.concatenate(starts)
    padded = np.pad(ids, ((0, 0), (max(self.widths), max(self.widths))))  # 0: padding id
    out = []
    for width in self.widths:
      cols = np.flatnonzero(self.feature_width == width)
      active = features[:, cols] > 0  # [N, F]: filters that fired
      rows, fs = np.nonzero(active)
      offsets = starts[rows, cols[fs]][:, None] + np.arange(width) + max(self.widths)
      windows = padded[rows[:, None], offsets]  # [M, w] token ids, 0 outside the text
      # Windows that differ only in the padding they overlap are one n-gram.
      keys, inverse = np.unique(windows, axis=0, return_inverse=True)
      names = np.asarray([" ".join(words[t] for t in key if t != 0) for key in keys])
      names, by_name = np.unique(names, return_inverse=True)
      inverse = by_name.reshape(-1)[inverse.reshape(-1)]
      activation = features[rows, cols[fs]]
      counts = np.bincount(inverse, minlength=len(names))  # (text, filter) wins
      texts = np.bincount(np.unique(np.stack([inverse, rows]), axis=1)[0], minlength=len(names))
      mean_act = np.bincount(inverse, activation, len(names)) / np.maximum(counts, 1)
      for label in range(self.weights.shape[1]):
        total = np.bincount(inverse, activation * self.weights[cols[fs], label], len(names))
        best = [i for i in np.argsort(-total, kind="stable")[:k] if total[i] > 0]
        out.append({"width": int(width), "label": label, "top": [
            {"ngram": str(names[i]),
             "contribution": round(float(total[i]), 4), "texts": int(texts[i]),
             "wins": int(counts[i]),
             "mean_activation": round(float(mean_act[i]), 4)} for i in best]})
    return out
