"""The linear baseline of every ablation table: TF-IDF word uni+bigrams + logistic regression.

    results = train_tfidf(config, workdir, fold)   # what execute.run_cell does for a baseline

Same data as a neural cell of the same config: the source, train/dev/test split
(or fold), `max_train_examples`, `imbalance_*` and the tokeniser (lower-casing,
stop words, stemming, `max_len`: the words the network sees) all come from the
config through the library's own functions. The inverse regularisation C is picked
on dev from a small grid (dev accuracy, or micro-F1 with tuned thresholds for
multi-label: one-vs-rest); `class_weights=balanced` is honoured. The run directory
gets config.json, data.json, [thresholds.json] and a results.json in the format
`train.finish` writes, so the sweep runner reads a baseline cell like any other.
"""

from __future__ import annotations

import os
import time

import numpy as np

from textclf_jax import metrics as metrics_lib
from textclf_jax import parallel, train
from textclf_jax.data import splits as splits_lib
from textclf_jax.data.batching import encode_labels
from textclf_jax.data.sources import load_source
from textclf_jax.data.tokenize import Tokenizer

C_GRID = (0.25, 1.0, 4.0, 16.0)
MODEL = "tfidf+lr"


def _ngrams(tokens):
  """Word unigrams and bigrams of a pre-tokenised text."""
  return list(tokens) + [f"{a} {b}" for a, b in zip(tokens, tokens[1:])]


def _classifier(c: float, multi_label: bool, balanced: bool, seed: int):
  from sklearn.linear_model import LogisticRegression
  from sklearn.multiclass import OneVsRestClassifier
  weight = "balanced" if balanced else None
  if multi_label:
    # The dual problem: ~17x faster with far more n-grams than documents (Reuters).
    return OneVsRestClassifier(LogisticRegression(C=c, solver="liblinear", dual=True,
                                                  class_weight=weight, random_state=seed))
  # newton-cg: exact and fast here; lbfgs takes 10x longer on 30k+ sparse features.
  return LogisticRegression(C=c, solver="newton-cg", max_iter=1000, class_weight=weight,
                            random_state=seed)


def train_tfidf(config, workdir: str, fold: int = -1) -> dict:
  """Fits the baseline on the config's training split; writes and returns results.json."""
  from sklearn.feature_extraction.text import TfidfVectorizer

  started = time.time()
  raw = load_source(config)
  stats = {}
  split_data = splits_lib.make_splits(raw, config, fold, stats)
  label_names = splits_lib.build_label_map(raw, split_data)
  tokenizer = Tokenizer.from_config(config)
  tokens = {k: [tokenizer(t) for t in split.texts] for k, split in split_data.items()}
  labels = {k: encode_labels(split.labels, label_names, raw.multi_label)
            for k, split in split_data.items()}
  multi = raw.multi_label

  fit_started = time.time()
  vectorizer = TfidfVectorizer(analyzer=_ngrams, sublinear_tf=True)
  features = {"train": vectorizer.fit_transform(tokens["train"])}
  features.update({k: vectorizer.transform(tokens[k]) for k in ("dev", "test")})
  balanced = config.class_weights == "balanced"
  best = None
  for c in C_GRID:
    model = _classifier(c, multi, balanced, config.seed).fit(features["train"], labels["train"])
    dev_probs = model.predict_proba(features["dev"])
    thresholds = None
    if multi:
      thresholds = metrics_lib.tune_thresholds(dev_probs, labels["dev"],
                                               config.multilabel_threshold,
                                               config.multilabel_at_least_one)
    dev = _score(dev_probs, labels["dev"], label_names, multi, config, thresholds)
    key = dev["micro_f1"] if multi else dev["accuracy"]
    if best is None or key > best[0]:
      best = (key, c, model, thresholds, dev)
  _, c, model, thresholds, dev = best
  train_seconds = time.time() - fit_started

  test_probs = model.predict_proba(features["test"])
  test = _score(test_probs, labels["test"], label_names, multi, config, thresholds)
  by_mode = (metrics_lib.scores_by_threshold_mode(
      model.predict_proba(features["dev"]), labels["dev"], test_probs, labels["test"],
      label_names, config.multilabel_at_least_one) if multi else None)
  linear = model.estimators_ if multi else [model]  # a constant label has no coef_
  num_params = sum(e.coef_.size + e.intercept_.size for e in linear if hasattr(e, "coef_"))
  num_train = len(split_data["train"])
  stats.update({"dataset": raw.name, "multi_label": multi, "fold": fold,
                "num_labels": len(label_names), "num_features": len(vectorizer.vocabulary_),
                **{f"num_{k}": len(v) for k, v in split_data.items()},
                "mean_length_train": float(np.mean([len(t) for t in tokens["train"]]))})
  results = {
      "dataset": raw.name, "model": MODEL, "fold": fold, "best_step": 0, "final_step": 0,
      "stopped_early": False, "dev": dev, "test": test,
      "train_seconds": train_seconds,
      # Examples fitted per second over the whole C grid (len(C_GRID) fits).
      "train_examples_per_second": num_train * len(C_GRID) / max(train_seconds, 1e-9),
      "wall_seconds": time.time() - started,
      "num_params": int(num_params),
      "num_devices": 1, "num_processes": 1, "platform": "cpu",
      "baseline": {"C": c, "C_grid": list(C_GRID), "ngrams": [1, 2], "sublinear_tf": True},
      "data": stats,
  }
  if multi:
    results["by_threshold_mode"] = by_mode
  if parallel.is_main_process():
    train.write_config(config, workdir)
    train.write_json(os.path.join(workdir, "data.json"), stats)
    if multi:
      train.write_json(os.path.join(workdir, "thresholds.json"),
                       {"mode": config.multilabel_threshold, "thresholds": thresholds})
    train.write_json(os.path.join(workdir, "results.json"), results)
  return results


def _score(probs, labels, label_names, multi, config, thresholds):
  if multi:
    return metrics_lib.multi_label_metrics(probs, labels, label_names, thresholds,
                                           config.multilabel_at_least_one)
  return metrics_lib.single_label_metrics(probs, labels, label_names)
