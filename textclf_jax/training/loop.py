"""The training loop: `train_and_evaluate(config, workdir)` (the neural family's train;
cross-validation over folds is families/cv.py).

text -> ids (once) -> bucketed batches (a function of seed and epoch) -> jitted
sharded step -> dev evaluation -> early stopping -> best checkpoint -> test.

Resuming, in order: (1) keep the saved run's implementation choices
(`rundir.keep_saved_choices`), (2) rebuild data, model and initial state from
the config, (3) restore the latest checkpoint: state, epoch, batch position and
early-stopping state, (4) drop log lines written after it, (5) replay the same
batch order from that position. A resumed run ends with bitwise the same
parameters as an uninterrupted one.
"""

from __future__ import annotations

import contextlib
import sys
import time

import jax
import numpy as np
import tqdm

from textclf_jax.text.encoder import encoder_for
from textclf_jax.training import build as build_lib
from textclf_jax.training import checks
from textclf_jax.training import distill as distill_lib
from textclf_jax.training import losses
from textclf_jax.training import evaluate as evaluate_lib
from textclf_jax.runtime import parallel
from textclf_jax.run import layout as rundir, lock as runlock, log as runlog
from textclf_jax.training import steps as steps_lib
from textclf_jax.training import encoder_cache
from textclf_jax.run.checkpoint import Checkpoints
from textclf_jax.data.batching import prefetch
from textclf_jax.data.pipeline import prepare
from textclf_jax.data.sources import load_source
from textclf_jax.data.splits import check_label_map
from textclf_jax.training.progress import RunProgress


def _announce(prepared, config, mesh):
  train, dev, test = (prepared.splits[k] for k in ("train", "dev", "test"))
  print(f"[textclf] {prepared.name}: {len(train)} train / {len(dev)} dev / {len(test)} test, "
        f"{len(prepared.label_names)} labels{' (multi-label)' if prepared.multi_label else ''}, "
        f"vocab {prepared.encoder.vocab_size}"
        + (f", vectors found for {prepared.stats['vectors_found']} words"
           if config.vectors else "")
        + f"; {parallel.describe(mesh)}", flush=True)


def _already_finished(config, workdir: str) -> dict | None:
  """A finished run's results when `--resume` has nothing left to train, else None."""
  results = rundir.read_results(workdir)
  if results is None:
    return None
  epochs = results.get("epochs_trained")
  has_latest = Checkpoints.has_latest(workdir)
  if results["stopped_early"] or (epochs is not None and epochs >= config.num_epochs) \
      or (epochs is None and not has_latest):
    if parallel.is_main_process():
      longer = ("raise --config.num_epochs to train it longer" if has_latest else
                "it kept only its tested checkpoint; to train longer, train it again with "
                "--config.keep_checkpoints=both")
      print(f"[textclf] {workdir}: finished at step {results['final_step']}; nothing left to "
            f"train, results.json is unchanged ({longer})", flush=True)
    return results
  if not has_latest:
    raise rundir.RunDirError(
        f"{workdir}: finished, and kept only the checkpoint it was tested with "
        "(keep_checkpoints=tested), so it cannot be trained longer exactly; train it again "
        "with --config.keep_checkpoints=both")
  return None


def train_and_evaluate(config, workdir: str, resume: bool = False, fold: int = -1,
                       raw=None, on_dev=None, checked: bool = False, teacher=None) -> dict:
  """Trains one model (one fold, if CV) and writes a complete run directory.

  on_dev(epoch, step, dev metrics): called after every dev evaluation (a search's
  pruner); raising progress.Pruned stops the run there, which then finishes normally.
  checked: the caller validated `config` (a command does, once: families.validate).
  teacher: config.teacher's runs, loaded by the family layer (training/distill.py).
  """
  started = time.time()
  if resume:
    config = rundir.keep_saved_choices(config, workdir)
  if not checked:
    checks.validate(config)  # bad values fail before anything is written
  config = checks.resolve(config)
  targets = None
  if not resume:  # the data's labels checked before the run directory exists
    raw = raw if raw is not None else load_source(config)
    if losses.distill_settings(config) is None:
      check_label_map(raw, config, fold)
    else:  # and the teachers' labels, and their probabilities computed
      targets = distill_lib.compute(config, raw, fold, teacher)
    encoder_for(config)  # and its files (a subword tokenizer's) read
  rundir.check_can_start(workdir, resume)
  parallel.barrier("textclf:workdir-checked")  # before process 0 writes into it
  with runlock.writing(workdir):
    finished = _already_finished(config, workdir) if resume else None
    if finished is not None:
      return finished
    return _train(config, workdir, resume, fold, raw, started, on_dev, targets, teacher)


def _soft_targets(config, workdir, prepared, fold, targets, teacher):
  """A distilled run's soft targets: those computed before it started, else (resumed)
  those it saved, else (killed before saving them) computed again; None without a teacher."""
  if losses.distill_settings(config) is None:
    return None
  if targets is None:
    targets = distill_lib.saved(config, workdir, len(prepared.splits["train"]),
                                len(prepared.label_names))
  if targets is None:
    targets = distill_lib.compute(config, load_source(config), fold, teacher)
  if targets.record is not None:
    prepared.stats["distillation"] = targets.record  # data.json
  return targets


def _train(config, workdir, resume, fold, raw, started, on_dev=None, targets=None,
           teacher=None) -> dict:
  # --- the run directory --------------------------------------------------------------
  prepared = prepare(config, fold, raw=raw)
  is_main = parallel.is_main_process()
  if is_main and config.max_len == 0:
    print(f"[textclf] max_len 0 resolved to {prepared.max_len} tokens (the training texts' "
          f"length at percentile {config.max_len_percentile:g})", flush=True)
  config = checks.resolve_max_len(config, prepared.max_len)  # max_len 0: from the data
  if is_main:
    for note in checks.resource_notes(config, prepared.encoder.vocab_size):
      print(note, file=sys.stderr, flush=True)
  targets = _soft_targets(config, workdir, prepared, fold, targets, teacher)
  if is_main and not (resume and rundir.is_initialised(workdir)):
    rundir.init(config, workdir, prepared)
  elif is_main:  # a resumed run may train longer (`--resume RUN --config.num_epochs=N`)
    rundir.write_config(config, workdir)
  if is_main and targets is not None and targets.record is not None:
    distill_lib.save(workdir, targets)

  # --- model, optimiser, state ----------------------------------------------------------
  mesh = build_lib.make_mesh(config)
  batcher = build_lib.make_batcher(config, mesh)
  eval_batcher = build_lib.eval_batcher(config, mesh)
  train, dev = prepared.splits["train"], prepared.splits["dev"]
  if targets is not None:  # the soft targets travel with each example, unlabelled texts too
    train = distill_lib.training_set(train, targets, prepared.encoder, prepared.max_len)
  built = build_lib.build(config, prepared, mesh, len(train))
  steps, state, steps_per_epoch = built.steps, built.state, built.steps_per_epoch

  # --- resume ---------------------------------------------------------------------------
  ckpt = Checkpoints(workdir)
  meta = None
  if resume:
    restored = ckpt.restore_latest(parallel.abstract_like(state))
    if restored is not None:
      state, meta = restored
    if is_main:
      print(f"[textclf] {workdir}: " + (
          "no checkpoint yet; starting from step 0" if restored is None else
          f"resuming from step {int(state['step'])} (epoch {meta['epoch'] + 1}, batch "
          f"{meta['position']})"), flush=True)
  logger = runlog.RunLogger(workdir, config, resume_step=int(state["step"]) if resume else None)
  run = RunProgress(config, workdir, prepared, ckpt, logger, meta, steps.all_finite, on_dev)
  # A frozen encoder's states of the training texts, computed from the initial state's
  # frozen params (a resumed run computes the same bits again).
  train = encoder_cache.attach(config, steps, built.state, train, eval_batcher)
  if is_main:
    _announce(prepared, config, mesh)

  last_dev = None  # (step, dev probabilities) of the last evaluation: finish reuses them

  def evaluate(step, epoch):
    """Dev evaluation, early stopping, best checkpoint, plateau. True: stop."""
    nonlocal state, last_dev
    probs = evaluate_lib.predict_probs(steps, state, dev, eval_batcher)
    last_dev = (step, probs)
    dev_metrics, stop = run.evaluate(step, epoch, probs, lambda: state)
    state = apply_plateau(state)
    return dev_metrics, stop

  def apply_plateau(state):
    if config.schedule != "plateau":
      return state
    return steps.set_plateau_scale(
        state, parallel.host_array(np.float32(run.meta["plateau_scale"]), mesh))

  # --- the loop -------------------------------------------------------------------------
  state = apply_plateau(state)
  device_metrics = steps_lib.init_metrics(mesh)
  log_time, log_examples = time.time(), 0
  stop = run.stopped
  first_epoch = run.meta["epoch"]
  for epoch in range(first_epoch, config.num_epochs):
    if stop:
      break
    plan = batcher.train_plan(train, config.seed, epoch)
    start = run.meta["position"] if epoch == first_epoch else 0
    batches = prefetch(build_lib.device_batch(batcher, train, plan[i], mesh)
                       for i in range(start, len(plan)))
    bar = tqdm.tqdm(total=len(plan), initial=start, desc=f"epoch {epoch + 1}/{config.num_epochs}",
                    disable=not (config.progress_bar and is_main), leave=False, dynamic_ncols=True)
    epoch_time, epoch_examples = time.time(), 0
    with contextlib.closing(batches):  # stops its thread if the epoch ends early
      for i, batch in zip(range(start, len(plan)), batches):
        state, device_metrics = steps.train_step(state, batch, device_metrics)
        step = steps_per_epoch * epoch + i + 1
        examples = len(plan[i])
        log_examples += examples
        epoch_examples += examples
        bar.update(1)
        if step % config.log_every_steps == 0:
          now = time.time()
          entry = run.log_train(step, epoch, jax.device_get(device_metrics),
                                log_examples / max(now - log_time, 1e-9))
          bar.set_postfix(loss=f"{entry['loss']:.4f}",
                          ex_s=f"{entry['examples_per_second']:.0f}")
          device_metrics = steps_lib.init_metrics(mesh)
          log_time, log_examples = now, 0
        run.meta.update(epoch=epoch, position=i + 1)
        if config.eval_every_steps and step % config.eval_every_steps == 0:
          run.check_finite(jax.device_get(device_metrics))
          _, stop = evaluate(step, epoch)
          if stop:
            break
        if step % config.checkpoint_every_steps == 0 and i + 1 < len(plan):
          run.check_finite(jax.device_get(device_metrics))
          run.save_latest(step, state)
    bar.close()
    jax.block_until_ready(state)
    run.add_training(time.time() - epoch_time, epoch_examples)
    run.check_finite(jax.device_get(device_metrics))
    step = int(state["step"])
    if not config.eval_every_steps and not stop:
      dev_metrics, stop = evaluate(step, epoch)
      if is_main:
        print(f"[textclf] epoch {epoch + 1}: dev {run.metric_name} "
              f"{dev_metrics[run.metric_name]:.4f} (best {run.meta['best']:.4f} at step "
              f"{run.meta['best_step']})", flush=True)
    run.end_epoch(epoch, stop)
    if run.meta["best"] is not None and _latest_dropped_at_finish(config) \
        and (stop or epoch + 1 == config.num_epochs):
      run.check_parameters(step, state)  # what the save would have checked
    else:
      run.save_latest(step, state)

  return run.finish(steps, state, eval_batcher, started, last_dev)


def _latest_dropped_at_finish(config) -> bool:
  """Whether `finish` deletes the latest checkpoints (keep_checkpoints=tested, tested with
  the best one). Then the last epoch's end saves none: it would be deleted a few seconds
  later (on IMDB's fasttext_nb, 0.3-0.4 s of an 18 s run). A kill between the last best
  checkpoint and results.json then makes `--resume` train the last epoch again (from the
  previous latest checkpoint, or from the start); it ends bit-identical all the same."""
  return config.keep_checkpoints == "tested" and config.test_checkpoint == "best"
