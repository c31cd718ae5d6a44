"""Ensembles of saved runs: the mean of their members' calibrated probabilities.

    textclf predict RUN [TEXT ...] --ensemble RUN2,RUN3     textclf eval RUN --ensemble RUN2
    textclf predict SWEEP/DATASET/VARIANT "text"   (a directory of runs: all of them)

Members must share their labels (the same names; their order may differ) and label
type; each tokenises with its own vocabulary, so CNNs, LSTMs and TF-IDF runs mix.
Each member's probabilities are temperature-scaled by its own calibration.json
(`calibrated=False`, or a run without one: raw), then averaged with equal weights.
Multi-label ensembles label at thresholds tuned (the first member's
`multilabel_threshold` mode and threshold objective) on the mean of the members' saved dev predictions
(predictions/dev_probs.npy, calibrated likewise), so members must share a dev set.
"""

from __future__ import annotations

import json
import os

import numpy as np

from textclf_jax.scoring import calibration as calibration_lib
from textclf_jax.scoring import objective as objective_lib
from textclf_jax.scoring import metrics as metrics_lib
from textclf_jax.run import compat, layout as rundir
from textclf_jax.run import lock as runlock
from textclf_jax.serve import runs
from textclf_jax.errors import UsageError


def _runs_below(directory: str) -> list:
  """The runs a directory of runs holds: a group's members (group.json), or its
  subdirectories with a config.json (a sweep cell's seed_S, fold_K); [] for a run."""
  if not os.path.isdir(directory) or os.path.exists(rundir.path(directory, rundir.CONFIG)):
    return []
  group = rundir.path(directory, rundir.GROUP)
  if os.path.isfile(group):
    return list(rundir.read_json(group)["workdirs"])
  return sorted(os.path.join(directory, d) for d in os.listdir(directory)
                if os.path.isfile(os.path.join(directory, d, rundir.CONFIG)))


def members(run: str, extra=()) -> list:
  """The runs named by RUN (a run, or a directory of runs) and `--ensemble` (each a
  comma-separated list of runs), without repeats, in order."""
  named = [run] + [r for item in extra or () for r in item.split(",") if r]
  out = []
  for r in named:
    for m in _runs_below(r) or [r]:
      if os.path.abspath(m) not in map(os.path.abspath, out):
        out.append(m)
  return out


def _check_labels(runs_: list) -> tuple:
  """(label names, multi_label) shared by every member; UsageError naming the first one
  that differs. A member still being written (its lock held, no results.json yet) is
  named as still training, before any member's predictions are computed."""
  for r in runs_:
    _check_not_training(r)
    runs.check_run(r)
  first = rundir.read_labels(runs_[0])
  for r in runs_[1:]:
    labels = rundir.read_labels(r)
    if labels["multi_label"] != first["multi_label"]:
      kind = {True: "multi-label", False: "single-label"}
      raise UsageError(f"ensemble: {r} is {kind[labels['multi_label']]} but {runs_[0]} is "
                       f"{kind[first['multi_label']]}; an ensemble's members must share "
                       "their label type")
    if sorted(labels["labels"]) != sorted(first["labels"]):
      extra = sorted(set(labels["labels"]) - set(first["labels"]))
      missing = sorted(set(first["labels"]) - set(labels["labels"]))
      raise UsageError(f"ensemble: the labels of {r} differ from those of {runs_[0]} "
                       f"(extra: {extra[:5]}, missing: {missing[:5]}); an ensemble's members "
                       "must share their labels")
  return first["labels"], first["multi_label"]


def _check_not_training(run: str):
  """UsageError if `run` is still training: its lock is held and it has no results."""
  info = runlock.holder(run) if os.path.isdir(run) else None
  if info is not None and rundir.read_results(run) is None:
    raise UsageError(f"ensemble: {run} is still training (pid {info.get('pid', '?')} on "
                     f"{info.get('host', '?')}, since {info.get('since', '?')}); wait for it "
                     "to finish")


def _require_dev_predictions(runs_: list):
  """UsageError naming the first member without saved dev predictions, checked for every
  member before any member's predictions are computed."""
  for r in runs_:
    if rundir.read_predictions(r, "dev") is None:
      _check_not_training(r)
      raise UsageError(f"ensemble: {r} has no {rundir.prediction_file(r, 'dev', 'probs')} "
                       "(a run made before predictions were saved); a multi-label ensemble "
                       "tunes its thresholds on its members' dev predictions")


def split_texts_hash(run: str, split: str, data_dir: str = "") -> str:
  """The sha256 of the texts of a run's `split` (data.json's `text_sha256`, recorded at
  train time; for a run made before that, recomputed from its dataset and fold)."""
  recorded = rundir.read_json(rundir.path(run, rundir.DATA)).get("text_sha256") or {}
  if split in recorded:
    return recorded[split]
  from textclf_jax.data.sources import load_source
  from textclf_jax.data import splits as splits_lib
  config = compat.read_config(rundir.path(run, rundir.CONFIG))
  if data_dir:
    with config.unlocked():
      config.data_dir = data_dir
  raw = load_source(config)
  split_data = splits_lib.make_splits(raw, config, rundir.read_fold(run))
  if split not in split_data:
    raise UsageError(f"split {split!r}: {raw.name} has splits {', '.join(split_data)}")
  return splits_lib.texts_hash(split_data[split].texts)


def _check_same_texts(runs_: list, split: str, data_dir: str = ""):
  """UsageError naming the first member whose `split` holds other texts than the first
  member's (compared by hash: the same labels in the same order are not enough)."""
  first = split_texts_hash(runs_[0], split, data_dir)
  for r in runs_[1:]:
    if split_texts_hash(r, split, data_dir) != first:
      raise UsageError(f"ensemble: {r}'s {split} split holds other texts than that of "
                       f"{runs_[0]} (another dataset, fold or split); its members must be "
                       "evaluated on the same examples")


def _aligned(probs, member_names, names) -> np.ndarray:
  """probs [N, C] with its columns in the order of `names`."""
  return np.asarray(probs)[:, [member_names.index(n) for n in names]]


def _dev_thresholds(runs_, loaded, names, calibrated: bool):
  """Multi-label thresholds tuned on the mean of the members' saved dev predictions."""
  probs, labels = [], None
  _require_dev_predictions(runs_)
  for r, m in zip(runs_, loaded):
    saved = rundir.read_predictions(r, "dev")
    member_labels = _aligned(saved[1], m.label_names, names)
    if labels is None:
      labels = member_labels
    elif not np.array_equal(labels, member_labels):
      raise UsageError(f"ensemble: {r} was scored on other dev examples than {runs_[0]}; a "
                       "multi-label ensemble's members must share a dev set")
    probs.append(_aligned(runs.calibrated_view(m, saved[0], calibrated)[0],
                          m.label_names, names))
  config = loaded[0].config
  return metrics_lib.tune_thresholds(np.mean(probs, axis=0), labels,
                                     config.multilabel_threshold,
                                     config.multilabel_at_least_one, config.multilabel_min_f1,
                                     objective_lib.resolve(config, True))


def mean_probs(loaded, member_probs, names, calibrated: bool = True) -> np.ndarray:
  """The ensemble's probabilities [N, C] (columns in `names` order): the mean of the
  members' raw probabilities after each member's own temperature scaling."""
  return np.mean([_aligned(runs.calibrated_view(m, p, calibrated)[0], m.label_names, names)
                  for m, p in zip(loaded, member_probs)], axis=0)


def load(runs_: list, batch_size: int = 0) -> list:
  """Every member loaded (`runs.load`), once their labels are checked to agree."""
  _check_labels(runs_)
  return [runs.load(r, batch_size) for r in runs_]


def predict_loaded(runs_: list, loaded: list, texts: list, top_k: int = 5,
                   calibrated: bool = True) -> list:
  """`runs.predict_loaded` for an ensemble: the same rows, from the mean probabilities."""
  names, multi_label = loaded[0].label_names, loaded[0].multi_label
  thresholds = _dev_thresholds(runs_, loaded, names, calibrated) if multi_label else None
  probs = mean_probs(loaded, [runs.text_probs(m, texts) for m in loaded], names, calibrated)
  return metrics_lib.label_rows(texts, probs, names, multi_label, thresholds,
                                loaded[0].config.multilabel_at_least_one, top_k)


def predict_texts(runs_: list, texts: list, top_k: int = 5, batch_size: int = 0,
                  calibrated: bool = True) -> list:
  """`runs.predict_texts` for an ensemble of runs (a `note` where no member knows a word)."""
  loaded = load(runs_, batch_size)
  known = np.any([runs.known_words(m, texts) for m in loaded], axis=0)
  return runs.note_unknown(predict_loaded(runs_, loaded, texts, top_k, calibrated), known)


def _scored(loaded, probs, labels, thresholds) -> dict:
  """Summary metrics with the split's ECE, Brier and NLL."""
  return {**metrics_lib.summary(runs.score(loaded, probs, labels, thresholds)),
          **calibration_lib.scores(probs, labels, loaded.multi_label)}


def evaluate(runs_: list, split: str = "test", data_dir: str = "",
             calibrated: bool = True) -> dict:
  """`textclf eval` of an ensemble: {"ensemble": its metrics, "members": [{"run", its
  metrics}]}, each with ECE, Brier and NLL; a member is scored as `predict` labels with it
  alone (calibrated probabilities, and their thresholds, unless `calibrated` is False)."""
  names, multi_label = _check_labels(runs_)
  if multi_label:
    _require_dev_predictions(runs_)
  _check_same_texts(runs_, split, data_dir)
  loaded, member_probs, labels, scored = [], [], None, []
  for r in runs_:
    m, probs, own_labels = runs.split_probs(r, split, data_dir)
    if multi_label:
      aligned = _aligned(own_labels, m.label_names, names)
    else:
      aligned = np.asarray([names.index(m.label_names[k]) for k in own_labels], np.int64)
    if labels is None:
      labels = aligned
    elif not np.array_equal(labels, aligned):
      raise UsageError(f"ensemble: {r}'s {split} split holds other examples than that of "
                       f"{runs_[0]} (another dataset, fold or split); its members must be "
                       "evaluated on the same examples")
    view, thresholds = runs.calibrated_view(m, probs, calibrated)
    scored.append({"run": r, **_scored(m, view, own_labels, thresholds)})
    loaded.append(m)
    member_probs.append(probs)
  probs = mean_probs(loaded, member_probs, names, calibrated)
  thresholds = _dev_thresholds(runs_, loaded, names, calibrated) if multi_label else None
  # names are the first member's labels, in its order: it scores the mean as well.
  return json.loads(json.dumps({
      "split": split, "calibrated": calibrated,
      "ensemble": {"members": len(runs_), **_scored(loaded[0], probs, labels, thresholds)},
      "members": scored}))
