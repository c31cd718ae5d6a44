"""Saved runs: load one (JSON + orbax, never pickle), re-evaluate it, serve it.

A run directory holds config.json, vocab.json, labels.json, data.json,
[thresholds.json], metrics.jsonl, results.json and checkpoints/{latest,best}.
"""

from __future__ import annotations

import dataclasses
import sys

import numpy as np

from textclf_jax import build as build_lib
from textclf_jax import evaluate as evaluate_lib
from textclf_jax import linear
from textclf_jax import metrics as metrics_lib, parallel, rundir
from textclf_jax.checkpoint import Checkpoints
from textclf_jax.data.batching import Encoded, encode_texts
from textclf_jax.data.errors import DataError
from textclf_jax.data.pipeline import prepare
from textclf_jax.data.tokenize import Tokenizer
from textclf_jax.data.vocab import Vocab

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


def check_run(run: str):
  """Raises DataError unless `run` is a run that `eval` and `predict` can load."""
  if not linear.is_linear_run(run):
    rundir.check_run_dir(run)


def load_run(run: str, batch_size: int = 0) -> LoadedRun:
  """Rebuilds the model and restores the checkpoint `run` was tested with (best or last)."""
  config = rundir.load_config(run)
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
  writer = rundir.holder(run)
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
                   steps, state, batcher, step, which)


def evaluate_run(run: str, split: str = "test", data_dir: str = "") -> dict:
  """Recomputes `split` metrics from the best checkpoint; compares with results.json."""
  if linear.is_linear_run(run):  # a TF-IDF run: its model is in RUN/linear/, not checkpoints/
    return linear.evaluate_run(run, split, data_dir)
  loaded = load_run(run)
  config = loaded.config
  if data_dir:
    with config.unlocked():
      config.data_dir = data_dir
  fold = rundir.read_fold(run)
  prepared = prepare(config, fold, vocab=loaded.vocab, label_names=loaded.label_names,
                     load_vectors_file=False)
  data = prepared.splits[split]
  probs = evaluate_lib.predict_probs(loaded.steps, loaded.state, data, loaded.batcher)
  metrics = evaluate_lib.score(probs, data.labels, prepared, config, loaded.thresholds)
  return rundir.evaluation_report(run, split, metrics)


def predict_texts(run: str, texts: list, top_k: int = 5, batch_size: int = 0) -> list:
  """Raw texts -> [{text, label | labels, probabilities: {label: p}}] in input order."""
  if linear.is_linear_run(run):
    return linear.predict_texts(run, texts, top_k)
  loaded = load_run(run, batch_size)
  config = loaded.config
  ids, lengths = encode_texts(texts, Tokenizer.from_config(config), loaded.vocab, config.max_len)
  num_labels = len(loaded.label_names)
  data = Encoded(ids, lengths, np.zeros(len(texts), np.int32))
  probs = evaluate_lib.predict_probs(loaded.steps, loaded.state, data, loaded.batcher)
  rows = []
  for text, p in zip(texts, probs):
    top = np.argsort(-p, kind="stable")[: max(1, min(top_k, num_labels))]
    row = {"text": text}
    if loaded.multi_label:
      chosen = metrics_lib.multi_label_predictions(p[None], np.asarray(loaded.thresholds),
                                                   config.multilabel_at_least_one)[0]
      row["labels"] = [loaded.label_names[i] for i in np.flatnonzero(chosen)]
    else:
      row["label"] = loaded.label_names[int(p.argmax())]
    row["probabilities"] = {loaded.label_names[i]: round(float(p[i]), 6) for i in top}
    rows.append(row)
  return rows
