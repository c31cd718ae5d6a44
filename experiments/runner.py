"""The generic sweep runner: an experiment is a base config plus a grid of overrides.

    exp = Experiment(name="kim2014", preset="kim", variants={...}, datasets={...}, seeds=(0, 1, 2))
    run_experiment(exp, root="runs/kim2014", only_datasets=["trec"], quick=False)

Cells are variants x datasets x units, a unit being a CV fold (datasets without a
test split: every fold) or a seed (fixed-split datasets). Each cell is a normal
run directory `ROOT/DATASET/VARIANT/{fold_K,seed_S}`; a finished cell (results.json)
is read, not re-run, and a half-finished one is resumed, so a sweep killed half-way
continues where it stopped. Writes ROOT/results.csv (one row per run), ROOT/table.md
(mean ± std per variant x dataset x metric, with the published number and the
difference when given, and Δ from a reference row marked when within the spread)
and ROOT/plot.png (bars, or lines against a numeric variant parameter: `Plot`).
All runs of a sweep share one W&B group, which also gets the table (wandb.Table).

Baselines (`Experiment.baselines`) are variants trained by experiments/tfidf.py
(TF-IDF + logistic regression) instead of a network, on the same cells' data; a
variant may pick another preset with a `preset=NAME` override.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import os

import numpy as np

from textclf_jax import config as config_lib
from textclf_jax import compile_cache, hostmem, parallel, runlog, train
from textclf_jax.data import splits as splits_lib
from textclf_jax.data.sources import load_source

QUICK = ["num_epochs=2", "max_train_examples=400", "early_stopping_patience=0"]


@dataclasses.dataclass
class Experiment:
  """name; preset + overrides shared by every cell; variants and datasets: name ->
  overrides; seeds for fixed-split datasets; metric read from results.json's test;
  published: {(variant, dataset): value in the metric's units} for the table.
  metrics: several columns per dataset (test scores, or RUN_METRICS), first = main;
  reference: the variant Δ is taken from; baselines: name -> overrides of TF-IDF
  variants (kind "tfidf"); plots: line plots (`Plot`) instead of the bar chart."""
  name: str
  preset: str
  variants: dict
  datasets: dict
  overrides: tuple = ()
  seeds: tuple = (0, 1, 2)
  metric: str = "accuracy"
  published: dict = dataclasses.field(default_factory=dict)
  published_note: str = ""
  metrics: tuple = ()
  reference: str = ""
  baselines: dict = dataclasses.field(default_factory=dict)
  plots: tuple = ()


@dataclasses.dataclass
class Plot:
  """A line plot: the metric against a number per variant ({variant: x}), per dataset."""
  name: str
  xs: dict
  xlabel: str = ""
  log_x: bool = False
  metric: str = ""  # "": the experiment's main metric


@dataclasses.dataclass
class Cell:
  variant: str
  dataset: str
  unit: str  # fold_K or seed_S
  overrides: list
  kind: str = "net"  # net | tfidf (experiments/tfidf.py, no network)

  def workdir(self, root: str) -> str:
    return os.path.join(root, self.dataset, self.variant, self.unit)


def make_config(exp: Experiment, overrides, extra=()):
  """The preset (or the last `preset=NAME` among the overrides) with the overrides."""
  overrides = [*exp.overrides, *overrides, *extra]
  presets = [o.split("=", 1)[1] for o in overrides if o.startswith("preset=")]
  config = config_lib.load_preset(presets[-1] if presets else exp.preset)
  return config_lib.apply_overrides(config, [o for o in overrides if not o.startswith("preset=")])


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
    kinds = {**{v: "net" for v in exp.variants}, **{v: "tfidf" for v in exp.baselines}}
    for variant, v_over in {**exp.variants, **exp.baselines}.items():
      if only_variants and variant not in only_variants and kinds[variant] == "net":
        continue  # baselines are in every table
      for unit, u_over in units:
        cells.append(Cell(variant, dataset, unit, [*d_over, *v_over, *u_over], kinds[variant]))
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
  if cell.kind == "tfidf":
    from experiments import tfidf
    return tfidf.train_tfidf(config, workdir, fold)
  return train.train_and_evaluate(config, workdir, resume=resume, fold=fold)


PERCENT = ("accuracy", "micro_f1", "macro_f1", "macro_precision", "macro_recall",
           "micro_precision", "micro_recall", "subset_accuracy")
# Metrics read from results.json itself rather than its `test` scores.
RUN_METRICS = {"examples_per_second": "train_examples_per_second",
               "train_seconds": "train_seconds", "wall_seconds": "wall_seconds",
               "num_params": "num_params"}
LABELS = {"accuracy": "acc", "macro_f1": "macro-F1", "micro_f1": "micro-F1",
          "num_params": "params", "examples_per_second": "train ex/s",
          "wall_seconds": "wall s", "train_seconds": "train s"}
WITHIN = "≈"


def metric_names(exp: Experiment) -> tuple:
  return tuple(exp.metrics) or (exp.metric,)


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


def base_metric(name: str) -> str:
  """`per_label:micro_f1` -> `micro_f1` (a multi-label score under one threshold mode)."""
  return name.rpartition(":")[2]


def is_percent(name: str) -> bool:
  return base_metric(name) in PERCENT


def metric_label(name: str) -> str:
  mode, _, metric = name.rpartition(":")
  label = LABELS.get(metric, metric)
  return f"{label} ({mode.replace('_', '-')} thr.)" if mode else label


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


def write_plot(exp: Experiment, summary: dict, path: str):
  """plot.png: the first of `exp.plots` (more as plot_NAME.png beside it), or bars."""
  for i, plot in enumerate(exp.plots):
    target = path if i == 0 else os.path.join(os.path.dirname(path), f"plot_{plot.name}.png")
    _line_plot(exp, plot, summary, target)
  if not exp.plots:
    _bar_plot(exp, summary, path)


def _pyplot():
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt
  return plt


def _line_plot(exp: Experiment, plot, summary: dict, path: str):
  """One line per dataset of the metric against the variants' numeric parameter;
  the datasets' baselines as dashed horizontal lines in the same colour."""
  plt = _pyplot()
  metric = plot.metric or metric_names(exp)[0]
  datasets = list(dict.fromkeys(d for _, d in summary))
  fig, ax = plt.subplots(figsize=(6.0, 3.8))
  for dataset in datasets:
    points = sorted((x, summary[(v, dataset)][metric]) for v, x in plot.xs.items()
                    if (v, dataset) in summary)
    if not points:
      continue
    line = ax.errorbar([p[0] for p in points], [p[1][0] for p in points],
                       yerr=[p[1][1] for p in points], marker="o", capsize=2, label=dataset)
    for baseline in exp.baselines:
      if (baseline, dataset) in summary:
        ax.axhline(summary[(baseline, dataset)][metric][0], ls="--", lw=1,
                   color=line[0].get_color(), label=f"{dataset} {baseline}")
  if plot.log_x:
    ax.set_xscale("log")
  ax.set_xlabel(plot.xlabel or plot.name)
  ax.set_ylabel(f"test {metric_label(metric)} (mean ± std)")
  ax.legend(fontsize=7)
  ax.set_title(f"{exp.name}: {plot.name}")
  fig.tight_layout()
  fig.savefig(path, dpi=120)
  plt.close(fig)


def _bar_plot(exp: Experiment, summary: dict, path: str):
  plt = _pyplot()
  metric = metric_names(exp)[0]
  variants = list(dict.fromkeys(v for v, _ in summary))
  datasets = list(dict.fromkeys(d for _, d in summary))
  width = 0.8 / max(len(variants), 1)
  # One colour per variant (tab20 beyond 10), the legend beside the axes, not on the bars.
  colours = plt.get_cmap("tab10" if len(variants) <= 10 else "tab20").colors
  fig, ax = plt.subplots(figsize=(3.2 + 1.4 * len(datasets) + 0.03 * len(variants), 3.6))
  for i, variant in enumerate(variants):
    xs = [j + i * width for j, d in enumerate(datasets) if (variant, d) in summary]
    stats = [summary[(variant, d)][metric] for d in datasets if (variant, d) in summary]
    ax.bar(xs, [s[0] for s in stats], width, yerr=[s[1] for s in stats], label=variant,
           capsize=2, color=colours[i % len(colours)])
  ax.set_xticks([j + width * (len(variants) - 1) / 2 for j in range(len(datasets))], datasets)
  ax.set_ylabel(f"test {metric_label(metric)} (mean ± std)")
  lows = [s[metric][0] - s[metric][1] for s in summary.values()]
  if is_percent(metric):
    ax.set_ylim(max(0.0, min(lows) - 5), None)
  ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0)
  ax.set_title(exp.name)
  fig.tight_layout()
  fig.savefig(path, dpi=120)
  plt.close(fig)


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


def run_experiment(exp: Experiment, root: str, only_datasets=(), only_variants=(),
                   max_units=0, quick=False, report_only=False, vmap=False) -> dict:
  """Runs (or reads) every cell, then writes results.csv, table.md and plot.png.

  vmap: the unfinished cells of each dataset whose configs differ only in seed,
  fold, learning rate, dropout or class weights (a variant's seeds or folds, and
  variants that differ only in those) train together as one vmapped program
  (`run_groups`, textclf_jax/many.py); single process.

  report_only: train nothing; tabulate the cells that have finished (a sweep's
  progress, or the finished part of one that was stopped).

  Under a multi-process launch (launch/: JAX_* variables or TEXTCLF_DISTRIBUTED=1)
  every process runs every cell together; process 0 writes the outputs.
  """
  hostmem.keep_heap_mapped()  # before the first XLA computation
  compile_cache.enable()
  parallel.initialize()
  extra = list(QUICK) if quick else []
  if quick:
    only_datasets = only_datasets or [next(iter(exp.datasets))]
    max_units = max_units or 1
  cells = plan_cells(exp, only_datasets, only_variants, max_units, extra)
  if vmap and not report_only:
    run_groups(exp, cells, root, extra)  # run_cell then reads their results
  rows = []
  for cell in cells:
    if report_only and not os.path.exists(os.path.join(cell.workdir(root), "results.json")):
      continue
    results = run_cell(exp, cell, root, extra)
    rows.append(result_row(exp, cell, results, root))
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
    log_wandb_table(exp, root, rows, summary)
    print(table)
  return {"rows": rows, "summary": summary, "table": table}


# --- many models in one program (vmap) ---------------------------------------------


def group_dir(root: str, cells: list) -> str:
  """ROOT/DATASET/VARIANT/group-HASH (one variant) or ROOT/DATASET/group-HASH (variants
  that differ only in many.VMAPPABLE keys): named by its members, so another set of
  units (a larger --units) is another group."""
  import hashlib
  variants = sorted({c.variant for c in cells})
  names = [c.unit for c in cells] if len(variants) == 1 else \
      [f"{c.variant}/{c.unit}" for c in cells]
  digest = hashlib.sha1(",".join(sorted(names)).encode()).hexdigest()[:8]
  parent = os.path.join(root, cells[0].dataset)
  if len(variants) == 1:
    parent = os.path.join(parent, variants[0])
  return os.path.join(parent, f"group-{digest}")


def _group_key(cell, config) -> tuple:
  """Cells with equal keys train as one group: one dataset, and configs that differ
  only in what many.py varies per member (seed, fold, learning rate, dropout, class
  weights), so a dropout or loss-weight grid is one program with its seeds or folds."""
  from textclf_jax import many
  flat = many._flat(config)  # pylint: disable=protected-access
  fixed = {k: v for k, v in flat.items() if k not in many.VMAPPABLE + many.IGNORED}
  return cell.dataset, json.dumps(fixed, sort_keys=True, default=str)


def run_groups(exp: Experiment, cells: list, root: str, extra=()):
  """Trains the unfinished network cells of each group (`_group_key`) as one program.

  Cells holding a solo run (config.json, not a member of the group) are left to
  `run_cell`, which resumes them; finished cells are left alone.
  """
  from textclf_jax import many
  settings = [*extra, f"wandb_group={exp.name}", "progress_bar=False"]
  groups = {}
  for cell in cells:
    if getattr(cell, "kind", "net") == "net":
      config = make_config(exp, cell.overrides, settings)
      groups.setdefault(_group_key(cell, config), []).append((cell, config))
  for group in groups.values():
    todo = [(c, config) for c, config in group
            if not os.path.exists(os.path.join(c.workdir(root), "results.json"))]
    if not todo:
      continue
    members = many.group_members(group_dir(root, [c for c, _ in todo]))
    todo = [(c, config) for c, config in todo if os.path.abspath(c.workdir(root)) in members
            or not os.path.exists(os.path.join(c.workdir(root), "config.json"))]
    if not todo:
      continue
    cells_todo, configs = [c for c, _ in todo], [config for _, config in todo]
    folds = [config.fold if c.unit.startswith("fold_") else -1 for c, config in todo]
    if parallel.is_main_process():
      variants = "+".join(dict.fromkeys(c.variant for c in cells_todo))
      print(f"[{exp.name}] {cells_todo[0].dataset} / {variants} / "
            f"{', '.join(c.unit for c in cells_todo)} as one program", flush=True)
    many.train_many(configs, [c.workdir(root) for c in cells_todo],
                    group_dir(root, cells_todo), folds)
