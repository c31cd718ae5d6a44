"""optax chains from the config: optimiser, schedule, weight decay, clipping.

The chain only ever sees trainable parameters (`nnx.Param`); static embeddings
are a different variable type and are never updated. Kim's max-norm constraint
on the output layer is a projection applied after each update (`max_norm`).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import optax

from textclf_jax.runtime import parallel

OPTIMIZERS = ("sgd", "adam", "adamw", "adadelta", "adagrad")
ADAGRAD_EPS = 1e-7  # optax.adagrad's epsilon under the root
SCHEDULES = ("constant", "warmup_cosine", "linear", "exponential", "plateau")


def warmup_steps(config, total_steps: int) -> int:
  """config.warmup_steps, or config.warmup_fraction of all steps when that is 0."""
  if config.warmup_steps:
    return config.warmup_steps
  return int(round(config.get("warmup_fraction", 0.0) * total_steps))


def make_schedule(config, total_steps: int):
  lr, warmup = config.learning_rate, warmup_steps(config, total_steps)
  if config.schedule not in SCHEDULES:
    raise ValueError(f"config.schedule={config.schedule!r}: expected one of "
                     f"{', '.join(SCHEDULES)}")
  if config.schedule in ("constant", "plateau"):
    main = optax.constant_schedule(lr)
  elif config.schedule == "warmup_cosine":
    return optax.warmup_cosine_decay_schedule(0.0, lr, warmup, max(total_steps, warmup + 1))
  elif config.schedule == "linear":
    main = optax.linear_schedule(lr, 0.0, max(total_steps - warmup, 1))
  else:
    main = optax.exponential_decay(lr, config.decay_steps, config.decay_rate)
  if warmup:
    return optax.join_schedules([optax.linear_schedule(0.0, lr, warmup), main], [warmup])
  return main


def scale_by_depth(decay: float, top: int, depth_of) -> optax.GradientTransformation:
  """Layer-wise learning-rate decay (Clark et al. 2020, ELECTRA): the update of a
  parameter at depth d (`depth_of(names)`: 0 the encoder's embeddings ... `top` the
  head) times decay^(top - d). Stateless; the factors are constants of the program."""
  def update(updates, state, params=None):
    del params
    return jax.tree_util.tree_map_with_path(
        lambda path, u: u * (decay ** (top - depth_of(parallel.path_names(path)))),
        updates), state
  return optax.GradientTransformation(lambda params: optax.EmptyState(), update)


def make_optimizer(config, total_steps: int, depth=None) -> optax.GradientTransformation:
  """clip -> [L2 decay] -> scale_by_<optimizer> -> [decoupled decay] -> -lr(schedule)
  -> [x layer_decay^(depth from the top): `depth` = (depth_of(names), top)].

  `adamw` is Adam with decoupled decay; `weight_decay_mode=decoupled` gives the
  same AdamW-style decay (w -= lr * decay * w) to every optimiser, `l2` adds
  decay * w to the gradient instead.
  """
  if config.optimizer not in OPTIMIZERS:
    raise ValueError(f"config.optimizer={config.optimizer!r}: expected one of "
                     f"{', '.join(OPTIMIZERS)}")
  if config.weight_decay_mode not in ("decoupled", "l2"):
    raise ValueError(f"config.weight_decay_mode={config.weight_decay_mode!r}: "
                     "expected decoupled or l2")
  decay = config.weight_decay
  decoupled = bool(decay) and (config.weight_decay_mode == "decoupled")
  parts = []
  if config.clip_norm:
    parts.append(optax.clip_by_global_norm(config.clip_norm))
  if decay and not decoupled:
    parts.append(optax.add_decayed_weights(decay))
  if config.optimizer == "sgd":
    if config.momentum:
      parts.append(optax.trace(decay=config.momentum))
  elif config.optimizer in ("adam", "adamw"):
    parts.append(optax.scale_by_adam())
  elif config.optimizer == "adagrad":
    parts.append(optax.scale_by_rss(config.adagrad_initial, ADAGRAD_EPS))
  else:
    parts.append(optax.scale_by_adadelta(rho=config.adadelta_rho, eps=config.adadelta_eps))
  if decoupled:
    parts.append(optax.add_decayed_weights(decay))
  parts.append(optax.scale_by_learning_rate(make_schedule(config, total_steps)))
  if depth is not None and config.get("layer_decay", 1.0) != 1.0:
    parts.append(scale_by_depth(config.layer_decay, depth[1], depth[0]))
  if config.schedule == "plateau":
    # Driven by the dev metric between evaluations (train.py), not per step.
    parts.append(optax.inject_hyperparams(optax.scale)(step_size=1.0))
  return optax.chain(*parts)


def set_plateau_scale(opt_state, scale: float):
  """Sets the plateau scale held in the optimiser state (last chain element)."""
  inner = opt_state[-1]
  inner.hyperparams["step_size"] = jnp.asarray(scale, jnp.float32)
  return opt_state


def get_plateau_scale(opt_state) -> float:
  return float(get_plateau_scale_array(opt_state))


def get_plateau_scale_array(opt_state):
  """The plateau scale as held in the optimiser state (traceable)."""
  return opt_state[-1].hyperparams["step_size"]


def place_plateau_scales(opt_state, scales):
  """Sets the plateau scales of a vmapped group's stacked optimiser state (host
  values [K]), placed as the ones they replace; the state is changed in place."""
  held = get_plateau_scale_array(opt_state)
  return set_plateau_scale(opt_state, jax.device_put(jnp.asarray(scales, jnp.float32),
                                                     held.sharding))


def apply_max_norm(params, max_norm: float, head=("head",)):
  """Rescales each output unit's weight vector of the head's kernel [in, C] to norm
  <= s. head: the head's path in `params` (the model's `param_groups.head`)."""
  if not max_norm:
    return params
  layer = params
  for name in head:
    layer = layer[name]
  kernel = layer["kernel"]
  norms = jnp.sqrt(jnp.sum(jnp.square(kernel[...]), axis=0, keepdims=True))
  scale = jnp.minimum(1.0, max_norm / jnp.maximum(norms, 1e-12))
  layer["kernel"] = jax.tree.map(lambda k: k * scale, kernel)
  return params
