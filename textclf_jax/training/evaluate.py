"""Evaluation: probabilities for a split, its metrics, and which dev metric selects."""

from __future__ import annotations

import jax
import numpy as np

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
  return metrics_lib.score(probs, labels, prepared.label_names, prepared.multi_label,
                           thresholds, config.multilabel_at_least_one)


def stopping_metric(config, multi_label: bool) -> str:
  """The dev metric that early stopping and model selection follow."""
  if config.early_stopping_metric == "auto":
    return "micro_f1" if multi_label else "accuracy"
  return config.early_stopping_metric


def improved(value: float, best: float | None, name: str) -> bool:
  if best is None:
    return True
  return value < best if name in LOWER_IS_BETTER else value > best


def platform() -> dict:
  """Where the run ran, for its results record."""
  return {"num_processes": jax.process_count(), "platform": jax.devices()[0].platform}
