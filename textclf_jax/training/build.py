"""Building what a run trains with: the mesh, batchers, device batches, and the
model + optimiser + loss as `Steps` with its initial state on the mesh (from another
run's weights with config.model_init)."""

from __future__ import annotations

import dataclasses
import math
import os
import re

import jax
import numpy as np

from textclf_jax.errors import DataError

from textclf_jax.training import losses, optim, sparse_embed
from textclf_jax.runtime import parallel
from textclf_jax.training import steps as steps_lib
from textclf_jax.data.batching import Batcher, padded_lengths
from textclf_jax.models import (base as models_base, build_model, extra_rows, fit_length,
                                fit_to_data, min_length, model_class)
from textclf_jax.models.encoders import classifier
from textclf_jax.run import layout as rundir
from textclf_jax.text import subword
from textclf_jax.text.vocab import Vocab


def make_mesh(config):
  return parallel.make_mesh(config.mesh_model)


def make_batcher(config, mesh, batch_size: int | None = None) -> Batcher:
  """Bucketed batches of `batch_size` (default config.batch_size) texts, padded to at
  least the model's minimum length, to lengths the model reads without waste (whole
  windows when it chunks) and to a multiple of the mesh's data axis."""
  shortest = min_length(config)
  buckets = padded_lengths(config.bucket_lengths, max(config.max_len, shortest), shortest,
                           config.get("bucket_growth", 0.0), fit_length(config))
  return Batcher(batch_size or config.batch_size, buckets,
                 pad_to_multiple=parallel.data_size(mesh))


def eval_batcher(config, mesh) -> Batcher:
  return make_batcher(config, mesh, config.eval_batch_size or config.batch_size)


def device_batch(batcher: Batcher, data, index: np.ndarray, mesh) -> dict:
  """The batch of examples `index` as global arrays; this process builds only its rows."""
  rows = batcher.num_rows(len(index))
  return parallel.put_batch(batcher.make_batch(data, index, parallel.local_rows(mesh, rows)),
                            mesh, rows)


def make_steps(config, vocab_size: int, num_labels: int, multi_label: bool, mesh,
               total_steps: int, vectors=None, class_weights=None):
  """Builds the model, optimiser and loss; returns (Steps, initial state on the mesh).

  The state is created by a jitted function with `out_shardings` (so every
  process creates its own shards); pretrained vectors [V, D] enter it as a
  replicated global array. Embedding tables have `parallel.table_rows` rows (of the
  vocabulary and the model's `extra_rows`: zero vectors there when pretrained).
  The trainable table gets the row-sparse update where `sparse_embed` allows it.
  """
  depth = None
  if classifier.uses_encoder(config):  # layer-wise learning-rate decay over its layers
    top = classifier.encoder_config(config).num_hidden_layers + 1
    depth = (lambda names: classifier.layer_depth(names, top - 1), top)
  tx = optim.make_optimizer(config, total_steps, depth)
  table_update = sparse_embed.make_table_update(config, total_steps)
  loss_fn = losses.make_loss_fn(config, multi_label, class_weights)
  rows = parallel.table_rows(vocab_size + extra_rows(config), mesh.shape["model"],
                            config.vocab_multiple)
  if vectors is not None and len(vectors) < rows:
    vectors = np.concatenate([vectors, np.zeros((rows - len(vectors), vectors.shape[1]),
                                                vectors.dtype)])
  graphdefs = []

  def init(vectors=None):
    model = build_model(config, rows, num_labels, vectors, seed=config.seed)
    graphdef, state = steps_lib.init_state(model, tx, config.seed, table_update)
    graphdefs.append(graphdef)
    return state

  args = () if vectors is None else (parallel.host_array(vectors.astype(np.float32), mesh),)
  groups = model_class(config.model).param_groups
  abstract = jax.eval_shape(init, *args)
  sharding = parallel.state_shardings(abstract, mesh, rows, steps_lib.holds_tables(groups))
  state = jax.jit(init, out_shardings=sharding)(*args)
  steps = steps_lib.Steps(graphdefs[0], tx, loss_fn, multi_label, config.max_norm, mesh,
                          sharding, steps_lib.COMPUTE_DTYPES[config.compute_dtype],
                          table_update, groups, losses.distill_settings(config))
  return steps, state


def pretrained_source(path: str) -> str:
  """config.model_init's arrays: a run directory -> its best checkpoint's train state
  (its latest when it kept no best); a checkpoint step directory -> its state; else
  `path` (an orbax state directory or a .npz file)."""
  if os.path.isfile(rundir.path(path, rundir.CONFIG)):
    for which in ("best", "latest"):
      root = os.path.join(path, rundir.CHECKPOINTS, which)
      found = sorted(int(d) for d in os.listdir(root) if d.isdigit()) if os.path.isdir(
          root) else []
      if found:
        return os.path.join(root, str(found[-1]), "state")
    raise DataError(f"config.model_init={path!r}: a run directory without a checkpoint")
  if os.path.isdir(os.path.join(path, "state")):
    return os.path.join(path, "state")
  return path


def check_same_vocab(config, vocab, names):
  """A run directory as config.model_init whose embedding rows are loaded (`names`: the
  loaded parameters) must have `vocab`'s words in the same order: row i is a word id."""
  path, cls = config.model_init, model_class(config.model)
  prefix = "/".join(cls.param_groups.embeddings) + "/"
  dont_load = [re.compile(p) for p in config.get("model_init_dont_load", ())]
  file = rundir.path(path, rundir.VOCAB)
  if not os.path.isfile(file) or all(
      not n.startswith(prefix) or models_base.skipped(n, dont_load) for n in names):
    return
  theirs = Vocab.from_json(file).words
  if theirs != list(vocab.words):
    at = next((i for i, (a, b) in enumerate(zip(theirs, vocab.words)) if a != b),
              min(len(theirs), len(vocab.words)))
    raise DataError(
        f"config.model_init={path!r}: its vocabulary ({len(theirs)} words) is not this run's "
        f"({len(vocab.words)}; they differ at id {at}), so its embedding rows are other "
        f"words'; add {prefix[:-1]!r} to config.model_init_dont_load or train on the same texts")


def init_source(config) -> str:
  """What the new state is loaded from: config.model_init, or for a model with a
  pretrained encoder (model=transformer, embedding=contextual) its model folder."""
  if config.get("model_init", ""):
    return config.model_init
  if classifier.uses_encoder(config):
    return subword.resolve_folder(config.encoder_path)
  return ""


def load_pretrained(config, state: dict, vocab=None) -> dict:
  """`state` with its params and frozen tables loaded from `init_source` by the model
  class's `load_pretrained` (a transformer model folder: its encoder's weights only),
  except those config.model_init_dont_load names (a new run's head, for another label
  set). vocab: this run's, checked against a source run's (`check_same_vocab`). The
  optimiser state is left as built: the optimisers' initial states do not depend on the
  parameters' values."""
  source = init_source(config)
  if not source:
    return state
  variables = {**models_base.flat_names(state["params"]),
               **models_base.flat_names(state["frozen"])}
  if vocab is not None and config.get("model_init", ""):
    check_same_vocab(config, vocab, variables)
  values = {name: v.get_value() for name, v in variables.items()}
  dont_load = tuple(config.get("model_init_dont_load", ()))
  if classifier.is_model_folder(source):
    loaded = classifier.load_encoder_weights(values, source, dont_load)
  else:
    loaded = model_class(config.model).load_pretrained(values, pretrained_source(source),
                                                       dont_load)
  for name, variable in variables.items():
    value = loaded[name]
    if isinstance(value, np.ndarray):  # replaced: placed as the leaf it replaces
      held = variable.get_value()
      variable.set_value(jax.make_array_from_callback(
          held.shape, held.sharding, lambda index, value=value: value[index]))
  return state


@dataclasses.dataclass
class Built:
  """What one run trains with, built from its config and prepared data."""
  steps: steps_lib.Steps
  state: dict  # the initial train state, on the mesh
  steps_per_epoch: int
  total_steps: int
  class_weights: np.ndarray | None  # [C] or None


def build(config, prepared, mesh, num_examples: int = 0) -> Built:
  """Steps, initial state, epoch length and class weights of a run on `prepared` data.
  num_examples: texts an epoch trains on (0: the training split's; a distilled run's
  unlabelled texts add to it)."""
  train = prepared.splits["train"]
  steps_per_epoch = math.ceil((num_examples or len(train)) / config.batch_size)
  total_steps = steps_per_epoch * config.num_epochs
  class_weights = losses.class_weights_from_config(
      config.class_weights, train.labels, len(prepared.label_names), prepared.multi_label)
  steps, state = make_steps(config, prepared.encoder.vocab_size, len(prepared.label_names),
                            prepared.multi_label, mesh, total_steps, prepared.vectors,
                            class_weights)
  state = fit_to_data(config, state, train, prepared.multi_label)
  state = load_pretrained(config, state, getattr(prepared.encoder, "vocab", None))
  return Built(steps, state, steps_per_epoch, total_steps, class_weights)
