"""Hyper-parameter search on dev: `textclf tune` (also `python -m experiments.tune`).

An optuna study: TPE sampler (seeded), a median or successive-halving pruner fed the dev
metric after every evaluation (`errors.Pruned` through the training loop's on_dev
hook), in a real database: SQLite in the tune directory by default, any SQLAlchemy URL
(`--storage`) so that processes on many machines share one study. The tune directory:

    DIR/tune.json        what the study tunes: study name, preset, space, base config
        study.db         the SQLite study (unless --storage names another database)
        trial-NNN/       one normal run directory per trial (`textclf eval` reads it; a
                         pruned trial finishes like an early-stopped run, and its
                         results.json says `pruned`)
        best_config.py   the best trial's whole config: `textclf train --config FILE`
        best.json        the summary: the best trial, every trial's state and value

A killed process leaves its trial RUNNING: the next start on the same host fails it
(its pid is gone) and queues its parameters again; on other hosts optuna's heartbeat
does the same once the trial has been silent for GRACE_S seconds; Ctrl-C during a trial
fails it and queues its parameters again at once (tune/retry.py). Finished trials are
never repeated: the study runs until it holds `trials` finished (complete or pruned).
"""

from __future__ import annotations

import json
import os
import socket
import tempfile
import warnings

from textclf_jax import config as config_lib
from textclf_jax.families import validate as validate_lib
from textclf_jax.tune import spaces as tune_spaces
from textclf_jax.tune.retry import (RETRIES, Interrupted, fail_dead_trials, quiet_interruptions,
                                    requeue)
from textclf_jax.errors import UsageError

PRUNERS = ("median", "halving", "none")
HEARTBEAT_S, GRACE_S = 60, 180  # a RUNNING trial silent for GRACE_S is failed and re-run
TUNE_JSON, BEST_CONFIG, BEST_JSON, STUDY_DB = ("tune.json", "best_config.py", "best.json",
                                               "study.db")


def trial_dir(number: int) -> str:
  return f"trial-{number:03d}"


def default_study(config, space: str) -> str:
  """DATASET-MODEL-SPACE, e.g. sst2-cnn-cnn."""
  name = config.dataset.replace("tfds:", "").replace(os.sep, "_").replace("/", "_")
  return f"{os.path.basename(name.rstrip('_')) or 'data'}-{config.model}-{space}"


def storage_url(directory: str, storage: str = "") -> str:
  """--storage, or the SQLite file DIR/study.db."""
  return storage or f"sqlite:///{os.path.abspath(os.path.join(directory, STUDY_DB))}"


def redacted(url: str) -> str:
  """The URL without its password (for files and messages)."""
  from sqlalchemy.engine import make_url
  try:
    return make_url(url).render_as_string(hide_password=True)
  except Exception:  # noqa: BLE001 (optuna names a bad URL itself)
    return url


def write_text(file: str, text: str):
  """Atomically, with a temporary name of its own (several workers may write it)."""
  fd, tmp = tempfile.mkstemp(dir=os.path.dirname(file) or ".", prefix=".tmp-")
  with os.fdopen(fd, "w", encoding="utf-8") as f:
    f.write(text)
  os.replace(tmp, file)


def _check_directory(directory: str, record: dict):
  """Writes DIR/tune.json (after the study marker), or refuses a directory that tunes
  something else or that the project did not write (nothing is changed)."""
  from textclf_jax.run import compat
  compat.require_new_or(directory, "study", "tune into")
  file = os.path.join(directory, TUNE_JSON)
  if os.path.exists(file):
    with open(file, encoding="utf-8") as f:
      saved = json.load(f)
    differ = [k for k in ("study", "preset", "space") if saved.get(k) != record[k]]
    base, old = record["base_config"], saved.get("base_config", {})
    # Values that changed first, then keys one of them lacks.
    differ += [f"config.{k}" for k in sorted(set(base) | set(old),
                                             key=lambda k: (k not in base or k not in old, k))
               if base.get(k) != old.get(k)]
    if differ:
      raise UsageError(f"{directory}: holds the study {saved.get('study')!r} tuning other "
                       f"settings ({', '.join(differ[:6])} differ); resume it with the same "
                       "command, or choose another --workdir")
    compat.write_marker(directory, "study")
    return
  compat.write_marker(directory, "study")
  write_text(file, json.dumps(record, indent=2))


def make_pruner(name: str, startup: int, warmup: int):
  """median: below the median of finished trials at the same evaluation (after `startup`
  complete trials and `warmup` evaluations); halving: successive halving; none."""
  import optuna
  if name == "median":
    return optuna.pruners.MedianPruner(n_startup_trials=startup, n_warmup_steps=warmup)
  if name == "halving":
    return optuna.pruners.SuccessiveHalvingPruner(min_resource=max(1, warmup))
  if name == "none":
    return optuna.pruners.NopPruner()
  raise UsageError(f"--pruner {name!r}: expected one of {', '.join(PRUNERS)}")


def open_study(url: str, name: str, direction: str, sampler_seed: int, pruner):
  """(study, storage): created or loaded; the sampler's seed mixes in the number of
  trials already there, so a resumed process draws new points, not the first ones again."""
  import optuna
  kwargs = {"connect_args": {"timeout": 60}} if url.startswith("sqlite") else {}
  storage = optuna.storages.RDBStorage(
      url, engine_kwargs=kwargs, heartbeat_interval=HEARTBEAT_S, grace_period=GRACE_S,
      heartbeat_stale_trial_callback=optuna.storages.RetryHeartbeatStaleTrialCallback(
          max_retry=RETRIES))
  study = optuna.create_study(storage=storage, study_name=name, direction=direction,
                              load_if_exists=True)
  if study.direction.name.lower() != direction:
    raise UsageError(f"study {name!r} in {redacted(url)} {study.direction.name.lower()}s "
                     f"its objective, not {direction}")
  sampler = optuna.samplers.TPESampler(seed=sampler_seed * 1_000_003 + len(study.trials))
  return optuna.load_study(study_name=name, storage=storage, sampler=sampler,
                           pruner=pruner), storage


def finished(study) -> int:
  from optuna.trial import TrialState
  return len(study.get_trials(deepcopy=False,
                              states=(TrialState.COMPLETE, TrialState.PRUNED)))


def best_config_text(config: dict, study: str, number: int, metric: str, value: float,
                     directory: str) -> str:
  """A Python config file (`--config FILE`) holding every key of the best trial."""
  def literal(v):
    if isinstance(v, list):
      return tuple(literal(x) for x in v)
    if isinstance(v, dict):
      return {k: literal(x) for k, x in v.items()}
    return v
  body = "".join(f"      {k!r}: {literal(v)!r},\n" for k, v in sorted(config.items()))
  run = os.path.join(directory, trial_dir(number))
  return (f'"""The best trial of the tuning study {study!r}: trial {number}, dev {metric} '
          f"{value:.6g}.\n\n    textclf train --config {os.path.join(directory, BEST_CONFIG)}"
          f"\n\nretrains it (bit for bit on the same devices). Written by `textclf tune` from\n"
          f"{os.path.join(run, 'config.json')}: every key is set here.\n\"\"\"\n\n"
          "import ml_collections\n\n\ndef get_config():\n"
          f"  return ml_collections.ConfigDict({{\n{body}  }})\n")


def summary(study, record: dict, directory: str) -> dict:
  """best.json: the best complete trial and every trial (state, value, params, run)."""
  from optuna.trial import TrialState
  trials = study.get_trials(deepcopy=False)
  rows = [{"number": t.number, "state": t.state.name, "value": t.value,
           "last_dev": (t.intermediate_values[max(t.intermediate_values)]
                        if t.intermediate_values else None),
           "params": t.params, "workdir": t.user_attrs.get("workdir"),
           **({"retry_of": t.system_attrs["failed_trial"]}
              if "failed_trial" in t.system_attrs else {})} for t in trials]
  out = {**{k: record[k] for k in ("study", "storage", "preset", "space", "metric",
                                   "direction")},
         "finished": finished(study),
         "states": {s.name: sum(t.state == s for t in trials) for s in TrialState
                    if any(t.state == s for t in trials)},
         "best": None, "trials": rows}
  complete = [t for t in trials if t.state == TrialState.COMPLETE]
  if complete:
    best = study.best_trial
    out["best"] = {"number": best.number, "value": best.value, "params": best.params,
                   "workdir": best.user_attrs.get("workdir"),
                   "config_file": os.path.join(directory, BEST_CONFIG)}
  return out


def write_summary(study, record: dict, directory: str) -> dict:
  """best.json, and best_config.py from the best trial's config.json."""
  out = summary(study, record, directory)
  best = out["best"]
  if best is not None:
    with open(os.path.join(directory, best["workdir"], "config.json"), encoding="utf-8") as f:
      config = json.load(f)
    write_text(os.path.join(directory, BEST_CONFIG), best_config_text(
        config, record["study"], best["number"], record["metric"], best["value"], directory))
  write_text(os.path.join(directory, BEST_JSON), json.dumps(out, indent=2))
  return out


def trial_config(base, values: dict):
  """The base config with a trial's values, validated."""
  config = base.copy_and_resolve_references()
  with config.unlocked():
    config.update(values)
  validate_lib.validate(config, where="the trial's config")
  return config


def describe(values: dict) -> str:
  return ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
                   for k, v in values.items())


# Diverged trials in a row (each a FAIL) after which the search stops: the space or the
# base config is likely wrong, not one unlucky trial.
MAX_FAILURES_IN_A_ROW = 5


def run_study(base, preset: str, space: str, trials: int, directory: str, storage: str = "",
              study_name: str = "", sampler_seed: int = 0, pruner: str = "median",
              pruner_startup: int = 5, pruner_warmup: int = 1, enqueue=()) -> dict:
  """Runs (or resumes) the study until it holds `trials` finished trials; returns the
  summary (best.json). `base`: the preset with the command line's overrides."""
  import gc

  import jax
  import optuna

  from textclf_jax.training import evaluate as evaluate_lib
  from textclf_jax.families import registry
  from textclf_jax import errors
  from textclf_jax.data import splits as splits_lib
  from textclf_jax.data.sources import load_source

  why = registry.for_config(base).unsupported("tune")
  if why:
    raise UsageError(why)
  optuna.logging.set_verbosity(optuna.logging.WARNING)  # a line per trial is ours
  warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
  # The space against this config (a key it lacks), before anything is written.
  tune_spaces.suggest(space, optuna.create_study().ask(), base)
  name = study_name or default_study(base, space)
  raw = load_source(base)
  fold = base.fold
  if splits_lib.uses_cross_validation(raw) and fold < 0:
    fold = base.folds[0] if base.folds else 0
    print(f"[textclf] tune: {raw.name} is cross-validated; every trial trains fold {fold} "
          "(--config.fold=K for another)", flush=True)
  base = base.copy_and_resolve_references()
  with base.unlocked():
    base.fold = fold
    base.wandb_group = base.wandb_group or name  # W&B: the study is one group
  metric = evaluate_lib.stopping_metric(base, raw.multi_label)
  direction = "minimize" if metric in evaluate_lib.LOWER_IS_BETTER else "maximize"
  url = storage_url(directory, storage)
  record = {"study": name, "storage": redacted(url), "preset": preset, "space": space,
            "metric": metric, "direction": direction,
            "base_config": json.loads(config_lib.to_json(base))}
  _check_directory(directory, record)
  study, rdb = open_study(url, name, direction, sampler_seed,
                          make_pruner(pruner, pruner_startup, pruner_warmup))
  for params in enqueue:
    study.enqueue_trial(params, skip_if_exists=True)
  failed = fail_dead_trials(study, rdb)
  done = finished(study)
  print(f"[textclf] tune: study {name!r} in {redacted(url)}: {done} of {trials} trials "
        "finished" + (f"; {'trials' if len(failed) > 1 else 'trial'} "
                      f"{', '.join(map(str, failed))} left running by a killed process: "
                      "failed, parameters queued again" if failed else ""),
        flush=True)

  stopped = []  # the number of the trial Ctrl-C stopped

  def objective(trial):
    values = tune_spaces.suggest(space, trial, base)
    config = trial_config(base, values)
    workdir = os.path.join(directory, trial_dir(trial.number))
    for key, value in (("workdir", trial_dir(trial.number)), ("host", socket.gethostname()),
                       ("pid", os.getpid())):
      trial.set_user_attr(key, value)
    print(f"[textclf] tune: trial {trial.number} ({workdir}): {describe(values)}", flush=True)
    evaluations = [0]

    def on_dev(epoch, step, metrics):
      del epoch, step  # trials are compared at the same evaluation (epoch), whatever the batch
      value = float(metrics[metric])
      trial.report(value, evaluations[0])
      evaluations[0] += 1
      if trial.should_prune():
        raise errors.Pruned(f"pruned by the {pruner} pruner after {evaluations[0]} dev "
                              f"evaluation(s) (dev {metric} {value:.4f})")

    try:
      results = registry.for_config(config).train(config, workdir, fold=fold, raw=raw,
                                                  on_dev=on_dev)
    except KeyboardInterrupt:  # optuna would log it with its traceback, then re-raise
      stopped.append(trial.number)
      raise Interrupted(f"trial {trial.number} interrupted") from None
    if results.get("pruned"):
      raise optuna.TrialPruned(results["pruned"])
    return float(results["dev"][metric])

  in_a_row = [0]

  def after(study, trial):
    if trial.number in stopped:  # queued again like a killed trial's; the study stops
      requeue(study, trial)
      write_summary(study, record, directory)
      raise KeyboardInterrupt
    in_a_row[0] = in_a_row[0] + 1 if trial.state.name == "FAIL" else 0
    out = write_summary(study, record, directory)
    best = out["best"]
    value = "" if trial.value is None else f", dev {metric} {trial.value:.4f}"
    print(f"[textclf] tune: trial {trial.number} {trial.state.name.lower()}{value}; "
          f"{out['finished']} of {trials} finished"
          + (f"; best: trial {best['number']} ({best['value']:.4f})" if best else ""),
          flush=True)

  while finished(study) < trials:
    with quiet_interruptions(stopped):
      study.optimize(objective, n_trials=1, catch=(errors.TrainingDiverged, Interrupted),
                     callbacks=[after])
    jax.clear_caches()  # each trial compiles its own steps: drop the last one's
    gc.collect()
    if in_a_row[0] >= MAX_FAILURES_IN_A_ROW:
      raise errors.TrainingDiverged(
          f"{directory}: {in_a_row[0]} trials in a row diverged; check the space's "
          f"learning rates and the base config (see {os.path.join(directory, BEST_JSON)})")
  return write_summary(study, record, directory)
