"""The significance of a sweep's rows against its reference arm (experiments/report.py's
`.significance`): which runs pair with which, their saved test predictions read back
(RUN/predictions/), and textclf_jax/scoring/significance.py's tests applied to them.

For each row and percent metric against the reference arm (`spec.reference_arm`) on the
same dataset:
  runs      `paired_run_test` over the seeds/folds both arms ran, in the table's units
            (percentage points); the t-test decides the table's ≈.
  examples  `paired_bootstrap` over the test examples of the runs' saved predictions,
            pooled (an example keeps every seed's prediction; folds are side by side).
            Runs without saved predictions get the run-level tests only.
"""

from __future__ import annotations

import numpy as np

from textclf_jax.run import compat
from textclf_jax.run import layout as rundir
from textclf_jax.scoring import calibration as calibration_lib
from textclf_jax.scoring import metrics as metrics_lib
from textclf_jax.scoring import objective as objective_lib
from textclf_jax.scoring.significance import (BOOTSTRAP_SEED, RESAMPLES, example_counts,
                                              metric_from_counts, paired_bootstrap,
                                              paired_run_test)

from experiments.spec import Experiment, base_metric, is_percent, metric_names, reference_arm

NO_PREDICTIONS = "no predictions"


def scale(metric: str) -> float:
  """What a metric's fraction is multiplied by in the tables: 100 for percent metrics."""
  return 100.0 if is_percent(metric) else 1.0


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
    # A run scored on its calibrated probabilities (compat.headline_calibrated): so here.
    temperature = 1.0
    if compat.headline_calibrated(rundir.read_results(workdir)):
      temperature = rundir.read_calibration(workdir)["temperature"]

    def calibrate(p):
      return calibration_lib.apply_temperature(p, temperature, True)

    probs = calibrate(probs)
    if not mode or mode == saved.get("mode"):
      thresholds = np.asarray(saved["thresholds"])
    else:  # the other mode's thresholds, tuned on dev as the run tuned them (its floor
      # and objective: compat.OLD_RUN_DEFAULTS' for a run made before they were keys)
      dev = rundir.read_predictions(workdir, "dev")
      if dev is None:
        return NO_PREDICTIONS
      old = compat.OLD_RUN_DEFAULTS
      min_f1 = config.get("multilabel_min_f1", old["multilabel_min_f1"])
      objective = objective_lib.resolve(
          {**config, "threshold_objective": config.get("threshold_objective",
                                                       old["threshold_objective"])})
      thresholds = np.asarray(metrics_lib.tune_thresholds(calibrate(dev[0]), dev[1], mode,
                                                          at_least_one, min_f1, objective))
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
      test = paired_run_test([arm[u][m] * scale(m) for u in units],
                             [ref[u][m] * scale(m) for u in units])
      result = boot.get(m, NO_PREDICTIONS)
      if isinstance(result, str):
        test.update(bootstrap=None, bootstrap_note=result)
      else:
        test.update(bootstrap={k: v * scale(m) if k in ("delta", "low", "high") else v
                               for k, v in result.items()}, bootstrap_note="")
      comparisons[m] = dict(reference=reference, **test)
    out[(variant, dataset)] = comparisons
  return out
