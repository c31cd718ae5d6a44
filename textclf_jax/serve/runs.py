"""Saved runs: load one (JSON + orbax, never pickle), re-evaluate it, serve it.

A run directory holds config.json, vocab.json, labels.json, data.json,
[thresholds.json], [calibration.json], metrics.jsonl, results.json and
checkpoints/{latest,best}. `eval` and `predict` use calibration.json's temperature
unless told not to (`calibrated=False`); ensembles of runs are in ensemble.py.
"""

from __future__ import annotations

import dataclasses
import json
import sys

import numpy as np

from textclf_jax.training import build as build_lib
from textclf_jax.scoring import calibration as calibration_lib
from textclf_jax.training import evaluate as evaluate_lib
from textclf_jax.families import validate as validate_lib
from textclf_jax.families.tfidf import fit as linear, model as linear_model
from textclf_jax.scoring import metrics as metrics_lib
from textclf_jax.runtime import parallel
from textclf_jax.run import layout as rundir, lock as runlock
from textclf_jax.run.checkpoint import Checkpoints
from textclf_jax.data.batching import Encoded, encode_texts
from textclf_jax.errors import DataError
from textclf_jax.data.pipeline import prepare
from textclf_jax.text.tokenize import Tokenizer
from textclf_jax.text.vocab import Vocab

@dataclasses.dataclass
class LoadedRun:
  config: object
  vocab: Vocab
  label_names: list
  multi_label: bool
  thresholds: object
  steps: object
  state: dict
  batcher: object
  step: int = 0  # of the restored checkpoint
  which: str = "best"  # best | latest
  calibration: dict | None = None  # calibration.json (None: a run made before it)


def check_run(run: str):
  """Raises DataError unless `run` is a run that `eval` and `predict` can load."""
  if not linear.is_linear_run(run):
    rundir.check_run_dir(run)


def load_run(run: str, batch_size: int = 0) -> LoadedRun:
  """Rebuilds the model and restores the checkpoint `run` was tested with (best or last)."""
  config = validate_lib.validate(rundir.load_config(run), rundir.path(run, rundir.CONFIG))
  vocab = Vocab.from_json(rundir.path(run, rundir.VOCAB))
  labels = rundir.read_labels(run)
  thresholds = rundir.read_thresholds(run) if labels["multi_label"] else None
  mesh = build_lib.make_mesh(config)
  vectors = None
  if config.embedding != "rand":  # shapes only: the values come from the checkpoint
    vectors = np.zeros((len(vocab), config.embed_dim), np.float32)
  steps, state = build_lib.make_steps(config, len(vocab), len(labels["labels"]),
                                      labels["multi_label"], mesh, total_steps=1,
                                      vectors=vectors)
  writer = runlock.holder(run)
  ckpt = Checkpoints(run, read_only=True)
  target = parallel.abstract_like(state)
  which = "latest"
  if config.test_checkpoint == "last":
    restored = ckpt.restore_latest(target)
  else:
    restored = ckpt.restore_best(target)
    which = "best"
    if restored is None:
      restored, which = ckpt.restore_latest(target), "latest"
  ckpt.close()
  if restored is None:
    raise DataError(f"{run}: has no checkpoint yet (checkpoints/best and latest are empty)")
  state, _ = restored
  step = int(state["step"])
  if writer is not None:
    print(f"[textclf] {run} is being trained now (pid {writer.get('pid', '?')} on "
          f"{writer.get('host', '?')}); using its last committed {which} checkpoint, "
          f"step {step}", file=sys.stderr, flush=True)
  if not bool(steps.all_finite(state)):
    raise DataError(f"{run}: the parameters of its {which} checkpoint (step {step}) are "
                    "NaN/Inf; the run diverged and has nothing to evaluate or serve")
  batcher = build_lib.make_batcher(config, mesh, batch_size or config.eval_batch_size
                                   or config.batch_size)
  return LoadedRun(config, vocab, labels["labels"], labels["multi_label"], thresholds,
                   steps, state, batcher, step, which, rundir.read_calibration(run))


def load_any(run: str, batch_size: int = 0):
  """A LoadedRun, or a linear_model.LinearRun for a TF-IDF run: both have config, label_names,
  multi_label, thresholds and calibration."""
  if not linear.is_linear_run(run):
    return load_run(run, batch_size)
  loaded = linear_model.LinearRun(run)
  validate_lib.validate(loaded.config, rundir.path(run, rundir.CONFIG))  # read once: check once
  return loaded


def text_probs(loaded, texts: list) -> np.ndarray:
  """Raw texts -> the run's uncalibrated probabilities [N, C], in input order."""
  if isinstance(loaded, linear_model.LinearRun):
    return linear_model.text_probs(loaded, texts)
  config = loaded.config
  ids, lengths = encode_texts(texts, Tokenizer.from_config(config), loaded.vocab, config.max_len)
  data = Encoded(ids, lengths, np.zeros(len(texts), np.int32))
  return evaluate_lib.predict_probs(loaded.steps, loaded.state, data, loaded.batcher)


def split_probs(run: str, split: str = "test", data_dir: str = "") -> tuple:
  """(the loaded run, uncalibrated probabilities [N, C], labels) of a split, recomputed
  from the checkpoint the run was tested with (a TF-IDF run: from its saved model)."""
  if linear.is_linear_run(run):  # a TF-IDF run: its model is in RUN/linear/, not checkpoints/
    return linear_model.split_probs(run, split, data_dir)
  loaded = load_run(run)
  data = prepare_split(loaded, run, split, data_dir)
  probs = evaluate_lib.predict_probs(loaded.steps, loaded.state, data, loaded.batcher)
  return loaded, probs, data.labels


def prepare_split(loaded, run: str, split: str, data_dir: str = "", option: str = "--split"):
  """The run's `split` (Encoded), tokenised with its vocabulary from its dataset and
  fold, as `textclf eval` finds it; `data_dir`: where that dataset lives now. A split
  the dataset does not have is a usage error naming `option`."""
  from textclf_jax.errors import UsageError
  config = loaded.config
  if data_dir:
    with config.unlocked():
      config.data_dir = data_dir
  prepared = prepare(config, rundir.read_fold(run), vocab=loaded.vocab,
                     label_names=loaded.label_names, load_vectors_file=False)
  if split not in prepared.splits:
    raise UsageError(f"{option} {split}: the run's dataset has splits "
                     f"{', '.join(prepared.splits)}")
  return prepared.splits[split]


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
  if loaded.multi_label:
    return metrics_lib.multi_label_metrics(probs, labels, loaded.label_names, thresholds,
                                           loaded.config.multilabel_at_least_one)
  return metrics_lib.single_label_metrics(probs, labels, loaded.label_names)


def calibration_report(loaded, probs, labels, calibrated: bool = True) -> dict:
  """ECE, Brier and NLL of a split before (and, with a calibration.json, after)
  temperature scaling: {["temperature"], "before", ["after", multi-label "calibrated"]}."""
  record = loaded.calibration if calibrated else None
  out = calibration_lib.split_report(probs, labels, loaded.multi_label, record,
                                     loaded.label_names, loaded.config.multilabel_at_least_one)
  return out if record is None else {"temperature": record["temperature"], **out}


def evaluate_run(run: str, split: str = "test", data_dir: str = "",
                 calibrated: bool = True) -> dict:
  """Recomputes `split` metrics from the tested checkpoint, and their calibration
  before/after temperature scaling; compares both with results.json."""
  loaded, probs, labels = split_probs(run, split, data_dir)
  report = rundir.evaluation_report(run, split, score(loaded, probs, labels, loaded.thresholds))
  report["calibration"] = calibration_report(loaded, probs, labels, calibrated)
  saved = ((rundir.read_results(run) or {}).get("calibration") or {}).get(split)
  if saved is not None and report["matches_results"] is not None:
    recomputed = json.loads(json.dumps(report["calibration"]))  # results.json's float repr
    recomputed.pop("temperature", None)
    expected = saved if "after" in recomputed else {"before": saved["before"]}
    report["matches_results"] = report["matches_results"] and recomputed == expected
  return report


def predict_texts(run: str, texts: list, top_k: int = 5, batch_size: int = 0,
                  calibrated: bool = True) -> list:
  """Raw texts -> [{text, label | labels, probabilities: {label: p}}] in input order;
  probabilities temperature-scaled when the run has a calibration.json and `calibrated`."""
  return predict_loaded(load_any(run, batch_size), texts, top_k, calibrated)


def predict_loaded(loaded, texts: list, top_k: int = 5, calibrated: bool = True) -> list:
  """`predict_texts` for a run already loaded (`explain` labels and explains with one)."""
  probs, thresholds = calibrated_view(loaded, text_probs(loaded, texts), calibrated)
  return metrics_lib.label_rows(texts, probs, loaded.label_names, loaded.multi_label,
                                thresholds, loaded.config.multilabel_at_least_one, top_k)
