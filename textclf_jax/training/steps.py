"""The jitted train and eval steps, written for a device mesh.

State is a dict pytree: step, params (trainable `nnx.Param`), frozen (static
embeddings), opt_state, rng; with the row-sparse embedding update
(`sparse_embed`) also embed_opt, the table's lazy Adadelta state, and then
opt_state covers the other parameters only. The batch is sharded over the
mesh's `data` axis; the embedding tables over its `model` axis; the rest of the state is
replicated (`parallel.state_shardings`). The loss is a weighted mean over the
*global* batch, so it does not depend on how many devices or processes share
it. Training metrics accumulate on device; the host reads them only at logging
intervals. With `compute_dtype=bfloat16` the forward and backward passes run
on bf16 copies of the float32 parameters; the loss, the gradients' updates and
the parameters stay float32.
"""

from __future__ import annotations

import dataclasses
from typing import Callable

import jax
import jax.numpy as jnp
import optax
from flax import nnx

from textclf_jax.training import losses, optim, sparse_embed
from textclf_jax.runtime import parallel
from textclf_jax.models.member_axis import per_member
from textclf_jax.models import ParamGroups
from textclf_jax.models.base import split_params

NO_BAD_STEP = jnp.iinfo(jnp.int32).max
COMPUTE_DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16}


def cast_floats(tree, dtype):
  """Floating leaves of `tree` as `dtype` (a no-op for float32)."""
  if dtype == jnp.float32:
    return tree
  return jax.tree.map(lambda x: x.astype(dtype) if jnp.issubdtype(x.dtype, jnp.floating) else x,
                      tree)


def init_state(model, tx: optax.GradientTransformation, seed: int, table_update=None) -> tuple:
  """table_update: a `sparse_embed.LazyAdadelta` (tx then sees the params without
  the trainable table) or None (tx sees every param)."""
  graphdef, params, frozen = split_params(model)
  state = {"step": jnp.zeros((), jnp.int32), "params": params, "frozen": frozen,
           "opt_state": tx.init(params), "rng": jax.random.PRNGKey(seed)}
  if table_update is not None:
    rest, table = sparse_embed.split_table(params, model.param_groups.table)
    state["opt_state"] = tx.init(rest)
    # "embed_opt": `holds_tables` has parallel.state_shardings place it like the table.
    state["embed_opt"] = table_update.init(sparse_embed.table_array(table))
  return graphdef, state


def holds_tables(groups: ParamGroups):
  """names -> whether a train-state leaf there is, or is under, an embedding table: in
  the model's embeddings (its params, frozen tables and their optimiser moments) or the
  row-sparse update's state (embed_opt). For `parallel.state_shardings`."""
  prefix = tuple(groups.embeddings)

  def check(names) -> bool:
    return names[:1] == ("embed_opt",) or any(
        names[i: i + len(prefix)] == prefix for i in range(len(names)))
  return check


def init_metrics(mesh=None):
  """Device-side training accumulators (summed over steps between logs).

  mesh: placed replicated on it, as `train_step` returns them, so a step given fresh
  accumulators has the same argument shardings as one given a step's: without that jit
  traces and lowers each bucket's step a second time (the same program, looked up again
  in the compilation cache: ~0.15 s a bucket on a CPU)."""
  metrics = {"loss_sum": jnp.zeros((), jnp.float32), "count": jnp.zeros((), jnp.float32),
             "correct": jnp.zeros((), jnp.float32),
             "first_bad_step": jnp.asarray(NO_BAD_STEP, jnp.int32)}
  return metrics if mesh is None else jax.device_put(metrics, parallel.replicated(mesh))


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class MemberValues:
  """A vmapped group member's own values of the config keys that differ between the
  members (`textclf_jax.training.group`); traced, [K, ...] across the group. None: the run's own.

  lr_scale       multiplies the updates (with a tx built for learning rate 1)
  dropout_keep   1 - its dropout rate, float32
  class_weights  [C], its loss's class weights
  """
  lr_scale: jax.Array | None = None
  dropout_keep: jax.Array | None = None
  class_weights: jax.Array | None = None


SOLO = MemberValues()


@dataclasses.dataclass
class Steps:
  """Compiled steps for one model/optimiser/loss on one mesh."""
  graphdef: nnx.GraphDef
  tx: optax.GradientTransformation
  loss_fn: Callable
  multi_label: bool
  max_norm: float
  mesh: jax.sharding.Mesh
  state_sharding: object  # pytree of NamedSharding, the structure of the state
  dtype: object = jnp.float32  # compute dtype
  table_update: object = None  # sparse_embed.LazyAdadelta: the table's row-sparse update
  groups: ParamGroups = ParamGroups()  # the model's param_groups: its head and tables
  # (temperature, alpha) of a distilled run (`losses.distill_loss` on batches that carry
  # soft targets); None: the configured loss alone.
  distill: tuple | None = None

  def __post_init__(self):
    rep, data = parallel.replicated(self.mesh), parallel.data_sharding(self.mesh)
    state = self.state_sharding
    self.train_step = jax.jit(self.train_step_fn, in_shardings=(state, data, rep),
                              out_shardings=(state, rep), donate_argnums=(0, 2))
    self.predict_step = jax.jit(self.predict_fn, in_shardings=(state, data),
                                out_shardings=rep)
    self.all_finite = jax.jit(self.all_finite_fn, in_shardings=(state,), out_shardings=rep)
    self.set_plateau_scale = jax.jit(self._set_plateau_scale, in_shardings=(state, rep),
                                     out_shardings=state, donate_argnums=(0,))

  def model(self, params, frozen):
    return nnx.merge(self.graphdef, cast_floats(params, self.dtype),
                     cast_floats(frozen, self.dtype))

  @staticmethod
  def all_finite_fn(state):
    """Whether every float parameter of `state` is finite (a bool scalar)."""
    leaves = [x for x in jax.tree.leaves((state["params"], state["frozen"]))
              if jnp.issubdtype(x.dtype, jnp.floating)]
    return jnp.all(jnp.stack([jnp.all(jnp.isfinite(x)) for x in leaves]))

  def _set_plateau_scale(self, state, scale):
    return {**state, "opt_state": optim.set_plateau_scale(state["opt_state"], scale)}

  def train_step_fn(self, state, batch, metrics, member: MemberValues = SOLO, active=None):
    """One update (un-jitted: `train_step` is its jitted, sharded form).

    member: a group member's own values (`MemberValues`; SOLO for a run alone).
    active (a traced bool, group members only): False leaves the sparse-updated
    table and its embed_opt untouched, so a vmapped group need not select over
    [V, D] leaves.
    """
    lr_scale = member.lr_scale
    key = jax.random.fold_in(state["rng"], state["step"])

    def loss_of(params, vectors=None):
      if vectors is not None:
        vectors = cast_floats(vectors, self.dtype)
      cached = {} if "states" not in batch else {  # a frozen encoder's (encoder_cache)
          "states": cast_floats(batch["states"], self.dtype)}
      logits = self.model(params, state["frozen"])(
          batch["tokens"], batch["lengths"], key, trainable_vectors=vectors,
          dropout_keep=member.dropout_keep, **cached)
      logits = logits.astype(jnp.float32)
      per_example = self.loss_fn(logits, batch["labels"], member.class_weights)
      if "soft" in batch:  # a distilled run's batch (a run without a teacher: unchanged)
        per_example = losses.distill_loss(per_example, logits, batch["soft"],
                                          batch["labelled"], *self.distill, self.multi_label)
      return losses.weighted_mean(per_example, batch["weights"]), logits

    new_state = {}
    if self.table_update is None:
      (loss, logits), grads = jax.value_and_grad(loss_of, has_aux=True)(state["params"])
      params, opt_state = self._apply_tx(grads, state["opt_state"], state["params"], lr_scale)
    else:
      params, opt_state, new_state["embed_opt"], loss, logits = self._sparse_update(
          state, batch, loss_of, lr_scale, active)
    weights = batch["weights"]
    if self.multi_label:
      hit = jnp.all((logits > 0) == (batch["labels"] > 0.5), axis=-1)
    else:
      hit = jnp.argmax(logits, axis=-1) == batch["labels"]
    if "soft" in batch:  # an unlabelled text's hit: agreeing with its teachers
      hit = jnp.where(batch["labelled"] > 0, hit, jnp.all(
          (logits > 0) == (batch["soft"] > 0.5), axis=-1) if self.multi_label else
          jnp.argmax(logits, axis=-1) == jnp.argmax(batch["soft"], axis=-1))
    count = jnp.sum(weights)
    metrics = {
        "loss_sum": metrics["loss_sum"] + loss * count,
        "count": metrics["count"] + count,
        "correct": metrics["correct"] + jnp.sum(hit * weights),
        "first_bad_step": jnp.where(jnp.isfinite(loss), metrics["first_bad_step"],
                                    jnp.minimum(metrics["first_bad_step"], state["step"])),
    }
    new_state = {**state, **new_state, "step": state["step"] + 1, "params": params,
                 "opt_state": opt_state}
    return new_state, metrics

  def _apply_tx(self, grads, opt_state, params, lr_scale):
    """(params, opt_state) after tx's update (times `lr_scale`) and the max-norm
    constraint. Under a group's vmap it runs once per member, so a member's
    parameters round exactly as in its solo run."""
    def update(grads, opt_state, params, lr_scale):
      updates, opt_state = self.tx.update(grads, opt_state, params)
      if lr_scale is not None:
        updates = jax.tree.map(lambda u: u * lr_scale, updates)
      params = optim.apply_max_norm(optax.apply_updates(params, updates), self.max_norm,
                                    self.groups.head)
      return params, opt_state
    return per_member(update)(grads, opt_state, params, lr_scale)

  def table_ids(self, state, batch):
    """The table rows the batch reads: the model's `table_ids(tokens, lengths)` (its
    tokens [B, L], or other rows too: hashed n-grams)."""
    model = nnx.merge(self.graphdef, state["params"], state["frozen"])
    return model.table_ids(batch["tokens"], batch["lengths"])

  def _sparse_update(self, state, batch, loss_of, lr_scale, active=None):
    """tx on the params without the table; the table's update rule (lazy Adadelta,
    Adagrad, SGD) on the rows the batch reads (`table_ids`, [B, L']). The loss sees the table
    only through those rows, so its gradient is [B*L', D], never [V, D]."""
    rest, table = sparse_embed.split_table(state["params"], self.groups.table)
    array = sparse_embed.table_array(table)
    rows, inverse = sparse_embed.unique_rows(self.table_ids(state, batch), array.shape[0])
    vectors = array.at[rows].get(mode="fill", fill_value=0)

    def loss_of_rows(rest, vectors):
      return loss_of(nnx.merge_state(rest, table), vectors[inverse])

    (loss, logits), (grads, row_grads) = jax.value_and_grad(
        loss_of_rows, argnums=(0, 1), has_aux=True)(rest, vectors)
    scale = jnp.ones((), jnp.float32)
    if self.table_update.plateau:
      scale = scale * optim.get_plateau_scale_array(state["opt_state"])
    if lr_scale is not None:
      scale = scale * lr_scale
    rest, opt_state = self._apply_tx(grads, state["opt_state"], rest, lr_scale)
    if active is not None:  # an inactive member writes no row (ids >= V are dropped)
      rows = jnp.where(active, rows, array.shape[0])
    array, embed_opt = self.table_update.update(array, state["embed_opt"], rows, row_grads,
                                                state["step"], scale)
    table = jax.tree.map(lambda _: array, table)
    params = nnx.merge_state(rest, table)
    return params, opt_state, embed_opt, loss, logits

  def predict_fn(self, state, batch):
    """Probabilities [B, C]: softmax (single-label) or sigmoid (multi-label)."""
    logits = self.model(state["params"], state["frozen"])(batch["tokens"], batch["lengths"])
    logits = logits.astype(jnp.float32)
    return jax.nn.sigmoid(logits) if self.multi_label else jax.nn.softmax(logits)
