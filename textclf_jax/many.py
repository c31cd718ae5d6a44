"""Many models in one program: `train_many(configs, workdirs)`.

Runs whose configs differ only in `seed`, `fold`, `learning_rate`, `dropout` or
`class_weights` (seeds, CV folds, a grid of learning rates, dropout rates or loss
weights) train together as one jitted step, `jax.jit(jax.vmap(step))` over a
leading member axis of size K; each member's own rate, keep probability and class
weights enter the step as traced values (`steps.Steps._train_step`'s `member`):

  state   every leaf [K, ...]; embedding tables padded with zero rows to the
          largest member's row count (folds have different vocabularies;
          rows past a member's vocabulary are never looked up)
  batch   tokens [K, B, L], lengths/weights [K, B], labels [K, B(, C)]: each
          member's own batch from its own `train_plan(train, seed, epoch)`,
          padded to the longest member's length L (padding is masked)
  active  [K] bool: a member that has run out of batches this epoch (a
          smaller fold) or has stopped early keeps its state unchanged
          (`jnp.where`), step counter and RNG included, so dropout keys stay
          those of its solo run.

Each member starts from exactly the state `train.make_steps` gives its config,
is evaluated on its own dev split every epoch, stops early by the same rule as
`train.py` and ends as a normal run directory (config, vocab, labels, data,
metrics.jsonl, results.json, checkpoints/best and latest), so `textclf eval`,
`predict` and `train --resume` work on it unchanged.

Exactness: the optimiser update runs once per member (`member_axis.per_member`),
so it rounds as in a solo run. A CNN member with the sparse conv backward pass
(`conv_backward=sparse`, or `auto` on batches over 64 tokens) is then bit-identical
to its solo run at any padded length: same metrics, same checkpoints (with
`clip_norm` only up to rounding where XLA orders the global norm's sum of
squares differently inside the group: exact for 4 SST-2 members over 30 steps,
not in the tiny model of tests/test_many.py). Autodiff's dense backward pass
sums over the padded positions, so with it members equal solo runs up to float
rounding. The LSTM and hybrid apply dropout to [B, L, D]
inputs, whose mask depends on the padded length, so their members are
equivalent to solo runs in distribution only.

Resuming: `GROUP/group.json` names the members; the stacked state and every
member's loop position are checkpointed in `GROUP/checkpoints/latest` at each
epoch end. Calling `train_many` again with the same members continues from
there; members that have results.json are read, not trained.

Devices: one process. With several local devices the member axis is split
over them when they divide K; otherwise the group runs on the first device.
Training metrics are logged per member once per epoch (not every
`log_every_steps`); `train_seconds` splits each epoch's wall time evenly over
the members active in it.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import AxisType, NamedSharding, PartitionSpec as P

from textclf_jax import config as config_lib
from textclf_jax import losses, metrics as metrics_lib, optim, parallel, runlog
from textclf_jax import sparse_embed, train
from textclf_jax import steps as steps_lib
from textclf_jax.checkpoint import Checkpoints
from textclf_jax.data.batching import prefetch
from textclf_jax.data.pipeline import prepare
from textclf_jax.data.sources import load_source
from textclf_jax.data.vocab import PAD_ID

VMAPPABLE = ("seed", "fold", "learning_rate", "dropout", "class_weights")
# Schedules whose shape depends on the run's total number of steps.
LENGTH_DEPENDENT_SCHEDULES = ("warmup_cosine", "linear")
# Keys that only name where results are logged; they may differ too.
IGNORED = ("wandb_group",)


# --- checks ---------------------------------------------------------------------------


def _flat(config) -> dict:
  """{dotted key: JSON value} of a config."""
  out = {}

  def walk(prefix, value):
    if isinstance(value, dict):
      for k, v in value.items():
        walk(f"{prefix}{k}.", v)
    else:
      out[prefix[:-1]] = value

  walk("", json.loads(config_lib.to_json(config)))
  return out


def check_group(configs: list, workdirs: list):
  """Raises ValueError unless the configs differ only in `VMAPPABLE` keys."""
  if not configs or len(configs) != len(workdirs):
    raise ValueError(f"train_many: {len(configs)} configs for {len(workdirs)} workdirs")
  paths = [os.path.abspath(w) for w in workdirs]
  if len(set(paths)) != len(paths):
    raise ValueError(f"train_many: a workdir appears twice in {workdirs}")
  first = _flat(configs[0])
  for config, workdir in zip(configs[1:], workdirs[1:]):
    flat = _flat(config)
    for key in sorted(set(first) | set(flat)):
      if key not in VMAPPABLE + IGNORED and first.get(key) != flat.get(key):
        raise ValueError(
            f"config.{key} differs between {workdirs[0]} ({first.get(key)!r}) and {workdir} "
            f"({flat.get(key)!r}): members of one train_many group may differ only in "
            f"{', '.join(VMAPPABLE)}")
  dropouts = [c.get("dropout", 0.0) for c in configs]
  if len(set(dropouts)) > 1:
    for rate, workdir in zip(dropouts, workdirs):
      if not 0.0 <= rate < 1.0:
        raise ValueError(f"config.dropout={rate} for {workdir}: members with different "
                         "dropout rates need rates in [0, 1)")
  config = configs[0]
  if config.eval_every_steps:
    raise ValueError(f"config.eval_every_steps={config.eval_every_steps}: train_many "
                     "evaluates once per epoch; set it to 0")
  if config.mesh_model != 1:
    raise ValueError(f"config.mesh_model={config.mesh_model}: train_many splits members, "
                     "not embedding tables, over devices; set it to 1")
  if jax.process_count() > 1:
    raise ValueError(f"train_many runs in one process ({jax.process_count()} were "
                     "started); train the members one by one with train_and_evaluate")


# --- stacking -------------------------------------------------------------------------


def _pad_to(x, shape):
  if x.shape == tuple(shape):
    return x
  if x.shape[1:] != tuple(shape[1:]):
    raise ValueError(f"members' state leaves {x.shape} and {tuple(shape)} differ beyond "
                     "the embedding rows")
  return jnp.pad(x, [(0, shape[0] - x.shape[0])] + [(0, 0)] * (x.ndim - 1))


def stack_states(states: list, sharding):
  """Member states -> one state, every leaf [K, ...] (tables padded to the most rows)."""
  def stack(*xs):
    shape = np.max([x.shape for x in xs], axis=0) if xs[0].ndim else ()
    return jax.device_put(jnp.stack([_pad_to(x, shape) for x in xs]), sharding)
  return jax.tree.map(stack, *states)


def member_state(stacked, k: int, abstract):
  """Member k's state, cut to its own shapes and placed as `abstract` says."""
  def take(x, ref):
    return jax.device_put(x[k][tuple(slice(0, n) for n in ref.shape)], ref.sharding)
  return jax.tree.map(take, stacked, abstract)


def stack_batches(batches: list, labels_shape: tuple, labels_dtype) -> dict:
  """Member batches (dicts of [B, L_k] arrays, or None: no batch) -> [K, B, max L_k]."""
  rows = next(b["weights"].shape[0] for b in batches if b is not None)
  length = max(b["tokens"].shape[1] for b in batches if b is not None)
  k = len(batches)
  out = {"tokens": np.full((k, rows, length), PAD_ID, np.int32),
         "lengths": np.ones((k, rows), np.int32),
         "labels": np.zeros((k, rows) + labels_shape, labels_dtype),
         "weights": np.zeros((k, rows), np.float32)}
  for i, batch in enumerate(batches):
    if batch is None:
      continue
    out["tokens"][i, :, : batch["tokens"].shape[1]] = batch["tokens"]
    for key in ("lengths", "labels", "weights"):
      out[key][i] = batch[key]
  return out


# --- the group ------------------------------------------------------------------------


@dataclasses.dataclass
class Member:
  config: object
  workdir: str
  prepared: object
  steps: steps_lib.Steps  # its solo steps (prediction, finish)
  abstract: object  # its solo state's shapes and shardings
  meta: dict
  class_weights: object = None  # [C] or None
  total_steps: int = 0
  logger: object = None


def _initial_meta() -> dict:
  return {"epoch": 0, "position": 0, "best": None, "best_step": 0, "bad_evals": 0,
          "plateau_scale": 1.0, "plateau_bad": 0, "stopped_early": False, "train_seconds": 0.0,
          "train_examples": 0}


def _member_sharding(num_members: int):
  """Members split over the local devices when they divide K, else device 0."""
  devices = jax.local_devices()
  if len(devices) > 1 and num_members % len(devices) == 0:
    mesh = jax.make_mesh((len(devices),), ("members",), axis_types=(AxisType.Auto,),
                         devices=devices)
    return NamedSharding(mesh, P("members"))
  return jax.sharding.SingleDeviceSharding(devices[0])


def _read_group(group_dir: str) -> dict | None:
  path = os.path.join(group_dir, "group.json")
  return train.read_json(path) if os.path.exists(path) else None


def group_members(group_dir: str) -> list:
  """The absolute workdirs of the group in `group_dir` ([] when there is none yet)."""
  group = _read_group(group_dir)
  return [] if group is None else list(group["workdirs"])


def _quiet(config):
  """The config with W&B off: members log to metrics.jsonl while training together."""
  config = config.copy_and_resolve_references()
  with config.unlocked():
    config.wandb = "disabled"
  return config


def _mirror_to_wandb(member: Member, results: dict):
  """Replays a member's metrics.jsonl into its own W&B run (one run at a time)."""
  if runlog.wandb_mode(member.config.wandb) == "disabled":
    return
  logger = runlog.RunLogger(member.workdir, member.config, resume_step=sys.maxsize)
  if logger.wandb is not None:
    with open(logger.path, encoding="utf-8") as f:
      for line in f:
        values = json.loads(line)
        step = values.pop("step")
        logger.wandb.log(runlog._flatten(values), step=step)  # pylint: disable=protected-access
  logger.summary(results)
  logger.close()


def train_many(configs: list, workdirs: list, group_dir: str, folds: list | None = None,
               raw=None) -> list:
  """Trains every (config, workdir) as one vmapped program; returns their results.

  folds: the CV fold of each member (default: each config's `fold`). raw: the
  loaded dataset, shared by all members (default: loaded once here).
  """
  check_group(configs, workdirs)
  folds = [c.fold for c in configs] if folds is None else list(folds)
  results = [None] * len(configs)
  for i, workdir in enumerate(workdirs):
    if os.path.exists(os.path.join(workdir, "results.json")):
      results[i] = train.read_json(os.path.join(workdir, "results.json"))
  todo = [i for i, r in enumerate(results) if r is None]
  if not todo:
    return results
  group = _read_group(group_dir)
  if group is not None:  # resumed: members keep the table update their checkpoints hold
    configs = [train.keep_saved_choices(c, w) for c, w in zip(configs, workdirs)]
  names = [os.path.abspath(workdirs[i]) for i in todo]
  if group is not None and group["done"]:
    # Killed while writing results: every member's latest checkpoint is final.
    for i in todo:
      if names[todo.index(i)] not in group["workdirs"]:
        raise ValueError(f"{group_dir}: a finished group without {workdirs[i]}")
      results[i] = train.train_and_evaluate(configs[i], workdirs[i], resume=True,
                                            fold=folds[i], raw=raw)
    return results
  if group is not None and group["workdirs"] != names:
    raise ValueError(f"{group_dir}/group.json: holds the group {group['workdirs']}, not "
                     f"{names}; give this group another group_dir")
  for i in todo:
    if group is None and os.path.exists(os.path.join(workdirs[i], "config.json")):
      raise FileExistsError(f"{workdirs[i]}: already holds a run that is not part of the group "
                            f"{group_dir}; continue it with `textclf train --resume "
                            f"{workdirs[i]}` or choose another workdir")
  os.makedirs(group_dir, exist_ok=True)
  train.write_json(os.path.join(group_dir, "group.json"), {"workdirs": names, "done": False})
  trained = _train_group([configs[i] for i in todo], [workdirs[i] for i in todo],
                         group_dir, [folds[i] for i in todo], raw)
  train.write_json(os.path.join(group_dir, "group.json"), {"workdirs": names, "done": True})
  for i, r in zip(todo, trained):
    results[i] = r
  return results


def _build_members(configs, workdirs, folds, raw):
  """Prepares each member's data, run directory and solo initial state."""
  raw = raw or load_source(configs[0])
  config = configs[0]
  mesh = train.make_mesh(config)
  batcher = train.make_batcher(config, mesh)
  members, states, cache = [], [], {}
  for config, workdir, fold in zip(configs, workdirs, folds):
    # Data depend on the fold, and on the seed only through the vectors' unknown-word init.
    key = (fold, config.seed if config.vectors else None)
    prepared = cache[key] = cache.get(key) or prepare(config, fold, raw=raw)
    train.init_run_dir(config, workdir, prepared)
    train_split = prepared.splits["train"]
    steps_per_epoch = math.ceil(len(train_split) / config.batch_size)
    weights = losses.class_weights_from_config(
        config.class_weights, train_split.labels, len(prepared.label_names),
        prepared.multi_label)
    steps, state = train.make_steps(config, len(prepared.vocab), len(prepared.label_names),
                                    prepared.multi_label, mesh,
                                    steps_per_epoch * config.num_epochs, prepared.vectors,
                                    weights)
    members.append(Member(config, workdir, prepared, steps, parallel.abstract_like(state),
                          _initial_meta(), weights, steps_per_epoch * config.num_epochs))
    states.append(state)
  _check_members(members)
  return members, states, batcher, mesh


def _check_members(members):
  """Data-dependent parts of the step must agree (they are closed over, not vmapped)."""
  first = members[0]
  for m in members[1:]:
    for what, a, b in (("labels", first.prepared.label_names, m.prepared.label_names),
                       ("multi_label", first.prepared.multi_label, m.prepared.multi_label)):
      if a != b:
        raise ValueError(f"{m.workdir}: its {what} ({b}) differ from {first.workdir}'s ({a})")
    if (first.config.schedule in LENGTH_DEPENDENT_SCHEDULES
        and first.total_steps != m.total_steps):
      raise ValueError(f"config.schedule={first.config.schedule!r} depends on the number of "
                       f"steps, which differs between {first.workdir} and {m.workdir}")


def _group_steps(members):
  """A Steps for the member step, and the members' own values [K, ...] of the keys
  that differ between them (steps.Steps._train_step's `member`; {} if none do)."""
  first, steps, values = members[0], members[0].steps, {}
  rates = [float(m.config.learning_rate) for m in members]
  if len(set(rates)) > 1:
    unit = first.config.copy_and_resolve_references()
    with unit.unlocked():
      unit.learning_rate = 1.0
    steps = dataclasses.replace(
        steps, tx=optim.make_optimizer(unit, first.total_steps),
        table_update=sparse_embed.make_table_update(unit, first.total_steps))
    values["lr_scale"] = np.asarray(rates, np.float32)
  dropouts = [float(m.config.get("dropout", 0.0)) for m in members]
  if len(set(dropouts)) > 1:  # (check_group: every rate in [0, 1))
    # float32(1 - rate), the keep probability nnx.Dropout uses in a solo run.
    values["dropout_keep"] = np.asarray([np.float32(1.0 - d) for d in dropouts])
  weights = [m.class_weights for m in members]
  if any(w is not None for w in weights) and not all(
      w is not None and np.array_equal(w, weights[0]) for w in weights):
    size = next(len(w) for w in weights if w is not None)
    # No weights and weights of 1 give the same loss and gradients, to the bit.
    values["class_weights"] = np.stack([np.ones(size, np.float32) if w is None else
                                        np.asarray(w, np.float32) for w in weights])
  return steps, values


def _sparse_leaf(path) -> bool:
  """A leaf of the row-sparse table update: embed_opt, or the trainable table."""
  names = [str(getattr(k, "key", getattr(k, "name", ""))) for k in path]
  return names[:1] == ["embed_opt"] or names[:3] == ["params", *sparse_embed.TABLE]


def _compile(steps):
  """The jitted, vmapped train and predict steps over the member axis.

  train_step(state, batch, metrics, active [K], values, all_active): values is
  `_group_steps`' dict of the members' own values, each [K, ...].
  """
  sparse = steps.table_update is not None

  def member_step(state, batch, metrics, active, values):
    new_state, new_metrics = steps._train_step(  # pylint: disable=protected-access
        state, batch, metrics, values, active if sparse else None)
    keep = lambda new, old: jnp.where(active, new, old)

    def keep_state(path, new, old):
      # The sparse update already left an inactive member's table and embed_opt as
      # they were: selecting over those [V, D] leaves would cost a dense update.
      return new if sparse and _sparse_leaf(path) else keep(new, old)

    return (jax.tree_util.tree_map_with_path(keep_state, new_state, state),
            jax.tree.map(keep, new_metrics, metrics))

  def every_member_step(state, batch, metrics, active, values):
    # Every member has a batch: no selects over whole state leaves ([K, V, D]
    # tables and their optimiser moments), which cost as much as the update.
    del active
    return steps._train_step(  # pylint: disable=protected-access
        state, batch, metrics, values, None)

  masked = jax.jit(jax.vmap(member_step), donate_argnums=(0, 2))
  unmasked = jax.jit(jax.vmap(every_member_step), donate_argnums=(0, 2))

  def train_step(state, batch, metrics, active, values, all_active: bool):
    return (unmasked if all_active else masked)(state, batch, metrics, active, values)

  predict_step = jax.jit(jax.vmap(steps._predict_step))  # pylint: disable=protected-access
  return train_step, predict_step


def _predict_all(predict_step, stacked, members, split: str, batcher, sharding) -> list:
  """Probabilities [N_k, C] of every member's `split`, one vmapped call per batch index."""
  datas = [m.prepared.splits[split] for m in members]
  plans = [batcher.eval_plan(d) for d in datas]
  labels = datas[0].labels
  probs = [None] * len(members)
  for j in range(max(len(p) for p in plans)):
    batches = [batcher.make_batch(d, p[j]) if j < len(p) else None
               for d, p in zip(datas, plans)]
    batch = stack_batches(batches, labels.shape[1:], labels.dtype)
    out = np.asarray(predict_step(stacked, jax.device_put(batch, sharding)))
    for k, (d, p) in enumerate(zip(datas, plans)):
      if j < len(p):
        if probs[k] is None:
          probs[k] = np.zeros((len(d), out.shape[-1]), np.float32)
        probs[k][p[j]] = out[k, : len(p[j])]
  return probs


def _set_plateau_scales(stacked, members):
  if members[0].config.schedule != "plateau":
    return stacked
  scales = jnp.asarray([m.meta["plateau_scale"] for m in members], jnp.float32)
  inner = stacked["opt_state"][-1]
  inner.hyperparams["step_size"] = jax.device_put(
      scales, inner.hyperparams["step_size"].sharding)
  return stacked


def _train_group(configs, workdirs, group_dir, folds, raw) -> list:
  started = time.time()
  members, states, batcher, mesh = _build_members(configs, workdirs, folds, raw)
  config = members[0].config
  k = len(members)
  sharding = _member_sharding(k)
  stacked = stack_states(states, sharding)
  del states
  group_ckpt = Checkpoints(group_dir, keep_latest=1)
  restored = group_ckpt.restore_latest(parallel.abstract_like(stacked))
  epoch0 = 0
  if restored is not None:
    stacked, group_meta = restored
    epoch0 = group_meta["epoch"]
    for m, meta in zip(members, group_meta["members"]):
      m.meta = meta
  for j, m in enumerate(members):  # lines logged after the checkpoint are dropped (redone)
    m.logger = runlog.RunLogger(m.workdir, _quiet(m.config),
                                resume_step=group_meta["steps"][j] if restored else 0)
  names = [os.path.basename(m.workdir) for m in members]
  if len(set(names)) < len(names):  # e.g. seed_0 of two variants: VARIANT/seed_0
    names = [os.path.join(*os.path.normpath(m.workdir).split(os.sep)[-2:]) for m in members]
  print(f"[textclf] {len(members)} members as one program ({members[0].prepared.name}, "
        f"{config.model}): {', '.join(names)}; "
        f"members on {sharding}", flush=True)
  steps, values = _group_steps(members)
  train_step, predict_step = _compile(steps)
  values = jax.device_put(values, sharding)
  metric_name = train.stopping_metric(config, members[0].prepared.multi_label)
  eval_batcher = train.make_batcher(config, mesh, config.eval_batch_size or config.batch_size)
  trains = [m.prepared.splits["train"] for m in members]
  labels = trains[0].labels
  stacked = _set_plateau_scales(stacked, members)
  ckpts = [Checkpoints(m.workdir) for m in members]

  for epoch in range(epoch0, config.num_epochs):
    running = [not m.meta["stopped_early"] for m in members]
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
        yield (jax.device_put(stack_batches(parts, labels.shape[1:], labels.dtype), sharding),
               jax.device_put(active, sharding), bool(active.all()))

    epoch_time = time.time()
    device_metrics = jax.device_put(
        jax.tree.map(lambda x: jnp.stack([x] * k), steps_lib.init_metrics()), sharding)
    for batch, active, all_active in prefetch(batches()):
      stacked, device_metrics = train_step(stacked, batch, device_metrics, active, values,
                                           all_active)
    jax.block_until_ready(stacked)
    seconds = time.time() - epoch_time
    host = jax.device_get(device_metrics)
    steps_now = np.asarray(jax.device_get(stacked["step"]))
    dev_probs = _predict_all(predict_step, stacked, members, "dev", eval_batcher, sharding)
    for j, m in enumerate(members):
      if not running[j]:
        continue
      step = int(steps_now[j])
      meta = m.meta
      meta["train_seconds"] += seconds / sum(running)
      meta["train_examples"] += len(trains[j])
      bad = int(host["first_bad_step"][j])
      if bad != steps_lib.NO_BAD_STEP:
        raise train.TrainingDiverged(
            f"{m.workdir}: loss became NaN/Inf at step {bad + 1} (trained with {len(members)} "
            f"members in {group_dir}); lower its learning rate or enable --config.clip_norm")
      count = max(float(host["count"][j]), 1.0)
      m.logger.log(step, epoch=epoch, train={
          "loss": float(host["loss_sum"][j] / count),
          "accuracy": float(host["correct"][j] / count),
          "examples_per_second": sum(len(trains[i]) for i in range(k) if running[i]) / seconds})
      dev = m.prepared.splits["dev"]
      dev_metrics = train.score(dev_probs[j], dev.labels, m.prepared, m.config)
      value = dev_metrics[metric_name]
      m.logger.log(step, epoch=epoch, dev=metrics_lib.summary(dev_metrics))
      stop = train.record_evaluation(
          meta, m.config, metric_name, value, step,
          lambda: ckpts[j].save_best(step, member_state(stacked, j, m.abstract), meta))
      meta.update(epoch=epoch + 1, position=0, stopped_early=bool(stop))
    stacked = _set_plateau_scales(stacked, members)
    print(f"[textclf] epoch {epoch + 1}: dev {metric_name} "
          + " ".join(f"{m.meta['best']:.4f}{'*' if m.meta['stopped_early'] else ''}"
                     for m in members) + f" (best per member; *: stopped) in {seconds:.1f}s",
          flush=True)
    group_ckpt.save_latest(epoch + 1, stacked, {
        "epoch": epoch + 1, "members": [m.meta for m in members],
        "steps": [int(s) for s in steps_now]})

  results = []
  for j, m in enumerate(members):
    state = member_state(stacked, j, m.abstract)
    ckpts[j].save_latest(int(state["step"]), state, m.meta)
  shared = {}  # members with the same shapes share compiled prediction steps
  for j, m in enumerate(members):
    state = member_state(stacked, j, m.abstract)
    key = str(jax.tree.map(lambda x: x.shape, (m.abstract["params"], m.abstract["frozen"])))
    steps_j = shared.setdefault(key, m.steps)
    r = train.finish(m.config, m.workdir, m.prepared, steps_j, state, ckpts[j], eval_batcher,
                     m.meta, started)
    m.logger.close()
    ckpts[j].close()
    _mirror_to_wandb(m, r)
    results.append(r)
  group_ckpt.close()
  return results
