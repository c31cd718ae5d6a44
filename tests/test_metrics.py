"""Metrics against hand-computed values."""

import numpy as np

from textclf_jax import metrics


def test_single_label_metrics_by_hand():
  labels = np.array([0, 0, 1, 1, 2])
  predicted = np.array([0, 1, 1, 1, 0])
  probs = np.eye(3)[predicted]
  m = metrics.single_label_metrics(probs, labels, ["a", "b", "c"])
  assert m["accuracy"] == 3 / 5
  # a: P 1/2 R 1/2; b: P 2/3 R 1; c: P 0 R 0.
  np.testing.assert_allclose(m["per_class"]["b"]["f1"], 2 * (2 / 3) / (2 / 3 + 1))
  np.testing.assert_allclose(m["macro_f1"], (0.5 + 0.8 + 0) / 3)
  assert m["confusion_matrix"] == [[1, 1, 0], [0, 2, 0], [1, 0, 0]]


def test_multi_label_metrics_by_hand():
  labels = np.array([[1, 0, 1], [0, 1, 0]], np.float32)
  probs = np.array([[0.9, 0.6, 0.4], [0.1, 0.7, 0.3]])
  m = metrics.multi_label_metrics(probs, labels, ["x", "y", "z"], thresholds=0.5)
  # Predicted: {x, y}, {y}; tp=2 fp=1 fn=1.
  np.testing.assert_allclose(m["micro_f1"], 2 / 3)
  assert m["subset_accuracy"] == 0.5
  np.testing.assert_allclose(m["hamming_loss"], 2 / 6)
  np.testing.assert_allclose(m["precision_at_1"], 1.0)
  per = metrics.multi_label_metrics(probs, labels, ["x", "y", "z"], thresholds=[0.5, 0.65, 0.35])
  assert per["micro_f1"] == 1.0


def test_at_least_one_label_predicted():
  probs = np.array([[0.2, 0.4]])
  assert metrics.multi_label_predictions(probs, 0.5, True).tolist() == [[False, True]]
  assert metrics.multi_label_predictions(probs, 0.5, False).tolist() == [[False, False]]


def test_threshold_tuning_improves_dev_f1():
  rng = np.random.default_rng(0)
  labels = (rng.random((200, 4)) < 0.3).astype(np.float32)
  probs = np.clip(labels * 0.35 + rng.random((200, 4)) * 0.3, 0, 1)  # positives ~0.35-0.65
  at_half = metrics.multi_label_metrics(probs, labels, list("abcd"), 0.5)["micro_f1"]
  best = metrics.tune_thresholds(probs, labels, "global")
  tuned = metrics.multi_label_metrics(probs, labels, list("abcd"), best)["micro_f1"]
  per_label = metrics.tune_thresholds(probs, labels, "per_label")
  assert len(per_label) == 4 and tuned > at_half
  assert metrics.multi_label_metrics(probs, labels, list("abcd"), per_label)["micro_f1"] >= tuned - 0.02
