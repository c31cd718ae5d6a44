"""Losses against hand computations."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from textclf_jax.training import losses

LOGITS = jnp.array([[2.0, 0.0, -1.0], [0.5, 0.5, 1.0]])
LABELS = jnp.array([0, 2])


def _log_softmax(row):
  z = np.log(np.sum(np.exp(row)))
  return np.asarray(row) - z


def test_softmax_cross_entropy_by_hand():
  expected = [-_log_softmax(np.array([2.0, 0.0, -1.0]))[0],
              -_log_softmax(np.array([0.5, 0.5, 1.0]))[2]]
  np.testing.assert_allclose(losses.softmax_cross_entropy(LOGITS, LABELS), expected, rtol=1e-6)


def test_label_smoothing_by_hand():
  eps = 0.3
  logp = _log_softmax(np.array([2.0, 0.0, -1.0]))
  target = np.array([1 - eps + eps / 3, eps / 3, eps / 3])
  got = losses.softmax_cross_entropy(LOGITS[:1], LABELS[:1], label_smoothing=eps)
  np.testing.assert_allclose(got, [-(target * logp).sum()], rtol=1e-6)


def test_class_weights_scale_each_example():
  w = jnp.array([2.0, 1.0, 0.5])
  plain = losses.softmax_cross_entropy(LOGITS, LABELS)
  np.testing.assert_allclose(losses.softmax_cross_entropy(LOGITS, LABELS, class_weights=w),
                             plain * jnp.array([2.0, 0.5]), rtol=1e-6)


def test_focal_loss_by_hand_and_gamma_zero_is_ce():
  p = np.exp(_log_softmax(np.array([2.0, 0.0, -1.0])))[0]
  got = losses.softmax_focal(LOGITS[:1], LABELS[:1], gamma=2.0)
  np.testing.assert_allclose(got, [-(1 - p) ** 2 * math.log(p)], rtol=1e-5)
  np.testing.assert_allclose(losses.softmax_focal(LOGITS, LABELS, gamma=0.0),
                             losses.softmax_cross_entropy(LOGITS, LABELS), rtol=1e-6)


def test_sigmoid_bce_and_pos_weight_by_hand():
  logits = jnp.array([[1.0, -2.0]])
  labels = jnp.array([[1.0, 0.0]])
  s = lambda x: 1 / (1 + math.exp(-x))
  expected = -(math.log(s(1.0)) + math.log(1 - s(-2.0))) / 2
  np.testing.assert_allclose(losses.sigmoid_binary_cross_entropy(logits, labels), [expected],
                             rtol=1e-6)
  weighted = -(3 * math.log(s(1.0)) + math.log(1 - s(-2.0))) / 2
  np.testing.assert_allclose(
      losses.sigmoid_binary_cross_entropy(logits, labels, jnp.array([3.0, 3.0])), [weighted],
      rtol=1e-6)


def test_sigmoid_focal_gamma_zero_is_bce():
  logits = jnp.array([[1.0, -2.0, 0.3]])
  labels = jnp.array([[1.0, 0.0, 1.0]])
  np.testing.assert_allclose(losses.sigmoid_focal(logits, labels, gamma=0.0),
                             losses.sigmoid_binary_cross_entropy(logits, labels), rtol=1e-5)


def test_weighted_mean_ignores_padding_rows():
  assert float(losses.weighted_mean(jnp.array([1.0, 3.0, 100.0]),
                                    jnp.array([1.0, 1.0, 0.0]))) == 2.0


def test_balanced_class_weights():
  labels = np.array([0, 0, 0, 1])
  w = losses.class_weights_from_config("balanced", labels, 2, False)
  np.testing.assert_allclose(w, [4 / (2 * 3), 4 / (2 * 1)])
  multi = np.array([[1, 0], [1, 1], [0, 0], [1, 0]], np.float32)
  np.testing.assert_allclose(losses.class_weights_from_config("balanced", multi, 2, True),
                             [1 / 3, 3.0])
  np.testing.assert_allclose(losses.class_weights_from_config("1,2", labels, 2, False), [1, 2])
  with pytest.raises(ValueError, match="2 labels"):
    losses.class_weights_from_config("1,2,3", labels, 2, False)


def test_loss_name_checks_task():
  with pytest.raises(ValueError, match="multi-label"):
    losses.resolve_loss_name("softmax_ce", True)
  assert losses.resolve_loss_name("auto", True) == "sigmoid_bce"


@pytest.mark.parametrize("gamma", [0.5, 1.0, 2.0])
def test_softmax_focal_gradient_is_finite_when_saturated(gamma):
  """A softmax saturated on the true class (p_t == 1.0 in float32): loss and gradient 0,
  not NaN (gamma < 1 made x^gamma's derivative infinite at x = 0)."""
  logits = jnp.array([[40.0, -40.0, 0.0], [0.3, 0.1, -0.2]])
  labels = jnp.array([0, 1])
  grads = jax.grad(lambda z: losses.softmax_focal(z, labels, gamma=gamma).sum())(logits)
  assert bool(jnp.all(jnp.isfinite(grads)))
  np.testing.assert_allclose(grads[0], 0.0, atol=1e-12)
  # Unsaturated rows keep the textbook value.
  p = jax.nn.softmax(logits[1])
  expected = -((1 - p[1]) ** gamma) * jnp.log(p[1])
  np.testing.assert_allclose(losses.softmax_focal(logits[1:], labels[1:], gamma=gamma)[0],
                             expected, rtol=1e-5)
