"""Processes, device mesh and shardings.

One JAX program runs in every process (JAX's multi-controller model): one
process on a laptop or a GPU host, one per host (or per GPU) on a cluster.
The mesh has two axes: `data` (the batch is split over it) and `model` (the
rows of the embedding tables are split over it; size 1 by default). Every
other parameter and the optimiser state are replicated.

Each process builds only its own rows of every global batch; the rows become
one global array with `jax.make_array_from_process_local_data`. State is
created by a jitted function with `out_shardings`, never `device_put` from one
host (which cannot address another host's devices).
"""

from __future__ import annotations

import math
import os

import jax
import numpy as np
from jax.experimental import multihost_utils
from jax.sharding import AxisType, NamedSharding, PartitionSpec as P

EMBEDDING_SPEC = P("model", None)  # [vocab rows, dim]: rows split over `model`


# --- processes ----------------------------------------------------------------


def initialize(distributed: bool = False, coordinator_address: str = "",
               num_processes: int = 0, process_id: int = -1) -> bool:
  """Joins a multi-process JAX job; call before anything touches a device.

  Explicit values win; then the environment: JAX_COORDINATOR_ADDRESS (read by
  JAX itself), JAX_NUM_PROCESSES, JAX_PROCESS_ID. With `distributed` (or
  TEXTCLF_DISTRIBUTED=1) and values left unset, JAX detects them itself
  (SLURM, Cloud TPU, Open MPI, Kubernetes). Nothing set: a single process,
  no-op. Returns True when this process is part of a job.
  """
  if jax.distributed.is_initialized():
    return True
  distributed = distributed or os.environ.get("TEXTCLF_DISTRIBUTED", "") not in ("", "0")
  address = coordinator_address or os.environ.get("JAX_COORDINATOR_ADDRESS", "")
  count = num_processes or int(os.environ.get("JAX_NUM_PROCESSES", "0") or 0)
  index = process_id if process_id >= 0 else int(os.environ.get("JAX_PROCESS_ID", "-1") or -1)
  if not (distributed or address or count):
    return False
  kwargs = {}
  if address:
    kwargs["coordinator_address"] = address
  if count:
    kwargs["num_processes"] = count
  if index >= 0:
    kwargs["process_id"] = index
  jax.distributed.initialize(**kwargs)
  return True


def is_main_process() -> bool:
  return jax.process_index() == 0


def barrier(name: str):
  """Waits until every process reaches `name` (no-op in a single process)."""
  if jax.process_count() > 1:
    multihost_utils.sync_global_devices(name)


def describe(mesh) -> str:
  return (f"mesh {dict(mesh.shape)} over {mesh.size} {mesh.devices.flat[0].platform} "
          f"device(s) in {jax.process_count()} process(es)")


# --- mesh ---------------------------------------------------------------------


def make_mesh(model_axis: int = 1, num_devices: int = 0) -> jax.sharding.Mesh:
  """A (`data`, `model`) mesh over all devices of all processes.

  model_axis: devices that share one replica of the batch and split the
  embedding tables' rows; data axis = devices / model_axis. num_devices:
  only the first N devices (single process only; 0: all).

  Axis types are Auto: with the Explicit default, `jnp.take` on a data-sharded
  batch needs sharding annotations that the models do not carry.
  """
  devices = jax.devices()
  n = num_devices or len(devices)
  if num_devices and jax.process_count() > 1 and n != len(devices):
    raise ValueError("num_devices selects a subset of devices, which only works in a single "
                     "process")
  if model_axis < 1 or n % model_axis:
    raise ValueError(f"config.mesh_model={model_axis} must divide the number of devices ({n})")
  return jax.make_mesh((n // model_axis, model_axis), ("data", "model"),
                       axis_types=(AxisType.Auto, AxisType.Auto), devices=devices[:n])


def data_size(mesh) -> int:
  """Ways the batch is split: the global batch is padded to a multiple of this."""
  return mesh.shape["data"]


def data_sharding(mesh) -> NamedSharding:
  return NamedSharding(mesh, P("data"))


def replicated(mesh) -> NamedSharding:
  return NamedSharding(mesh, P())


def table_rows(vocab_size: int, model_axis: int, multiple: int = 1) -> int:
  """Rows of the embedding tables: the vocabulary rounded up so that the rows
  divide over the `model` axis (and `multiple`); extra rows are never looked up."""
  m = math.lcm(max(model_axis, 1), max(multiple, 1))
  return -(-vocab_size // m) * m


# --- state ------------------------------------------------------------------------


def path_names(path) -> tuple:
  """A jax tree path's keys as strings (DictKey, GetAttrKey, SequenceKey)."""
  return tuple(str(getattr(k, "key", getattr(k, "name", getattr(k, "idx", "")))) for k in path)


def state_shardings(abstract_state, mesh, rows: int, holds_tables):
  """Sharding of every leaf: embedding tables (and their optimiser moments),
  [rows, D], split over `model`; everything else replicated. holds_tables(names):
  whether the leaf at that path (`path_names`) is, or is under, an embedding table
  (the caller knows where the model keeps them)."""
  table, rep = NamedSharding(mesh, EMBEDDING_SPEC), replicated(mesh)

  def place(path, leaf):
    is_table = (getattr(leaf, "ndim", 0) == 2 and leaf.shape[0] == rows
                and holds_tables(path_names(path)))
    return table if is_table else rep

  return jax.tree_util.tree_map_with_path(place, abstract_state)


def abstract_like(state):
  """ShapeDtypeStructs with shardings: a restore target for orbax."""
  return jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=x.sharding),
                      state)


def host_array(value: np.ndarray, mesh) -> jax.Array:
  """A host numpy array (the same in every process) as a replicated global array."""
  value = np.asarray(value)
  return jax.make_array_from_callback(value.shape, replicated(mesh), lambda index: value[index])


# --- batches ----------------------------------------------------------------------


def local_rows(mesh, global_rows: int) -> slice:
  """The rows of a [global_rows, ...] data-sharded batch that live on this
  process's devices (one contiguous block)."""
  index_map = data_sharding(mesh).addressable_devices_indices_map((global_rows,))
  spans = sorted({(idx[0].start or 0, global_rows if idx[0].stop is None else idx[0].stop)
                  for idx in index_map.values()})
  for (_, stop), (start, _) in zip(spans, spans[1:]):
    if stop != start:
      raise ValueError(f"this process's devices hold rows {spans} of the batch, not one "
                       "contiguous block; build the mesh with jax.make_mesh's device order")
  return slice(spans[0][0], spans[-1][1])


def put_batch(local_batch: dict, mesh, global_rows: int) -> dict:
  """This process's rows (see `local_rows`) -> global data-sharded arrays."""
  sharding = data_sharding(mesh)
  return {k: jax.make_array_from_process_local_data(sharding, np.asarray(v),
                                                    (global_rows,) + np.shape(v)[1:])
          for k, v in local_batch.items()}
