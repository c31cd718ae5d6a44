"""Classification metrics on the host (numpy), from probabilities and labels.

Single-label: accuracy, precision/recall/F1 (micro, macro, per class), confusion
matrix. Multi-label: micro/macro P/R/F1, subset accuracy, Hamming loss, P@k,
and decision thresholds (one global or one per label) tuned on dev.
"""

from __future__ import annotations

import numpy as np

THRESHOLD_GRID = np.round(np.arange(0.05, 0.96, 0.05), 2)


def _prf(tp, fp, fn):
  precision = np.divide(tp, tp + fp, out=np.zeros_like(tp, dtype=float), where=(tp + fp) > 0)
  recall = np.divide(tp, tp + fn, out=np.zeros_like(tp, dtype=float), where=(tp + fn) > 0)
  denom = precision + recall
  f1 = np.divide(2 * precision * recall, denom, out=np.zeros_like(denom), where=denom > 0)
  return precision, recall, f1


def single_label_metrics(probs: np.ndarray, labels: np.ndarray, label_names: list) -> dict:
  """probs [N, C], labels [N] int -> metrics dict (floats, lists; JSON-ready)."""
  num_classes = probs.shape[1]
  predictions = probs.argmax(axis=1)
  confusion = np.zeros((num_classes, num_classes), dtype=np.int64)
  np.add.at(confusion, (labels, predictions), 1)
  tp = np.diag(confusion).astype(float)
  fp = confusion.sum(axis=0) - tp
  fn = confusion.sum(axis=1) - tp
  precision, recall, f1 = _prf(tp, fp, fn)
  support = confusion.sum(axis=1)
  present = support > 0
  micro = float(tp.sum() / max(len(labels), 1))
  return {
      "num_examples": int(len(labels)),
      "accuracy": micro,
      "micro_f1": micro,
      "macro_precision": float(precision[present].mean()),
      "macro_recall": float(recall[present].mean()),
      "macro_f1": float(f1[present].mean()),
      "per_class": {name: {"precision": float(precision[i]), "recall": float(recall[i]),
                           "f1": float(f1[i]), "support": int(support[i])}
                    for i, name in enumerate(label_names)},
      "confusion_matrix": confusion.tolist(),
  }


def multi_label_predictions(probs, thresholds, at_least_one=True) -> np.ndarray:
  """probs [N, C], thresholds scalar or [C] -> 0/1 predictions [N, C]."""
  predicted = probs >= np.asarray(thresholds)
  if at_least_one:
    none = ~predicted.any(axis=1)
    predicted[none, probs[none].argmax(axis=1)] = True
  return predicted


def multi_label_metrics(probs, labels, label_names, thresholds=0.5, at_least_one=True,
                        ks=(1, 3, 5)) -> dict:
  """probs [N, C], labels [N, C] 0/1 -> micro/macro P/R/F1, subset accuracy, Hamming, P@k."""
  truth = labels > 0.5
  predicted = multi_label_predictions(probs, thresholds, at_least_one)
  tp = (predicted & truth).sum(axis=0).astype(float)
  fp = (predicted & ~truth).sum(axis=0).astype(float)
  fn = (~predicted & truth).sum(axis=0).astype(float)
  precision, recall, f1 = _prf(tp, fp, fn)
  micro_p, micro_r, micro_f1 = _prf(tp.sum(keepdims=True), fp.sum(keepdims=True),
                                    fn.sum(keepdims=True))
  present = truth.sum(axis=0) > 0
  order = np.argsort(-probs, axis=1, kind="stable")
  result = {
      "num_examples": int(len(labels)),
      "micro_precision": float(micro_p[0]),
      "micro_recall": float(micro_r[0]),
      "micro_f1": float(micro_f1[0]),
      "macro_f1": float(f1[present].mean()) if present.any() else 0.0,
      "subset_accuracy": float((predicted == truth).all(axis=1).mean()),
      "hamming_loss": float((predicted != truth).mean()),
      "per_class": {name: {"precision": float(precision[i]), "recall": float(recall[i]),
                           "f1": float(f1[i]), "support": int(truth[:, i].sum())}
                    for i, name in enumerate(label_names)},
  }
  for k in ks:
    if k <= probs.shape[1]:
      hits = np.take_along_axis(truth, order[:, :k], axis=1).sum(axis=1)
      result[f"precision_at_{k}"] = float((hits / k).mean())
  return result


THRESHOLD_MODES = ("global", "per_label")


def tune_thresholds(probs, labels, mode="per_label", at_least_one=True):
  """Thresholds that maximise dev F1: one global (micro-F1) or one per label.

  Per label, each label's F1 is maximised on its own; a label without dev
  positives keeps the global threshold. Returns a float or a list of floats.
  """
  best_global = max(THRESHOLD_GRID, key=lambda t: (multi_label_metrics(
      probs, labels, [""] * probs.shape[1], t, at_least_one, ks=())["micro_f1"], -abs(t - .5)))
  if mode == "global":
    return float(best_global)
  if mode != "per_label":
    raise ValueError(f"multilabel_threshold={mode!r}: expected global or per_label")
  truth = labels > 0.5
  thresholds = np.full(probs.shape[1], best_global, dtype=float)
  for c in np.flatnonzero(truth.any(axis=0)):
    predicted = probs[:, c:c + 1] >= THRESHOLD_GRID[None, :]  # [N, T]
    tp = (predicted & truth[:, c:c + 1]).sum(axis=0).astype(float)
    fp = (predicted & ~truth[:, c:c + 1]).sum(axis=0).astype(float)
    fn = (~predicted & truth[:, c:c + 1]).sum(axis=0).astype(float)
    f1 = _prf(tp, fp, fn)[2]
    # Ties go to the threshold nearest the global one.
    thresholds[c] = THRESHOLD_GRID[np.lexsort((np.abs(THRESHOLD_GRID - best_global), -f1))[0]]
  return thresholds.tolist()


def scores_by_threshold_mode(dev_probs, dev_labels, test_probs, test_labels, label_names,
                             at_least_one=True) -> dict:
  """{mode: {"dev": scalars, "test": scalars}} for every mode of THRESHOLD_MODES, each
  with its own thresholds tuned on dev: one trained model compared under both."""
  out = {}
  for mode in THRESHOLD_MODES:
    thresholds = tune_thresholds(dev_probs, dev_labels, mode, at_least_one)
    out[mode] = {split: summary(multi_label_metrics(probs, labels, label_names, thresholds,
                                                    at_least_one))
                 for split, probs, labels in (("dev", dev_probs, dev_labels),
                                              ("test", test_probs, test_labels))}
  return out


def summary(metrics: dict) -> dict:
  """The scalar entries (for logs and progress lines)."""
  return {k: v for k, v in metrics.items() if isinstance(v, (int, float))}
