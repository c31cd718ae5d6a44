"""The group's training loop: every member's epochs as one vmapped program.

Each member starts from exactly the state `build.build` gives its config, is
evaluated on its own dev split every epoch, and is driven by its own
`progress.RunProgress`, as a run alone is. Resuming: GROUP/group.json names
the members; the stacked state and every member's position are checkpointed in
GROUP/checkpoints/latest at each epoch end. Calling `train_many` again with the
same members continues from there; members that have results.json are read.

One process. Training metrics are logged per member once per epoch (not every
`log_every_steps`); `train_seconds` splits each epoch's wall time evenly over
the members active in it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import shutil
import time

import jax
import jax.numpy as jnp
import numpy as np

from textclf_jax.training import build as build_lib
from textclf_jax.training import checks, encoder_cache
from textclf_jax.runtime import parallel
from textclf_jax.run import layout as rundir, lock as runlock, log as runlog
from textclf_jax.training import optim, steps as steps_lib
from textclf_jax.run.checkpoint import Checkpoints
from textclf_jax.data.batching import prefetch
from textclf_jax.data.pipeline import prepare
from textclf_jax.data.sources import load_source
from textclf_jax.training.group import compiled, members as members_lib, stack
from textclf_jax.training.progress import RunProgress
from textclf_jax.training.loop import train_and_evaluate


@dataclasses.dataclass
class Member:
  config: object
  workdir: str
  prepared: object
  built: build_lib.Built  # its solo steps (prediction, finish) and initial state
  abstract: object  # its solo state's shapes and shardings
  run: RunProgress = None
  train: object = None  # its train split, with a frozen encoder's cached states (if any)


def _read_group(group_dir: str) -> dict | None:
  file = rundir.path(group_dir, rundir.GROUP)
  return rundir.read_json(file) if os.path.exists(file) else None


def group_members(group_dir: str) -> list:
  """The absolute workdirs of the group in `group_dir` ([] when there is none yet)."""
  group = _read_group(group_dir)
  return [] if group is None else list(group["workdirs"])


def train_many(configs: list, workdirs: list, group_dir: str, folds: list | None = None,
               raw=None) -> list:
  """Trains every (config, workdir) as one vmapped program; returns their results.

  folds: the CV fold of each member (default: each config's `fold`). raw: the
  loaded dataset, shared by all members (default: loaded once here).
  """
  members_lib.check_group(configs, workdirs)
  configs = [checks.resolve(c) for c in configs]
  folds = [c.fold for c in configs] if folds is None else list(folds)
  results = [rundir.read_results(w) for w in workdirs]
  todo = [i for i, r in enumerate(results) if r is None]
  if not todo:
    return results
  group = _read_group(group_dir)
  if group is not None:  # resumed: members keep the table update their checkpoints hold
    configs = [rundir.keep_saved_choices(c, w) for c, w in zip(configs, workdirs)]
  names = [os.path.abspath(workdirs[i]) for i in todo]
  if group is not None and group["done"]:
    # Killed while writing results: every member's latest checkpoint is final.
    for i in todo:
      if names[todo.index(i)] not in group["workdirs"]:
        raise ValueError(f"{group_dir}: a finished group without {workdirs[i]}")
      results[i] = train_and_evaluate(configs[i], workdirs[i], resume=True, fold=folds[i],
                                      raw=raw, checked=True)
    return results
  if group is not None and group["workdirs"] != names:
    raise ValueError(f"{group_dir}/group.json: holds the group {group['workdirs']}, not "
                     f"{names}; give this group another group_dir")
  rundir.check_can_start(group_dir, resume=group is not None, kind="group")
  if group is None:
    for i in todo:
      rundir.check_can_start(workdirs[i], resume=False)
  with contextlib.ExitStack() as locks:
    for directory in [group_dir] + [workdirs[i] for i in todo]:
      locks.enter_context(runlock.RunLock(directory))
    group_file = rundir.path(group_dir, rundir.GROUP)
    rundir.write_json(group_file, {"workdirs": names, "done": False})
    trained = _train_group([configs[i] for i in todo], [workdirs[i] for i in todo],
                           group_dir, [folds[i] for i in todo], raw)
    rundir.write_json(group_file, {"workdirs": names, "done": True})
    # Every member now holds its own checkpoints; the stacked copy (K members' params and
    # optimiser state: 0.7 GB for 40 SST-2 CNNs) only served resuming the group.
    shutil.rmtree(rundir.path(group_dir, rundir.CHECKPOINTS), ignore_errors=True)
  for i, r in zip(todo, trained):
    results[i] = r
  return results


def _build_members(configs, workdirs, folds, raw, mesh) -> list:
  """Prepares each member's data, run directory and solo initial state."""
  raw = raw or load_source(configs[0])
  members, cache, trains = [], {}, {}
  for config, workdir, fold in zip(configs, workdirs, folds):
    # Data depend on the fold, and on the seed only through the vectors' unknown-word init.
    key = (fold, config.seed if config.vectors else None)
    prepared = cache[key] = cache.get(key) or prepare(config, fold, raw=raw)
    config = checks.resolve_max_len(config, prepared.max_len)
    rundir.init(config, workdir, prepared)
    built = build_lib.build(config, prepared, mesh)
    if key not in trains:  # members of one split share its cache (the same frozen encoder)
      trains[key] = encoder_cache.attach(config, built.steps, built.state,
                                         prepared.splits["train"],
                                         build_lib.eval_batcher(config, mesh))
    members.append(Member(config, workdir, prepared, built,
                          parallel.abstract_like(built.state), train=trains[key]))
  members_lib.check_members(members)
  return members


def _quiet(config):
  """The config with W&B off: members log to metrics.jsonl while training together."""
  config = config.copy_and_resolve_references()
  with config.unlocked():
    config.wandb = "disabled"
  return config


def _describe(members, sharding) -> str:
  names = [os.path.basename(m.workdir) for m in members]
  if len(set(names)) < len(names):  # e.g. seed_0 of two variants: VARIANT/seed_0
    names = [os.path.join(*os.path.normpath(m.workdir).split(os.sep)[-2:]) for m in members]
  return (f"[textclf] {len(members)} members as one program ({members[0].prepared.name}, "
          f"{members[0].config.model}): {', '.join(names)}; members on {sharding}")


def _set_plateau_scales(stacked, members):
  if members[0].config.schedule != "plateau":
    return stacked
  optim.place_plateau_scales(stacked["opt_state"],
                             [m.run.meta["plateau_scale"] for m in members])
  return stacked


def _train_group(configs, workdirs, group_dir, folds, raw) -> list:
  started = time.time()
  # --- members, stacked state, resume ----------------------------------------------------
  mesh = build_lib.make_mesh(configs[0])
  members = _build_members(configs, workdirs, folds, raw, mesh)
  config = members[0].config  # max_len resolved (check_members: the same for every member)
  batcher = build_lib.make_batcher(config, mesh)
  eval_batcher = build_lib.eval_batcher(config, mesh)
  k = len(members)
  sharding = stack.member_sharding(k)
  stacked = stack.stack_states([m.built.state for m in members], sharding)
  for m in members:
    m.built.state = None  # the stacked state is the only copy
  group_ckpt = Checkpoints(group_dir, keep_latest=1)
  restored = group_ckpt.restore_latest(parallel.abstract_like(stacked))
  epoch0, metas, resume_steps = 0, [None] * k, [0] * k
  if restored is not None:
    stacked, group_meta = restored
    epoch0, metas, resume_steps = group_meta["epoch"], group_meta["members"], group_meta["steps"]
  context = f" (trained with {k} members in {group_dir})"
  for m, meta, resume_step in zip(members, metas, resume_steps):
    # Lines logged after the group checkpoint are dropped (they are redone).
    logger = runlog.RunLogger(m.workdir, _quiet(m.config), resume_step=resume_step)
    m.run = RunProgress(m.config, m.workdir, m.prepared, Checkpoints(m.workdir), logger, meta,
                        m.built.steps.all_finite, latest_note=lambda: (
                            f"The last good state (epoch {group_ckpt.latest.latest_step() or 0})"
                            f" is kept in {group_dir}/checkpoints/latest"))
  print(_describe(members, sharding), flush=True)
  steps, values = members_lib.member_values(members)
  train_step, predict_step = compiled.compile_steps(steps)
  values = jax.device_put(values, sharding)
  trains = [m.train for m in members]
  devs = [m.prepared.splits["dev"] for m in members]
  labels = trains[0].labels
  stacked = _set_plateau_scales(stacked, members)

  # --- the epochs -------------------------------------------------------------------------
  for epoch in range(epoch0, config.num_epochs):
    running = [not m.run.stopped for m in members]
    if not any(running):
      break
    plans = [batcher.train_plan(t, m.config.seed, epoch) if r else []
             for t, m, r in zip(trains, members, running)]
    num_steps = max(len(p) for p in plans)

    def batches():
      for i in range(num_steps):
        parts = [batcher.make_batch(t, p[i]) if i < len(p) else None
                 for t, p in zip(trains, plans)]
        active = np.asarray([b is not None for b in parts])
        yield (jax.device_put(stack.stack_batches(parts, labels.shape[1:], labels.dtype),
                              sharding),
               jax.device_put(active, sharding), bool(active.all()))

    epoch_time = time.time()
    device_metrics = jax.device_put(
        jax.tree.map(lambda x: jnp.stack([x] * k), steps_lib.init_metrics()), sharding)
    with contextlib.closing(prefetch(batches())) as stream:
      for batch, active, all_active in stream:
        stacked, device_metrics = train_step(stacked, batch, device_metrics, active, values,
                                             all_active)
    jax.block_until_ready(stacked)
    seconds = time.time() - epoch_time
    host = jax.device_get(device_metrics)
    steps_now = np.asarray(jax.device_get(stacked["step"]))
    dev_probs = compiled.predict_all(predict_step, stacked, devs, eval_batcher, sharding)
    examples_per_second = sum(len(trains[i]) for i in range(k) if running[i]) / seconds
    for j, m in enumerate(members):
      if not running[j]:
        continue
      step = int(steps_now[j])
      m.run.add_training(seconds / sum(running), len(trains[j]))
      m.run.log_train(step, epoch, jax.tree.map(lambda x, j=j: x[j], host),
                      examples_per_second, context)
      _, stop = m.run.evaluate(step, epoch, dev_probs[j],
                               lambda j=j, m=m: stack.member_state(stacked, j, m.abstract))
      m.run.end_epoch(epoch, stop)
    stacked = _set_plateau_scales(stacked, members)
    print(f"[textclf] epoch {epoch + 1}: dev {members[0].run.metric_name} "
          + " ".join(f"{m.run.meta['best']:.4f}{'*' if m.run.stopped else ''}"
                     for m in members) + f" (best per member; *: stopped) in {seconds:.1f}s",
          flush=True)
    group_ckpt.save_latest(epoch + 1, stacked, {
        "epoch": epoch + 1, "members": [m.run.meta for m in members],
        "steps": [int(s) for s in steps_now]})

  # --- every member ends as a run -----------------------------------------------------------
  states = [stack.member_state(stacked, j, m.abstract) for j, m in enumerate(members)]
  for m, state in zip(members, states):
    m.run.save_latest(int(state["step"]), state)
  results, shared = [], {}  # members with the same shapes share compiled prediction steps
  for m, state in zip(members, states):
    key = str(jax.tree.map(lambda x: x.shape, (m.abstract["params"], m.abstract["frozen"])))
    member_steps = shared.setdefault(key, m.built.steps)
    r = m.run.finish(member_steps, state, eval_batcher, started)
    runlog.mirror_to_wandb(m.workdir, m.config, r)
    results.append(r)
  group_ckpt.close()
  return results
