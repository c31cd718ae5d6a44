"""Teachers for knowledge distillation (config.teacher; docs/distillation.md): saved runs
of any family, loaded through the registry, whose calibrated probabilities on a student's
training texts become its soft targets (training/distill.py uses them; the training
layer cannot load runs itself).

    teacher = Teacher("runs/bert,runs/tfidf")       # nothing is loaded yet
    probs = teacher.targets(texts, label_names, multi_label, splits)   # [N, C] float32

Several runs are an ensemble: the mean of their probabilities, each temperature-scaled
by its own calibration.json as `predict` reports them. Every teacher must have the
student's label names (any order: mapped by name) and label type. A teacher trained on
any of the student's dev or test texts (ones not also among its training texts) is
refused: its probabilities would carry those texts' labels into training.
"""

from __future__ import annotations

import os
import sys

import numpy as np

from textclf_jax.data.sources import load_source
from textclf_jax.data.splits import make_splits
from textclf_jax.errors import ConfigError, DataError
from textclf_jax.families import registry, validate as validate_lib
from textclf_jax.run import compat, layout as rundir, lock as runlock
from textclf_jax.scoring import calibration as calibration_lib

TEST_METRICS = ("accuracy", "macro_f1", "micro_f1")  # recorded from a teacher's results.json


def teacher_runs(spec: str) -> list:
  """config.teacher -> its run directories, in order, without repeats."""
  out = []
  for run in (r.strip() for r in str(spec).split(",")):
    if run and run not in out:
      out.append(run)
  return out


class Teacher:
  """config.teacher's runs, loaded on first use (a resumed run reads its saved targets
  and never loads them)."""

  def __init__(self, spec: str, batch_size: int = 0):
    self.runs = teacher_runs(spec)
    if not self.runs:
      raise ConfigError(f"config.teacher={spec!r}: names no run directory")
    self.batch_size = batch_size
    self._loaded = None

  def _load(self) -> list:
    if self._loaded is None:
      loaded = []
      for run in self.runs:
        where = f"config.teacher: {run}"
        info = runlock.holder(run) if os.path.isdir(run) else None
        if info is not None and rundir.read_results(run) is None:
          raise DataError(f"{where}: still training (pid {info.get('pid', '?')}); wait for "
                          "it to finish")
        try:
          family = registry.for_run(run)
        except DataError as e:  # its message names the run
          raise DataError(f"config.teacher: {e}") from None
        file = rundir.path(run, rundir.CONFIG)
        validate_lib.validate(compat.read_config(file), file)
        loaded.append(family.load(run, self.batch_size))
      self._loaded = loaded
    return self._loaded

  def _columns(self, predictor, label_names: list, multi_label: bool) -> list:
    """The teacher's column of each of the student's labels; DataError naming the run
    when their label sets or types differ."""
    kind = {True: "multi-label", False: "single-label"}
    if predictor.multi_label != multi_label:
      raise DataError(f"config.teacher: {predictor.run} is {kind[predictor.multi_label]} but "
                      f"this run's data is {kind[multi_label]}; a teacher must share the "
                      "student's labels")
    theirs = list(predictor.label_names)
    if sorted(theirs) != sorted(label_names):
      extra = sorted(set(theirs) - set(label_names))
      missing = sorted(set(label_names) - set(theirs))
      raise DataError(f"config.teacher: the labels of {predictor.run} differ from this run's "
                      f"(extra: {extra[:5]}, missing: {missing[:5]}); a teacher must share "
                      "the student's label set")
    return [theirs.index(name) for name in label_names]

  def _check_no_leak(self, predictor, splits: dict):
    """DataError when `predictor` trained on a student's dev/test text that is not also
    a student training text; a note (stderr) when its data cannot be read to check."""
    held_out = (set(splits["dev"].texts) | set(splits["test"].texts)) - set(
        splits["train"].texts)
    try:
      config = predictor.config
      theirs = make_splits(load_source(config), config, rundir.read_fold(predictor.run))
    except (DataError, OSError, KeyError) as e:
      print(f"[textclf] config.teacher: {predictor.run}: its training data cannot be read "
            f"({e}); not checked for this run's dev/test texts", file=sys.stderr, flush=True)
      return
    leaked = [t for t in theirs["train"].texts if t in held_out]
    if leaked:
      raise DataError(f"config.teacher: {predictor.run} was trained on {len(leaked)} of this "
                      f"run's dev/test texts (e.g. {leaked[0][:60]!r}); its probabilities "
                      "would carry their labels into training. Use a teacher trained on "
                      "this run's training split (same dataset, seed, fold and split keys)")

  def targets(self, texts: list, label_names: list, multi_label: bool,
              splits: dict) -> np.ndarray:
    """The mean calibrated probabilities of the teachers on `texts`: float32 [N, C], in
    `label_names`' order. `splits`: the student's (checked against each teacher's)."""
    loaded = self._load()
    columns = [self._columns(p, label_names, multi_label) for p in loaded]
    for predictor in loaded:
      self._check_no_leak(predictor, splits)
    total = np.zeros((len(texts), len(label_names)), np.float64)
    for predictor, cols in zip(loaded, columns):
      probs = np.asarray(predictor.text_probs(texts), np.float32)
      if predictor.calibration is not None:
        probs = calibration_lib.apply_temperature(
            probs, predictor.calibration["temperature"], multi_label)
      total += np.asarray(probs, np.float64)[:, cols]
    return (total / len(loaded)).astype(np.float32)

  def record(self) -> list:
    """data.json's "teachers": each run, its family and model, whether calibrated, and
    its results.json test metrics (when it has them)."""
    out = []
    for predictor in self._load():
      results = rundir.read_results(predictor.run) or {}
      test = results.get("test") or {}
      out.append({"run": predictor.run, "model": predictor.config.get("model", ""),
                  "calibrated": predictor.calibration is not None,
                  "test": {k: test[k] for k in TEST_METRICS if k in test}})
    return out
