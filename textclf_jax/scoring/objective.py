"""What a multi-label run's decision thresholds optimise on dev, and when they saturate.

config.threshold_objective (recorded in thresholds.json, calibration.json and
results.json):
  micro      micro-F1: the global threshold maximises it, and the per-label floor is
             chosen by cross-validation on it (metrics.choose_min_f1);
  macro      macro-F1 (over the labels with a dev positive): likewise;
  per_label  each label's own F1, with no floor (a label without dev positives keeps
             the global threshold, chosen for macro-F1);
  auto       the run's selection metric: macro when early_stopping_metric is macro_f1,
             else micro (early stopping's "auto" is micro_f1 for multi-label).
"""

from __future__ import annotations

import numpy as np


MACRO_CANDIDATES = 256  # the global macro-F1 search's cuts at most (quantiles of dev)
# Thresholds at least SATURATED on at least SATURATED_SHARE of the labels: the dev
# probabilities are (near) 0/1, and labelling with them predicts little beyond each
# text's top label (at_least_one). `saturation` finds it; the run's finish warns.
SATURATED = 0.999
SATURATED_SHARE = 0.5


def resolve(config, multi_label: bool = True) -> str:
  """config.threshold_objective with "auto" resolved: micro | macro | per_label."""
  objective = config.get("threshold_objective", "auto")
  if objective != "auto":
    return objective
  metric = config.get("early_stopping_metric", "auto")
  return "macro" if multi_label and metric == "macro_f1" else "micro"


def _macro_f1(predicted, truth, present) -> float:
  tp = (predicted & truth).sum(axis=0)
  denom = predicted.sum(axis=0) + truth.sum(axis=0)
  f1 = np.divide(2.0 * tp, denom, out=np.zeros(tp.shape), where=denom > 0)
  return float(f1[present].mean())


def best_global_macro(probs, truth, at_least_one: bool, cut_thresholds) -> float:
  """The one threshold maximising dev macro-F1 over (at most MACRO_CANDIDATES, evenly
  spaced in rank) cuts between distinct dev probabilities, and the cut above them all;
  ties go to the threshold nearest 0.5; no dev positive: 0.5. cut_thresholds:
  metrics._cut_thresholds (descending values -> the threshold of each cut)."""
  present = truth.any(axis=0)
  if not present.any() or probs.size == 0:
    return 0.5
  values = np.unique(probs.astype(np.float64))[::-1]
  cuts = cut_thresholds(values)
  if len(cuts) > MACRO_CANDIDATES:
    cuts = cuts[np.unique(np.linspace(0, len(cuts) - 1, MACRO_CANDIDATES).round().astype(int))]
  cuts = np.append(cuts, max((values[0] + 1.0) / 2, np.nextafter(values[0], np.inf)))
  forced = np.zeros(probs.shape, dtype=bool)
  if at_least_one:
    forced[np.arange(len(probs)), probs.argmax(axis=1)] = True
  f1 = np.array([_macro_f1((probs >= t) | forced, truth, present) for t in cuts])
  return float(cuts[np.lexsort((np.abs(cuts - 0.5), -f1))[0]])


def saturation(thresholds) -> str | None:
  """Why thresholds (a float or [C]) saturate, in words, or None when they do not."""
  t = np.atleast_1d(np.asarray(thresholds, np.float64))
  high = int((t >= SATURATED).sum())
  if not len(t) or high < SATURATED_SHARE * len(t):
    return None
  return (f"{high} of {len(t)} multi-label thresholds are >= {SATURATED} (median "
          f"{float(np.median(t)):.5f}): its dev probabilities saturate near 0/1, so it "
          "predicts little beyond each text's top label (per-label and global thresholds "
          "score alike). Use a family that suits multi-label data (tfidf, cnn), or make "
          "this one less confident (fewer epochs, more regularisation)")
