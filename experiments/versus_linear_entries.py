"""experiments.versus_linear's entries, read back from the runs' saved predictions: each
model's single runs and its seeds' ensemble, the all-model ensemble, the TF-IDF baseline;
the dev-chosen entry (`choose`) and its comparison with TF-IDF (`compare`), with the
tests of textclf_jax/scoring/significance.py."""

from __future__ import annotations

import dataclasses
import types

import numpy as np

from textclf_jax.scoring import significance

from experiments.versus_linear_plan import METRIC, Plan, units

ALL = "all"  # the entry that ensembles every model's seeds (two models or more)


def _member(workdir: str):
  """What ensemble.mean_probs needs of a run, from its files (no checkpoint loaded)."""
  from textclf_jax.run import layout as rundir
  labels = rundir.read_labels(workdir)
  return types.SimpleNamespace(label_names=list(labels["labels"]),
                               multi_label=bool(labels["multi_label"]),
                               calibration=rundir.read_calibration(workdir), thresholds=None)


def accuracy(probs, labels) -> float:
  return float(np.mean(np.asarray(probs).argmax(axis=1) == np.asarray(labels)))


def saved_predictions(workdir: str, split: str, results: dict) -> tuple:
  """(probs, labels, label names) saved by the run, checked against its results.json."""
  from textclf_jax.run import layout as rundir
  saved = rundir.read_predictions(workdir, split)
  if saved is None:
    raise SystemExit(f"[versus_linear] {workdir}: no saved {split} predictions")
  if abs(accuracy(*saved) - results[split][METRIC]) > 1e-6:
    raise SystemExit(f"[versus_linear] {workdir}: its saved {split} predictions do not "
                     "match results.json")
  return saved[0], saved[1], list(rundir.read_labels(workdir)["labels"])


def ensemble_split(workdirs: list, results: list, split: str) -> tuple:
  """(mean calibrated probabilities [N, C], labels) of the members on `split`, as
  `textclf eval RUN --ensemble ...` computes them (ensemble.mean_probs)."""
  from textclf_jax.serve import ensemble
  members, probs, labels, names = [], [], None, None
  for w, r in zip(workdirs, results):
    p, y, member_names = saved_predictions(w, split, r)
    if names is None:
      names, labels = member_names, y
    elif member_names != names or not np.array_equal(y, labels):
      raise SystemExit(f"[versus_linear] {w}: other {split} examples or labels than "
                       f"{workdirs[0]}")
    members.append(_member(w))
    probs.append(p)
  return ensemble.mean_probs(members, probs, names), labels


@dataclasses.dataclass
class Entry:
  """A neural entry of the row: a model's single runs (`single`) or its ensembles.
  per_unit: [(dev, test)] per unit (fixed split: per seed for single, one ensemble; CV:
  per fold), unit_folds: the fold of each unit (None: the fixed split); counts: [(fold,
  example counts [N, .])] of every run's test predictions (significance.example_counts)."""
  model: str
  kind: str  # single | ensemble
  per_unit: list
  unit_folds: list
  counts: list

  @property
  def name(self) -> str:
    if self.model == ALL:
      return "all-model ensemble"
    return self.model if self.kind == "single" else f"{self.model} ensemble"

  @property
  def dev(self) -> float:
    return float(np.mean([d for d, _ in self.per_unit]))

  @property
  def test(self) -> float:
    return float(np.mean([t for _, t in self.per_unit]))

  @property
  def test_std(self) -> float:
    """Population std over the units, as experiments/report.py's tables."""
    return float(np.std([t for _, t in self.per_unit]))


def model_entries(plan: Plan, model: str, per_fold: list) -> list:
  """[single, ensemble (with two seeds or more)] of a model: per_fold = [(fold, [(workdir,
  results)])]."""
  single_units, single_folds, single_counts = [], [], []
  for fold, runs in per_fold:
    seed_values = []
    for w, r in runs:
      seed_values.append((r["dev"][METRIC], r["test"][METRIC]))
      probs, labels, _ = saved_predictions(w, "test", r)
      single_counts.append((fold, significance.example_counts(probs, labels)))
    if fold is None:
      single_units.extend(seed_values)  # fixed split: the units are the seeds
      single_folds.extend([None] * len(seed_values))
    else:  # CV: a fold's seeds averaged, the folds are the units
      single_units.append(tuple(float(x) for x in np.mean(seed_values, axis=0)))
      single_folds.append(fold)
  out = [Entry(model, "single", single_units, single_folds, single_counts)]
  if all(len(runs) > 1 for _, runs in per_fold):
    out.append(ensemble_entry(model, per_fold))
  return out


def ensemble_entry(model: str, per_fold: list) -> Entry:
  """The ensemble of each fold's runs (every run one equal member): per_fold = [(fold,
  [(workdir, results)])]. `model` ALL: the runs of every model, pooled per fold."""
  units_, counts = [], []
  for fold, runs in per_fold:
    workdirs, results = [w for w, _ in runs], [r for _, r in runs]
    dev_probs, dev_labels = ensemble_split(workdirs, results, "dev")
    test_probs, test_labels = ensemble_split(workdirs, results, "test")
    units_.append((accuracy(dev_probs, dev_labels), accuracy(test_probs, test_labels)))
    counts.append((fold, significance.example_counts(test_probs, test_labels)))
  return Entry(model, "ensemble", units_, [f for f, _ in counts], counts)


def choose(entries: list) -> Entry:
  """The entry with the highest DEV accuracy (ties: the first, singles before their
  ensemble). Reads nothing but `dev`."""
  best = None
  for entry in entries:
    if best is None or entry.dev > best.dev:
      best = entry
  return best


def compare(entry: Entry, tfidf: dict) -> dict:
  """`entry` against TF-IDF (percentage points): significance.paired_run_test over matched
  units and significance.paired_bootstrap over the pooled test examples."""
  per_fold = tfidf["per_fold"]  # {fold: (dev, test, counts)}
  reference = [per_fold[fold][1] for fold in entry.unit_folds]  # (one fit per fold)
  runs = significance.paired_run_test([t * 100 for _, t in entry.per_unit],
                                [t * 100 for t in reference])
  offsets, start = {}, 0
  for fold in per_fold:
    offsets[fold] = start
    start += len(per_fold[fold][2])
  counts_a = np.concatenate([c for _, c in entry.counts])
  counts_b = np.concatenate([per_fold[fold][2] for fold, _ in entry.counts])
  groups = np.concatenate([offsets[fold] + np.arange(len(c)) for fold, c in entry.counts])
  boot = significance.paired_bootstrap(counts_a, counts_b, [METRIC], groups)[METRIC]
  return {**runs, "bootstrap": {k: v * 100 if k in ("delta", "low", "high") else v
                                for k, v in boot.items()}}


def read_tfidf(plan: Plan, cells: list, results: list) -> dict:
  per_fold = {}
  for (fold, _), cell, r in zip(units(plan), cells, results):
    workdir = cell.workdir(plan.root)
    probs, labels, _ = saved_predictions(workdir, "test", r)
    per_fold[fold] = (r["dev"][METRIC], r["test"][METRIC], significance.example_counts(probs, labels))
  tests = [t for _, t, _ in per_fold.values()]
  return {"per_fold": per_fold, "dev": float(np.mean([d for d, _, _ in per_fold.values()])),
          "test": float(np.mean(tests)), "test_std": float(np.std(tests)),
          "runs": [c.workdir(plan.root) for c in cells],
          "C": [r.get("baseline", {}).get("C") for r in results]}

