"""What a sweep reports: one row per finished cell (results.csv), mean ± std (or a
95% CI) per variant x dataset x metric (table.md, with the published number and the
Δ from the reference row), the paired significance of every row against the
reference (table.md's second table, significance.csv), the figures
(experiments/plots.py) and the same tables in W&B.

Where the parts live:
  this module                       rows, the summary, results.csv, significance.csv, W&B
  experiments/report_md.py          table.md: `format_table`, `significance_table`
  experiments/report_significance.py  which runs pair, their saved predictions read back
  textclf_jax/scoring/significance.py the tests themselves: `paired_run_test` (paired
                                    t-test and Wilcoxon over seeds/folds),
                                    `paired_bootstrap` over test examples, `t_interval`
Their public names are importable from here too, as before.

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

import numpy as np

from textclf_jax.run import compat
from textclf_jax.run import log as runlog
from textclf_jax.scoring.significance import (
    BOOTSTRAP_METRICS, BOOTSTRAP_SEED, CONFIDENCE, RESAMPLES, example_counts,
    metric_from_counts, paired_bootstrap, paired_run_test, t_interval)

from experiments import plots
from experiments.report_md import (
    ALPHA, NOT_SIGNIFICANT, SIGNIFICANCE_COLUMNS, UNTESTED, _format, format_table,
    significance_table)
from experiments.report_significance import (
    NO_PREDICTIONS, scale as _scale, significance)
from experiments.spec import RUN_METRICS, Cell, Experiment, make_config, metric_names

__all__ = [  # what other modules import from here, wherever it is defined
    "ALPHA", "BOOTSTRAP_METRICS", "BOOTSTRAP_SEED", "CONFIDENCE", "NOT_SIGNIFICANT",
    "NO_PREDICTIONS", "RESAMPLES", "SIGNIFICANCE_COLUMNS", "UNTESTED", "Summary", "_format",
    "_scale", "_stats", "count_params", "example_counts", "format_table", "log_wandb_table",
    "metric_from_counts", "metric_value", "paired_bootstrap", "paired_run_test", "result_row",
    "significance", "significance_rows", "significance_table", "summarise", "t_interval",
    "write_report"]


def count_params(workdir: str) -> int:
  """Trainable parameters of a finished neural run, from its config.json and data.json."""
  import jax
  from flax import nnx
  from textclf_jax.models import build_model
  config = compat.read_config(os.path.join(workdir, "config.json"))
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


def _stats(values):
  return float(np.mean(values)), float(np.std(values)), len(values)


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
