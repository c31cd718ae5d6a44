"""Training a config, whatever its family: one run, or k-fold cross-validation.

    results = cv.train_all_folds(config, workdir)   # `textclf train`

A dataset with folds (MR, Subj, ...) trains one sub-run per fold (`fold_K/`) through
`registry.for_config(config).train(...)`, then writes every fold's test metrics with
their mean and sample std (cv_results.json); any other dataset trains one run.
"""

from __future__ import annotations

import os

import numpy as np

from textclf_jax import config as config_lib
from textclf_jax.families import registry, validate as validate_lib


def cv_folds(config, raw) -> list:
  """The folds a CV run trains: config.folds, else config.fold, else every fold."""
  from textclf_jax.data import splits as splits_lib
  available = splits_lib.num_folds_of(raw, config.num_folds)
  folds = list(config.folds) or ([config.fold] if config.fold >= 0 else range(available))
  bad = [k for k in folds if k >= available]
  if bad:
    raise config_lib.ConfigError(f"config.folds: {raw.name} has folds 0..{available - 1}, "
                                 f"not {', '.join(map(str, bad))}")
  return list(folds)


def cv_summary(raw_name: str, model: str, per_fold: list) -> dict:
  """cv_results.json: every fold's test metrics, and their mean and sample std."""
  keys = [k for k, v in per_fold[0]["test"].items() if isinstance(v, float)]
  ddof = 1 if len(per_fold) > 1 else 0
  return {
      "dataset": raw_name, "model": model, "folds": [r["fold"] for r in per_fold],
      "test_mean": {k: float(np.mean([r["test"][k] for r in per_fold])) for k in keys},
      "test_std": {k: float(np.std([r["test"][k] for r in per_fold], ddof=ddof)) for k in keys},
      "std": f"sample standard deviation over folds (ddof={ddof})",
      "per_fold": [{"fold": r["fold"], "best_step": r["best_step"],
                    "train_seconds": r["train_seconds"],
                    "test": {k: r["test"][k] for k in keys}} for r in per_fold],
      "train_seconds": float(sum(r["train_seconds"] for r in per_fold)),
  }


def train_all_folds(config, workdir: str, resume: bool = False, checked: bool = False) -> dict:
  """k-fold CV: one sub-run per fold (`fold_K/`), then every fold's test metrics with
  their mean and std (cv_results.json). Not CV data: one run, the family's `train`.
  checked: the caller validated `config` (a command does, once); else it is checked here."""
  from textclf_jax.data import splits as splits_lib
  from textclf_jax.data.sources import load_source
  from textclf_jax.run import layout as rundir, lock as runlock
  from textclf_jax.runtime import parallel
  from textclf_jax.training import checks
  if not checked:
    validate_lib.validate(config)
  config = checks.resolve(config)
  family = registry.for_config(config)
  raw = load_source(config)
  if not splits_lib.uses_cross_validation(raw):
    return family.train(config, workdir, resume=resume, raw=raw)
  folds = cv_folds(config, raw)
  for k in folds:  # every fold's labels (FILE:LINE of one training never saw) before the
    splits_lib.check_label_map(raw, config, k)  # CV parent is created: nothing is written
  rundir.check_can_start(workdir, resume, kind="cv")
  parallel.barrier("textclf:cv-workdir-checked")  # before process 0 writes into it
  is_main = parallel.is_main_process()
  with runlock.writing(workdir):
    if is_main:
      rundir.write_config(config, workdir, kind="cv")
    per_fold = []
    for k in folds:
      sub = os.path.join(workdir, f"fold_{k}")
      done = rundir.read_results(sub)
      if done is None:
        if is_main:
          print(f"[textclf] cross-validation fold {k}", flush=True)
        done = family.train(config, sub, resume=resume and os.path.exists(sub), fold=k, raw=raw)
      per_fold.append(done)
      if is_main:
        metric = "accuracy" if "accuracy" in done["test"] else "micro_f1"
        print(f"[textclf] fold {k}: test {metric} {done['test'][metric]:.4f}", flush=True)
    summary = cv_summary(raw.name, config.model, per_fold)
    if is_main:
      rundir.write_json(rundir.path(workdir, rundir.CV_RESULTS), summary)
  return summary
