"""The generic sweep runner: an experiment is a base config plus a grid of overrides.

    exp = Experiment(name="kim2014", preset="kim", variants={...}, datasets={...}, seeds=(0, 1, 2))
    run_experiment(exp, root="runs/kim2014", only_datasets=["trec"], quick=False)

Cells are variants x datasets x units, a unit being a CV fold (datasets without a
test split: every fold) or a seed (fixed-split datasets). Each cell is a normal
run directory `ROOT/DATASET/VARIANT/{fold_K,seed_S}`; a finished cell (results.json)
is read, not re-run, and a half-finished one is resumed, so a sweep killed half-way
continues where it stopped. Writes ROOT/results.csv (one row per run), ROOT/table.md
(mean ± std per variant x dataset, with the published number and the difference
when given) and ROOT/plot.png. All runs of a sweep share one W&B group.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import os

import numpy as np

from textclf_jax import config as config_lib
from textclf_jax import parallel, train
from textclf_jax.data import splits as splits_lib
from textclf_jax.data.sources import load_source

QUICK = ["num_epochs=2", "max_train_examples=400", "early_stopping_patience=0"]


@dataclasses.dataclass
class Experiment:
  """name; preset + overrides shared by every cell; variants and datasets: name ->
  overrides; seeds for fixed-split datasets; metric read from results.json's test;
  published: {(variant, dataset): value in the metric's units} for the table."""
  name: str
  preset: str
  variants: dict
  datasets: dict
  overrides: tuple = ()
  seeds: tuple = (0, 1, 2)
  metric: str = "accuracy"
  published: dict = dataclasses.field(default_factory=dict)
  published_note: str = ""


@dataclasses.dataclass
class Cell:
  variant: str
  dataset: str
  unit: str  # fold_K or seed_S
  overrides: list

  def workdir(self, root: str) -> str:
    return os.path.join(root, self.dataset, self.variant, self.unit)


def make_config(exp: Experiment, overrides, extra=()):
  config = config_lib.load_preset(exp.preset)
  return config_lib.apply_overrides(config, [*exp.overrides, *overrides, *extra])


def plan_cells(exp: Experiment, only_datasets=(), only_variants=(), max_units=0,
               extra=()) -> list:
  """Every cell of the grid (restricted by the `only_*` lists and `max_units`)."""
  cells = []
  for dataset, d_over in exp.datasets.items():
    if only_datasets and dataset not in only_datasets:
      continue
    probe = make_config(exp, d_over, extra)
    raw = load_source(probe)
    if splits_lib.uses_cross_validation(raw):
      units = [(f"fold_{k}", [f"fold={k}"])
               for k in range(splits_lib.num_folds_of(raw, probe.num_folds))]
    else:
      units = [(f"seed_{s}", [f"seed={s}"]) for s in exp.seeds]
    if max_units:
      units = units[:max_units]
    for variant, v_over in exp.variants.items():
      if only_variants and variant not in only_variants:
        continue
      for unit, u_over in units:
        cells.append(Cell(variant, dataset, unit, [*d_over, *v_over, *u_over]))
  return cells


def run_cell(exp: Experiment, cell: Cell, root: str, extra=()) -> dict:
  workdir = cell.workdir(root)
  results_path = os.path.join(workdir, "results.json")
  if os.path.exists(results_path):
    with open(results_path) as f:
      return json.load(f)
  config = make_config(exp, cell.overrides, [*extra, f"wandb_group={exp.name}",
                                             "progress_bar=False"])
  if parallel.is_main_process():
    print(f"[{exp.name}] {cell.dataset} / {cell.variant} / {cell.unit}", flush=True)
  resume = os.path.exists(os.path.join(workdir, "config.json"))
  fold = config.fold if cell.unit.startswith("fold_") else -1
  return train.train_and_evaluate(config, workdir, resume=resume, fold=fold)


def summarise(exp: Experiment, rows: list) -> dict:
  """{(variant, dataset): (mean, std, n)} of the metric, in percent for accuracies."""
  scale = 100.0 if exp.metric in ("accuracy", "micro_f1", "macro_f1") else 1.0
  groups = {}
  for row in rows:
    groups.setdefault((row["variant"], row["dataset"]), []).append(row[exp.metric] * scale)
  return {k: (float(np.mean(v)), float(np.std(v)), len(v)) for k, v in groups.items()}


def format_table(exp: Experiment, summary: dict) -> str:
  """The markdown table: variants x datasets, mean ± std (n), published number and Δ."""
  variants = list(dict.fromkeys(v for v, _ in summary))
  datasets = list(dict.fromkeys(d for _, d in summary))
  lines = [f"| {exp.name} | " + " | ".join(datasets) + " |",
           "|---|" + "---|" * len(datasets)]
  for variant in variants:
    cells = []
    for dataset in datasets:
      if (variant, dataset) not in summary:
        cells.append("–")
        continue
      mean, std, n = summary[(variant, dataset)]
      text = f"{mean:.1f} ± {std:.1f} (n={n})"
      published = exp.published.get((variant, dataset))
      if published is not None:
        text += f" · paper {published:.1f} · Δ {mean - published:+.1f}"
      cells.append(text)
    lines.append(f"| {variant} | " + " | ".join(cells) + " |")
  return "\n".join(lines) + (f"\n\n{exp.published_note}\n" if exp.published_note else "\n")


def write_plot(exp: Experiment, summary: dict, path: str):
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt

  variants = list(dict.fromkeys(v for v, _ in summary))
  datasets = list(dict.fromkeys(d for _, d in summary))
  width = 0.8 / max(len(variants), 1)
  fig, ax = plt.subplots(figsize=(1.6 + 1.4 * len(datasets), 3.6))
  for i, variant in enumerate(variants):
    xs = [j + i * width for j, d in enumerate(datasets) if (variant, d) in summary]
    stats = [summary[(variant, d)] for d in datasets if (variant, d) in summary]
    ax.bar(xs, [s[0] for s in stats], width, yerr=[s[1] for s in stats], label=variant,
           capsize=2)
  ax.set_xticks([j + width * (len(variants) - 1) / 2 for j in range(len(datasets))], datasets)
  ax.set_ylabel(f"test {exp.metric} (mean ± std)")
  lows = [s[0] - s[1] for s in summary.values()]
  ax.set_ylim(max(0.0, min(lows) - 5), None)
  ax.legend(fontsize=7)
  ax.set_title(exp.name)
  fig.tight_layout()
  fig.savefig(path, dpi=120)
  plt.close(fig)


def run_experiment(exp: Experiment, root: str, only_datasets=(), only_variants=(),
                   max_units=0, quick=False, report_only=False) -> dict:
  """Runs (or reads) every cell, then writes results.csv, table.md and plot.png.

  report_only: train nothing; tabulate the cells that have finished (a sweep's
  progress, or the finished part of one that was stopped).

  Under a multi-process launch (launch/: JAX_* variables or TEXTCLF_DISTRIBUTED=1)
  every process runs every cell together; process 0 writes the outputs.
  """
  parallel.initialize()
  extra = list(QUICK) if quick else []
  if quick:
    only_datasets = only_datasets or [next(iter(exp.datasets))]
    max_units = max_units or 1
  cells = plan_cells(exp, only_datasets, only_variants, max_units, extra)
  rows = []
  for cell in cells:
    if report_only and not os.path.exists(os.path.join(cell.workdir(root), "results.json")):
      continue
    results = run_cell(exp, cell, root, extra)
    rows.append({"variant": cell.variant, "dataset": cell.dataset, "unit": cell.unit,
                 exp.metric: results["test"][exp.metric],
                 "train_seconds": results["train_seconds"],
                 "workdir": cell.workdir(root)})
  if not rows:
    raise SystemExit(f"[{exp.name}] no finished cells under {root}")
  summary = summarise(exp, rows)
  table = format_table(exp, summary)
  if parallel.is_main_process():
    os.makedirs(root, exist_ok=True)
    with open(os.path.join(root, "results.csv"), "w", newline="") as f:
      writer = csv.DictWriter(f, fieldnames=list(rows[0]))
      writer.writeheader()
      writer.writerows(rows)
    with open(os.path.join(root, "table.md"), "w", encoding="utf-8") as f:
      f.write(table)
    write_plot(exp, summary, os.path.join(root, "plot.png"))
    print(table)
  return {"rows": rows, "summary": summary, "table": table}
