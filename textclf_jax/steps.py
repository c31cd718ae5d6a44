"""The jitted train and eval steps, written for a device mesh.

State is a dict pytree: step, params (trainable `nnx.Param`), frozen (static
embeddings), opt_state, rng. The batch is sharded over the mesh's `data` axis;
the state is replicated. The loss is a weighted mean over the *global* batch,
so it does not depend on how many devices share it. Training metrics accumulate
on device; the host reads them only at logging intervals.
"""

from __future__ import annotations

import dataclasses
from typing import Callable

import jax
import jax.numpy as jnp
import optax
from flax import nnx

from textclf_jax import losses, optim, parallel
from textclf_jax.models import FrozenEmbedding

NO_BAD_STEP = jnp.iinfo(jnp.int32).max


def init_state(model, tx: optax.GradientTransformation, seed: int) -> tuple:
  graphdef, params, frozen = nnx.split(model, nnx.Param, FrozenEmbedding)
  state = {"step": jnp.zeros((), jnp.int32), "params": params, "frozen": frozen,
           "opt_state": tx.init(params), "rng": jax.random.PRNGKey(seed)}
  return graphdef, state


def init_metrics():
  """Device-side training accumulators (summed over steps between logs)."""
  return {"loss_sum": jnp.zeros((), jnp.float32), "count": jnp.zeros((), jnp.float32),
          "correct": jnp.zeros((), jnp.float32),
          "first_bad_step": jnp.asarray(NO_BAD_STEP, jnp.int32)}


@dataclasses.dataclass
class Steps:
  """Compiled steps for one model/optimiser/loss on one mesh."""
  graphdef: nnx.GraphDef
  tx: optax.GradientTransformation
  loss_fn: Callable
  multi_label: bool
  max_norm: float
  mesh: jax.sharding.Mesh

  def __post_init__(self):
    rep, data = parallel.replicated(self.mesh), parallel.data_sharding(self.mesh)
    self.train_step = jax.jit(self._train_step, in_shardings=(rep, data, rep),
                              out_shardings=(rep, rep), donate_argnums=(0, 2))
    self.predict_step = jax.jit(self._predict_step, in_shardings=(rep, data),
                                out_shardings=rep)

  def model(self, params, frozen):
    return nnx.merge(self.graphdef, params, frozen)

  def _train_step(self, state, batch, metrics):
    key = jax.random.fold_in(state["rng"], state["step"])

    def loss_of(params):
      logits = self.model(params, state["frozen"])(batch["tokens"], batch["lengths"], key)
      per_example = self.loss_fn(logits, batch["labels"])
      return losses.weighted_mean(per_example, batch["weights"]), logits

    (loss, logits), grads = jax.value_and_grad(loss_of, has_aux=True)(state["params"])
    updates, opt_state = self.tx.update(grads, state["opt_state"], state["params"])
    params = optim.apply_max_norm(optax.apply_updates(state["params"], updates), self.max_norm)
    weights = batch["weights"]
    if self.multi_label:
      hit = jnp.all((logits > 0) == (batch["labels"] > 0.5), axis=-1)
    else:
      hit = jnp.argmax(logits, axis=-1) == batch["labels"]
    count = jnp.sum(weights)
    metrics = {
        "loss_sum": metrics["loss_sum"] + loss * count,
        "count": metrics["count"] + count,
        "correct": metrics["correct"] + jnp.sum(hit * weights),
        "first_bad_step": jnp.where(jnp.isfinite(loss), metrics["first_bad_step"],
                                    jnp.minimum(metrics["first_bad_step"], state["step"])),
    }
    new_state = {**state, "step": state["step"] + 1, "params": params, "opt_state": opt_state}
    return new_state, metrics

  def _predict_step(self, state, batch):
    """Probabilities [B, C]: softmax (single-label) or sigmoid (multi-label)."""
    logits = self.model(state["params"], state["frozen"])(batch["tokens"], batch["lengths"])
    return jax.nn.sigmoid(logits) if self.multi_label else jax.nn.softmax(logits)
