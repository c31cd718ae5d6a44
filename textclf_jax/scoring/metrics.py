"""Classification metrics on the host (numpy), from probabilities and labels.

Single-label: accuracy, precision/recall/F1 (micro, macro, per class), confusion
matrix. Multi-label: micro/macro P/R/F1, subset accuracy, Hamming loss, P@k,
and decision thresholds (one global or one per label) tuned on dev, searched
exactly over the dev probabilities.
"""

from __future__ import annotations

import numpy as np

from textclf_jax.config import THRESHOLD_MODES  # config.multilabel_threshold
from textclf_jax.config import THRESHOLD_OBJECTIVES  # config.threshold_objective
from textclf_jax.scoring import objective as objective_lib


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


def score(probs, labels, label_names, multi_label: bool, thresholds=None,
          at_least_one: bool = True) -> dict:
  """Metrics of probabilities [N, C] against labels ([N] ids, or [N, C] 0/1 when
  multi-label: at `thresholds`, [C] or one float; None: 0.5). The one scoring of a
  split that training, fitting, `eval` and ensembles share."""
  if multi_label:
    return multi_label_metrics(probs, labels, label_names,
                               0.5 if thresholds is None else thresholds, at_least_one)
  return single_label_metrics(probs, labels, label_names)

# Per-label mode: a label whose best dev F1 is below a floor keeps the global threshold
# (Yang 2001's SCutFBR): a label with one or two dev positives ranked low otherwise gets a
# threshold that admits many false positives on test. The floor is chosen like Yang's
# fbr, by cross-validation inside dev (`choose_min_f1`); `multilabel_min_f1` fixes it by
# hand. MIN_F1_AUTO asks for the choice. Reuters-21578 figures (dev CV, and test beside
# the old fixed floor): docs/calibration.md, "Per-label thresholds and their floor".
MIN_F1_AUTO = -1.0
MIN_F1_CANDIDATES = (0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8)  # 0: never fall back
# The fixed floor of runs made before it was chosen on dev (their config.json lacks
# multilabel_min_f1: run/compat.py migrates them; that 0.5 had been picked on test figures),
# the floor of a dev set too small to cross-validate, and the cross-validation's last
# tie-break (the candidate nearest it).
PER_LABEL_MIN_F1 = 0.5
MIN_F1_FOLDS = 5  # at most; fewer when dev is small (MIN_F1_FOLD_ROWS rows a fold at least)
MIN_F1_FOLD_ROWS = 50
MIN_F1_SEED = 0  # the dev rows' shuffle into folds: a run's choice is reproducible


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


def best_global(probs, truth, at_least_one, objective="micro") -> float:
  """The global threshold for `objective` (objective.py): micro-F1's (`_best_global`,
  exact), else macro-F1's (per_label's fallback included)."""
  if objective == "micro":
    return _best_global(probs, truth, at_least_one)
  return objective_lib.best_global_macro(probs, truth, at_least_one, _cut_thresholds)


def _per_label_best(probs, truth, fallback: float) -> tuple:
  """([C] thresholds, [C] their dev F1, [C] has dev positives): each label's threshold
  maximises its F1 over every distinct dev probability of that label (one sort per label,
  F1 at every cut); ties go to the threshold nearest `fallback`, which a label without dev
  positives takes (F1 0)."""
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
  best_f1 = np.zeros(num_labels)
  for c in np.flatnonzero(positives > 0):
    best = np.lexsort((np.abs(thresholds[:, c] - fallback), -f1[:, c]))[0]
    out[c], best_f1[c] = thresholds[best, c], f1[best, c]
  return out, best_f1, positives > 0


def _floored(best, fallback: float, min_f1: float) -> np.ndarray:
  """`_per_label_best`'s thresholds with `fallback` for each label whose best dev F1 is
  below `min_f1` (or that has no dev positive)."""
  thresholds, f1, has_positives = best
  return np.where(has_positives & (f1 >= min_f1), thresholds, fallback)


def _best_per_label(probs, truth, fallback: float, min_f1: float) -> np.ndarray:
  """[C] thresholds, each maximising its label's F1 on dev (`_per_label_best`); a label
  without dev positives, or whose best F1 is below `min_f1`, takes `fallback`."""
  return _floored(_per_label_best(probs, truth, fallback), fallback, min_f1)


def choose_min_f1(probs, labels, at_least_one=True, candidates=MIN_F1_CANDIDATES,
                  folds=MIN_F1_FOLDS, seed=MIN_F1_SEED, objective="micro") -> dict:
  """The per-label floor chosen on dev by k-fold cross-validation inside it (as Yang
  2001 chooses SCutFBR's fbr), never looking at test.

  The dev rows are shuffled (numpy, `seed`) into k = min(folds, N // MIN_F1_FOLD_ROWS)
  folds. For each fold and candidate floor, the global and per-label thresholds are
  fitted on the other k - 1 folds and the held-out fold is labelled with them; the
  candidates are scored by `objective` ("micro": micro-F1, "macro": macro-F1 over the
  labels with a dev positive) of the k held-out folds' pooled predictions (every dev row
  predicted once), ties broken by the other F1, then by nearness to PER_LABEL_MIN_F1 (the lower of two as near). With
  k < 2, PER_LABEL_MIN_F1.

  Returns {"min_f1", "min_f1_chosen_by": "dev_cv" | "default", "min_f1_cv": {"folds",
  "seed", "num_examples", "candidates", "micro_f1", "macro_f1" (pooled, one per
  candidate)}}.
  """
  probs = np.asarray(probs)
  truth = np.asarray(labels) > 0.5
  n, num_labels = probs.shape
  candidates = [float(c) for c in candidates]
  k = min(int(folds), n // MIN_F1_FOLD_ROWS)
  cv = {"folds": k, "seed": int(seed), "num_examples": int(n)}
  if k < 2:
    return {"min_f1": PER_LABEL_MIN_F1, "min_f1_chosen_by": "default",
            "min_f1_cv": {**cv, "reason": f"under {2 * MIN_F1_FOLD_ROWS} dev examples"}}
  fold_of = np.empty(n, np.int64)
  for i, rows in enumerate(np.array_split(np.random.default_rng(seed).permutation(n), k)):
    fold_of[rows] = i
  tp, fp, fn = (np.zeros((len(candidates), num_labels)) for _ in range(3))
  for i in range(k):
    held, fit = fold_of == i, fold_of != i
    fallback = best_global(probs[fit], truth[fit], at_least_one, objective)
    best = _per_label_best(probs[fit], truth[fit], fallback)
    for j, floor in enumerate(candidates):
      predicted = multi_label_predictions(probs[held], _floored(best, fallback, floor),
                                          at_least_one)
      tp[j] += (predicted & truth[held]).sum(axis=0)
      fp[j] += (predicted & ~truth[held]).sum(axis=0)
      fn[j] += (~predicted & truth[held]).sum(axis=0)
  _, _, micro = _prf(tp.sum(axis=1), fp.sum(axis=1), fn.sum(axis=1))
  _, _, per_label = _prf(tp, fp, fn)
  present = truth.sum(axis=0) > 0
  macro = per_label[:, present].mean(axis=1) if present.any() else np.zeros(len(candidates))
  nearness = np.abs(np.asarray(candidates) - PER_LABEL_MIN_F1)
  keys = (-macro, -micro) if objective == "micro" else (-micro, -macro)
  best = np.lexsort((candidates, nearness, *keys))[0]
  return {"min_f1": candidates[best], "min_f1_chosen_by": "dev_cv",
          "min_f1_cv": {**cv, "objective": objective, "candidates": candidates, "micro_f1": micro.tolist(),
                        "macro_f1": macro.tolist()}}


def search_thresholds(probs, labels, mode="per_label", at_least_one=True,
                      min_f1=MIN_F1_AUTO, objective="micro") -> dict:
  """`tune_thresholds` with how they were chosen: {"thresholds", "objective"}, and for
  per_label also "min_f1" (the floor used), "min_f1_chosen_by" ("config": `min_f1` as
  given; "objective": 0, the per_label objective's; "dev_cv" or "default":
  `choose_min_f1` for the objective, when `min_f1` is MIN_F1_AUTO or None) and, when
  chosen, "min_f1_cv" (its cross-validation figures). thresholds.json and
  calibration.json record these keys."""
  if mode not in THRESHOLD_MODES:
    raise ValueError(f"multilabel_threshold={mode!r}: expected global or per_label")
  if objective not in THRESHOLD_OBJECTIVES or objective == "auto":
    raise ValueError(f"threshold_objective={objective!r}: expected micro, macro or "
                     "per_label (objective.resolve resolves auto)")
  probs = np.asarray(probs)
  truth = np.asarray(labels) > 0.5
  fallback = best_global(probs, truth, at_least_one, objective)
  if mode == "global":
    return {"thresholds": fallback, "objective": objective}
  if min_f1 is not None and min_f1 >= 0:
    out = {"min_f1": float(min_f1), "min_f1_chosen_by": "config"}
  elif objective == "per_label":
    out = {"min_f1": 0.0, "min_f1_chosen_by": "objective"}
  else:
    out = choose_min_f1(probs, truth, at_least_one, objective=objective)
  return {"thresholds": _best_per_label(probs, truth, fallback, out["min_f1"]).tolist(),
          "objective": objective, **out}


def tune_thresholds(probs, labels, mode="per_label", at_least_one=True,
                    min_f1=MIN_F1_AUTO, objective="micro"):
  """Thresholds that maximise dev F1 (`objective`: objective.py): one global or one per
  label.

  Searched on the dev probabilities themselves: every distinct value is a candidate
  cut (F1 at all cuts from one sort; a global macro-F1 threshold: up to
  objective.MACRO_CANDIDATES of them), and the threshold is the midpoint between the
  chosen cut's value and the next lower one. Per label, each label's F1 is maximised on
  its own (rare labels get thresholds as low as their positives need); a label without
  dev positives, or whose best dev F1 is below `min_f1`, keeps the global threshold.
  `min_f1` MIN_F1_AUTO (or None): the floor is chosen on dev by cross-validation for the
  objective (`choose_min_f1`; per_label: no floor). Returns a float (global) or a list
  of floats (per_label); `search_thresholds` also says which floor was used.
  """
  return search_thresholds(probs, labels, mode, at_least_one, min_f1, objective)["thresholds"]


def scores_by_threshold_mode(dev_probs, dev_labels, test_probs, test_labels, label_names,
                             at_least_one=True, min_f1=MIN_F1_AUTO, objective="micro") -> dict:
  """{mode: {"dev": scalars, "test": scalars}} for every mode of THRESHOLD_MODES, each
  with its own thresholds tuned on dev (for `objective`, per_label with the floor
  `min_f1`, as `tune_thresholds`): one trained model compared under both."""
  out = {}
  for mode in THRESHOLD_MODES:
    thresholds = tune_thresholds(dev_probs, dev_labels, mode, at_least_one, min_f1, objective)
    out[mode] = {split: summary(multi_label_metrics(probs, labels, label_names, thresholds,
                                                    at_least_one))
                 for split, probs, labels in (("dev", dev_probs, dev_labels),
                                              ("test", test_probs, test_labels))}
  return out


def summary(metrics: dict) -> dict:
  """The scalar entries (for logs and progress lines)."""
  return {k: v for k, v in metrics.items() if isinstance(v, (int, float))}
