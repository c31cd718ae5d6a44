"""Saved runs: load one (JSON + orbax, never pickle), re-evaluate it, serve it.

A run directory holds config.json, vocab.json, labels.json, data.json,
[thresholds.json], metrics.jsonl, results.json and checkpoints/{latest,best}.
"""

from __future__ import annotations

import dataclasses
import json
import os

import numpy as np

from textclf_jax import config as config_lib
from textclf_jax import metrics as metrics_lib, parallel, train
from textclf_jax.data.batching import Encoded, encode_texts
from textclf_jax.data.errors import DataError
from textclf_jax.data.pipeline import prepare
from textclf_jax.data.tokenize import Tokenizer
from textclf_jax.data.vocab import Vocab

RUN_FILES = ("config.json", "vocab.json", "labels.json")


def check_run_dir(run: str):
  if not os.path.isdir(run):
    raise DataError(f"{run}: not a directory")
  if is_cv_run(run):
    folds = sorted(d for d in os.listdir(run) if d.startswith("fold_"))
    raise DataError(f"{run}: a cross-validation run; give one fold's directory, e.g. "
                    f"{os.path.join(run, folds[0] if folds else 'fold_0')}")
  missing = [f for f in RUN_FILES if not os.path.exists(os.path.join(run, f))]
  if missing or not os.path.isdir(os.path.join(run, "checkpoints")):
    raise DataError(f"{run}: not a run directory (missing "
                    f"{', '.join(missing or ['checkpoints/'])})")


def is_cv_run(run: str) -> bool:
  return os.path.isdir(run) and any(d.startswith("fold_") for d in os.listdir(run))


def load_config(run: str, allow_cv: bool = False):
  """The config of a run (or, with allow_cv, of a cross-validation parent directory)."""
  if not (allow_cv and is_cv_run(run)):
    check_run_dir(run)
  return config_lib.from_json(os.path.join(run, "config.json"))


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


def load_run(run: str, batch_size: int = 0) -> LoadedRun:
  """Rebuilds the model and restores the checkpoint `run` was tested with (best or last)."""
  config = load_config(run)
  vocab = Vocab.from_json(os.path.join(run, "vocab.json"))
  labels = train.read_json(os.path.join(run, "labels.json"))
  thresholds = None
  if labels["multi_label"]:
    thresholds = train.read_json(os.path.join(run, "thresholds.json"))["thresholds"]
  mesh = train.make_mesh(config)
  vectors = None
  if config.embedding != "rand":  # shapes only: the values come from the checkpoint
    vectors = np.zeros((len(vocab), config.embed_dim), np.float32)
  steps, state = train.make_steps(config, len(vocab), len(labels["labels"]),
                                  labels["multi_label"], mesh, total_steps=1, vectors=vectors)
  from textclf_jax.checkpoint import Checkpoints
  ckpt = Checkpoints(run)
  target = parallel.abstract_like(state)
  if train.tested_checkpoint(config) == "last":
    restored = ckpt.restore_latest(target)
  else:
    restored = ckpt.restore_best(target) or ckpt.restore_latest(target)
  ckpt.close()
  if restored is None:
    raise DataError(f"{run}: has no checkpoint yet (checkpoints/best and latest are empty)")
  state = restored[0]
  batcher = train.make_batcher(config, mesh, batch_size or config.eval_batch_size
                               or config.batch_size)
  return LoadedRun(config, vocab, labels["labels"], labels["multi_label"], thresholds,
                   steps, state, batcher)


def evaluate_run(run: str, split: str = "test", data_dir: str = "") -> dict:
  """Recomputes `split` metrics from the best checkpoint; compares with results.json."""
  loaded = load_run(run)
  config = loaded.config
  if data_dir:
    with config.unlocked():
      config.data_dir = data_dir
  fold = train.read_json(os.path.join(run, "data.json")).get("fold", -1)
  prepared = prepare(config, fold, vocab=loaded.vocab, label_names=loaded.label_names,
                     load_vectors_file=False)
  data = prepared.splits[split]
  probs = train.predict_probs(loaded.steps, loaded.state, data, loaded.batcher)
  metrics = train.score(probs, data.labels, prepared, config, loaded.thresholds)
  metrics = json.loads(json.dumps(metrics))  # the same float repr as results.json
  matches = None
  results_path = os.path.join(run, "results.json")
  if os.path.exists(results_path) and split in ("dev", "test"):
    matches = train.read_json(results_path)[split] == metrics
  return {"metrics": metrics, "summary": metrics_lib.summary(metrics), "matches_results": matches}


def predict_texts(run: str, texts: list, top_k: int = 5, batch_size: int = 0) -> list:
  """Raw texts -> [{text, label | labels, probabilities: {label: p}}] in input order."""
  loaded = load_run(run, batch_size)
  config = loaded.config
  ids, lengths = encode_texts(texts, Tokenizer.from_config(config), loaded.vocab, config.max_len)
  num_labels = len(loaded.label_names)
  data = Encoded(ids, lengths, np.zeros(len(texts), np.int32))
  probs = train.predict_probs(loaded.steps, loaded.state, data, loaded.batcher)
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
