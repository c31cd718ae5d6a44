"""What a sweep is: an `Experiment` (a base config plus a grid of overrides), its
`Cell`s (variant x dataset x unit), the config each cell trains with, and the
names of the metrics its table reports.

A unit is a CV fold (datasets without a test split: every fold) or a seed
(fixed-split datasets); a cell's run directory is ROOT/DATASET/VARIANT/UNIT.
"""

from __future__ import annotations

import dataclasses
import os

from textclf_jax import config as config_lib
from textclf_jax.families import validate as validate_lib
from textclf_jax.data import splits as splits_lib
from textclf_jax.data.sources import load_source

# --quick: what every cell of a smoke run adds to its config.
QUICK = ["num_epochs=2", "max_train_examples=400", "early_stopping_patience=0"]


@dataclasses.dataclass
class Experiment:
  """name; preset + overrides shared by every cell; variants and datasets: name ->
  overrides; seeds for fixed-split datasets; metric read from results.json's test;
  published: {(variant, dataset): value in the metric's units} for the table.
  metrics: several columns per dataset (test scores, or RUN_METRICS), first = main;
  reference: the variant Δ and the paired tests are taken from ("": the first
  variant, see `reference_arm`); baselines: name -> overrides of TF-IDF variants
  (kind "tfidf"); plots: line plots (`Plot`) instead of the bar chart; interval: the
  table's cells as mean ± std ("std") or mean [95% CI] ("ci", a t-interval over runs)."""
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
  interval: str = "std"  # std | ci


INTERVALS = ("std", "ci")


def reference_arm(exp: Experiment) -> str:
  """The arm every other row is compared with: `exp.reference`, else the first variant."""
  return exp.reference or next(iter(exp.variants), "")


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
  kind: str = "net"  # net | tfidf (the tfidf family, textclf_jax/families/tfidf/)

  def workdir(self, root: str) -> str:
    return os.path.join(root, self.dataset, self.variant, self.unit)

  def fold(self, config) -> int:
    """The CV fold this cell trains on, or -1 for a seed cell."""
    return config.fold if self.unit.startswith("fold_") else -1


def make_config(exp: Experiment, overrides, extra=()):
  """The preset (or the last `preset=NAME` among the overrides) with the overrides."""
  overrides = [*exp.overrides, *overrides, *extra]
  presets = [o.split("=", 1)[1] for o in overrides if o.startswith("preset=")]
  config = config_lib.load_preset(presets[-1] if presets else exp.preset)
  return validate_lib.validate(
      config_lib.apply_overrides(config, [o for o in overrides if not o.startswith("preset=")]))


def cell_config(exp: Experiment, cell: Cell, extra=()):
  """The config a cell trains with: its overrides, `extra`, and the sweep's W&B group."""
  return make_config(exp, cell.overrides, [*extra, f"wandb_group={exp.name}",
                                           "progress_bar=False"])


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


# --- what a table's metrics are ----------------------------------------------------

PERCENT = ("accuracy", "micro_f1", "macro_f1", "macro_precision", "macro_recall",
           "micro_precision", "micro_recall", "subset_accuracy")
# Metrics read from results.json itself rather than its `test` scores.
RUN_METRICS = {"examples_per_second": "train_examples_per_second",
               "train_seconds": "train_seconds", "wall_seconds": "wall_seconds",
               "num_params": "num_params"}
LABELS = {"accuracy": "acc", "macro_f1": "macro-F1", "micro_f1": "micro-F1",
          "num_params": "params", "examples_per_second": "train ex/s",
          "wall_seconds": "wall s", "train_seconds": "train s"}


def metric_names(exp: Experiment) -> tuple:
  """The table's metrics; the first is the main one."""
  return tuple(exp.metrics) or (exp.metric,)


def base_metric(name: str) -> str:
  """`per_label:micro_f1` -> `micro_f1` (a multi-label score under one threshold mode)."""
  return name.rpartition(":")[2]


def is_percent(name: str) -> bool:
  """Shown in percent (x100, one decimal) and given Δs in the table."""
  return base_metric(name) in PERCENT


def metric_label(name: str) -> str:
  """The table's column label: `per_label:macro_f1` -> `macro-F1 (per-label thr.)`."""
  mode, _, metric = name.rpartition(":")
  label = LABELS.get(metric, metric)
  return f"{label} ({mode.replace('_', '-')} thr.)" if mode else label
