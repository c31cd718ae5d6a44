"""Training and evaluation loop: `train_and_evaluate(config, workdir)`.

text -> ids (once) -> bucketed batches (a function of seed and epoch) -> jitted
sharded step -> dev evaluation -> early stopping -> best checkpoint -> test.
Resuming restores the latest checkpoint (state, epoch, batch position,
early-stopping state) and replays the same batch order, so a resumed run ends
with bitwise the same parameters as an uninterrupted one.
"""

from __future__ import annotations

import json
import math
import os
import time

import jax
import numpy as np
import tqdm

from textclf_jax import config as config_lib
from textclf_jax import losses, metrics as metrics_lib, optim, parallel, runlog
from textclf_jax import sparse_embed, steps as steps_lib
from textclf_jax.checkpoint import Checkpoints
from textclf_jax.data import splits as splits_lib
from textclf_jax.data.batching import Batcher, padded_lengths, prefetch
from textclf_jax.data.pipeline import Prepared, prepare
from textclf_jax.data.sources import load_source
from textclf_jax.models import build_model, cnn

LOWER_IS_BETTER = ("hamming_loss",)


class TrainingDiverged(RuntimeError):
  """The loss became NaN or Inf."""


def write_json(path: str, value):
  """Writes JSON atomically (temporary file + rename): never half-written."""
  tmp = path + ".tmp"
  with open(tmp, "w", encoding="utf-8") as f:
    json.dump(value, f, indent=2, ensure_ascii=False)
  os.replace(tmp, path)


def read_json(path: str):
  with open(path, encoding="utf-8") as f:
    return json.load(f)


# --- pieces shared by training, eval and predict ------------------------------


def make_mesh(config):
  return parallel.make_mesh(config.mesh_model)


def make_batcher(config, mesh, batch_size: int | None = None) -> Batcher:
  min_len = max(config.filter_widths) if "filter_widths" in config else 1
  buckets = padded_lengths(config.bucket_lengths, max(config.max_len, min_len), min_len)
  return Batcher(batch_size or config.batch_size, buckets,
                 pad_to_multiple=parallel.data_size(mesh))


def device_batch(batcher: Batcher, data, index: np.ndarray, mesh) -> dict:
  """The batch of examples `index` as global arrays; this process builds only its rows."""
  rows = batcher.num_rows(len(index))
  return parallel.put_batch(batcher.make_batch(data, index, parallel.local_rows(mesh, rows)),
                            mesh, rows)


def make_steps(config, vocab_size: int, num_labels: int, multi_label: bool, mesh,
               total_steps: int, vectors=None, class_weights=None):
  """Builds the model, optimiser and loss; returns (Steps, initial state on the mesh).

  The state is created by a jitted function with `out_shardings` (so every
  process creates its own shards); pretrained vectors [V, D] enter it as a
  replicated global array. Embedding tables have `parallel.table_rows` rows.
  The trainable table gets the row-sparse update where `sparse_embed` allows it.
  """
  tx = optim.make_optimizer(config, total_steps)
  table_update = sparse_embed.make_table_update(config, total_steps)
  loss_fn = losses.make_loss_fn(config, multi_label, class_weights)
  rows = parallel.table_rows(vocab_size, mesh.shape["model"], config.vocab_multiple)
  if vectors is not None and len(vectors) < rows:
    vectors = np.concatenate([vectors, np.zeros((rows - len(vectors), vectors.shape[1]),
                                                vectors.dtype)])
  graphdefs = []

  def init(vectors=None):
    model = build_model(config, rows, num_labels, vectors, seed=config.seed)
    graphdef, state = steps_lib.init_state(model, tx, config.seed, table_update)
    graphdefs.append(graphdef)
    return state

  args = () if vectors is None else (parallel.host_array(vectors.astype(np.float32), mesh),)
  abstract = jax.eval_shape(init, *args)
  sharding = parallel.state_shardings(abstract, mesh, rows)
  state = jax.jit(init, out_shardings=sharding)(*args)
  steps = steps_lib.Steps(graphdefs[0], tx, loss_fn, multi_label, config.max_norm, mesh,
                          sharding, steps_lib.compute_dtype(config.compute_dtype), table_update)
  return steps, state


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


def score(probs, labels, prepared: Prepared, config, thresholds=None) -> dict:
  if prepared.multi_label:
    return metrics_lib.multi_label_metrics(probs, labels, prepared.label_names,
                                           0.5 if thresholds is None else thresholds,
                                           config.multilabel_at_least_one)
  return metrics_lib.single_label_metrics(probs, labels, prepared.label_names)


def stopping_metric(config, multi_label: bool) -> str:
  if config.early_stopping_metric == "auto":
    return "micro_f1" if multi_label else "accuracy"
  return config.early_stopping_metric


def improved(value: float, best: float | None, name: str) -> bool:
  if best is None:
    return True
  return value < best if name in LOWER_IS_BETTER else value > best


def record_evaluation(meta: dict, config, metric_name: str, value: float, step: int,
                      save_best) -> bool:
  """Early-stopping and plateau bookkeeping after one dev evaluation (updates `meta`).

  `save_best()` is called when `value` is the best so far, with `meta` already
  updated. Returns True when early stopping says stop.
  """
  if improved(value, meta["best"], metric_name):
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


# --- the loop -----------------------------------------------------------------


def _check_finite(device_metrics, latest_step):
  bad = int(device_metrics["first_bad_step"])
  if bad != steps_lib.NO_BAD_STEP:
    raise TrainingDiverged(
        f"loss became NaN/Inf at step {bad + 1}; stopped. The last good checkpoint "
        f"(step {latest_step}) is kept in checkpoints/latest; lower the learning rate "
        "or enable --config.clip_norm, then --resume or start again")


def write_config(config, workdir: str):
  os.makedirs(workdir, exist_ok=True)
  write_json(os.path.join(workdir, "config.json"), json.loads(config_lib.to_json(config)))


def init_run_dir(config, workdir: str, prepared: Prepared):
  """Writes config, vocabulary, label map and data stats (JSON, atomically)."""
  write_config(config, workdir)
  prepared.vocab.to_json(os.path.join(workdir, "vocab.json"))
  write_json(os.path.join(workdir, "labels.json"),
             {"labels": prepared.label_names, "multi_label": prepared.multi_label})
  write_json(os.path.join(workdir, "data.json"), prepared.stats)


# Implementation choices a resumed run keeps from its saved config, whatever
# `auto` means now: the table update decides the optimiser state it restores,
# both decide the float rounding of every later step.
KEPT_ON_RESUME = ("embedding_update", "conv_backward")


def keep_saved_choices(config, workdir: str):
  """`config` with the KEPT_ON_RESUME choices of the run already in `workdir`, if
  any (OLD_RUN_DEFAULTS for runs made before a key existed)."""
  path = os.path.join(workdir, "config.json")
  if not os.path.exists(path):
    return config
  saved = config_lib.from_json(path)
  changed = {k: saved[k] for k in KEPT_ON_RESUME if config.get(k) != saved[k]}
  if not changed:
    return config
  config = config.copy_and_resolve_references()
  with config.unlocked():
    config.update(changed)
  return config


def train_and_evaluate(config, workdir: str, resume: bool = False, fold: int = -1,
                       raw=None) -> dict:
  """Trains one model (one fold, if CV) and writes a complete run directory."""
  started = time.time()
  if resume:
    config = keep_saved_choices(config, workdir)
  tested_checkpoint(config)  # bad values fail before anything is written
  sparse_embed.embedding_update(config)
  cnn.check_conv_backward(config.get("conv_backward", "dense"))
  if os.path.exists(os.path.join(workdir, "results.json")) and not resume:
    raise FileExistsError(f"{workdir}: already holds a finished run; choose another "
                          "--workdir (nothing was changed)")
  if os.path.exists(os.path.join(workdir, "config.json")) and not resume:
    raise FileExistsError(f"{workdir}: already holds a run; continue it with "
                          f"`textclf train --resume {workdir}` or choose another --workdir")
  parallel.barrier("textclf:workdir-checked")  # before process 0 writes into it
  prepared = prepare(config, fold, raw=raw)
  is_main = parallel.is_main_process()
  if is_main and not resume:
    init_run_dir(config, workdir, prepared)
  elif is_main:  # a resumed run may train longer (`--resume RUN --config.num_epochs=N`)
    write_config(config, workdir)
  mesh = make_mesh(config)
  batcher = make_batcher(config, mesh)
  eval_batcher = make_batcher(config, mesh, config.eval_batch_size or config.batch_size)
  train, dev, test = (prepared.splits[k] for k in ("train", "dev", "test"))
  steps_per_epoch = math.ceil(len(train) / config.batch_size)
  class_weights = losses.class_weights_from_config(
      config.class_weights, train.labels, len(prepared.label_names), prepared.multi_label)
  steps, state = make_steps(config, len(prepared.vocab), len(prepared.label_names),
                            prepared.multi_label, mesh, steps_per_epoch * config.num_epochs,
                            prepared.vectors, class_weights)
  metric_name = stopping_metric(config, prepared.multi_label)

  ckpt = Checkpoints(workdir)
  meta = {"epoch": 0, "position": 0, "best": None, "best_step": 0, "bad_evals": 0,
          "plateau_scale": 1.0, "plateau_bad": 0, "stopped_early": False, "train_seconds": 0.0,
          "train_examples": 0}
  if resume:
    restored = ckpt.restore_latest(parallel.abstract_like(state))
    if restored is not None:
      state, meta = restored
  logger = runlog.RunLogger(workdir, config, resume_step=int(state["step"]) if resume else None)
  if is_main:
    print(f"[textclf] {prepared.name}: {len(train)} train / {len(dev)} dev / {len(test)} test, "
          f"{len(prepared.label_names)} labels{' (multi-label)' if prepared.multi_label else ''}, "
          f"vocab {len(prepared.vocab)}"
          + (f", vectors found for {prepared.stats['vectors_found']} words"
             if config.vectors else "")
          + f"; {parallel.describe(mesh)}", flush=True)

  def evaluate(step):
    """Dev evaluation, early-stopping bookkeeping, best checkpoint. True: stop."""
    probs = predict_probs(steps, state, dev, eval_batcher)
    dev_metrics = score(probs, dev.labels, prepared, config)
    value = dev_metrics[metric_name]
    logger.log(step, epoch=meta["epoch"], dev=metrics_lib.summary(dev_metrics))
    stop = record_evaluation(meta, config, metric_name, value, step,
                             lambda: ckpt.save_best(step, state, meta))
    return dev_metrics, stop

  def apply_plateau(state):
    if config.schedule != "plateau":
      return state
    return steps.set_plateau_scale(
        state, parallel.host_array(np.float32(meta["plateau_scale"]), mesh))

  state = apply_plateau(state)
  device_metrics = steps_lib.init_metrics()
  log_time, log_examples = time.time(), 0
  stop = meta["stopped_early"]
  for epoch in range(meta["epoch"], config.num_epochs):
    if stop:
      break
    plan = batcher.train_plan(train, config.seed, epoch)
    start = meta["position"] if epoch == meta["epoch"] else 0
    batches = prefetch(device_batch(batcher, train, plan[i], mesh)
                       for i in range(start, len(plan)))
    bar = tqdm.tqdm(total=len(plan), initial=start, desc=f"epoch {epoch + 1}/{config.num_epochs}",
                    disable=not (config.progress_bar and is_main), leave=False, dynamic_ncols=True)
    epoch_time = time.time()
    for i, batch in zip(range(start, len(plan)), batches):
      state, device_metrics = steps.train_step(state, batch, device_metrics)
      step = steps_per_epoch * epoch + i + 1
      examples = len(plan[i])
      log_examples += examples
      meta["train_examples"] += examples
      bar.update(1)
      if step % config.log_every_steps == 0:
        host = jax.device_get(device_metrics)
        _check_finite(host, ckpt.latest.latest_step())
        now = time.time()
        train_log = {"loss": float(host["loss_sum"] / max(host["count"], 1)),
                     "accuracy": float(host["correct"] / max(host["count"], 1)),
                     "examples_per_second": log_examples / max(now - log_time, 1e-9)}
        logger.log(step, epoch=epoch, train=train_log)
        bar.set_postfix(loss=f"{train_log['loss']:.4f}",
                        ex_s=f"{train_log['examples_per_second']:.0f}")
        device_metrics = steps_lib.init_metrics()
        log_time, log_examples = now, 0
      meta.update(epoch=epoch, position=i + 1)
      if config.eval_every_steps and step % config.eval_every_steps == 0:
        _check_finite(jax.device_get(device_metrics), ckpt.latest.latest_step())
        _, stop = evaluate(step)
        state = apply_plateau(state)
        if stop:
          break
      if step % config.checkpoint_every_steps == 0 and i + 1 < len(plan):
        _check_finite(jax.device_get(device_metrics), ckpt.latest.latest_step())
        ckpt.save_latest(step, state, meta)
    bar.close()
    jax.block_until_ready(state)
    meta["train_seconds"] += time.time() - epoch_time
    _check_finite(jax.device_get(device_metrics), ckpt.latest.latest_step())
    step = int(state["step"])
    if not config.eval_every_steps and not stop:
      dev_metrics, stop = evaluate(step)
      state = apply_plateau(state)
      if is_main:
        print(f"[textclf] epoch {epoch + 1}: dev {metric_name} {dev_metrics[metric_name]:.4f} "
              f"(best {meta['best']:.4f} at step {meta['best_step']})", flush=True)
    meta.update(epoch=epoch + 1, position=0, stopped_early=bool(stop))
    ckpt.save_latest(step, state, meta)

  results = finish(config, workdir, prepared, steps, state, ckpt, eval_batcher, meta, started)
  logger.summary(results)
  logger.close()
  ckpt.close()
  return results


TEST_CHECKPOINTS = ("best", "last")


def tested_checkpoint(config) -> str:
  """config.test_checkpoint, checked: `best` (dev-selected) or `last` (final state)."""
  which = config.get("test_checkpoint", "best")
  if which not in TEST_CHECKPOINTS:
    raise config_lib.ConfigError(f"config.test_checkpoint={which!r}: expected one of "
                                 f"{', '.join(TEST_CHECKPOINTS)}")
  return which


def finish(config, workdir, prepared, steps, state, ckpt, batcher, meta, started) -> dict:
  """Scores dev and test with the best (or, test_checkpoint=last, the final) state;
  tunes multi-label thresholds on dev."""
  final_step = int(state["step"])
  if tested_checkpoint(config) == "best":
    best = ckpt.restore_best(parallel.abstract_like(state))
    if best is not None:
      state = best[0]
  dev, test = prepared.splits["dev"], prepared.splits["test"]
  dev_probs = predict_probs(steps, state, dev, batcher)
  thresholds = None
  if prepared.multi_label:
    thresholds = metrics_lib.tune_thresholds(dev_probs, dev.labels, config.multilabel_threshold,
                                             config.multilabel_at_least_one)
    if parallel.is_main_process():
      write_json(os.path.join(workdir, "thresholds.json"),
                 {"mode": config.multilabel_threshold, "thresholds": thresholds})
  test_probs = predict_probs(steps, state, test, batcher)
  results = {
      "dataset": prepared.name,
      "model": config.model,
      "fold": prepared.stats["fold"],
      "best_step": meta["best_step"],
      "tested_checkpoint": tested_checkpoint(config),
      "final_step": final_step,
      "stopped_early": meta["stopped_early"],
      "dev": score(dev_probs, dev.labels, prepared, config, thresholds),
      "test": score(test_probs, test.labels, prepared, config, thresholds),
      "train_seconds": meta["train_seconds"],
      "train_examples_per_second": meta["train_examples"] / max(meta["train_seconds"], 1e-9),
      "wall_seconds": time.time() - started,
      "num_devices": steps.mesh.size,
      "num_processes": jax.process_count(),
      "platform": jax.devices()[0].platform,
      "data": prepared.stats,
  }
  if prepared.multi_label:
    results["by_threshold_mode"] = metrics_lib.scores_by_threshold_mode(
        dev_probs, dev.labels, test_probs, test.labels, prepared.label_names,
        config.multilabel_at_least_one)
  if parallel.is_main_process():
    write_json(os.path.join(workdir, "results.json"), results)
  return results


# --- cross-validation ---------------------------------------------------------


def train_all_folds(config, workdir: str, resume: bool = False) -> dict:
  """k-fold CV: one sub-run per fold (`fold_K/`), then mean and std of test metrics."""
  raw = load_source(config)
  if not splits_lib.uses_cross_validation(raw):
    return train_and_evaluate(config, workdir, resume, raw=raw)
  folds = range(splits_lib.num_folds_of(raw, config.num_folds)) if config.fold < 0 \
      else [config.fold]
  if not resume and os.path.exists(os.path.join(workdir, "config.json")):
    raise FileExistsError(f"{workdir}: already holds a run; continue it with "
                          f"`textclf train --resume {workdir}` or choose another --workdir")
  parallel.barrier("textclf:cv-workdir-checked")  # before process 0 writes into it
  if parallel.is_main_process():
    write_config(config, workdir)
  per_fold = []
  for k in folds:
    sub = os.path.join(workdir, f"fold_{k}")
    if os.path.exists(os.path.join(sub, "results.json")):
      per_fold.append(read_json(os.path.join(sub, "results.json")))
      continue
    if parallel.is_main_process():
      print(f"[textclf] cross-validation fold {k}", flush=True)
    per_fold.append(train_and_evaluate(config, sub, resume and os.path.exists(sub), fold=k,
                                       raw=raw))
  keys = [k for k, v in per_fold[0]["test"].items() if isinstance(v, float)]
  summary = {
      "dataset": raw.name, "model": config.model, "folds": [r["fold"] for r in per_fold],
      "test_mean": {k: float(np.mean([r["test"][k] for r in per_fold])) for k in keys},
      "test_std": {k: float(np.std([r["test"][k] for r in per_fold])) for k in keys},
      "train_seconds": float(sum(r["train_seconds"] for r in per_fold)),
  }
  if parallel.is_main_process():
    write_json(os.path.join(workdir, "cv_results.json"), summary)
  return summary
