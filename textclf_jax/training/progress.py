"""The bookkeeping of one run's life, the same for a run alone and a group member.

`RunProgress` holds the loop's position and early-stopping state (`meta`, saved
with every checkpoint as JSON) and does each step of a run's life once:

  log_train     a train-log entry, after checking the loss stayed finite
  evaluate      dev metrics -> log -> early stopping / plateau -> best checkpoint
  end_epoch     the position after an epoch (and whether training stops)
  save_latest   the latest checkpoint
  finish        dev/test probabilities of the tested checkpoint -> run/finish.py

`train.py` drives one for a run; `group/` drives one per member, so a member
stops, selects and scores by exactly the rule of a run alone.
"""

from __future__ import annotations

import math
import sys
import time

import numpy as np

from textclf_jax.errors import Pruned, TrainingDiverged

from textclf_jax.training import evaluate as evaluate_lib
from textclf_jax.scoring import metrics as metrics_lib
from textclf_jax.runtime import parallel
from textclf_jax.run import finish as finish_lib
from textclf_jax.training import steps as steps_lib


# A train-log loss this many times that of a uniform guess is called out once.
LOSS_GROWTH_WARNING = 100.0


def initial_meta() -> dict:
  return {"epoch": 0, "position": 0, "best": None, "best_step": 0, "bad_evals": 0,
          "plateau_scale": 1.0, "plateau_bad": 0, "stopped_early": False, "train_seconds": 0.0,
          "train_examples": 0}


def record_evaluation(meta: dict, config, metric_name: str, value: float, step: int,
                      save_best) -> bool:
  """Early-stopping and plateau bookkeeping after one dev evaluation (updates `meta`).

  `save_best()` is called when `value` is the best so far, with `meta` already
  updated. Returns True when early stopping says stop.
  """
  if evaluate_lib.improved(value, meta["best"], metric_name):
    meta.update(best=value, best_step=step, bad_evals=0, plateau_bad=0)
    save_best()
  else:
    meta["bad_evals"] += 1
    meta["plateau_bad"] += 1
  if config.schedule == "plateau" and meta["plateau_bad"] >= config.plateau_patience:
    meta["plateau_scale"] *= config.plateau_factor
    meta["plateau_bad"] = 0
  return (config.early_stopping_patience > 0
          and meta["bad_evals"] >= config.early_stopping_patience)


class RunProgress:
  """One run's position, early stopping, checkpoints, logs and final results.

  ckpt: its `checkpoint.Checkpoints`; logger: its `runlog.RunLogger`; meta: the
  restored position (None: a new run). `latest_note()` says where the last good
  state is kept, for the divergence message (latest_note: that function, for a state
  kept elsewhere than ckpt's latest, as a group's). on_dev(epoch, step, dev metrics): called
  after each dev evaluation's bookkeeping; raising `Pruned` stops the run there.
  """

  def __init__(self, config, workdir: str, prepared, ckpt, logger, meta: dict | None = None,
               all_finite=None, on_dev=None, latest_note=None):
    self.config = config
    self.on_dev = on_dev
    self.all_finite = all_finite  # state -> whether its parameters are finite
    self._warned = set()
    self.workdir = workdir
    self.prepared = prepared
    self.ckpt = ckpt
    self.logger = logger
    self.meta = meta if meta is not None else initial_meta()
    self.metric_name = evaluate_lib.stopping_metric(config, prepared.multi_label)
    self.latest_note = latest_note or (lambda: (
        f"The last good checkpoint (step {ckpt.latest.latest_step()}) is kept in "
        "checkpoints/latest"))

  @property
  def stopped(self) -> bool:
    return bool(self.meta["stopped_early"])

  def add_training(self, seconds: float, examples: int):
    self.meta["train_seconds"] += seconds
    self.meta["train_examples"] += examples

  def check_finite(self, host_metrics, context: str = ""):
    """Raises TrainingDiverged if a step since the last reset had a NaN/Inf loss."""
    bad = int(host_metrics["first_bad_step"])
    if bad != steps_lib.NO_BAD_STEP:
      raise TrainingDiverged(
          f"{self.workdir}: loss became NaN/Inf at step {bad + 1}{context}; stopped. "
          f"{self.latest_note()}; lower the learning "
          "rate or enable --config.clip_norm, then --resume or start again")

  def log_train(self, step: int, epoch: int, host_metrics, examples_per_second: float,
                context: str = "") -> dict:
    """Checks the interval's loss is finite, then logs its mean loss and accuracy."""
    self.check_finite(host_metrics, context)
    count = max(float(host_metrics["count"]), 1.0)
    entry = {"loss": float(host_metrics["loss_sum"] / count),
             "accuracy": float(host_metrics["correct"] / count),
             "examples_per_second": examples_per_second}
    self.logger.log(step, epoch=epoch, train=entry)
    chance = math.log(2.0 if self.prepared.multi_label else
                      max(len(self.prepared.label_names), 2))
    if entry["loss"] > LOSS_GROWTH_WARNING * chance:
      self._warn("loss", f"the training loss at step {step} is {entry['loss']:.4g}, "
                 f"{entry['loss'] / chance:.0f} times that of a uniform guess "
                 f"({chance:.3g}): the learning rate ({self.config.learning_rate:g}) is "
                 "probably too high")
    return entry

  def _warn(self, kind: str, message: str):
    """Says `message` once per run (process 0)."""
    if kind in self._warned:
      return
    self._warned.add(kind)
    if parallel.is_main_process():
      print(f"[textclf] warning: {self.workdir}: {message}", file=sys.stderr, flush=True)

  def evaluate(self, step: int, epoch: int, dev_probs, state_now) -> tuple:
    """Scores dev probabilities [N, C], logs them, and updates early stopping; saves
    `state_now()` as the best checkpoint when it is the best so far.
    Returns (dev metrics, whether training stops)."""
    dev = self.prepared.splits["dev"]
    dev_metrics = evaluate_lib.score(dev_probs, dev.labels, self.prepared, self.config)
    self.logger.log(step, epoch=epoch, dev=metrics_lib.summary(dev_metrics))
    if epoch >= 1 and not self.prepared.multi_label:
      majority = float(np.bincount(dev.labels).max() / max(len(dev.labels), 1))
      if dev_metrics["accuracy"] <= majority:
        self._warn("chance", f"after {epoch + 1} epochs the dev accuracy "
                   f"({dev_metrics['accuracy']:.4f}) is no better than always predicting "
                   f"the most frequent label ({majority:.4f}); check the learning rate "
                   f"({self.config.learning_rate:g}) and the labels")
    stop = record_evaluation(self.meta, self.config, self.metric_name,
                             dev_metrics[self.metric_name], step,
                             lambda: self._save(self.ckpt.save_best, step, state_now()))
    if self.on_dev is not None and not stop:
      try:
        self.on_dev(epoch, step, dev_metrics)
      except Pruned as e:
        self.meta["pruned"] = str(e)
        stop = True
        if parallel.is_main_process():
          print(f"[textclf] {self.workdir}: {e}; stopping here", flush=True)
    return dev_metrics, stop

  def end_epoch(self, epoch: int, stop: bool):
    """The position after epoch `epoch` (0-based) has ended."""
    self.meta.update(epoch=epoch + 1, position=0, stopped_early=bool(stop))

  def save_latest(self, step: int, state):
    self._save(self.ckpt.save_latest, step, state)

  def _save(self, save, step: int, state):
    """Saves a checkpoint only if its parameters are finite: a checkpoint is a good one."""
    self.check_parameters(step, state)
    save(step, state, self.meta)

  def check_parameters(self, step: int, state):
    """Raises TrainingDiverged if a parameter of `state` is NaN/Inf (what a save checks
    first; for the last epoch's end when it saves no latest checkpoint)."""
    if self.all_finite is not None and not bool(self.all_finite(state)):
      raise TrainingDiverged(
          f"{self.workdir}: the parameters became NaN/Inf by step {step} (the loss was still "
          f"finite); stopped without saving them. {self.latest_note()}; lower the learning "
          "rate or enable --config.clip_norm, then --resume or start again")

  def describe_best(self) -> str:
    return (f"dev {self.metric_name} (best {self.meta['best']:.4f} at step "
            f"{self.meta['best_step']})")

  def finish(self, steps, state, batcher, started: float, dev_probs=None) -> dict:
    """Scores dev and test with the best (or, test_checkpoint=last, the final) state,
    writes thresholds.json, the scored probabilities (predictions/), the temperature
    fitted on dev (calibration.json, reliability.png) and results.json,
    and closes the logs and checkpoints.

    dev_probs: (step, probabilities) of the last dev evaluation, made with `steps` and
    `batcher`: reused when the tested state is the one of that step."""
    final_step = int(state["step"])
    tested_step = final_step
    # The best checkpoint is restored unless it is the state at hand (best at the last
    # step: the same arrays, saved from this state or restored from its copy).
    if self.config.test_checkpoint == "best" and self.meta["best_step"] != final_step:
      best = self.ckpt.restore_best(parallel.abstract_like(state))
      if best is not None:
        state = best[0]
        tested_step = int(state["step"])
    dev, test = self.prepared.splits["dev"], self.prepared.splits["test"]
    dev_probs = dev_probs[1] if dev_probs is not None and dev_probs[0] == tested_step else None
    if dev_probs is None:  # the same program on the same state and batches: the same bits
      dev_probs = evaluate_lib.predict_probs(steps, state, dev, batcher)
    test_probs = evaluate_lib.predict_probs(steps, state, test, batcher)
    scores = finish_lib.score(self.config, self.prepared.label_names, self.prepared.multi_label,
                              (dev_probs, dev.labels), (test_probs, test.labels))
    meta = self.meta
    results = finish_lib.results(scores, dict(
        dataset=self.prepared.name, model=self.config.model, fold=self.prepared.stats["fold"],
        best_step=meta["best_step"], tested_checkpoint=self.config.test_checkpoint,
        final_step=final_step, stopped_early=meta["stopped_early"],
        train_seconds=meta["train_seconds"],
        train_examples_per_second=meta["train_examples"] / max(meta["train_seconds"], 1e-9),
        wall_seconds=time.time() - started, num_devices=steps.mesh.size,
        **evaluate_lib.platform(), data=self.prepared.stats,
        epochs_trained=meta["epoch"]), {"pruned": meta["pruned"]} if meta.get("pruned") else {})
    finish_lib.write(self.workdir, self.config, self.prepared.name, self.prepared.multi_label,
                     scores, results)
    if self.config.keep_checkpoints == "tested":
      # Only the checkpoint the results come from is needed now (eval, predict).
      if self.config.test_checkpoint == "last":
        self.ckpt.drop("best")
      elif self.ckpt.best.latest_step() is not None:
        self.ckpt.drop("latest")
    self.logger.summary(results)
    self.logger.close()
    self.ckpt.close()
    return results
