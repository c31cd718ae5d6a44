"""Row-sparse ("lazy") Adadelta, and plain SGD, for the trainable embedding table.

A batch touches at most B*L of the table's V rows. With Adadelta, a row whose
gradient is zero keeps its vector and only has its two accumulators
multiplied by rho. So each row remembers `synced` (the step count its
accumulators are current to); when a batch touches it at step t, its
accumulators are first multiplied by rho ** (t - synced), then it gets the
normal update on its summed gradient. Untouched rows are never read or
written, and no dense [V, D] gradient is built. The result equals dense
Adadelta up to float rounding (rho ** k once instead of k multiplications).

The learning rate only scales a row's update, which is zero for untouched
rows, so any schedule (and the plateau scale) is exact. Gradient clipping
(global norm) and weight decay touch every row: those configs stay dense.

Plain SGD (momentum 0) and Adagrad move only the rows with a gradient (Adagrad's
sum of squares grows only there), so their row-sparse updates (`LazySGD`, no state;
`LazyAdagrad`) are the dense ones up to the order of float sums; they are what the
fastText-style model's big n-gram table trains with (models/bag.py).
"""

from __future__ import annotations

import dataclasses
from typing import Callable

import jax
import jax.numpy as jnp
from flax import nnx

MODES = ("auto", "dense", "sparse")
# `auto` takes the sparse update only for batches of at most this many token slots
# (batch_size x max_len): it won at 50 x 20 (~1.4x less CPU per CNN step) and lost 5-20%
# at 50 x 400, where a batch holds as many tokens as a 20k-row table has rows. A
# config-only rule, so every member of a vmapped group (folds: other vocabularies) agrees.
AUTO_MAX_BATCH_TOKENS = 8192


def dense_only(config) -> list:
  """The config values that rule out the sparse update ([]: it is exact)."""
  reasons = []
  if config.optimizer not in ("adadelta", "adagrad", "sgd"):
    reasons.append(f"config.optimizer={config.optimizer!r} (needs adadelta, adagrad or sgd)")
  if config.optimizer == "sgd" and config.momentum:
    reasons.append(f"config.momentum={config.momentum} (sgd needs 0)")
  if config.clip_norm:
    reasons.append(f"config.clip_norm={config.clip_norm} (needs 0)")
  if config.weight_decay:
    reasons.append(f"config.weight_decay={config.weight_decay} (needs 0)")
  if config.mesh_model != 1:
    reasons.append(f"config.mesh_model={config.mesh_model} (needs 1)")
  if config.embedding == "static":
    reasons.append("config.embedding='static' (no trainable table)")
  return reasons


def embedding_update(config) -> str:
  """`dense` or `sparse` for config.embedding_update (validated by `training/checks.py`);
  `auto`: sparse when `dense_only` finds nothing and a batch has at most
  AUTO_MAX_BATCH_TOKENS token slots, or the model reads a hashed n-gram table (models/bag.py:
  the table's rows outnumber a batch's many times)."""
  mode = config.embedding_update
  reasons = dense_only(config)
  if mode == "auto":
    small_batches = (config.batch_size * config.max_len <= AUTO_MAX_BATCH_TOKENS
                     or config.get("ngram_buckets", 0) > 0)
    return "sparse" if small_batches and not reasons else "dense"
  return mode


@dataclasses.dataclass(frozen=True)
class LazyAdadelta:
  """The table's update rule: optax's scale_by_adadelta, then -learning_rate(step)."""
  rho: float
  eps: float
  schedule: Callable  # step -> learning rate (optim.make_schedule)
  plateau: bool = False  # times the plateau scale held in the optax state

  def init(self, table):
    """Accumulators e_g, e_x [V, D] (zero) and `synced` [V] int32."""
    return {"e_g": jnp.zeros_like(table), "e_x": jnp.zeros_like(table),
            "synced": jnp.zeros(table.shape[:1], jnp.int32)}

  def update(self, table, opt: dict, rows, grads, step, scale=1.0):
    """Updates rows `rows` [N] (N unique ids; ids >= V are ignored) of `table` [V, D]
    given their summed gradients `grads` [N, D] at step `step`. `scale` multiplies
    the updates (plateau scale, a member's learning rate). Returns (table, opt)."""
    def get(x):
      return x.at[rows].get(mode="fill", fill_value=0)

    def put(x, values):
      return x.at[rows].set(values, mode="drop")

    rho = self.rho
    decay = jnp.power(jnp.asarray(rho, table.dtype), step - get(opt["synced"]))[:, None]
    e_g = (1 - rho) * grads ** 2 + rho * (decay * get(opt["e_g"]))
    u = jnp.sqrt(decay * get(opt["e_x"]) + self.eps) / jnp.sqrt(e_g + self.eps) * grads
    e_x = (1 - rho) * u ** 2 + rho * (decay * get(opt["e_x"]))
    u = jnp.asarray(-self.schedule(step), u.dtype) * u * scale
    opt = {"e_g": put(opt["e_g"], e_g), "e_x": put(opt["e_x"], e_x),
           "synced": put(opt["synced"], step + 1)}
    return put(table, get(table) + u), opt


@dataclasses.dataclass(frozen=True)
class LazySGD:
  """The table's update rule under plain SGD: -learning_rate(step) * gradient."""
  schedule: Callable  # step -> learning rate (optim.make_schedule)
  plateau: bool = False  # times the plateau scale held in the optax state

  def init(self, table):
    """No state: an empty dict (the place of LazyAdadelta's accumulators)."""
    del table
    return {}

  def update(self, table, opt: dict, rows, grads, step, scale=1.0):
    """As `LazyAdadelta.update`: rows [N] unique (ids >= V ignored), grads [N, D]."""
    u = jnp.asarray(-self.schedule(step), grads.dtype) * grads * scale
    return table.at[rows].add(u, mode="drop"), opt


@dataclasses.dataclass(frozen=True)
class LazyAdagrad:
  """The table's update rule under Adagrad: optax's scale_by_rss, then -learning_rate."""
  initial: float  # the accumulators' starting value
  eps: float
  schedule: Callable  # step -> learning rate (optim.make_schedule)
  plateau: bool = False  # times the plateau scale held in the optax state

  def init(self, table):
    """The sum of squared gradients [V, D], from `initial`."""
    return {"sum_sq": jnp.full_like(table, self.initial)}

  def update(self, table, opt: dict, rows, grads, step, scale=1.0):
    """As `LazyAdadelta.update`: rows [N] unique (ids >= V ignored), grads [N, D]."""
    sum_sq = opt["sum_sq"].at[rows].get(mode="fill", fill_value=1) + grads ** 2
    u = jnp.where(sum_sq > 0, jax.lax.rsqrt(sum_sq + self.eps), 0.0) * grads
    u = jnp.asarray(-self.schedule(step), u.dtype) * u * scale
    return (table.at[rows].add(u, mode="drop"),
            {"sum_sq": opt["sum_sq"].at[rows].set(sum_sq, mode="drop")})


def make_table_update(config, total_steps: int) -> LazyAdadelta | LazyAdagrad | LazySGD | None:
  """The sparse update for `config`, or None when the table is updated densely."""
  if embedding_update(config) != "sparse":
    return None
  from textclf_jax.training import optim
  if config.optimizer == "sgd":
    return LazySGD(optim.make_schedule(config, total_steps), config.schedule == "plateau")
  if config.optimizer == "adagrad":
    return LazyAdagrad(config.adagrad_initial, optim.ADAGRAD_EPS,
                       optim.make_schedule(config, total_steps), config.schedule == "plateau")
  return LazyAdadelta(config.adadelta_rho, config.adadelta_eps,
                      optim.make_schedule(config, total_steps), config.schedule == "plateau")


def split_table(params, path: tuple):
  """params -> (params without the table, the table's State). path: the trainable
  table's (the model's `param_groups.table`)."""
  path = tuple(path)
  table, rest = nnx.split_state(params, lambda p, _: tuple(p) == path, ...)
  return rest, table


def table_array(table_state):
  """The [V, D] array of a table State from `split_table`."""
  return jax.tree.leaves(table_state)[0]


def unique_rows(tokens, num_rows: int):
  """tokens [B, L] (ids < num_rows) -> (rows [min(B*L, num_rows)]: the distinct ids,
  ascending, padded with `num_rows`; inverse [B, L]: each token's index into rows).

  The integers of `jnp.unique(flat, size=..., fill_value=num_rows, return_inverse=True)`
  (tests/test_sparse_embed.py compares them), computed without its stable argsort: on
  XLA:CPU a sort of (key, index) pairs is ~7x slower than one of the keys alone, and it
  was half of a fasttext_nb training step. Here: sort the ids, write each distinct one to
  its slot (its count of distinct ids before it), and find each token's slot by binary
  search in the sorted rows (the fill, num_rows, is above every id).
  """
  flat = tokens.reshape(-1)
  size = min(flat.size, num_rows)
  ids = jnp.sort(flat)
  first = jnp.concatenate([jnp.ones((1,), bool), ids[1:] != ids[:-1]])
  slot = jnp.where(first, jnp.cumsum(first) - 1, size)  # repeats: past the end, dropped
  rows = jnp.full((size,), num_rows, flat.dtype).at[slot].set(ids, mode="drop")
  inverse = jnp.searchsorted(rows, flat, method="scan").astype(jnp.int32)
  return rows, inverse.reshape(tokens.shape)
