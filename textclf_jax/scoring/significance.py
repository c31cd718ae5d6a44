"""Paired significance of one classifier against another: pure computation (numpy,
scipy), no run directories.

Two ways to pair two arms (a against b):
  over runs      `paired_run_test`: a[i] and b[i] are one seed or fold of each arm; a
                 paired t-test (scipy.stats.ttest_rel, with the t-interval of the mean
                 difference) and a Wilcoxon signed-rank test (scipy.stats.wilcoxon).
  over examples  `paired_bootstrap`: per test example the additive counts every percent
                 metric is a function of (`example_counts`, [N, 3C + 2]); the examples
                 resampled with replacement (the same draws for both arms), the metric's
                 difference recomputed on each draw (`metric_from_counts`); a percentile
                 CI and a two-sided p-value.
`t_interval` is the t-interval of one mean. experiments/report.py applies these to a
sweep's rows; experiments/versus_linear.py to a neural model against TF-IDF.
"""

from __future__ import annotations

import math
import warnings

import numpy as np

from textclf_jax.scoring import metrics as metrics_lib

CONFIDENCE = 0.95
RESAMPLES = 10_000
BOOTSTRAP_SEED = 0
BOOTSTRAP_METRICS = ("accuracy", "subset_accuracy", "micro_f1", "micro_precision",
                     "micro_recall", "macro_f1", "macro_precision", "macro_recall")


def t_interval(mean: float, std: float, n: int, confidence: float = CONFIDENCE):
  """The t-interval (low, high) of a mean from (mean, population std, n) of n values:
  mean ± t(n-1) * s / sqrt(n) with the sample std s; None for n < 2."""
  from scipy import stats
  if n < 2:
    return None
  sem = std / math.sqrt(n - 1)  # = sample std / sqrt(n)
  if sem == 0:
    return mean, mean
  low, high = stats.t.interval(confidence, n - 1, loc=mean, scale=sem)
  return float(low), float(high)


def paired_run_test(a, b, confidence: float = CONFIDENCE) -> dict:
  """Arm `a` against arm `b` over matched runs: a, b [n] (a[i] and b[i]: one seed or fold).

  {n, delta: mean of a - b, low/high: its t-interval, t_p: two-sided paired t-test
  (scipy.stats.ttest_rel), wilcoxon_p: two-sided Wilcoxon signed-rank test
  (scipy.stats.wilcoxon)}. n < 2: no test (NaNs). Identical arms: p = 1; a constant
  non-zero difference: t-test p = 0 (scipy's t = inf).
  """
  from scipy import stats
  a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
  d = a - b
  out = {"n": int(len(d)), "delta": float(d.mean()) if len(d) else math.nan,
         "low": math.nan, "high": math.nan, "t_p": math.nan, "wilcoxon_p": math.nan}
  if len(d) < 2:
    return out
  if not d.any():
    out.update(low=0.0, high=0.0, t_p=1.0, wilcoxon_p=1.0)
    return out
  with warnings.catch_warnings(), np.errstate(all="ignore"):
    warnings.simplefilter("ignore", RuntimeWarning)  # scipy on (nearly) constant differences
    t = stats.ttest_rel(a, b)
    ci = t.confidence_interval(confidence)
    out.update(low=float(ci.low), high=float(ci.high), t_p=float(t.pvalue),
               wilcoxon_p=float(stats.wilcoxon(a, b).pvalue))
  return out


def example_counts(probs, labels, multi_label: bool = False, thresholds=0.5,
                   at_least_one: bool = True) -> np.ndarray:
  """Per test example, the additive counts every percent metric is a function of.

  probs [N, C]; labels [N] (class ids) or, multi-label, [N, C] (0/1). Returns
  [N, 3C + 2] float64 = one-hot tp, fp, fn per class (label), exact match, 1.
  Single-label: the argmax is the prediction; multi-label: `thresholds` as
  metrics.multi_label_predictions applies them.
  """
  probs = np.asarray(probs)
  num_classes = probs.shape[1]
  if multi_label:
    truth = np.asarray(labels) > 0.5
    predicted = metrics_lib.multi_label_predictions(probs, thresholds, at_least_one)
  else:
    eye = np.eye(num_classes, dtype=bool)
    truth, predicted = eye[np.asarray(labels)], eye[probs.argmax(axis=1)]
  exact = (predicted == truth).all(axis=1, keepdims=True)
  return np.concatenate([predicted & truth, predicted & ~truth, ~predicted & truth, exact,
                         np.ones_like(exact)], axis=1).astype(np.float64)


def metric_from_counts(metric: str, totals) -> np.ndarray:
  """A metric (a fraction) from summed `example_counts`: totals [..., 3C + 2] -> [...],
  as textclf_jax/scoring/metrics.py computes it from the same predictions (macro: the
  mean over the classes present, i.e. with tp + fn > 0)."""
  totals = np.asarray(totals, np.float64)
  c = (totals.shape[-1] - 2) // 3
  tp, fp, fn = totals[..., :c], totals[..., c:2 * c], totals[..., 2 * c:3 * c]
  if metric in ("accuracy", "subset_accuracy"):
    return totals[..., 3 * c] / np.maximum(totals[..., 3 * c + 1], 1.0)
  if metric.startswith("micro_"):
    prf = _prf(tp.sum(-1), fp.sum(-1), fn.sum(-1))
  elif metric.startswith("macro_"):
    present = (tp + fn) > 0
    prf = [np.where(present, v, 0.0).sum(-1) / np.maximum(present.sum(-1), 1)
           for v in _prf(tp, fp, fn)]
  else:
    raise ValueError(f"no paired bootstrap for {metric!r} (one of {BOOTSTRAP_METRICS})")
  return prf[("precision", "recall", "f1").index(metric.split("_", 1)[1])]


def _prf(tp, fp, fn):
  """metrics._prf on arrays of any shape: precision, recall, F1 (0 where undefined)."""
  with np.errstate(divide="ignore", invalid="ignore"):
    precision = np.where(tp + fp > 0, tp / (tp + fp), 0.0)
    recall = np.where(tp + fn > 0, tp / (tp + fn), 0.0)
    f1 = np.where(precision + recall > 0,
                  2 * precision * recall / (precision + recall), 0.0)
  return precision, recall, f1


def paired_bootstrap(counts_a, counts_b, metrics, groups=None, resamples: int = RESAMPLES,
                     seed: int = BOOTSTRAP_SEED, confidence: float = CONFIDENCE) -> dict:
  """Paired bootstrap over test examples of arm a against arm b.

  counts_a, counts_b [R, 3C + 2]: `example_counts` of the same rows (row i of both: one
  test example seen by the same run unit); groups [R]: the example each row is (rows of
  one example, e.g. its predictions by several seeds, are resampled together), None:
  every row its own. `resamples` times, the examples are drawn with replacement (numpy
  Generator seeded with `seed`: the same draws for a and b, the pairing), and each
  metric's difference a - b is computed on the pooled draw.

  {metric: {delta (observed), low, high (percentile CI), p, examples}}; p: two-sided,
  twice the smaller share of resampled differences at or beyond 0 on either side,
  (k + 1) / (resamples + 1) so never 0. Fractions, as metric_from_counts.
  """
  counts_a, counts_b = np.asarray(counts_a, np.float64), np.asarray(counts_b, np.float64)
  if counts_a.shape != counts_b.shape:
    raise ValueError(f"unpaired counts: {counts_a.shape} vs {counts_b.shape}")
  if groups is None:
    qa, qb = counts_a, counts_b
  else:
    groups = np.asarray(groups)
    _, groups = np.unique(groups, return_inverse=True)
    qa = np.zeros((groups.max() + 1, counts_a.shape[1]))
    qb = np.zeros_like(qa)
    np.add.at(qa, groups, counts_a)
    np.add.at(qb, groups, counts_b)
  num = qa.shape[0]
  observed = {m: float(metric_from_counts(m, qa.sum(0)) - metric_from_counts(m, qb.sum(0)))
              for m in metrics}
  rng = np.random.default_rng(seed)
  deltas = {m: np.empty(resamples) for m in metrics}
  chunk = max(1, min(resamples, 65_536 // num))  # [chunk, examples] weights: in cache
  for start in range(0, resamples, chunk):
    size = min(chunk, resamples - start)
    draws = rng.integers(0, num, size=(size, num))
    weights = np.bincount((draws + num * np.arange(size)[:, None]).ravel(),
                          minlength=size * num).reshape(size, num).astype(np.float64)
    totals_a, totals_b = weights @ qa, weights @ qb
    for m in metrics:
      deltas[m][start:start + size] = (metric_from_counts(m, totals_a)
                                       - metric_from_counts(m, totals_b))
  tail = 50.0 * (1.0 - confidence)
  out = {}
  for m in metrics:
    d = deltas[m]
    low, high = np.percentile(d, [tail, 100.0 - tail])
    below, above = (d <= 0).sum(), (d >= 0).sum()
    p = min(1.0, 2.0 * float(min(below, above) + 1) / (resamples + 1))
    out[m] = {"delta": observed[m], "low": float(low), "high": float(high), "p": p,
              "examples": int(num)}
  return out
