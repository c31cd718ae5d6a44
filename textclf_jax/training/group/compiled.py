"""The group's jitted steps: a member's train and predict step, vmapped over K.

Each member runs `Steps.train_step_fn` with its own `MemberValues`; a member
without a batch this step (a smaller fold, or stopped early) is held still by
`active` [K], step counter and RNG included, so its dropout keys stay those of
its solo run.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from textclf_jax.runtime import parallel
from textclf_jax.training.group.stack import stack_batches


def _sparse_leaf(path, table: tuple) -> bool:
  """A leaf of the row-sparse table update: embed_opt, or the trainable table (at
  `table`, the model's param_groups.table)."""
  names = parallel.path_names(path)
  return names[:1] == ("embed_opt",) or names[:len(table) + 1] == ("params", *table)


def compile_steps(steps):
  """(train_step, predict_step) over the member axis.

  train_step(state, batch, metrics, active [K], values, all_active): values are
  the members' `steps.MemberValues`, each [K, ...].
  """
  sparse = steps.table_update is not None

  def member_step(state, batch, metrics, active, values):
    new_state, new_metrics = steps.train_step_fn(state, batch, metrics, values,
                                                 active if sparse else None)
    keep = lambda new, old: jnp.where(active, new, old)

    def keep_state(path, new, old):
      # The sparse update already left an inactive member's table and embed_opt as
      # they were: selecting over those [V, D] leaves would cost a dense update.
      return new if sparse and _sparse_leaf(path, steps.groups.table) else keep(new, old)

    return (jax.tree_util.tree_map_with_path(keep_state, new_state, state),
            jax.tree.map(keep, new_metrics, metrics))

  def every_member_step(state, batch, metrics, active, values):
    # Every member has a batch: no selects over whole state leaves ([K, V, D]
    # tables and their optimiser moments), which cost as much as the update.
    del active
    return steps.train_step_fn(state, batch, metrics, values, None)

  masked = jax.jit(jax.vmap(member_step), donate_argnums=(0, 2))
  unmasked = jax.jit(jax.vmap(every_member_step), donate_argnums=(0, 2))

  def train_step(state, batch, metrics, active, values, all_active: bool):
    return (unmasked if all_active else masked)(state, batch, metrics, active, values)

  predict_step = jax.jit(jax.vmap(steps.predict_fn))
  return train_step, predict_step


def predict_all(predict_step, stacked, datas: list, batcher, sharding) -> list:
  """Probabilities [N_k, C] of every member's data, one vmapped call per batch index."""
  plans = [batcher.eval_plan(d) for d in datas]
  labels = datas[0].labels
  probs = [None] * len(datas)
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
