"""What experiments.versus_linear runs: the models it compares (the model families'
`Candidate`s, registry.candidates()), each model's base config and study, and the cells
(run directories) of its best config and of the TF-IDF baseline.

A model is a Candidate: its preset (or, for whole documents, its document_preset), its
search space, and whether --vectors applies to it. A family registered with
families.registry.register brings its candidates here without an edit (docs/extending.md).
"""

from __future__ import annotations

import dataclasses
import os

from textclf_jax.families import registry

METRIC = "accuracy"
# Benchmarks of sentences: 64 tokens keep (nearly) every sentence whole.
SENTENCES = ("mr", "subj", "sst2", "sst5", "trec")
SENTENCE_OVERRIDES = {"bag": ["bucket_lengths=32,64"]}  # besides max_len=64
# Documents (IMDB): each candidate's document_preset (docs/documents.md).
DOCUMENTS = ("imdb",)
# Keys of --vectors, passed only to candidates that take vectors (the bag learns its own
# table).
VECTOR_KEYS = ("vectors", "embedding")
# --set keys that also apply to the TF-IDF baseline (the same examples and tokens).
DATA_KEYS = ("max_train_examples", "dev_fraction", "num_folds", "lowercase",
             "remove_stopwords", "keep_negations", "stem", "min_count", "imbalance_label",
             "imbalance_fraction", "train_file", "dev_file", "test_file", "text_key",
             "label_key")
QUICK_FOLDS = 2  # --quick on a CV dataset: the first two folds (a t-test needs two)
BASELINE = "tfidf"  # the family every model is compared with


def log(message: str):
  print(f"[versus_linear] {message}", flush=True)


def candidates() -> dict:
  """name -> Candidate of every registered family (the models --models can name)."""
  return registry.candidates()


def default_models() -> tuple:
  """Every candidate that comparisons take by default (Candidate.compared)."""
  return tuple(name for name, c in candidates().items() if c.compared)


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


def _known(overrides, config) -> list:
  """The overrides whose key `config` has: the sweep's own extras (max_len, --quick's
  epochs) and --set keys where a model's config lacks the key (a model with no epochs
  has none to cut, the LSTM no filter widths; make_plan refuses a key no model has)."""
  return [o for o in overrides if o.split("=", 1)[0].split(".")[0] in config]


def model_preset(plan: Plan, model: str) -> tuple:
  """(preset, the experiment's own overrides) the model's base config starts from."""
  candidate = candidates()[model]
  if plan.dataset in SENTENCES:
    return candidate.preset, ["max_len=64", *SENTENCE_OVERRIDES.get(model, [])]
  if plan.dataset in DOCUMENTS and candidate.document_preset:
    return candidate.document_preset
  return candidate.preset, []


def unknown_keys(plan: Plan, overrides) -> list:
  """The overrides whose key none of the plan's models' presets has."""
  from textclf_jax import config as config_lib
  configs = [config_lib.load_preset(model_preset(plan, m)[0]) for m in plan.models]
  return [o for o in overrides if not any(_known([o], c) for c in configs)]


def network_base(plan: Plan, model: str):
  """(preset, the base config every trial starts from), from the model's Candidate."""
  from textclf_jax import config as config_lib
  from experiments.spec import QUICK
  candidate = candidates()[model]
  preset, extra = model_preset(plan, model)
  config = config_lib.load_preset(preset)
  net = _known(plan.net_overrides, config)
  if not candidate.takes_vectors:
    net = [o for o in net if o.split("=", 1)[0] not in VECTOR_KEYS]
  overrides = [*_known(extra, config), *plan.data_overrides,
               *_known(["progress_bar=False"], config), *net,
               *(_known(QUICK, config) if plan.quick else [])]
  return preset, config_lib.apply_overrides(config, overrides)


def preset_params(space: str, base) -> list:
  """The base config's own values as the space's parameters ([params] to enqueue as the
  first trial), or [] when the space cannot express them (a value outside its choices).
  Parameters are config keys (families/spaces.py), except the widths (a string) and the
  learning rate of an optimiser other than adam(w) (`{optimizer}_learning_rate`)."""
  import warnings

  import optuna

  from textclf_jax.tune import spaces as tune_spaces
  params = {k: v for k, v in base.items() if isinstance(v, (bool, int, float, str))}
  params["filter_widths"] = ",".join(map(str, base.get("filter_widths", ())))
  optimizer = base.get("optimizer")
  if optimizer is not None:
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
  execute.py trains them through their families and reads them). Networks name their
  best_config.py as `preset=`."""
  from experiments.spec import Experiment
  return Experiment(name=f"versus_linear-{plan.name}", preset=BASELINE, variants={},
                    datasets={plan.name: []}, seeds=plan.seeds, reference=BASELINE,
                    baselines={BASELINE: []})


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
  program (when there are several, their family can vmap them and their configs allow
  it), or one by one through their family (experiments/execute.py)."""
  from experiments import execute
  from experiments.spec import cell_config
  todo = [c for c in cells if not execute.is_finished(c, plan.root)]
  if plan.vmap and len(todo) > 1 and all(c.kind == "net" for c in todo):
    configs = [cell_config(exp, c) for c in todo]
    why = next((w for w in (registry.for_config(c).unsupported("vmap") for c in configs)
                if w), None)
    if why:
      log(f"one run at a time: {why}")
    else:
      from textclf_jax.training import group as group_lib
      try:
        group_lib.check_group(configs, [c.workdir(plan.root) for c in todo])
        grouped = True
      except ValueError as e:
        log(f"one run at a time: {e}")
        grouped = False
      if grouped:
        execute.run_groups(exp, todo, plan.root)
  return [execute.run_cell(exp, c, plan.root) for c in cells]


def tfidf_cells(plan: Plan) -> list:
  """The baseline's cells (the tfidf family refits them: execute.run_cell)."""
  from experiments.spec import QUICK, Cell
  quick = [o for o in QUICK if o.startswith("max_train_examples=")] if plan.quick else []
  return [Cell(BASELINE, plan.name, "seed_0" if fold is None else f"fold_{fold}",
               [*plan.data_overrides, *quick, *([f"fold={fold}"] if fold is not None else [])],
               kind="tfidf") for fold, _ in units(plan)]
