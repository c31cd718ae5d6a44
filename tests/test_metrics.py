"""Metrics against hand-computed values."""

import numpy as np

from textclf_jax.scoring import metrics


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


# --- thresholds searched on the dev probabilities themselves, against brute force -------

from hypothesis import given, settings, strategies as st  # noqa: E402
from hypothesis.extra import numpy as hnp  # noqa: E402

# Probabilities from a few values (ties), tiny ones (under the old 0.05 grid floor) and any.
_PROB = st.one_of(st.sampled_from([0.0, 1e-3, 0.02, 0.25, 0.5, 0.75, 1.0]),
                  st.floats(0, 1, width=32))


@st.composite
def _dev_set(draw):
  n, c = draw(st.integers(1, 12)), draw(st.integers(1, 4))
  probs = draw(hnp.arrays(np.float32, (n, c), elements=_PROB))
  labels = draw(hnp.arrays(np.float32, (n, c), elements=st.sampled_from([0.0, 1.0])))
  return probs, labels


def _candidates(values):
  """Every threshold that makes a different decision: each distinct value and one above all."""
  distinct = np.unique(np.asarray(values, np.float64))
  return np.append(distinct, np.nextafter(distinct.max(), 2.0))


@settings(max_examples=150, deadline=None)
@given(_dev_set(), st.booleans())
def test_global_threshold_is_the_brute_force_optimum(dev, at_least_one):
  probs, labels = dev
  names = [str(i) for i in range(probs.shape[1])]
  micro = lambda t: metrics.multi_label_metrics(  # noqa: E731
      probs, labels, names, t, at_least_one, ks=())["micro_f1"]
  best = max(micro(t) for t in _candidates(probs))
  tuned = metrics.tune_thresholds(probs, labels, "global", at_least_one)
  assert isinstance(tuned, float)
  assert micro(tuned) >= best - 1e-12


@settings(max_examples=150, deadline=None)
@given(_dev_set())
def test_per_label_thresholds_are_each_labels_brute_force_optimum(dev):
  probs, labels = dev
  names = [str(i) for i in range(probs.shape[1])]
  tuned = metrics.tune_thresholds(probs, labels, "per_label", at_least_one=False,
                                  min_f1=metrics.PER_LABEL_MIN_F1)
  fallback = metrics.tune_thresholds(probs, labels, "global", at_least_one=False)
  got = metrics.multi_label_metrics(probs, labels, names, tuned, False, ks=())["per_class"]
  for c, name in enumerate(names):
    if not labels[:, c].any():
      assert tuned[c] == fallback  # no dev positive: the global threshold
      continue
    def f1(t, c=c):
      thresholds = np.full(probs.shape[1], 2.0)
      thresholds[c] = t
      return metrics.multi_label_metrics(probs, labels, names, thresholds, False,
                                         ks=())["per_class"][names[c]]["f1"]
    best = max(f1(t) for t in _candidates(probs[:, c]))
    if best < metrics.PER_LABEL_MIN_F1:
      assert tuned[c] == fallback  # hopeless on dev: the global threshold
    else:
      assert got[name]["f1"] >= best - 1e-12


def test_a_rare_label_gets_a_threshold_under_the_old_grid_floor():
  """Positives scored 0.01-0.03 among negatives at 0.001: a 0.05 floor scored F1 0."""
  probs = np.full((40, 2), 1e-3, np.float32)
  labels = np.zeros((40, 2), np.float32)
  labels[:20, 0] = 1
  probs[:20, 0] = 0.9
  labels[[3, 7, 11], 1] = 1
  probs[[3, 7, 11], 1] = [0.01, 0.02, 0.03]
  tuned = metrics.tune_thresholds(probs, labels, "per_label", at_least_one=False)
  assert 1e-3 < tuned[1] <= 0.01
  per = metrics.multi_label_metrics(probs, labels, ["a", "b"], tuned, False)["per_class"]
  assert per["b"]["f1"] == 1.0 and per["a"]["f1"] == 1.0
  # The threshold sits halfway between the chosen cut and the next lower dev value.
  np.testing.assert_allclose(tuned[1], (np.float32(0.01) + np.float32(1e-3)) / 2)


def test_a_label_hopeless_on_dev_keeps_the_global_threshold():
  """One dev positive ranked below nine negatives: its best F1 (2/11) is under
  PER_LABEL_MIN_F1, so it does not get a threshold that admits nine false positives."""
  rng = np.random.default_rng(0)
  probs = rng.uniform(0.6, 0.9, (40, 2)).astype(np.float32)
  labels = np.zeros((40, 2), np.float32)
  labels[:20, 0] = 1
  probs[20:, 0] = rng.uniform(0.0, 0.3, 20)
  probs[:, 1] = 0.001
  probs[:9, 1] = 0.2  # nine negatives above the one positive
  probs[9, 1], labels[9, 1] = 0.1, 1
  glob = metrics.tune_thresholds(probs, labels, "global", at_least_one=False)
  tuned = metrics.tune_thresholds(probs, labels, "per_label", at_least_one=False,
                                  min_f1=metrics.PER_LABEL_MIN_F1)
  assert tuned[1] == glob and glob > 0.2
  assert metrics.tune_thresholds(probs, labels, "per_label", False, min_f1=0.0)[1] < 0.1
