"""Evaluation: probabilities for a split, its metrics, and a run's final dev/test scores."""

from __future__ import annotations

import jax
import numpy as np

from textclf_jax.scoring import calibration as calibration_lib
from textclf_jax.scoring import metrics as metrics_lib
from textclf_jax.training import steps as steps_lib
from textclf_jax.training.build import device_batch
from textclf_jax.data.batching import Batcher

LOWER_IS_BETTER = ("hamming_loss",)


def predict_probs(steps: steps_lib.Steps, state, data, batcher: Batcher) -> np.ndarray:
  """Probabilities [N, C] for every example of `data`, in its original order.

  The step's output is replicated, so every process sees every example once.
  """
  plan = batcher.eval_plan(data)
  outputs = [steps.predict_step(state, device_batch(batcher, data, index, steps.mesh))
             for index in plan]
  probs = np.zeros((len(data), outputs[0].shape[-1]), dtype=np.float32)
  for index, out in zip(plan, outputs):
    probs[index] = np.asarray(out)[: len(index)]
  return probs


def score(probs, labels, prepared, config, thresholds=None) -> dict:
  """Metrics of probabilities [N, C] against labels (multi-label: at `thresholds`)."""
  if prepared.multi_label:
    return metrics_lib.multi_label_metrics(probs, labels, prepared.label_names,
                                           0.5 if thresholds is None else thresholds,
                                           config.multilabel_at_least_one)
  return metrics_lib.single_label_metrics(probs, labels, prepared.label_names)


def stopping_metric(config, multi_label: bool) -> str:
  """The dev metric that early stopping and model selection follow."""
  if config.early_stopping_metric == "auto":
    return "micro_f1" if multi_label else "accuracy"
  return config.early_stopping_metric


def improved(value: float, best: float | None, name: str) -> bool:
  if best is None:
    return True
  return value < best if name in LOWER_IS_BETTER else value > best


def final_scores(config, prepared, steps, state, batcher, dev_probs=None) -> dict:
  """Dev and test metrics of `state`; for multi-label data, thresholds tuned on dev.
  dev_probs: `predict_probs` of `state` on dev with `batcher`, when the caller has them
  (the same program on the same state and batches gives the same bits); else computed.

  Returns {dev, test, thresholds (or None), threshold_search (thresholds.json's record:
  metrics.search_thresholds, or None), predictions: {split: (probs, labels)},
  calibration: (calibration.json's record, results.json's entry), [by_threshold_mode]}.
  """
  dev, test = prepared.splits["dev"], prepared.splits["test"]
  if dev_probs is None:
    dev_probs = predict_probs(steps, state, dev, batcher)
  thresholds = search = None
  if prepared.multi_label:
    search = metrics_lib.search_thresholds(dev_probs, dev.labels, config.multilabel_threshold,
                                           config.multilabel_at_least_one,
                                           config.multilabel_min_f1)
    thresholds = search["thresholds"]
  test_probs = predict_probs(steps, state, test, batcher)
  out = {"dev": score(dev_probs, dev.labels, prepared, config, thresholds),
         "test": score(test_probs, test.labels, prepared, config, thresholds),
         "thresholds": thresholds, "threshold_search": search,
         "predictions": {"dev": (dev_probs, dev.labels), "test": (test_probs, test.labels)}}
  out["calibration"] = calibration_lib.calibrate_run(
      out["predictions"], prepared.multi_label, prepared.label_names,
      config.multilabel_threshold, config.multilabel_at_least_one, config.multilabel_min_f1)
  if prepared.multi_label:
    out["by_threshold_mode"] = metrics_lib.scores_by_threshold_mode(
        dev_probs, dev.labels, test_probs, test.labels, prepared.label_names,
        config.multilabel_at_least_one, config.multilabel_min_f1)
  return out


def platform() -> dict:
  """Where the run ran, for its results record."""
  return {"num_processes": jax.process_count(), "platform": jax.devices()[0].platform}
