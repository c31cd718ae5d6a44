"""What a sweep reports: one row per finished cell (results.csv), mean ± std (or a
95% CI) per variant x dataset x metric (table.md, with the published number and the
Δ from the reference row), the paired significance of every row against the
reference (table.md's second table, significance.csv), the figures
(experiments/plots.py) and the same tables in W&B.

Significance, for each row and percent metric against the reference arm
(`spec.reference_arm`) on the same dataset:
  runs      a paired t-test (scipy.stats.ttest_rel, with the t-interval of the mean
            difference) and a Wilcoxon signed-rank test (scipy.stats.wilcoxon) over
            the seeds/folds both arms ran; the t-test decides the table's ≈
            ("not significant at 0.05").
  examples  a paired bootstrap over test examples (`paired_bootstrap`): the runs'
            saved test predictions (RUN/predictions/, rundir) pooled, 10,000
            resamples of the examples with a seeded numpy Generator, the difference
            of the pooled metric with a 95% percentile CI and a two-sided p-value.
            Runs without saved predictions get the run-level tests only.
"""

from __future__ import annotations

import csv
import json
import math
import os
import warnings

import numpy as np

from textclf_jax import config as config_lib
from textclf_jax.scoring import metrics as metrics_lib
from textclf_jax.run import layout as rundir, log as runlog

from experiments import plots
from experiments.spec import (INTERVALS, RUN_METRICS, Cell, Experiment, base_metric,
                              is_percent, make_config, metric_label, metric_names,
                              reference_arm)

NOT_SIGNIFICANT = "≈"  # the paired t-test over runs: p >= ALPHA
UNTESTED = "†"  # fewer than two matched runs: no test over runs
ALPHA = 0.05
CONFIDENCE = 0.95
RESAMPLES = 10_000
BOOTSTRAP_SEED = 0
NO_PREDICTIONS = "no predictions"


def count_params(workdir: str) -> int:
  """Trainable parameters of a finished neural run, from its config.json and data.json."""
  import jax
  from flax import nnx
  from textclf_jax.models import build_model
  config = config_lib.from_json(os.path.join(workdir, "config.json"))
  with open(os.path.join(workdir, "data.json")) as f:
    data = json.load(f)
  vocab, dim = data["vocab_size"], config.embed_dim
  vectors = None if config.embedding == "rand" else np.zeros((vocab, dim), np.float32)
  model = nnx.eval_shape(lambda: build_model(config, vocab, data["num_labels"], vectors,
                                              seed=0))
  return int(sum(x.size for x in jax.tree.leaves(nnx.state(model, nnx.Param))))


def metric_value(results: dict, name: str, workdir: str) -> float:
  """A metric of one finished cell: a test score, a run-level number (RUN_METRICS), or
  `MODE:METRIC`, a multi-label test score with MODE's tuned thresholds
  (results.json's `by_threshold_mode`: every threshold mode from one trained model)."""
  if ":" in name:
    mode, _, metric = name.rpartition(":")
    try:
      return float(results["by_threshold_mode"][mode]["test"][metric])
    except KeyError:
      raise KeyError(f"{workdir}/results.json: no by_threshold_mode.{mode}.test.{metric} "
                     "(multi-label runs record global and per_label)") from None
  if name in results["test"]:
    return float(results["test"][name])
  if name not in RUN_METRICS:
    raise KeyError(f"{workdir}/results.json: no test metric {name!r} (has "
                   f"{', '.join(k for k, v in results['test'].items() if isinstance(v, float))})")
  if name == "num_params" and "num_params" not in results:
    return float(count_params(workdir))
  return float(results[RUN_METRICS[name]])


def result_row(exp: Experiment, cell: Cell, results: dict, root: str) -> dict:
  """One results.csv row: the cell, each of the experiment's metrics, train seconds."""
  workdir = cell.workdir(root)
  return {"variant": cell.variant, "dataset": cell.dataset, "unit": cell.unit,
          **{m: metric_value(results, m, workdir) for m in metric_names(exp)},
          "train_seconds": results["train_seconds"], "workdir": workdir}


class Summary(dict):
  """{(variant, dataset): {metric: (mean, std, n)}}, and in `.significance` the paired
  comparisons of the rows it was made from (`significance`); equal to a plain dict of
  the same cells."""
  significance: dict = {}


def summarise(exp: Experiment, rows: list) -> Summary:
  """{(variant, dataset): {metric: (mean, std, n)}}; accuracies and F1s in percent.
  `.significance`: every row's paired comparisons with the reference arm."""
  groups = {}
  for row in rows:
    groups.setdefault((row["variant"], row["dataset"]), []).append(row)
  summary = Summary({key: {m: _stats([r[m] * _scale(m) for r in group])
                           for m in metric_names(exp)} for key, group in groups.items()})
  summary.significance = significance(exp, rows)
  return summary


def _scale(metric: str) -> float:
  return 100.0 if is_percent(metric) else 1.0


def _stats(values):
  return float(np.mean(values)), float(np.std(values)), len(values)


def t_interval(mean: float, std: float, n: int, confidence: float = CONFIDENCE):
  """The t-interval (low, high) of a mean from `summarise`'s (mean, population std, n):
  mean ± t(n-1) * s / sqrt(n) with the sample std s; None for n < 2."""
  from scipy import stats
  if n < 2:
    return None
  sem = std / math.sqrt(n - 1)  # = sample std / sqrt(n)
  if sem == 0:
    return mean, mean
  low, high = stats.t.interval(confidence, n - 1, loc=mean, scale=sem)
  return float(low), float(high)


def _format(metric: str, mean: float, std: float, n: int = 0, interval: str = "std") -> str:
  if metric == "num_params":
    return f"{mean / 1e6:.2f}M" if mean >= 1e5 else f"{mean / 1e3:.1f}k"
  digits = 1 if is_percent(metric) else 0
  if interval == "ci":
    ci = t_interval(mean, std, n)
    if ci is None:
      return f"{mean:.{digits}f}"
    return f"{mean:.{digits}f} [{ci[0]:.{digits}f}, {ci[1]:.{digits}f}]"
  return f"{mean:.{digits}f} ± {std:.{digits}f}"


# --- significance: paired tests over runs and over test examples -----------------------


def paired_run_test(a, b, confidence: float = CONFIDENCE) -> dict:
  """Arm `a` against arm `b` over matched runs (a[i] and b[i]: one seed or fold).

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
  """Per test example, the additive counts every percent metric is a function of:
  [N, 3C + 2] = one-hot tp, fp, fn per class (label), exact match, 1.
  Single-label: the argmax is the prediction; multi-label: `thresholds` as
  metrics.multi_label_predictions applies them."""
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


BOOTSTRAP_METRICS = ("accuracy", "subset_accuracy", "micro_f1", "micro_precision",
                     "micro_recall", "macro_f1", "macro_precision", "macro_recall")


def metric_from_counts(metric: str, totals) -> np.ndarray:
  """A metric (a fraction) from summed `example_counts` [..., 3C + 2], as
  textclf_jax/metrics.py computes it from the same predictions (macro: the mean over
  the classes present, i.e. with tp + fn > 0)."""
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

  counts_a, counts_b: `example_counts` of the same rows (row i of both: one test example
  seen by the same run unit); groups: the example each row is (rows of one example, e.g.
  its predictions by several seeds, are resampled together), None: every row its own.
  `resamples` times, the examples are drawn with replacement (numpy Generator seeded
  with `seed`: the same draws for a and b, the pairing), and each metric's difference
  a - b is computed on the pooled draw.

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


def _run_predictions(row: dict, mode: str, cache: dict):
  """(counts, labels) of a row's run for threshold mode `mode` ("": the configured
  one), or a string saying why there are none."""
  workdir = row.get("workdir")
  if not workdir:
    return NO_PREDICTIONS
  key = (workdir, mode)
  if key not in cache:
    try:
      cache[key] = _load_run_predictions(workdir, mode)
    except (OSError, ValueError, KeyError, TypeError, IndexError) as e:  # a damaged file
      cache[key] = f"unreadable predictions ({type(e).__name__})"
  return cache[key]


def _load_run_predictions(workdir: str, mode: str):
  loaded = rundir.read_predictions(workdir, "test")
  if loaded is None:
    return NO_PREDICTIONS
  probs, labels = loaded
  multi = bool(rundir.read_labels(workdir)["multi_label"])
  thresholds = None
  if multi:
    config = rundir.read_json(rundir.path(workdir, rundir.CONFIG))
    at_least_one = bool(config.get("multilabel_at_least_one", True))
    saved = rundir.read_json(rundir.path(workdir, rundir.THRESHOLDS))
    if not mode or mode == saved.get("mode"):
      thresholds = np.asarray(saved["thresholds"])
    else:  # the other mode's thresholds, tuned on dev as the run tuned them (its floor:
      # config.OLD_RUN_DEFAULTS' for a run made before multilabel_min_f1)
      dev = rundir.read_predictions(workdir, "dev")
      if dev is None:
        return NO_PREDICTIONS
      min_f1 = config.get("multilabel_min_f1", config_lib.OLD_RUN_DEFAULTS["multilabel_min_f1"])
      thresholds = np.asarray(metrics_lib.tune_thresholds(dev[0], dev[1], mode, at_least_one,
                                                          min_f1))
    return example_counts(probs, labels, True, thresholds, at_least_one), labels
  return example_counts(probs, labels), labels


def _bootstrap_arms(arm: dict, ref: dict, units: list, metrics: list, cache: dict,
                    resamples: int, seed: int):
  """The paired bootstrap of two arms' runs over `units` ({unit: row}), pooled, for
  `metrics` (one threshold mode); a string when it cannot be done."""
  mode = metrics[0].rpartition(":")[0]
  counts_a, counts_b, labels, groups = [], [], [], []
  for unit in units:
    a, b = (_run_predictions(side[unit], mode, cache) for side in (arm, ref))
    for side, got in ((arm, a), (ref, b)):
      if isinstance(got, str):
        return got
      for m in metrics:  # the saved predictions are the ones results.json was scored from
        if abs(float(metric_from_counts(base_metric(m), got[0].sum(0))) - side[unit][m]) > 1e-6:
          return "predictions do not match results.json"
    if a[0].shape != b[0].shape or not np.array_equal(a[1], b[1]):
      return "different test sets"
    counts_a.append(a[0])
    counts_b.append(b[0])
    labels.append(a[1])
  # Seeds test the same examples: a resampled example keeps every seed's prediction.
  same = all(u.startswith("seed_") for u in units) and all(
      l.shape == labels[0].shape and np.array_equal(l, labels[0]) for l in labels)
  for k, l in enumerate(labels):
    groups.append(np.arange(len(l)) + (0 if same else sum(len(x) for x in labels[:k])))
  return paired_bootstrap(np.concatenate(counts_a), np.concatenate(counts_b),
                          [base_metric(m) for m in metrics], np.concatenate(groups),
                          resamples, seed)


def significance(exp: Experiment, rows: list, resamples: int = RESAMPLES,
                 seed: int = BOOTSTRAP_SEED) -> dict:
  """{(variant, dataset): {metric: comparison}} for every arm but the reference and
  every percent metric: `paired_run_test` over the seeds/folds both arms ran (in the
  table's units, percentage points) and, where their runs saved test predictions,
  `paired_bootstrap` over the pooled test examples (`bootstrap`; else `bootstrap_note`
  says why not)."""
  reference = reference_arm(exp)
  metrics = [m for m in metric_names(exp) if is_percent(m)]
  arms = {}
  for row in rows:
    arm = arms.setdefault((row["variant"], row["dataset"]), {})
    arm[row.get("unit") or f"#{len(arm)}"] = row
  cache, out = {}, {}
  for (variant, dataset), arm in arms.items():
    ref = arms.get((reference, dataset))
    if variant == reference or ref is None or not metrics:
      continue
    units = [u for u in arm if u in ref]
    boot = {}
    if units:
      modes = {}
      for m in metrics:
        modes.setdefault(m.rpartition(":")[0], []).append(m)
      for group in modes.values():
        got = _bootstrap_arms(arm, ref, units, group, cache, resamples, seed)
        boot.update({m: got if isinstance(got, str) else got[base_metric(m)] for m in group})
    comparisons = {}
    for m in metrics:
      test = paired_run_test([arm[u][m] * _scale(m) for u in units],
                             [ref[u][m] * _scale(m) for u in units])
      result = boot.get(m, NO_PREDICTIONS)
      if isinstance(result, str):
        test.update(bootstrap=None, bootstrap_note=result)
      else:
        test.update(bootstrap={k: v * _scale(m) if k in ("delta", "low", "high") else v
                               for k, v in result.items()}, bootstrap_note="")
      comparisons[m] = dict(reference=reference, **test)
    out[(variant, dataset)] = comparisons
  return out


def _marker(comparison) -> str:
  if comparison is None:
    return ""
  if comparison["n"] < 2:
    return f" {UNTESTED}"
  return f" {NOT_SIGNIFICANT}" if not comparison["t_p"] < ALPHA else ""


def _p(p: float) -> str:
  if math.isnan(p):
    return "–"
  return "<0.001" if p < 0.001 else f"{p:.3f}"


def _ci(low: float, high: float) -> str:
  return "–" if math.isnan(low) else f"[{low:+.2f}, {high:+.2f}]"


def format_table(exp: Experiment, summary: dict) -> str:
  """Markdown: variants (baselines last) x datasets x metrics, mean ± std (n) or, with
  exp.interval == "ci", mean [95% CI]; then the paired comparisons (`significance_table`).

  With a published number: `paper X (Δ d)`. Against the reference arm
  (`spec.reference_arm`): Δ of each percent metric's mean, marked ≈ when the paired
  t-test over the matched seeds/folds is not significant at 0.05 (summarise's
  `.significance`), † when fewer than two seeds/folds are matched.
  """
  if exp.interval not in INTERVALS:
    raise ValueError(f"Experiment.interval={exp.interval!r}: expected one of {INTERVALS}")
  metrics = metric_names(exp)
  reference = reference_arm(exp)
  tests = getattr(summary, "significance", {})
  variants = list(dict.fromkeys(v for v, _ in summary))
  variants = ([v for v in variants if v not in exp.baselines]
              + [v for v in variants if v in exp.baselines])
  datasets = list(dict.fromkeys(d for _, d in summary))
  columns = [(d, m) for d in datasets for m in metrics]
  header = [d if len(metrics) == 1 else f"{d} {metric_label(m)}" for d, m in columns]
  lines = [f"| {exp.name} | " + " | ".join(header) + " |", "|---|" + "---|" * len(columns)]
  marks = set()
  for variant in variants:
    cells = []
    for dataset, metric in columns:
      if (variant, dataset) not in summary:
        cells.append("–")
        continue
      mean, std, n = summary[(variant, dataset)][metric]
      text = _format(metric, mean, std, n, exp.interval) + (
          f" (n={n})" if metric == metrics[0] else "")
      published = exp.published.get((variant, dataset)) if metric == metrics[0] else None
      ref_stats = summary.get((reference, dataset))
      compared = bool(reference and variant != reference and ref_stats and is_percent(metric))
      if published is not None:
        text += (f" · paper {published:.1f} (Δ {mean - published:+.1f})" if compared
                 else f" · paper {published:.1f} · Δ {mean - published:+.1f}")
      if compared:
        mark = _marker(tests.get((variant, dataset), {}).get(metric))
        marks.add(mark.strip())
        text += f" · Δ {mean - ref_stats[metric][0]:+.1f}{mark}"
      cells.append(text)
    name = f"{variant} (ref)" if variant == reference else variant
    lines.append(f"| {name} | " + " | ".join(cells) + " |")
  notes = []
  if exp.interval == "ci":
    notes.append("Cells: mean [95% CI]: the t-interval over the runs (scipy.stats.t, n − 1 "
                 "degrees of freedom).")
  if reference and any(v == reference for v, _ in summary):
    note = (f"Δ: difference of the mean from the reference row `{reference}` on the same "
            f"dataset (percentage points). {NOT_SIGNIFICANT}: not significant at {ALPHA} by a "
            "two-sided paired t-test over the seeds/folds both rows ran "
            "(scipy.stats.ttest_rel); unmarked: significant.")
    if UNTESTED in marks:
      note += f" {UNTESTED}: fewer than two matched seeds/folds, not tested."
    if NOT_SIGNIFICANT not in marks and "" in marks:
      note += f" (No cell is marked {NOT_SIGNIFICANT}.)"
    notes.append(note + " CIs, Wilcoxon and paired-bootstrap p-values: the table below.")
  if exp.baselines:
    notes.append(f"{', '.join(exp.baselines)}: TF-IDF word uni+bigrams + logistic regression "
                 "(C picked on dev), on the same splits, folds and tokenisation.")
  if any(s[metrics[0]][2] < 5 for s in summary.values()):
    notes.append("Some cells have n < 5 runs: too few for a comparison.")
  if exp.published_note:
    notes.append(exp.published_note)
  table = "\n".join(lines) + "".join(f"\n\n{n}" for n in notes) + "\n"
  significance_md = significance_table(exp, summary)
  return table + (f"\n{significance_md}" if significance_md else "")


SIGNIFICANCE_COLUMNS = ("variant", "dataset", "metric", "runs", "Δ", "95% CI (t)",
                        "t-test p", "Wilcoxon p", "examples", "bootstrap Δ",
                        "bootstrap 95% CI", "bootstrap p")


def significance_table(exp: Experiment, summary: dict) -> str:
  """Markdown: one row per compared arm x dataset x percent metric (summarise's
  `.significance`), in the main table's order, with a footnote naming the tests;
  "" when nothing was compared."""
  tests = getattr(summary, "significance", {})
  if not tests:
    return ""
  reference = reference_arm(exp)
  variants = list(dict.fromkeys(v for v, _ in summary))
  variants = ([v for v in variants if v not in exp.baselines]
              + [v for v in variants if v in exp.baselines])
  datasets = list(dict.fromkeys(d for _, d in summary))
  lines = [f"Paired comparisons with `{reference}` (test scores, percentage points; "
           "row − reference):", "",
           "| " + " | ".join(SIGNIFICANCE_COLUMNS) + " |",
           "|" + "---|" * len(SIGNIFICANCE_COLUMNS)]
  missing = set()
  for variant in variants:
    for dataset in datasets:
      for metric, c in tests.get((variant, dataset), {}).items():
        boot = c["bootstrap"]
        if boot is None:
          missing.add(c["bootstrap_note"])
          bootstrap = ["–", f"– ({c['bootstrap_note']})", "–", "–"]
        else:
          bootstrap = [str(boot["examples"]), f"{boot['delta']:+.2f}",
                       _ci(boot["low"], boot["high"]), _p(boot["p"])]
        delta = "–" if math.isnan(c["delta"]) else f"{c['delta']:+.2f}{_marker(c)}"
        lines.append("| " + " | ".join([
            variant, dataset, metric_label(metric), str(c["n"]), delta,
            _ci(c["low"], c["high"]), _p(c["t_p"]), _p(c["wilcoxon_p"]), bootstrap[0],
            *bootstrap[1:]]) + " |")
  note = ("runs: the seeds/folds both rows ran; Δ: the mean of their paired differences. "
          "95% CI (t) and t-test p: two-sided paired t-test over those runs "
          f"(scipy.stats.ttest_rel) — the test behind {NOT_SIGNIFICANT} (not significant at "
          f"{ALPHA}); Wilcoxon p: two-sided signed-rank test over the same pairs "
          "(scipy.stats.wilcoxon, exact for small n: its smallest p is 2/2^n, 0.0625 for 5 "
          "runs). Bootstrap: paired bootstrap over the test examples of the runs' saved "
          f"predictions, pooled ({RESAMPLES:,} resamples of the examples with replacement, "
          f"numpy seed {BOOTSTRAP_SEED}; an example keeps every seed's prediction; examples: "
          "how many were resampled): the difference of the pooled metric, its 2.5–97.5 "
          "percentile interval, and p = twice the smaller share of resampled differences on "
          "either side of 0.")
  if NO_PREDICTIONS in missing:
    note += (f" {NO_PREDICTIONS}: runs made before test predictions were saved "
             "(RUN/predictions/): the run-level tests only.")
  return "\n".join(lines) + f"\n\n{note}\n"


def log_wandb_table(exp: Experiment, root: str, rows: list, summary: dict):
  """The summary (and every run's row) as wandb.Tables in a run of the sweep's group.

  The mode is the config's `wandb` (auto: WANDB_MODE, else online with an API key,
  else offline); disabled logs nothing.
  """
  config = make_config(exp, [])
  mode = runlog.wandb_mode(config.wandb)
  if mode == "disabled":
    return
  import wandb
  metrics = metric_names(exp)
  columns = ["variant", "dataset"] + [f"{m}_{s}" for m in metrics for s in ("mean", "std")] + ["n"]
  table = wandb.Table(columns=columns)
  for (variant, dataset), stats in summary.items():
    table.add_data(variant, dataset, *[x for m in metrics for x in stats[m][:2]],
                   stats[metrics[0]][2])
  runs = wandb.Table(columns=list(rows[0]), data=[list(r.values()) for r in rows])
  tests = significance_rows(summary)
  extra = ({"significance_table": wandb.Table(columns=list(tests[0]),
                                              data=[list(r.values()) for r in tests])}
           if tests else {})
  run = wandb.init(project=config.wandb_project, group=exp.name, job_type="summary",
                   name=f"{exp.name}-summary", dir=root, mode=mode, reinit="finish_previous")
  images = {f"plot/{os.path.basename(p)}": wandb.Image(os.path.join(root, p))
            for p in sorted(os.listdir(root)) if p.startswith("plot") and p.endswith(".png")}
  run.log({"summary_table": table, "runs_table": runs, **extra, **images})
  run.finish()


def significance_rows(summary: dict) -> list:
  """summarise's `.significance` as flat rows (significance.csv; NaN: no test)."""
  out = []
  for (variant, dataset), comparisons in getattr(summary, "significance", {}).items():
    for metric, c in comparisons.items():
      boot = c["bootstrap"] or {}
      out.append({"variant": variant, "dataset": dataset, "metric": metric,
                  "reference": c["reference"], "runs": c["n"], "delta": c["delta"],
                  "t_low": c["low"], "t_high": c["high"], "t_p": c["t_p"],
                  "wilcoxon_p": c["wilcoxon_p"],
                  "examples": boot.get("examples", 0),
                  "bootstrap_delta": boot.get("delta", math.nan),
                  "bootstrap_low": boot.get("low", math.nan),
                  "bootstrap_high": boot.get("high", math.nan),
                  "bootstrap_p": boot.get("p", math.nan), "bootstrap_note": c["bootstrap_note"]})
  return out


def write_report(exp: Experiment, root: str, rows: list, summary: dict, table: str):
  """ROOT/results.csv (one row per run), ROOT/significance.csv (one row per comparison),
  ROOT/table.md, ROOT/plot*.png and the W&B tables."""
  os.makedirs(root, exist_ok=True)
  with open(os.path.join(root, "results.csv"), "w", newline="") as f:
    writer = csv.DictWriter(f, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows(rows)
  tests = significance_rows(summary)
  if tests:
    with open(os.path.join(root, "significance.csv"), "w", newline="") as f:
      writer = csv.DictWriter(f, fieldnames=list(tests[0]))
      writer.writeheader()
      writer.writerows(tests)
  with open(os.path.join(root, "table.md"), "w", encoding="utf-8") as f:
    f.write(table)
  plots.write_plot(exp, summary, os.path.join(root, "plot.png"))
  log_wandb_table(exp, root, rows, summary)
