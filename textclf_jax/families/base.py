"""What a model family is: the one interface that `textclf train / eval / predict / tune`,
ensembles, export, explain and the experiments use, whatever trains the model.

A family owns every `config.model` value it lists in `models`: it checks its own config
keys, trains a run directory, recognises its runs, and loads one as a `Predictor`.
The neural networks (training/) and TF-IDF + logistic regression (families/tfidf/) are
two families; a new one is registered with `families.registry.register` and appears in
every command and experiment without editing them (docs/extending.md).
"""

from __future__ import annotations

import dataclasses
import os
from typing import Callable, Protocol, runtime_checkable

import numpy as np


@dataclasses.dataclass(frozen=True)
class Candidate:
  """A model that searches and comparisons (`textclf tune --space NAME`,
  experiments.versus_linear) can tune: its name, the preset it starts from, and its
  search space `space(trial, config) -> {key: value}` (an optuna trial; the values
  are config overrides).

  document_preset: (preset, overrides) for whole documents (IMDB), where that differs;
  takes_vectors: whether --vectors (pretrained word vectors) applies to it;
  compared: whether comparisons (experiments.versus_linear) take it by default (False
  for a space that is not a model of its own, such as `lr`: any network's rate);
  unavailable: None, or (base config or None) -> why the candidate cannot be used there
  (a package or weights it needs are missing), or None when it can; with None for the
  config: with its preset's defaults (whether to offer it at all).
  """
  name: str
  preset: str
  space: Callable
  takes_vectors: bool = True
  document_preset: tuple | None = None
  description: str = ""
  compared: bool = True
  unavailable: Callable | None = None

  def why_unavailable(self, config=None) -> str | None:
    return self.unavailable(config) if self.unavailable is not None else None


@runtime_checkable
class Predictor(Protocol):
  """A trained run, loaded to predict: what `eval`, `predict`, ensembles, explain and
  export need, and nothing for training (no optimiser state)."""
  run: str
  config: object  # the run's config (ml_collections.ConfigDict)
  label_names: list
  multi_label: bool
  thresholds: object  # multi-label: [C] per-label thresholds (thresholds.json), else None
  calibration: dict | None  # calibration.json (None: a run made before it)

  def text_probs(self, texts: list) -> np.ndarray:
    """Raw texts [N] -> uncalibrated probabilities [N, C], in input order."""

  def split_probs(self, split: str, data_dir: str = "") -> tuple:
    """(probabilities [N, C], labels) of the run's `split` (train/dev/test), recomputed
    from what the run saved; `data_dir`: where its dataset lives now."""


@runtime_checkable
class Family(Protocol):
  """One way of training a classifier from a config (see the module docstring)."""
  name: str
  models: tuple  # the config.model values this family trains

  def problems(self, config) -> list:
    """Every bad value among this family's own keys of `config` (one message each;
    [] when valid). The keys every family shares are checked by config.problems."""

  def train(self, config, workdir: str, *, resume: bool = False, fold: int = -1, raw=None,
            on_dev=None) -> dict:
    """Trains one run (one fold) into `workdir`; returns its results.json record.
    `config` has been checked (families.validate: the command checks it once).
    on_dev(epoch, step, dev metrics), where the family evaluates during training (a
    search's pruner): raising errors.Pruned stops the run there, which then finishes."""

  def owns(self, run_dir: str) -> bool:
    """Whether `run_dir` is one run (not a CV parent) that this family wrote."""

  def load(self, run_dir: str, batch_size: int = 0) -> Predictor:
    """The run, ready to predict (restores only what predicting needs)."""

  def candidates(self) -> list:
    """The models of this family that searches and comparisons tune ([Candidate])."""

  def unsupported(self, command: str) -> str | None:
    """Why `command` ("explain", "export", "tune", "vmap") cannot take this family's
    runs or configs, or None when it can."""


def saved_model(run_dir: str) -> str | None:
  """config.json's `model` of one run (not a CV parent), or None (no such run, or a
  config.json that cannot be read: the family that loads it says what is wrong)."""
  from textclf_jax.run import layout as rundir
  file = rundir.path(run_dir, rundir.CONFIG)
  if not os.path.isfile(file) or rundir.is_cv_run(run_dir):
    return None
  try:
    model = rundir.read_json(file).get("model")
  except (OSError, ValueError, AttributeError):
    return None
  return model if isinstance(model, str) else None
