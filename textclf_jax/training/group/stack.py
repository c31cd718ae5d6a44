"""Member states and batches on a leading member axis K, and where it lives.

  state   every leaf [K, ...]; embedding tables padded with zero rows to the
          largest member's row count (folds have different vocabularies;
          rows past a member's vocabulary are never looked up)
  batch   tokens [K, B, L], lengths/weights [K, B], labels [K, B(, C)] (and a frozen
          encoder's cached states [K, B, L, ...]): each member's own batch, padded to
          the longest member's length L
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import AxisType, NamedSharding, PartitionSpec as P

from textclf_jax.text.encoder import PAD_ID  # every encoder pads with id 0


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
  states = next((b["states"] for b in batches if b is not None and "states" in b), None)
  if states is not None:  # training/encoder_cache.py
    out["states"] = np.zeros((k, rows, length) + states.shape[2:], np.float32)
  for i, batch in enumerate(batches):
    if batch is None:
      continue
    out["tokens"][i, :, : batch["tokens"].shape[1]] = batch["tokens"]
    if states is not None:
      out["states"][i, :, : batch["tokens"].shape[1]] = batch["states"]
    for key in ("lengths", "labels", "weights"):
      out[key][i] = batch[key]
  return out


def member_sharding(num_members: int):
  """Members split over the local devices when they divide K, else device 0."""
  devices = jax.local_devices()
  if len(devices) > 1 and num_members % len(devices) == 0:
    mesh = jax.make_mesh((len(devices),), ("members",), axis_types=(AxisType.Auto,),
                         devices=devices)
    return NamedSharding(mesh, P("members"))
  return jax.sharding.SingleDeviceSharding(devices[0])
