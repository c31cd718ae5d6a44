"""Classification metrics on the host (numpy), from probabilities and labels.

Single-label: accuracy, precision/recall/F1 (micro, macro, per class), confusion
matrix. Multi-label: micro/macro P/R/F1, subset accuracy, Hamming loss, P@k,
and decision thresholds (one global or one per label) tuned on dev, searched
exactly over the dev probabilities.
"""

from __future__ import annotations

import numpy as np


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


def label_rows(texts, probs, label_names, multi_label, thresholds, at_least_one=True,
               top_k: int = 5) -> list:
  """[{text, label | labels (at `thresholds`), probabilities: the top_k {label: p}}]."""
  rows = []
  for text, p in zip(texts, probs):
    top = np.argsort(-p, kind="stable")[: max(1, min(top_k, len(label_names)))]
    row = {"text": text}
    if multi_label:
      chosen = multi_label_predictions(p[None], np.asarray(thresholds),
                                                   at_least_one)[0]
      row["labels"] = [label_names[i] for i in np.flatnonzero(chosen)]
    else:
      row["label"] = label_names[int(p.argmax())]
    row["probabilities"] = {label_names[i]: round(float(p[i]), 6) for i in top}
    rows.append(row)
  return rows



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
# A label whose best dev F1 is below this keeps the global threshold (Yang 2001's
# SCutFBR): a label with one or two dev positives ranked low otherwise gets a threshold
# that admits many false positives on test. Reuters-21578 test micro/macro-F1, per-label
# thresholds (docs/configuration.md): TF-IDF 0.811/0.438 without it, 0.855/0.439 with
# it (the old 0.05-0.95 grid: 0.848/0.387); a 6-epoch CNN 0.425/0.306 without it,
# 0.831/0.322 with it (grid: 0.830/0.317). 0.5 was chosen from 0.2-0.7 on those figures.
PER_LABEL_MIN_F1 = 0.5


def _cut_thresholds(values_desc: np.ndarray) -> np.ndarray:
  """Sorted values [K, ...] (descending along axis 0) -> the threshold of each cut
  [K, ...]: `p >= t[k]` selects exactly the first k + 1 values. The midpoint between
  value k and the next smaller one (so a test probability near a dev one is not decided
  by a hair); the last cut is the smallest value itself."""
  v = values_desc.astype(np.float64)
  t = v.copy()
  t[:-1] = (v[:-1] + v[1:]) / 2
  # Between adjacent floats the midpoint may round onto the smaller one: take the larger.
  low = t[:-1] <= v[1:]
  t[:-1][low] = v[:-1][low]
  return t


def _best_global(probs, truth, at_least_one) -> float:
  """The threshold maximising micro-F1 over every distinct probability (exact).

  With at_least_one, each row's top label is predicted whatever the threshold, so
  micro-F1(t) = 2 (TP_top + TP(t)) / (n_top + n(t) + positives) over the other
  entries. Ties go to the threshold nearest 0.5; no dev positive at all: 0.5.
  """
  positives = int(truth.sum())
  if positives == 0 or probs.size == 0:
    return 0.5
  forced = np.zeros(probs.shape, dtype=bool)
  if at_least_one:
    forced[np.arange(len(probs)), probs.argmax(axis=1)] = True
  rest = probs[~forced].astype(np.float64)
  order = np.argsort(-rest, kind="stable")
  values, hits = rest[order], truth[~forced][order]
  tp = float(truth[forced].sum()) + np.cumsum(hits)
  predicted = float(forced.sum()) + np.arange(1, len(values) + 1)
  f1 = 2 * tp / (predicted + positives)
  distinct = np.append(values[:-1] != values[1:], True)[:len(values)]  # real cuts
  thresholds = _cut_thresholds(values)
  f1, thresholds = f1[distinct], thresholds[distinct]
  if at_least_one:  # the cut above every other entry: only the top labels are predicted
    above = 0.5 if not len(values) else max((values[0] + 1.0) / 2,
                                             np.nextafter(values[0], np.inf))
    f1 = np.append(f1, 2 * truth[forced].sum() / (forced.sum() + positives))
    thresholds = np.append(thresholds, above)
  best = np.lexsort((np.abs(thresholds - 0.5), -f1))[0]
  return float(thresholds[best])


def _best_per_label(probs, truth, fallback: float, min_f1: float) -> np.ndarray:
  """[C] thresholds, each maximising its label's F1 over every distinct dev probability
  of that label (one sort per label, F1 at every cut); ties go to the threshold nearest
  `fallback`. A label without dev positives, or whose best F1 is below `min_f1`, takes
  `fallback`."""
  n, num_labels = probs.shape
  order = np.argsort(-probs, axis=0, kind="stable")
  values = np.take_along_axis(probs, order, axis=0).astype(np.float64)  # [N, C] descending
  tp = np.cumsum(np.take_along_axis(truth, order, axis=0), axis=0)
  positives = truth.sum(axis=0)
  f1 = 2 * tp / (np.arange(1, n + 1)[:, None] + positives[None, :])
  distinct = np.vstack([values[:-1] != values[1:], np.ones((1, num_labels), bool)])
  f1 = np.where(distinct, f1, -1.0)
  thresholds = _cut_thresholds(values)
  out = np.full(num_labels, fallback, dtype=float)
  for c in np.flatnonzero(positives > 0):
    best = np.lexsort((np.abs(thresholds[:, c] - fallback), -f1[:, c]))[0]
    if f1[best, c] >= min_f1:
      out[c] = thresholds[best, c]
  return out


def tune_thresholds(probs, labels, mode="per_label", at_least_one=True,
                    min_f1=PER_LABEL_MIN_F1):
  """Thresholds that maximise dev F1: one global (micro-F1) or one per label.

  Searched exactly, on the dev probabilities themselves: every distinct value is a
  candidate cut (F1 at all cuts from one sort), and the threshold is the midpoint
  between the chosen cut's value and the next lower one. Per label, each label's F1
  is maximised on its own (rare labels get thresholds as low as their positives
  need); a label without dev positives, or whose best dev F1 is below `min_f1`, keeps
  the global threshold. Returns a float (global) or a list of floats (per_label).
  """
  if mode not in THRESHOLD_MODES:
    raise ValueError(f"multilabel_threshold={mode!r}: expected global or per_label")
  probs = np.asarray(probs)
  truth = np.asarray(labels) > 0.5
  best_global = _best_global(probs, truth, at_least_one)
  if mode == "global":
    return best_global
  return _best_per_label(probs, truth, best_global, min_f1).tolist()


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
