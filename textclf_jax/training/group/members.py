"""Which runs may train as one group, and each member's own values inside it."""

from __future__ import annotations

import dataclasses
import json
import os

import jax
import numpy as np

from textclf_jax import config as config_lib
from textclf_jax.training import checks, optim, sparse_embed
from textclf_jax.training import steps as steps_lib

VMAPPABLE = ("seed", "fold", "learning_rate", "dropout", "class_weights")
# Schedules whose shape depends on the run's total number of steps.
LENGTH_DEPENDENT_SCHEDULES = ("warmup_cosine", "linear")
# Keys that only name where results are logged; they may differ too.
IGNORED = ("wandb_group",)


def flat_config(config) -> dict:
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


def grouping_key(config) -> str:
  """Configs with equal keys may train as one group: they differ only in VMAPPABLE
  (and IGNORED) keys. A JSON string of every other key's value."""
  fixed = {k: v for k, v in flat_config(config).items() if k not in VMAPPABLE + IGNORED}
  return json.dumps(fixed, sort_keys=True, default=str)


def check_group(configs: list, workdirs: list):
  """Raises ValueError unless the configs differ only in `VMAPPABLE` keys."""
  if not configs or len(configs) != len(workdirs):
    raise ValueError(f"train_many: {len(configs)} configs for {len(workdirs)} workdirs")
  for config in configs:
    checks.validate(config)
    refused = checks.group_problems(config)
    if refused:
      raise ValueError(refused[0])
  paths = [os.path.abspath(w) for w in workdirs]
  if len(set(paths)) != len(paths):
    raise ValueError(f"train_many: a workdir appears twice in {workdirs}")
  first = flat_config(configs[0])
  for config, workdir in zip(configs[1:], workdirs[1:]):
    flat = flat_config(config)
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


def check_members(members):
  """Data-dependent parts of the step must agree (they are closed over, not vmapped)."""
  first = members[0]
  for m in members[1:]:
    for what, a, b in (("labels", first.prepared.label_names, m.prepared.label_names),
                       ("multi_label", first.prepared.multi_label, m.prepared.multi_label),
                       ("max_len (resolved from its training texts; set config.max_len "
                        "to train these as one group)", first.config.max_len, m.config.max_len)):
      if a != b:
        raise ValueError(f"{m.workdir}: its {what} ({b}) differ from {first.workdir}'s ({a})")
    if (first.config.schedule in LENGTH_DEPENDENT_SCHEDULES
        and first.built.total_steps != m.built.total_steps):
      raise ValueError(f"config.schedule={first.config.schedule!r} depends on the number of "
                       f"steps, which differs between {first.workdir} and {m.workdir}")


def member_values(members) -> tuple:
  """(Steps for the member step, `steps.MemberValues` of the keys that differ, [K, ...]).

  Keys all members share stay in the Steps (None in MemberValues), so a group
  of seeds runs exactly its members' solo step.
  """
  first = members[0]
  steps = first.built.steps
  lr_scale = dropout_keep = class_weights = None
  rates = [float(m.config.learning_rate) for m in members]
  if len(set(rates)) > 1:
    unit = first.config.copy_and_resolve_references()
    with unit.unlocked():
      unit.learning_rate = 1.0
    total = first.built.total_steps
    steps = dataclasses.replace(
        steps, tx=optim.make_optimizer(unit, total),
        table_update=sparse_embed.make_table_update(unit, total))
    lr_scale = np.asarray(rates, np.float32)
  dropouts = [float(m.config.get("dropout", 0.0)) for m in members]
  if len(set(dropouts)) > 1:  # (check_group: every rate in [0, 1))
    # float32(1 - rate), the keep probability nnx.Dropout uses in a solo run.
    dropout_keep = np.asarray([np.float32(1.0 - d) for d in dropouts])
  weights = [m.built.class_weights for m in members]
  if any(w is not None for w in weights) and not all(
      w is not None and np.array_equal(w, weights[0]) for w in weights):
    size = next(len(w) for w in weights if w is not None)
    # No weights and weights of 1 give the same loss and gradients, to the bit.
    class_weights = np.stack([np.ones(size, np.float32) if w is None else
                              np.asarray(w, np.float32) for w in weights])
  return steps, steps_lib.MemberValues(lr_scale, dropout_keep, class_weights)
