"""Finishing a run, whatever trained it: the tested model's dev and test probabilities
in, the run directory's final files out.

    scores = finish.score(config, label_names, multi_label, dev=(p, y), test=(p, y))
    results = finish.write(workdir, config, name, multi_label, scores, fields, after)

score: temperature scaling fitted on dev -> thresholds tuned on the calibrated dev
probabilities (multi-label) -> dev and test metrics (multi-label: of the calibrated
probabilities, as `predict` labels) -> by_threshold_mode (multi-label). write: thresholds.json,
predictions/, calibration.json + reliability.png, and results.json last (a run with
results.json is complete). The neural loop (training/progress.py) and the TF-IDF fit
(families/tfidf/fit.py) both finish through here, so their files agree key for key.
"""

from __future__ import annotations

import sys

from textclf_jax.run import layout as rundir
from textclf_jax.runtime import parallel
from textclf_jax.scoring import calibration as calibration_lib
from textclf_jax.scoring import metrics as metrics_lib
from textclf_jax.scoring import objective as objective_lib


def score(config, label_names: list, multi_label: bool, dev: tuple, test: tuple,
          search: dict | None = None) -> dict:
  """dev, test: (raw probabilities [N, C], labels) of the tested model. search: a dev
  threshold search the family already made (metrics.search_thresholds' record, on the
  raw dev probabilities), reused when calibration leaves them as they are and it was
  made for the same objective; else the search is made here.

  Temperature scaling is fitted on dev first; multi-label, the thresholds are searched
  on the calibrated dev probabilities for the run's objective (objective.resolve), and
  dev/test metrics and by_threshold_mode are those of the calibrated probabilities at
  them: what `predict` labels with and `eval` recomputes. Single-label metrics are the
  raw probabilities' (temperature keeps every argmax).

  Returns {dev, test (metrics), thresholds ([C] or None), threshold_search (or None),
  predictions: {split: (raw probs, labels)}, calibration: (calibration.json's record,
  results.json's entry), by_threshold_mode (multi-label; else None)}."""
  (dev_probs, dev_labels), (test_probs, test_labels) = dev, test
  at_least_one = config.multilabel_at_least_one
  fit = calibration_lib.fit_temperature(dev_probs, dev_labels, multi_label)
  thresholds = None
  if multi_label:
    objective = objective_lib.resolve(config, True)
    temperature = fit["temperature"]
    dev_probs = calibration_lib.apply_temperature(dev_probs, temperature, True)
    test_probs = calibration_lib.apply_temperature(test_probs, temperature, True)
    if (search is None or search.get("objective") != objective
        or not all(t == 1.0 for t in temperature)):
      search = metrics_lib.search_thresholds(dev_probs, dev_labels,
                                             config.multilabel_threshold, at_least_one,
                                             config.multilabel_min_f1, objective)
    search = {**search, "on": "calibrated"}
    thresholds = search["thresholds"]
  else:
    search = None
  out = {"dev": metrics_lib.score(dev_probs, dev_labels, label_names, multi_label,
                                  thresholds, at_least_one),
         "test": metrics_lib.score(test_probs, test_labels, label_names, multi_label,
                                   thresholds, at_least_one),
         "thresholds": thresholds, "threshold_search": search,
         "predictions": {"dev": dev, "test": test}, "by_threshold_mode": None}
  if multi_label:
    out["by_threshold_mode"] = metrics_lib.scores_by_threshold_mode(
        dev_probs, dev_labels, test_probs, test_labels, label_names, at_least_one,
        config.multilabel_min_f1, search["objective"])
  out["calibration"] = calibration_lib.calibrate_run(
      out["predictions"], multi_label, label_names, fit, search,
      config.multilabel_threshold, at_least_one)
  return out


def results(scores: dict, fields: dict, after: dict | None = None) -> dict:
  """results.json's record: `fields` (rundir.RESULT_KEYS but dev and test, then the
  family's own extras), by_threshold_mode (multi-label), `after`, calibration."""
  record = dict(fields, dev=scores["dev"], test=scores["test"])
  if scores["threshold_search"] is not None:  # multi-label: what the thresholds optimise
    record.update(threshold_objective=scores["threshold_search"]["objective"],
                  thresholds_on="calibrated")
  if scores["by_threshold_mode"] is not None:
    record["by_threshold_mode"] = scores["by_threshold_mode"]
  record.update(after or {})
  record["calibration"] = scores["calibration"][1]
  return rundir.results_record(**record)


def write(workdir: str, config, name: str, multi_label: bool, scores: dict,
          results_record: dict):
  """Writes the finished run's files (process 0 only), results.json last."""
  if not parallel.is_main_process():
    return
  problem = scores["thresholds"] is not None and objective_lib.saturation(scores["thresholds"])
  if problem:  # once a run: the one finishing of a run
    print(f"[textclf] warning: {name} ({workdir}): {problem}", file=sys.stderr, flush=True)
  if scores["thresholds"] is not None:
    rundir.write_thresholds(workdir, config.multilabel_threshold, scores["thresholds"],
                            scores["threshold_search"])
  rundir.write_predictions(workdir, scores["predictions"])
  rundir.write_calibration_files(workdir, scores["calibration"][0], scores["predictions"],
                                 multi_label, name)
  rundir.write_results(workdir, results_record)  # last: a run with results.json is complete
