"""Tuned networks against the TF-IDF baseline, one dataset per command: a row of the
table in docs/versus_linear.md.

    python -m experiments.versus_linear --dataset trec --models cnn,lstm,hybrid \
        --trials 30 [--seeds 5] [--vectors $GLOVE] [--root runs/versus_linear]
    python -m experiments.versus_linear --dataset trec --models cnn --trials 2 --seeds 2 --quick

For each model (textclf_jax/tune_spaces.py's space of the same name):
  1. tune   a `textclf tune` study on the dev split (textclf_jax/tune.py; CV datasets:
            fold 0's dev), ROOT/DATASET/MODEL/tune/; the preset's own settings are the
            first trial where the space can express them;
  2. final  the best trial's config (best_config.py) trained on `--seeds` seeds, on every
            fold for CV datasets (MR, Subj: folds x seeds), as one vmapped program per
            fold where the config allows (textclf_jax/group/), else one run at a time:
            ROOT/DATASET/MODEL/trial-NNN/{seed_S, fold_K/seed_S};
  3. the seeds' ensemble: the mean of their calibrated probabilities (textclf_jax/
     ensemble.py's `mean_probs`, from the runs' saved predictions), per fold.
Then the TF-IDF baseline (textclf_jax/linear.py) on the same split or folds,
ROOT/DATASET/tfidf/{seed_0, fold_K}: single-label TF-IDF is deterministic (newton-cg),
so one fit per fold pairs with every seed.

The best neural entry -- each model's single runs (their mean) or its ensemble -- is
chosen by DEV accuracy alone (`choose`); test scores are read only to be reported. It is
compared with TF-IDF by experiments/report.py's tests: a paired t-test (and Wilcoxon) over
matched units (seeds for a fixed split, folds for CV; an ensemble of a fixed split is one
unit, so it gets the bootstrap only) and a paired bootstrap over the test examples of the
pooled predictions (an example keeps every seed's prediction). Writes ROOT/DATASET/row.md
(the markdown row, its header, each model's dev-chosen config) and row.json (every
number), and prints the row.

Resumable: the studies live in SQLite, finished runs are read and not re-run, a
half-finished group or run resumes; run the same command again. CPU time (this process
and its children) is added up over invocations in ROOT/DATASET/cpu.json.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import math
import os
import resource
import shlex
import sys
import time
import types

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
SHARED = os.path.normpath(os.path.join(HERE, "..", "..", "shared"))

MODELS = ("cnn", "lstm", "hybrid", "bag")
# A model's preset where it is not the model's name: the bag is fastText's bag of word
# n-grams with NBSVM's Naive Bayes weighting as a prior (models/bag.py).
PRESETS = {"bag": "fasttext_nb"}
# Keys of --vectors that only the embedding networks take (the bag learns its own table).
VECTOR_KEYS = ("vectors", "embedding")
METRIC = "accuracy"
# Benchmarks of sentences: 64 tokens keep (nearly) every sentence whole.
SENTENCES = ("mr", "subj", "sst2", "sst5", "trec")
# Documents (IMDB): the presets that read whole texts as windows (docs/documents.md).
DOCUMENTS = ("imdb",)
DOCUMENT_PRESETS = {"cnn": ("cnn_doc", []), "lstm": ("bilstm_doc", []),
                    "bag": ("fasttext_nb3", []),  # + trigrams: IMDB's best bag on dev
                    "hybrid": ("hybrid", ["max_len=0", "bucket_lengths=64", "bucket_growth=1.25",
                                          "chunk_len=100", "chunk_pool=mean", "num_epochs=4",
                                          "early_stopping_patience=1"])}
# --set keys that also apply to the TF-IDF baseline (the same examples and tokens).
DATA_KEYS = ("max_train_examples", "dev_fraction", "num_folds", "lowercase",
             "remove_stopwords", "keep_negations", "stem", "min_count", "imbalance_label",
             "imbalance_fraction", "train_file", "dev_file", "test_file", "text_key",
             "label_key")
QUICK_FOLDS = 2  # --quick on a CV dataset: the first two folds (a t-test needs two)
ROW_JSON, ROW_MD, CPU_JSON = "row.json", "row.md", "cpu.json"
ALL = "all"  # the entry that ensembles every model's seeds (two models or more)


def log(message: str):
  print(f"[versus_linear] {message}", flush=True)


# --- what is run -------------------------------------------------------------------


@dataclasses.dataclass
class Plan:
  dataset: str  # as given: a benchmark name or a directory
  name: str  # its directory under --root and the row's label
  root: str  # --root
  models: tuple
  trials: int
  seeds: tuple
  folds: tuple | None  # CV folds; None: a fixed train/dev/test split
  data_overrides: list  # dataset, data_dir and the --set data keys (networks and TF-IDF)
  net_overrides: list  # every --set key, vectors
  quick: bool = False
  vmap: bool = True
  pruner: str = "median"
  sampler_seed: int = 0

  @property
  def directory(self) -> str:
    return os.path.join(self.root, self.name)

  def tune_dir(self, model: str) -> str:
    return os.path.join(self.directory, model, "tune")


def dataset_name(dataset: str) -> str:
  return os.path.basename(os.path.normpath(dataset)).replace("tfds:", "") or "data"


def network_base(plan: Plan, model: str):
  """(preset, the base config every trial starts from)."""
  from textclf_jax import config as config_lib
  from experiments.spec import QUICK
  preset, extra = PRESETS.get(model, model), []
  if plan.dataset in SENTENCES:
    extra = ["max_len=64"] + (["bucket_lengths=32,64"] if model == "bag" else [])
  elif plan.dataset in DOCUMENTS:
    preset, extra = DOCUMENT_PRESETS[model]
  net = plan.net_overrides
  if model == "bag":
    net = [o for o in net if o.split("=", 1)[0] not in VECTOR_KEYS]
  overrides = [*extra, *plan.data_overrides, "progress_bar=False", *net,
               *(QUICK if plan.quick else [])]
  return preset, config_lib.apply_overrides(config_lib.load_preset(preset), overrides)


def preset_params(space: str, base) -> list:
  """The base config's own values as the space's parameters ([params] to enqueue as the
  first trial), or [] when the space cannot express them (a value outside its choices)."""
  import warnings

  import optuna

  from textclf_jax.tune import spaces as tune_spaces
  names = ("optimizer", "weight_decay", "dropout", "num_filters", "lstm_hidden",
           "lstm_layers", "bidirectional", "batch_size", "embedding", "num_epochs",
           "word_ngrams", "embed_dim", "nb_prior")
  params = {k: base[k] for k in names if k in base}
  params["filter_widths"] = ",".join(map(str, base.get("filter_widths", ())))
  optimizer = base.optimizer
  params["learning_rate" if optimizer in ("adam", "adamw")
         else f"{optimizer}_learning_rate"] = float(base.learning_rate)
  trial = optuna.trial.FixedTrial(params)
  try:
    with warnings.catch_warnings():
      warnings.simplefilter("error")
      values = tune_spaces.suggest(space, trial, base)
  except Exception:  # noqa: BLE001 (out of the space: no first trial)
    return []
  if any(base[k] != (tuple(v) if isinstance(v, list) else v) for k, v in values.items()):
    return []
  return [dict(trial.params)]


def tune_model(plan: Plan, model: str) -> dict:
  """The study (run or resumed until it holds --trials finished trials): best.json."""
  from textclf_jax.tune import search as tune
  preset, base = network_base(plan, model)
  enqueue = preset_params(model, base)
  log(f"{plan.name} / {model}: tuning on dev ({plan.trials} trials"
      + (", the preset's settings first" if enqueue else "") + f") in {plan.tune_dir(model)}")
  summary = tune.run_study(base, preset, model, plan.trials, plan.tune_dir(model),
                           study_name=f"{plan.name}-{model}", sampler_seed=plan.sampler_seed,
                           pruner=plan.pruner, enqueue=enqueue)
  if summary["best"] is None:
    raise SystemExit(f"[versus_linear] {plan.tune_dir(model)}: no trial completed "
                     "(see best.json)")
  return summary


def experiment(plan: Plan):
  """An experiments.spec.Experiment whose cells are this row's runs (experiments/
  execute.py trains and reads them). Networks name their best_config.py as `preset=`."""
  from experiments.spec import Experiment
  return Experiment(name=f"versus_linear-{plan.name}", preset="tfidf", variants={},
                    datasets={plan.name: []}, seeds=plan.seeds, reference="tfidf",
                    baselines={"tfidf": []})


def units(plan: Plan) -> list:
  """[(fold or None, [seeds])]: one entry per fold (one for a fixed split)."""
  return [(None, list(plan.seeds))] if plan.folds is None else \
      [(k, list(plan.seeds)) for k in plan.folds]


def network_cells(plan: Plan, model: str, summary: dict) -> list:
  """[(fold, [Cell per seed])] of the best trial's config."""
  from experiments.spec import Cell
  best = summary["best"]
  variant = os.path.join(model, f"trial-{best['number']:03d}")
  out = []
  for fold, seeds in units(plan):
    cells = []
    for s in seeds:
      unit = f"seed_{s}" if fold is None else os.path.join(f"fold_{fold}", f"seed_{s}")
      cells.append(Cell(variant, plan.name, unit,
                        [f"preset={best['config_file']}", f"seed={s}",
                         *([f"fold={fold}"] if fold is not None else [])]))
    out.append((fold, cells))
  return out


def train_cells(plan: Plan, exp, cells: list) -> list:
  """Each cell's results.json: read when finished; else the cells train as one vmapped
  program (when there are several and their configs allow it), or one by one."""
  from textclf_jax.training import group as group_lib

  from experiments import execute
  from experiments.spec import cell_config
  todo = [c for c in cells if not execute.is_finished(c, plan.root)]
  if plan.vmap and len(todo) > 1 and all(c.kind == "net" for c in todo):
    try:
      group_lib.check_group([cell_config(exp, c) for c in todo],
                            [c.workdir(plan.root) for c in todo])
      grouped = True
    except ValueError as e:
      log(f"one run at a time: {e}")
      grouped = False
    if grouped:
      execute.run_groups(exp, todo, plan.root)
  return [execute.run_cell(exp, c, plan.root) for c in cells]


def tfidf_cells(plan: Plan) -> list:
  from experiments.spec import QUICK, Cell
  quick = [o for o in QUICK if o.startswith("max_train_examples=")] if plan.quick else []
  return [Cell("tfidf", plan.name, "seed_0" if fold is None else f"fold_{fold}",
               [*plan.data_overrides, *quick, *([f"fold={fold}"] if fold is not None else [])],
               kind="tfidf") for fold, _ in units(plan)]


# --- reading the runs back -----------------------------------------------------------


def _member(workdir: str):
  """What ensemble.mean_probs needs of a run, from its files (no checkpoint loaded)."""
  from textclf_jax.run import layout as rundir
  labels = rundir.read_labels(workdir)
  return types.SimpleNamespace(label_names=list(labels["labels"]),
                               multi_label=bool(labels["multi_label"]),
                               calibration=rundir.read_calibration(workdir), thresholds=None)


def _accuracy(probs, labels) -> float:
  return float(np.mean(np.asarray(probs).argmax(axis=1) == np.asarray(labels)))


def saved_predictions(workdir: str, split: str, results: dict) -> tuple:
  """(probs, labels, label names) saved by the run, checked against its results.json."""
  from textclf_jax.run import layout as rundir
  saved = rundir.read_predictions(workdir, split)
  if saved is None:
    raise SystemExit(f"[versus_linear] {workdir}: no saved {split} predictions")
  if abs(_accuracy(*saved) - results[split][METRIC]) > 1e-6:
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
  example counts [N, .])] of every run's test predictions (report.example_counts)."""
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
  from experiments import report
  single_units, single_folds, single_counts = [], [], []
  for fold, runs in per_fold:
    seed_values = []
    for w, r in runs:
      seed_values.append((r["dev"][METRIC], r["test"][METRIC]))
      probs, labels, _ = saved_predictions(w, "test", r)
      single_counts.append((fold, report.example_counts(probs, labels)))
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
  from experiments import report
  units_, counts = [], []
  for fold, runs in per_fold:
    workdirs, results = [w for w, _ in runs], [r for _, r in runs]
    dev_probs, dev_labels = ensemble_split(workdirs, results, "dev")
    test_probs, test_labels = ensemble_split(workdirs, results, "test")
    units_.append((_accuracy(dev_probs, dev_labels), _accuracy(test_probs, test_labels)))
    counts.append((fold, report.example_counts(test_probs, test_labels)))
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
  """`entry` against TF-IDF (percentage points): report.paired_run_test over matched
  units and report.paired_bootstrap over the pooled test examples."""
  from experiments import report
  per_fold = tfidf["per_fold"]  # {fold: (dev, test, counts)}
  reference = [per_fold[fold][1] for fold in entry.unit_folds]  # (one fit per fold)
  runs = report.paired_run_test([t * 100 for _, t in entry.per_unit],
                                [t * 100 for t in reference])
  offsets, start = {}, 0
  for fold in per_fold:
    offsets[fold] = start
    start += len(per_fold[fold][2])
  counts_a = np.concatenate([c for _, c in entry.counts])
  counts_b = np.concatenate([per_fold[fold][2] for fold, _ in entry.counts])
  groups = np.concatenate([offsets[fold] + np.arange(len(c)) for fold, c in entry.counts])
  boot = report.paired_bootstrap(counts_a, counts_b, [METRIC], groups)[METRIC]
  return {**runs, "bootstrap": {k: v * 100 if k in ("delta", "low", "high") else v
                                for k, v in boot.items()}}


def read_tfidf(plan: Plan, cells: list, results: list) -> dict:
  from experiments import report
  per_fold = {}
  for (fold, _), cell, r in zip(units(plan), cells, results):
    workdir = cell.workdir(plan.root)
    probs, labels, _ = saved_predictions(workdir, "test", r)
    per_fold[fold] = (r["dev"][METRIC], r["test"][METRIC], report.example_counts(probs, labels))
  tests = [t for _, t, _ in per_fold.values()]
  return {"per_fold": per_fold, "dev": float(np.mean([d for d, _, _ in per_fold.values()])),
          "test": float(np.mean(tests)), "test_std": float(np.std(tests)),
          "runs": [c.workdir(plan.root) for c in cells],
          "C": [r.get("baseline", {}).get("C") for r in results]}


# --- the row ------------------------------------------------------------------------


def config_summary(config: dict) -> str:
  """The dev-chosen config in a few words: optimiser, rate, dropout, shape, batch, embedding."""
  parts = [f"{config['optimizer']} {config['learning_rate']:.2g}"
           + (f" (wd {config['weight_decay']:.1g})" if config.get("weight_decay") else "")]
  parts.append(f"dropout {config.get('dropout', 0):.2f}")
  if config["model"] == "fasttext":
    parts.append(f"{config['word_ngrams']}-grams, {config['embed_dim']}-d, NB prior "
                 f"{config['nb_prior']:g}, {config['num_epochs']} epoch(s)")
  if config["model"] in ("cnn", "hybrid"):
    parts.append(f"widths {','.join(map(str, config['filter_widths']))} x "
                 f"{config['num_filters']}")
  if config["model"] in ("lstm", "hybrid"):
    layers = config.get("lstm_layers", 1)
    parts.append(("bi" if config.get("bidirectional") else "")
                 + f"LSTM {config['lstm_hidden']}" + (f" x {layers}" if layers > 1 else ""))
  parts.append(f"batch {config['batch_size']}")
  if config["model"] != "fasttext":
    parts.append(config.get("embedding", "rand"))
  return ", ".join(parts)


HEADER = ("| dataset | CNN test | LSTM test | hybrid test | bag test | all-model ens. test "
          "| TF-IDF test | best on dev | Δ vs TF-IDF [95% CI] | p: t-test · bootstrap "
          "| trials | CPU h |\n|---|---|---|---|---|---|---|---|---|---|---|---|")


def _pct(x: float) -> str:
  return f"{100 * x:.1f}"


def _plain(value):
  """NaN (a test that could not be made) as None, so that row.json is strict JSON."""
  if isinstance(value, float) and math.isnan(value):
    return None
  if isinstance(value, dict):
    return {k: _plain(v) for k, v in value.items()}
  if isinstance(value, list):
    return [_plain(v) for v in value]
  return value


def _hours(h: float) -> str:
  return f"{h:.2f}" if h >= 0.1 else f"{h:.3f}"


def _p(p) -> str:
  if p is None or math.isnan(p):
    return "–"
  return "<0.001" if p < 0.001 else f"{p:.3f}"


def markdown_row(record: dict) -> str:
  cells = [record["dataset"]]
  for model in MODELS:
    m = record["models"].get(model)
    if m is None:
      cells.append("–")
      continue
    text = f"{_pct(m['single']['test'])} ± {_pct(m['single']['test_std'])}"
    if m.get("ensemble"):
      text += f" (ens. {_pct(m['ensemble']['test'])})"
    cells.append(text)
  everything = record.get("all_ensemble")
  cells.append("–" if not everything else _pct(everything["test"])
               + (f" ± {_pct(everything['test_std'])}" if everything["n"] > 1 else ""))
  t = record["tfidf"]
  cells.append(_pct(t["test"]) + (f" ± {_pct(t['test_std'])}" if len(t["runs"]) > 1 else ""))
  best = record["best"]
  c = best["vs_tfidf"]
  boot = c["bootstrap"]
  cells.append(f"{best['entry']} (dev {_pct(best['dev'])})")
  cells.append(f"{boot['delta']:+.1f} [{boot['low']:+.1f}, {boot['high']:+.1f}]")
  cells.append(f"{_p(c['t_p'])} · {_p(boot['p'])}")
  cells.append(", ".join(f"{k} {v['trials']['finished']}" for k, v in record["models"].items()))
  cells.append(_hours(record["cpu"]["hours"]))
  return "| " + " | ".join(cells) + " |"


def markdown(record: dict) -> str:
  units_text = ("folds " + ",".join(map(str, record["folds"])) + f" x {len(record['seeds'])} "
                "seeds" if record["folds"] is not None else f"{len(record['seeds'])} seeds")
  lines = [HEADER, markdown_row(record), "",
           f"{record['dataset']}: test accuracy % over {units_text} (mean ± population std; "
           "CV: over folds of each fold's seed mean); ens.: the seeds' ensemble; all-model "
           "ens.: every model's seeds as one ensemble, each run one equal member. Best on dev: "
           "the entry with the highest dev accuracy; Δ: its pooled test accuracy minus "
           "TF-IDF's, paired bootstrap 95% CI; t-test over matched "
           + ("folds" if record["folds"] is not None else "seeds")
           + " (– for one unit). Dev-chosen configs:"]
  for model, m in record["models"].items():
    lines.append(f"- {model}: trial {m['trial']} of {m['trials']['finished']} (dev "
                 f"{_pct(m['trial_dev'])}): {m['config_summary']}")
  lines.append(f"\nCommand: `{record['command']}` ({record['date']}; CPU "
               f"{_hours(record['cpu']['hours'])} h over {record['cpu']['invocations']} "
               f"invocation(s), load average {record['cpu']['load']}).")
  return "\n".join(lines) + "\n"


def entry_record(entry: Entry, tfidf: dict) -> dict:
  return {"dev": entry.dev, "test": entry.test, "test_std": entry.test_std,
          "n": len(entry.per_unit), "per_unit": [{"dev": d, "test": t} for d, t in entry.per_unit],
          "vs_tfidf": compare(entry, tfidf)}


# --- CPU time over invocations -------------------------------------------------------


class Ledger:
  """ROOT/DATASET/cpu.json: this invocation's CPU seconds (process and children), wall
  seconds and load averages, rewritten at every `save` (a killed invocation keeps what
  it had saved), beside earlier invocations'."""

  def __init__(self, file: str, command: str):
    self.file, self.started = file, time.time()
    self.cpu0 = self._cpu()
    previous = {"invocations": []}
    if os.path.exists(file):
      with open(file, encoding="utf-8") as f:
        previous = json.load(f)
    self.previous = previous["invocations"]
    self.entry = {"command": command, "date": datetime.datetime.now().isoformat(timespec="seconds"),
                  "load_start": [round(x, 2) for x in os.getloadavg()]}

  @staticmethod
  def _cpu() -> float:
    total = 0.0
    for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN):
      usage = resource.getrusage(who)
      total += usage.ru_utime + usage.ru_stime
    return total

  def save(self) -> dict:
    self.entry.update(cpu_seconds=round(self._cpu() - self.cpu0, 1),
                      wall_seconds=round(time.time() - self.started, 1),
                      load_end=[round(x, 2) for x in os.getloadavg()])
    invocations = [*self.previous, self.entry]
    os.makedirs(os.path.dirname(self.file), exist_ok=True)
    tmp = self.file + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
      json.dump({"invocations": invocations}, f, indent=2)
    os.replace(tmp, self.file)
    seconds = sum(i["cpu_seconds"] for i in invocations)
    return {"seconds": seconds, "hours": seconds / 3600,
            "wall_seconds": sum(i["wall_seconds"] for i in invocations),
            "invocations": len(invocations),
            "load": (f"{self.entry['load_start'][0]:.1f} at start, "
                     f"{self.entry['load_end'][0]:.1f} at end of the last")}


# --- the command ---------------------------------------------------------------------


def make_plan(args) -> Plan:
  from textclf_jax import config as config_lib
  from textclf_jax.data import splits as splits_lib
  from textclf_jax.data.sources import load_source
  models = tuple(m for m in args.models.split(",") if m)
  unknown = [m for m in models if m not in MODELS]
  if unknown or not models:
    raise SystemExit(f"--models {args.models!r}: expected some of {', '.join(MODELS)}")
  if args.trials < 1 or args.seeds < 1:
    raise SystemExit("--trials and --seeds: expected numbers >= 1")
  data = [f"dataset={args.dataset}"] + ([f"data_dir={os.path.abspath(args.data_dir)}"]
                                        if args.data_dir else [])
  sets = [s for item in args.set for s in item]
  data += [s for s in sets if s.split("=", 1)[0] in DATA_KEYS]
  net = list(sets)
  if args.vectors:
    net = [f"vectors={os.path.abspath(args.vectors)}", "embedding=non-static", *net]
  probe = config_lib.apply_overrides(config_lib.load_preset("tfidf"), data)
  raw = load_source(probe)
  if raw.multi_label:
    raise SystemExit(f"[versus_linear] {args.dataset}: multi-label; this row compares "
                     "single-label accuracy")
  folds = None
  if splits_lib.uses_cross_validation(raw):
    available = list(range(splits_lib.num_folds_of(raw, probe.num_folds)))
    folds = [int(k) for k in args.folds.split(",") if k] if args.folds else available
    if args.quick and not args.folds:
      folds = available[:QUICK_FOLDS]
    bad = [k for k in folds if k not in available]
    if bad:
      raise SystemExit(f"--folds: {args.dataset} has folds 0..{available[-1]}, not {bad}")
    folds = tuple(folds)
  return Plan(dataset=args.dataset, name=dataset_name(args.dataset), root=args.root,
              models=models, trials=args.trials, seeds=tuple(range(args.seeds)), folds=folds,
              data_overrides=data, net_overrides=net, quick=args.quick, vmap=not args.solo,
              pruner=args.pruner, sampler_seed=args.sampler_seed)


def run(plan: Plan, command: str = "") -> dict:
  """Tunes, trains, reads and compares; writes row.md and row.json; returns the record."""
  from textclf_jax.runtime import compile_cache, hostmem
  from textclf_jax.run import layout as rundir
  hostmem.keep_heap_mapped()
  compile_cache.enable()
  ledger = Ledger(os.path.join(plan.directory, CPU_JSON), command)
  exp = experiment(plan)
  models, entries, pooled = {}, [], {}
  for model in plan.models:
    summary = tune_model(plan, model)
    ledger.save()
    per_fold = []
    for fold, cells in network_cells(plan, model, summary):
      log(f"{plan.name} / {model} trial {summary['best']['number']}: "
          + (f"fold {fold}, " if fold is not None else "") + f"{len(cells)} seed(s)")
      results = train_cells(plan, exp, cells)
      per_fold.append((fold, [(c.workdir(plan.root), r) for c, r in zip(cells, results)]))
      pooled.setdefault(fold, []).extend(per_fold[-1][1])
      ledger.save()
    got = model_entries(plan, model, per_fold)
    entries.extend(got)
    best = summary["best"]
    config = rundir.read_json(os.path.join(plan.tune_dir(model), best["workdir"],
                                           rundir.CONFIG))
    models[model] = {"trial": best["number"], "trial_dev": best["value"],
                     "params": best["params"], "config_file": best["config_file"],
                     "config_summary": config_summary(config),
                     "trials": {"finished": summary["finished"], "states": summary["states"]},
                     "runs": [w for _, runs in per_fold for w, _ in runs],
                     "entries": got}
  cells = tfidf_cells(plan)
  log(f"{plan.name} / TF-IDF: {len(cells)} run(s)")
  tfidf = read_tfidf(plan, cells, train_cells(plan, exp, cells))
  for m in models.values():
    got = m.pop("entries")
    m["single"] = entry_record(got[0], tfidf)
    m["ensemble"] = entry_record(got[1], tfidf) if len(got) > 1 else None
  everything = None
  if len(plan.models) > 1:  # every model's seeds as one ensemble, a candidate like the others
    all_entry = ensemble_entry(ALL, list(pooled.items()))
    entries.append(all_entry)
    everything = entry_record(all_entry, tfidf) | {"members": list(plan.models)}
  best = choose(entries)
  chosen = everything if best.model == ALL else \
      models[best.model]["single" if best.kind == "single" else "ensemble"]
  cpu = ledger.save()
  record = {
      "dataset": plan.name, "command": command,
      "date": datetime.date.today().isoformat(), "metric": METRIC,
      "seeds": list(plan.seeds), "folds": None if plan.folds is None else list(plan.folds),
      "quick": plan.quick, "models": models, "all_ensemble": everything,
      "tfidf": {k: v for k, v in tfidf.items() if k != "per_fold"}
      | {"per_unit": [{"fold": f, "dev": d, "test": t} for f, (d, t, _) in
                      tfidf["per_fold"].items()]},
      "best": {"entry": best.name, "model": best.model, "kind": best.kind, "dev": best.dev,
               "test": best.test, "vs_tfidf": chosen["vs_tfidf"],
               "chosen_by": "dev accuracy (mean over units) only"},
      "cpu": cpu}
  record = _plain(json.loads(json.dumps(record)))  # JSON values; no test: NaN -> null
  rundir.write_json(os.path.join(plan.directory, ROW_JSON), record)
  text = markdown(record)
  with open(os.path.join(plan.directory, ROW_MD), "w", encoding="utf-8") as f:
    f.write(text)
  print(text, flush=True)
  return record


def parser() -> argparse.ArgumentParser:
  p = argparse.ArgumentParser(description=__doc__,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
  p.add_argument("--dataset", required=True, help="mr, subj, sst2, trec, imdb, or a directory")
  p.add_argument("--models", default="cnn,lstm,hybrid,bag",
                 help="comma-separated: cnn,lstm,hybrid,bag (bag: the fasttext_nb preset; "
                 "IMDB: fasttext_nb3)")
  p.add_argument("--trials", type=int, default=20,
                 help="finished trials per model's study (more: the study goes on)")
  p.add_argument("--seeds", type=int, default=5,
                 help="seeds 0..N-1 of the best config (per fold on CV datasets)")
  p.add_argument("--folds", default="", help="CV datasets: a subset of folds, e.g. 0,1 "
                 "(default: all; --quick: the first two)")
  p.add_argument("--root", default="runs/versus_linear")
  p.add_argument("--vectors", default="", help="pretrained vectors (GloVe): non-static by "
                 "default, the spaces also try rand/static/multichannel; none: CNN-rand")
  p.add_argument("--data_dir", default=os.path.join(SHARED, "datasets"))
  p.add_argument("--set", action="append", nargs="+", default=[], metavar="KEY=VALUE",
                 help="config overrides of every network (data keys also of TF-IDF)")
  p.add_argument("--pruner", default="median", choices=("median", "halving", "none"))
  p.add_argument("--sampler_seed", type=int, default=0)
  p.add_argument("--solo", action="store_true", help="train seeds one by one, not vmapped")
  p.add_argument("--quick", action="store_true",
                 help="a smoke run: 2 epochs on 400 training examples (experiments.spec.QUICK)")
  return p


def main(argv=None) -> dict:
  argv = sys.argv[1:] if argv is None else list(argv)
  args = parser().parse_args(argv)
  command = "python -m experiments.versus_linear " + " ".join(shlex.quote(a) for a in argv)
  return run(make_plan(args), command)


if __name__ == "__main__":
  main()
