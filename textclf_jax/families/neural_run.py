"""A neural run loaded to predict (the neural family's Predictor): its config, text encoder,
labels, thresholds, calibration and the tested checkpoint's parameters.

Only what predicting reads is built and restored: the model's parameters and frozen
tables (pretrained vectors, NB ratios) and the step, as a partial restore of the saved
train state; no optimiser is built and its moments are never read. The prediction step
is the training program's own (`steps.Steps.predict_step`), so probabilities are
bit-identical to those the run was scored with.
"""

from __future__ import annotations

import sys

import jax
import jax.numpy as jnp
import numpy as np

from textclf_jax.data.batching import Encoded
from textclf_jax.data.pipeline import encode_split
from textclf_jax.errors import DataError
from textclf_jax.models import build_model, extra_rows, model_class, uses_vectors
from textclf_jax.models.base import split_params
from textclf_jax.run import layout as rundir, lock as runlock
from textclf_jax.run.checkpoint import Checkpoints
from textclf_jax.runtime import parallel
from textclf_jax.text.encoder import load_encoder
from textclf_jax.training import build as build_lib
from textclf_jax.training import evaluate as evaluate_lib
from textclf_jax.training import steps as steps_lib


def predict_steps(config, vocab_size: int, num_labels: int, multi_label: bool, mesh) -> tuple:
  """(Steps without an optimiser or loss, the abstract predict state {step, params,
  frozen} on the mesh): the model's structure, its parameters' shapes and shardings as
  `build.make_steps` lays them out, nothing allocated."""
  rows = parallel.table_rows(vocab_size + extra_rows(config), mesh.shape["model"],
                             config.vocab_multiple)
  graphdefs = []

  def init(vectors=None):  # shapes only: the values come from the checkpoint
    model = build_model(config, rows, num_labels, vectors, seed=config.seed)
    graphdef, params, frozen = split_params(model)
    graphdefs.append(graphdef)
    return {"step": jnp.zeros((), jnp.int32), "params": params, "frozen": frozen}

  args = ()
  if uses_vectors(config):
    args = (jax.ShapeDtypeStruct((rows, config.embed_dim), jnp.float32),)
  abstract = jax.eval_shape(init, *args)
  groups = model_class(config.model).param_groups
  sharding = parallel.state_shardings(abstract, mesh, rows, steps_lib.holds_tables(groups))
  target = jax.tree.map(lambda a, s: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=s),
                        abstract, sharding)
  steps = steps_lib.Steps(graphdefs[0], None, None, multi_label, config.max_norm, mesh,
                          sharding, steps_lib.COMPUTE_DTYPES[config.compute_dtype], None, groups)
  return steps, target


class NeuralRun:
  """The checkpoint `run` was tested with (best, or latest for test_checkpoint=last or
  when it has no best one), ready to predict. steps/state: `evaluate.predict_probs`'s;
  batcher: evaluation batches of `batch_size` (default the run's eval batch size)."""

  def __init__(self, run: str, batch_size: int = 0):
    self.run = run
    self.config = config = rundir.load_config(run)
    self.encoder = load_encoder(run, config)
    labels = rundir.read_labels(run)
    self.label_names, self.multi_label = labels["labels"], labels["multi_label"]
    self.thresholds = rundir.read_thresholds(run) if self.multi_label else None
    mesh = build_lib.make_mesh(config)
    self.steps, target = predict_steps(config, self.encoder.vocab_size, len(self.label_names),
                                       self.multi_label, mesh)
    writer = runlock.holder(run)
    ckpt = Checkpoints(run, read_only=True)
    which = "latest"
    if config.test_checkpoint == "last":
      restored = ckpt.restore_latest(target, partial=True)
    else:
      restored = ckpt.restore_best(target, partial=True)
      which = "best"
      if restored is None:
        restored, which = ckpt.restore_latest(target, partial=True), "latest"
    ckpt.close()
    if restored is None:
      raise DataError(f"{run}: has no checkpoint yet (checkpoints/best and latest are empty)")
    self.state, _ = restored
    self.step, self.which = int(self.state["step"]), which
    if writer is not None:
      print(f"[textclf] {run} is being trained now (pid {writer.get('pid', '?')} on "
            f"{writer.get('host', '?')}); using its last committed {which} checkpoint, "
            f"step {self.step}", file=sys.stderr, flush=True)
    if not bool(self.steps.all_finite(self.state)):
      raise DataError(f"{run}: the parameters of its {which} checkpoint (step {self.step}) "
                      "are NaN/Inf; the run diverged and has nothing to evaluate or serve")
    self.batcher = build_lib.make_batcher(config, mesh, batch_size or config.eval_batch_size
                                          or config.batch_size)
    self.calibration = rundir.read_calibration(run)

  def text_probs(self, texts: list) -> np.ndarray:
    """Raw texts [N] -> probabilities [N, C] float32, in input order."""
    ids, lengths = self.encoder.encode(texts, self.config.max_len)
    data = Encoded(ids, lengths, np.zeros(len(texts), np.int32))
    return evaluate_lib.predict_probs(self.steps, self.state, data, self.batcher)

  def encoded_split(self, split: str, data_dir: str = "") -> Encoded:
    """The run's `split` (train/dev/test), encoded with its encoder from its dataset and
    fold, as training encoded it; `data_dir`: where that dataset lives now."""
    config = self.config
    if data_dir:
      with config.unlocked():
        config.data_dir = data_dir
    return encode_split(config, split, self.encoder, self.label_names,
                        rundir.read_fold(self.run))

  def split_probs(self, split: str, data_dir: str = "") -> tuple:
    """(probabilities [N, C], labels) of the run's `split`."""
    data = self.encoded_split(split, data_dir)
    return evaluate_lib.predict_probs(self.steps, self.state, data, self.batcher), data.labels
