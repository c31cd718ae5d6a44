"""One trained multi-label model, re-thresholded under each threshold objective (issue 26).

    PYTHONPATH=. python bench/threshold_objectives.py RUN [RUN ...]

Thresholds depend only on a run's saved dev predictions (predictions/dev_probs.npy),
so each objective (micro, macro, per_label: scoring/objective.py) is searched on the
calibrated dev probabilities (calibration.json's temperature) with the run's own mode
and floor setting, and scored on the calibrated saved test probabilities: what a run
trained with that objective reports, and `textclf eval RUN --threshold_objective O`
recomputes from the checkpoint. The row "raw/micro" is what runs made before the
change reported (thresholds searched on, and applied to, the raw probabilities).
Prints a Markdown table.
"""

from __future__ import annotations

import sys

from textclf_jax.run import compat, layout as rundir
from textclf_jax.scoring import calibration as calibration_lib
from textclf_jax.scoring import metrics as metrics_lib

OBJECTIVES = ("micro", "macro", "per_label")


def rows(run: str) -> list:
  config = compat.read_config(rundir.path(run, rundir.CONFIG))
  names = rundir.read_labels(run)["labels"]
  (dev_probs, dev_labels), (test_probs, test_labels) = (rundir.read_predictions(run, s)
                                                        for s in ("dev", "test"))
  temperature = rundir.read_calibration(run)["temperature"]
  calibrated = [calibration_lib.apply_temperature(p, temperature, True)
                for p in (dev_probs, test_probs)]
  out = []
  for name, (dev, test), objective in (
      ("raw/micro", (dev_probs, test_probs), "micro"),
      *((f"calibrated/{o}", calibrated, o) for o in OBJECTIVES)):
    search = metrics_lib.search_thresholds(dev, dev_labels, config.multilabel_threshold,
                                           config.multilabel_at_least_one,
                                           config.multilabel_min_f1, objective)
    scored = [metrics_lib.multi_label_metrics(p, y, names, search["thresholds"],
                                              config.multilabel_at_least_one)
              for p, y in ((dev, dev_labels), (test, test_labels))]
    out.append((run, name, search.get("min_f1", ""),
                *(s[k] for s in scored for k in ("micro_f1", "macro_f1"))))
  return out


def main(argv) -> None:
  print("| run | probabilities/objective | floor | dev micro-F1 | dev macro-F1 | test micro-F1 "
        "| test macro-F1 |")
  print("|---|---|---|---|---|---|---|")
  for run in argv:
    for run_, name, floor, *figures in rows(run):
      print(f"| {run_} | {name} | {floor} | " + " | ".join(f"{v:.4f}" for v in figures) + " |")


if __name__ == "__main__":
  main(sys.argv[1:])
