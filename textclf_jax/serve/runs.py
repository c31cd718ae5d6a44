"""Saved runs: load one (through the model family that wrote it), re-evaluate it,
predict with it.

A neural run directory holds config.json, vocab.json, labels.json, data.json,
[thresholds.json], [calibration.json], metrics.jsonl, results.json and
checkpoints/{latest,best}; a TF-IDF run its model in linear/ instead of checkpoints/.
Which family a run is, and how its probabilities are made, is the family's business
(families/registry.py): here are the reports on a loaded run (a Predictor). `eval` and
`predict` use calibration.json's temperature unless told not to (`calibrated=False`);
ensembles of runs are in ensemble.py.
"""

from __future__ import annotations

import json

import numpy as np

from textclf_jax.families import registry
from textclf_jax.run import compat, layout as rundir
from textclf_jax.scoring import calibration as calibration_lib
from textclf_jax.families import validate as validate_lib
from textclf_jax.scoring import metrics as metrics_lib
from textclf_jax.errors import DataError


def family_of(run: str):
  """The family that wrote the run `run`; a directory that is no run is a DataError
  saying what it lacks (rundir.check_run_dir), else that no family wrote it."""
  try:
    return registry.for_run(run)
  except DataError:
    rundir.check_run_dir(run)
    raise


def check_run(run: str):
  """Raises DataError unless `run` is a run that `eval` and `predict` can load."""
  family_of(run)


def load(run: str, batch_size: int = 0):
  """The run, ready to predict (a families.base.Predictor): config, label_names,
  multi_label, thresholds, calibration, text_probs(texts), split_probs(split). Its
  config is checked here, once (a run directory edited by hand, or from a newer version)."""
  family = family_of(run)
  file = rundir.path(run, rundir.CONFIG)
  validate_lib.validate(compat.read_config(file), file)
  return family.load(run, batch_size)


def unsupported(run: str, command: str) -> str | None:
  """Why `command` (explain, export) cannot take the run `run`, or None."""
  return family_of(run).unsupported(command)


def text_probs(loaded, texts: list) -> np.ndarray:
  """Raw texts -> the run's uncalibrated probabilities [N, C], in input order."""
  return loaded.text_probs(texts)


def split_probs(run: str, split: str = "test", data_dir: str = "") -> tuple:
  """(the loaded run, uncalibrated probabilities [N, C], labels) of a split, recomputed
  from what the run saved (its tested checkpoint, its fitted model)."""
  loaded = load(run)
  probs, labels = loaded.split_probs(split, data_dir)
  return loaded, probs, labels


def calibrated_view(loaded, probs, calibrated: bool = True) -> tuple:
  """(probabilities, multi-label thresholds) to label with: with `calibrated` and a
  calibration.json, the temperature-scaled probabilities and the thresholds tuned on
  them; else the raw ones and thresholds.json's."""
  record = loaded.calibration if calibrated else None
  if record is None:
    return probs, loaded.thresholds
  return (calibration_lib.apply_temperature(probs, record["temperature"], loaded.multi_label),
          record.get("thresholds", loaded.thresholds))


def score(loaded, probs, labels, thresholds) -> dict:
  """Metrics of probabilities [N, C] (multi-label: at `thresholds`)."""
  return metrics_lib.score(probs, labels, loaded.label_names, loaded.multi_label, thresholds,
                           loaded.config.multilabel_at_least_one)


def calibration_report(loaded, probs, labels, calibrated: bool = True) -> dict:
  """ECE, Brier and NLL of a split before (and, with a calibration.json, after)
  temperature scaling: {["temperature"], "before", ["after", multi-label "calibrated"]}."""
  record = loaded.calibration if calibrated else None
  out = calibration_lib.split_report(probs, labels, loaded.multi_label, record,
                                     loaded.label_names, loaded.config.multilabel_at_least_one)
  return out if record is None else {"temperature": record["temperature"], **out}


def rethreshold(run: str, loaded, objective: str, calibrated: bool = True):
  """Multi-label thresholds for `objective` searched anew on the run's saved dev
  predictions (predictions/dev_probs.npy; calibrated, as `calibrated_view`), with its
  own mode and floor setting: one trained model compared under each objective."""
  saved = rundir.read_predictions(run, "dev")
  if saved is None:
    raise DataError(f"{rundir.prediction_file(run, 'dev', 'probs')}: missing (a run made "
                    "before predictions were saved); --threshold_objective needs it")
  config = loaded.config
  return metrics_lib.tune_thresholds(calibrated_view(loaded, saved[0], calibrated)[0],
                                     saved[1], config.multilabel_threshold,
                                     config.multilabel_at_least_one, config.multilabel_min_f1,
                                     objective)


def evaluate_run(run: str, split: str = "test", data_dir: str = "",
                 calibrated: bool = True, objective: str = "") -> dict:
  """Recomputes `split` metrics from the tested checkpoint, and their calibration
  before/after temperature scaling; compares both with results.json. Multi-label, the
  metrics are of what `predict` labels with (`calibrated_view`) for a run whose
  results.json says so (compat.headline_calibrated), else of the raw probabilities at
  thresholds.json's (as such runs were scored). `objective` (micro, macro, per_label):
  at thresholds searched anew for it (`rethreshold`), the objective used then recorded.
  matches_results is None where the view is not results.json's (another objective, or
  --no-calibrated on a run scored calibrated)."""
  loaded, probs, labels = split_probs(run, split, data_dir)
  results = rundir.read_results(run)
  view, thresholds = probs, loaded.thresholds
  if loaded.multi_label and (objective or compat.headline_calibrated(results)):
    view, thresholds = calibrated_view(loaded, probs, calibrated)
  if loaded.multi_label and objective:
    thresholds = rethreshold(run, loaded, objective, calibrated)
  report = rundir.evaluation_report(run, split, score(loaded, view, labels, thresholds))
  if objective:
    report["summary"] = {**report["summary"], "threshold_objective": objective}
  headline = compat.headline_calibrated(results)
  if loaded.multi_label and (
      (headline and not calibrated) or (objective and (
          not headline or objective != results.get("threshold_objective")))):
    report["matches_results"] = None  # not the view results.json was scored in
  report["calibration"] = calibration_report(loaded, probs, labels, calibrated)
  saved = ((results or {}).get("calibration") or {}).get(split)
  if saved is not None and report["matches_results"] is not None:
    recomputed = json.loads(json.dumps(report["calibration"]))  # results.json's float repr
    recomputed.pop("temperature", None)
    expected = saved if "after" in recomputed else {"before": saved["before"]}
    report["matches_results"] = report["matches_results"] and recomputed == expected
  return report


def predict_texts(run: str, texts: list, top_k: int = 5, batch_size: int = 0,
                  calibrated: bool = True) -> list:
  """Raw texts -> [{text, label | labels, probabilities: {label: p}, [note]}] in input
  order; probabilities temperature-scaled when the run has a calibration.json and
  `calibrated`; `note` on a text none of whose words the run knows (NO_KNOWN_WORD)."""
  loaded = load(run, batch_size)
  return note_unknown(predict_loaded(loaded, texts, top_k, calibrated),
                      known_words(loaded, texts))


# The row note of a text none of whose words the run learned (labelled from the bias).
NO_KNOWN_WORD = "no known word: labelled from the model's bias alone"


def note_unknown(rows: list, known) -> list:
  """The rows, with `"note": NO_KNOWN_WORD` on those whose text has no known word."""
  for row, any_known in zip(rows, known):
    if not any_known:
      row["note"] = NO_KNOWN_WORD
  return rows


def known_words(loaded, texts: list) -> np.ndarray:
  """[N] bool: whether text i holds any piece the run learned (its vocabulary, or its
  TF-IDF vectorizer's); a text with none is labelled from the bias alone. A predictor
  with neither (another family's) says nothing: every text counts as known."""
  vectorizer, encoder = getattr(loaded, "vectorizer", None), getattr(loaded, "encoder", None)
  if vectorizer is not None and encoder is not None:
    pieces = [encoder.pieces(t, loaded.config.max_len) for t in texts]
    return np.asarray(vectorizer.transform(pieces).getnnz(axis=1)) > 0
  if encoder is None or not hasattr(encoder, "encode_flat"):
    return np.ones(len(texts), bool)
  flat, lengths = encoder.encode_flat(texts)
  known = (np.asarray(flat) != encoder.pad_id) & (np.asarray(flat) != encoder.unk_id)
  owner = np.repeat(np.arange(len(texts)), np.asarray(lengths, np.int64))
  return np.bincount(owner[known], minlength=len(texts)) > 0


def predict_loaded(loaded, texts: list, top_k: int = 5, calibrated: bool = True) -> list:
  """`predict_texts` for a run already loaded (`explain` labels and explains with one)."""
  probs, thresholds = calibrated_view(loaded, text_probs(loaded, texts), calibrated)
  return metrics_lib.label_rows(texts, probs, loaded.label_names, loaded.multi_label,
                                thresholds, loaded.config.multilabel_at_least_one, top_k)
