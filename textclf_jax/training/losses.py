"""Per-example losses. logits [B, C]; labels [B] int (single) or [B, C] 0/1 (multi).

Every loss returns [B]; `weighted_mean` averages with the batch's example
weights (0 for padding rows), so padding never changes the loss.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax

LOSSES = ("auto", "softmax_ce", "sigmoid_bce", "focal")


def softmax_cross_entropy(logits, labels, label_smoothing=0.0, class_weights=None):
  """-sum_c q_c log p_c with q = one-hot smoothed by `label_smoothing`; x w[label]."""
  num_classes = logits.shape[-1]
  targets = optax.smooth_labels(jax.nn.one_hot(labels, num_classes), label_smoothing) \
      if label_smoothing else jax.nn.one_hot(labels, num_classes)
  loss = optax.softmax_cross_entropy(logits, targets)
  return loss if class_weights is None else loss * class_weights[labels]


def softmax_focal(logits, labels, gamma=2.0, class_weights=None):
  """Lin et al. (2017) focal loss on the softmax: -(1 - p_t)^gamma log p_t.

  1 - p_t is computed as -expm1(log p_t), and where it is exactly 0 (a saturated
  softmax) the modulating factor is 0 with a zero gradient: the derivative of
  x^gamma, gamma x^(gamma - 1), is infinite at x = 0 for gamma < 1, and inf * 0
  made every gradient NaN (TREC, focal gamma 0.5, in the loss study).
  """
  log_p = jax.nn.log_softmax(logits)
  log_pt = jnp.take_along_axis(log_p, labels[:, None], axis=-1)[:, 0]
  one_minus_pt = -jnp.expm1(log_pt)
  positive = one_minus_pt > 0
  modulator = jnp.where(positive, jnp.where(positive, one_minus_pt, 1.0) ** gamma, 0.0)
  loss = -modulator * log_pt
  return loss if class_weights is None else loss * class_weights[labels]


def sigmoid_binary_cross_entropy(logits, labels, pos_weight=None):
  """Mean over labels of BCE; positives weighted by `pos_weight` [C] if given."""
  log_p, log_not_p = jax.nn.log_sigmoid(logits), jax.nn.log_sigmoid(-logits)
  pos = labels * log_p * (1.0 if pos_weight is None else pos_weight)
  return -jnp.mean(pos + (1.0 - labels) * log_not_p, axis=-1)


def sigmoid_focal(logits, labels, gamma=2.0, pos_weight=None):
  loss = optax.sigmoid_focal_loss(logits, labels, alpha=None, gamma=gamma)
  if pos_weight is not None:
    loss = loss * jnp.where(labels > 0, pos_weight, 1.0)
  return jnp.mean(loss, axis=-1)


def weighted_mean(losses, weights):
  return jnp.sum(losses * weights) / jnp.maximum(jnp.sum(weights), 1e-9)


def resolve_loss_name(name: str, multi_label: bool) -> str:
  if name not in LOSSES:
    raise ValueError(f"config.loss={name!r}: expected one of {', '.join(LOSSES)}")
  if name == "auto":
    return "sigmoid_bce" if multi_label else "softmax_ce"
  if name == "softmax_ce" and multi_label:
    raise ValueError("config.loss=softmax_ce: the dataset is multi-label; use sigmoid_bce")
  if name == "sigmoid_bce" and not multi_label:
    raise ValueError("config.loss=sigmoid_bce: the dataset is single-label; use softmax_ce")
  return name


def make_loss_fn(config, multi_label: bool, class_weights=None):
  """Returns loss(logits, labels, class_weights=None) -> [B] for the config's loss.

  The weights given to a call (a group member's own [C], traced) replace
  `class_weights`, the run's.
  """
  name = resolve_loss_name(config.loss, multi_label)
  default = None if class_weights is None else jnp.asarray(class_weights, jnp.float32)
  if multi_label:
    if name == "focal":
      loss = lambda logits, labels, w: sigmoid_focal(logits, labels, config.focal_gamma, w)
    else:
      loss = sigmoid_binary_cross_entropy
  elif name == "focal":
    loss = lambda logits, labels, w: softmax_focal(logits, labels, config.focal_gamma, w)
  else:
    loss = lambda logits, labels, w: softmax_cross_entropy(logits, labels,
                                                           config.label_smoothing, w)
  return lambda logits, labels, class_weights=None: loss(
      logits, labels, default if class_weights is None else class_weights)


def class_weights_from_config(spec: str, train_labels: np.ndarray, num_classes: int,
                              multi_label: bool):
  """None, 'balanced[_sqrt]' (from training counts) or 'w1,w2,…' -> float32 [C] or None.

  Single-label balanced: N / (C * count_c). Multi-label balanced: the positive
  weight negatives_c / positives_c of each label. balanced_sqrt: the square root.
  """
  if spec in ("", "none"):
    return None
  if spec == "balanced_sqrt":
    return np.sqrt(class_weights_from_config("balanced", train_labels, num_classes, multi_label))
  if spec == "balanced":
    if multi_label:
      positives = train_labels.sum(axis=0)
      return ((len(train_labels) - positives) / np.maximum(positives, 1)).astype(np.float32)
    counts = np.bincount(train_labels, minlength=num_classes)
    return (len(train_labels) / (num_classes * np.maximum(counts, 1))).astype(np.float32)
  try:
    weights = np.asarray([float(x) for x in str(spec).split(",")], dtype=np.float32)
  except ValueError:
    raise ValueError(f"config.class_weights={spec!r}: expected none, balanced, "
                     "balanced_sqrt or comma-separated numbers") from None
  if len(weights) != num_classes:
    raise ValueError(f"config.class_weights: {len(weights)} weights for {num_classes} labels")
  return weights


# --- knowledge distillation (docs/distillation.md) ----------------------------------------


def tempered_targets(probs, temperature: float, multi_label: bool):
  """A teacher's probabilities [B, C] softened by 1/T. Single-label: p^(1/T) renormalised,
  i.e. softmax(log p / T) (the teacher's logits divided by T, up to a per-row constant,
  so p = 0 stays 0); multi-label: each label's sigmoid(logit(p) / T). T = 1: p itself."""
  if temperature == 1.0:
    return probs
  if multi_label:
    return jax.nn.sigmoid((jnp.log(probs) - jnp.log1p(-probs)) / temperature)
  return jax.nn.softmax(jnp.log(probs) / temperature, axis=-1)


def soft_loss(logits, probs, temperature: float, multi_label: bool):
  """[B]: T^2 x the student's loss against the teacher's tempered probabilities.

  Single-label: KL(q || softmax(z / T)) with q = `tempered_targets` (0 log 0 = 0).
  Multi-label: each label's sigmoid BCE against q_c, averaged over labels (as
  `sigmoid_binary_cross_entropy`; it is the binary KL plus the teacher's entropy, a
  constant: the same gradients). T^2 keeps the gradients' scale independent of T
  (Hinton et al. 2015)."""
  q = tempered_targets(probs, temperature, multi_label)
  z = logits / temperature
  if multi_label:
    loss = -jnp.mean(q * jax.nn.log_sigmoid(z) + (1.0 - q) * jax.nn.log_sigmoid(-z), axis=-1)
  else:
    log_q = jnp.where(q > 0, jnp.log(jnp.where(q > 0, q, 1.0)), 0.0)
    loss = jnp.sum(q * (log_q - jax.nn.log_softmax(z, axis=-1)), axis=-1)
  return temperature ** 2 * loss


def distill_settings(config) -> tuple | None:
  """(temperature, alpha) of a config with a teacher; None without one (a config from
  before the distillation keys too)."""
  if not config.get("teacher", ""):
    return None
  return float(config.distill_temperature), float(config.distill_alpha)


def distill_loss(hard, logits, probs, labelled, temperature: float, alpha: float,
                 multi_label: bool):
  """[B]: alpha x `hard` (the configured loss, [B]) where `labelled` [B] is 1, plus
  (1 - alpha) x `soft_loss` on every example (unlabelled texts: the soft term only)."""
  hard = jnp.where(labelled > 0, hard, 0.0)
  return alpha * hard + (1.0 - alpha) * soft_loss(logits, probs, temperature, multi_label)
