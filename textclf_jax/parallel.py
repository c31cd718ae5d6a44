"""Device mesh and shardings. One device is a mesh of one; the batch is split
over the `data` axis, parameters and optimiser state are replicated."""

from __future__ import annotations

import jax
import numpy as np
from jax.sharding import AxisType, NamedSharding, PartitionSpec as P


def make_mesh(num_devices: int = 0) -> jax.sharding.Mesh:
  """A 1-D `data` mesh over the first `num_devices` devices (0: all).

  Axis type Auto: with the Explicit default, `jnp.take` on a data-sharded batch
  needs sharding annotations that the models do not carry.
  """
  devices = jax.devices()
  n = num_devices or len(devices)
  return jax.make_mesh((n,), ("data",), axis_types=(AxisType.Auto,), devices=devices[:n])


def data_sharding(mesh) -> NamedSharding:
  return NamedSharding(mesh, P("data"))


def replicated(mesh) -> NamedSharding:
  return NamedSharding(mesh, P())


def put_batch(batch: dict, mesh) -> dict:
  """numpy batch (leading dim divisible by the mesh size) -> sharded jax arrays."""
  sharding = data_sharding(mesh)
  return {k: jax.device_put(np.asarray(v), sharding) for k, v in batch.items()}


def put_replicated(tree, mesh):
  return jax.device_put(tree, replicated(mesh))
