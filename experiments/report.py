"""What a sweep reports: one row per finished cell (results.csv), mean ± std per
variant x dataset x metric (table.md, with the published number and the Δ from a
reference row), the figures (experiments/plots.py) and the same tables in W&B.
"""

from __future__ import annotations

import csv
import json
import os

import numpy as np

from textclf_jax import config as config_lib
from textclf_jax import runlog

from experiments import plots
from experiments.spec import (RUN_METRICS, Cell, Experiment, is_percent, make_config,
                              metric_label, metric_names)

WITHIN = "≈"


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


def summarise(exp: Experiment, rows: list) -> dict:
  """{(variant, dataset): {metric: (mean, std, n)}}; accuracies and F1s in percent."""
  groups = {}
  for row in rows:
    groups.setdefault((row["variant"], row["dataset"]), []).append(row)
  return {key: {m: _stats([r[m] * (100.0 if is_percent(m) else 1.0) for r in group])
                for m in metric_names(exp)} for key, group in groups.items()}


def _stats(values):
  return float(np.mean(values)), float(np.std(values)), len(values)


def within_spread(delta: float, std_a: float, std_b: float) -> bool:
  """True when a difference of means is smaller than the larger of the two stds."""
  return abs(delta) < max(std_a, std_b)


def _format(metric: str, mean: float, std: float) -> str:
  if metric == "num_params":
    return f"{mean / 1e6:.2f}M" if mean >= 1e5 else f"{mean / 1e3:.1f}k"
  if is_percent(metric):
    return f"{mean:.1f} ± {std:.1f}"
  return f"{mean:.0f} ± {std:.0f}"


def format_table(exp: Experiment, summary: dict) -> str:
  """Markdown: variants (baselines last) x datasets x metrics, mean ± std (n).

  With a published number: `paper X · Δ`. With `exp.reference`: Δ of each
  percent metric from the reference row, marked ≈ when within the spread.
  """
  metrics = metric_names(exp)
  variants = list(dict.fromkeys(v for v, _ in summary))
  variants = ([v for v in variants if v not in exp.baselines]
              + [v for v in variants if v in exp.baselines])
  datasets = list(dict.fromkeys(d for _, d in summary))
  columns = [(d, m) for d in datasets for m in metrics]
  header = [d if len(metrics) == 1 else f"{d} {metric_label(m)}" for d, m in columns]
  lines = [f"| {exp.name} | " + " | ".join(header) + " |", "|---|" + "---|" * len(columns)]
  marked = False
  for variant in variants:
    cells = []
    for dataset, metric in columns:
      if (variant, dataset) not in summary:
        cells.append("–")
        continue
      mean, std, n = summary[(variant, dataset)][metric]
      text = _format(metric, mean, std) + (f" (n={n})" if metric == metrics[0] else "")
      published = exp.published.get((variant, dataset)) if metric == metrics[0] else None
      if published is not None:
        text += f" · paper {published:.1f} · Δ {mean - published:+.1f}"
      reference = summary.get((exp.reference, dataset))
      if exp.reference and variant != exp.reference and reference and is_percent(metric):
        ref_mean, ref_std, _ = reference[metric]
        text += f" · Δ {mean - ref_mean:+.1f}"
        if within_spread(mean - ref_mean, std, ref_std):
          text += f" {WITHIN}"
          marked = True
      cells.append(text)
    name = f"{variant} (ref)" if variant == exp.reference else variant
    lines.append(f"| {name} | " + " | ".join(cells) + " |")
  notes = []
  if exp.reference and any(v == exp.reference for v, _ in summary):
    notes.append(f"Δ: difference of the mean from the reference row `{exp.reference}` on the "
                 f"same dataset (percentage points). {WITHIN}: |Δ| is smaller than the larger "
                 "of the two standard deviations, i.e. within the seed/fold spread — no "
                 "difference is shown." + ("" if marked else " (No cell is marked.)"))
  if exp.baselines:
    notes.append(f"{', '.join(exp.baselines)}: TF-IDF word uni+bigrams + logistic regression "
                 "(C picked on dev), on the same splits, folds and tokenisation.")
  if any(s[metrics[0]][2] < 5 for s in summary.values()):
    notes.append("Some cells have n < 5 runs: too few for a comparison.")
  if exp.published_note:
    notes.append(exp.published_note)
  return "\n".join(lines) + "".join(f"\n\n{n}" for n in notes) + "\n"


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
  run = wandb.init(project=config.wandb_project, group=exp.name, job_type="summary",
                   name=f"{exp.name}-summary", dir=root, mode=mode, reinit="finish_previous")
  images = {f"plot/{os.path.basename(p)}": wandb.Image(os.path.join(root, p))
            for p in sorted(os.listdir(root)) if p.startswith("plot") and p.endswith(".png")}
  run.log({"summary_table": table, "runs_table": runs, **images})
  run.finish()


def write_report(exp: Experiment, root: str, rows: list, summary: dict, table: str):
  """ROOT/results.csv (one row per run), ROOT/table.md, ROOT/plot*.png and the W&B tables."""
  os.makedirs(root, exist_ok=True)
  with open(os.path.join(root, "results.csv"), "w", newline="") as f:
    writer = csv.DictWriter(f, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows(rows)
  with open(os.path.join(root, "table.md"), "w", encoding="utf-8") as f:
    f.write(table)
  plots.write_plot(exp, summary, os.path.join(root, "plot.png"))
  log_wandb_table(exp, root, rows, summary)
