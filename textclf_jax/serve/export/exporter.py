"""Exporting one run: trace, write, reload with the serving loader, check parity, rename.

Parity: the exported model, run by `serving.Exported` (its batching and padding),
against the JAX model run as `textclf predict` runs it (the checkpoint's model, the
run's length buckets), on up to `max_examples` examples of a split (a seeded sample):
every probability within TOLERANCE and every prediction (argmax, or the thresholded
label set) the same, else ParityError and nothing is left at OUT.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import time

import numpy as np

from textclf_jax.scoring import metrics as metrics_lib
from textclf_jax.run import compat, layout as rundir
from textclf_jax.serve import serving
from textclf_jax.errors import DataError
from textclf_jax.errors import UsageError
from textclf_jax.serve.export import formats
from textclf_jax.serve.export import trace as trace_lib
from textclf_jax.text import subword

TOLERANCE = 1e-5  # the largest |exported - JAX| probability accepted
SAMPLE_SEED = 0


class ParityError(DataError):
  """The exported model does not compute what the run's JAX model computes."""


def config_sha256(run: str) -> str:
  """SHA-256 of the run's config.json as canonical JSON (sorted keys, no spaces)."""
  config = rundir.read_json(rundir.path(run, rundir.CONFIG))
  return hashlib.sha256(json.dumps(config, sort_keys=True, separators=(",", ":"))
                        .encode()).hexdigest()


# Every name an export directory holds (besides its marker): replacing one deletes these.
# A subword run's export also carries its tokenizer (text/subword.SubwordEncoder.save).
EXPORT_FILES = (serving.MANIFEST, serving.VOCAB, *formats.MODEL_FILES.values(),
                subword.TOKENIZER_FILE, subword.SUBWORD_FILE)


def _check_out(out: str, overwrite: bool):
  """Refuses an existing `out` unless --overwrite and it is an export the project wrote,
  holding nothing else (whatever else is there would be deleted with it)."""
  if not os.path.exists(out):
    return
  if not overwrite:
    raise UsageError(f"{out}: already exists; choose another --out or pass --overwrite")
  try:
    compat.require(out, "export", "overwrite")
    compat.check_only_ours(out, EXPORT_FILES, "overwrite")
  except compat.NotOwnedError as e:
    raise UsageError(f"{e} (--overwrite replaces only an export)") from None


def _parity_sample(loaded, run: str, split: str, data_dir: str, max_examples: int):
  """An Encoded sample (seeded) of the run's `split`, found as `textclf eval` finds it."""
  from textclf_jax.data.batching import Encoded
  data = loaded.encoded_split(split, data_dir)
  if len(data) == 0:
    raise DataError(f"{run}: its {split} split is empty; nothing to check the export on")
  index = np.arange(len(data))
  if len(data) > max_examples:
    index = np.sort(np.random.default_rng(SAMPLE_SEED).choice(len(data), max_examples,
                                                              replace=False))
  return Encoded(data.ids[index], data.lengths[index], data.labels[index])


def _jax_probabilities(fn, data, batcher) -> np.ndarray:
  """fn over `data` in the run's evaluation batches (sorted, bucket-padded), in order.

  float32 matmuls at full precision: on a GPU JAX's default may be TF32 (~1e-3), and
  the reference must be the model's function, not that rounding."""
  import jax
  step = jax.jit(fn)
  probs = None
  for index in batcher.eval_plan(data):
    batch = batcher.make_batch(data, index)
    with jax.default_matmul_precision("float32"):
      out = np.asarray(step(batch["tokens"], batch["lengths"]))[: len(index)]
    if probs is None:
      probs = np.zeros((len(data), out.shape[1]), np.float32)
    probs[index] = out
  return probs


def _fixed_length(config) -> int:
  """The length every batch is padded to when the length axis cannot be symbolic."""
  from textclf_jax import models
  length = max(config.max_len, models.min_length(config))
  fit = models.fit_length(config)  # None: no chunk_len
  return fit(length) if fit else length


def _parity(exported, reference, data, thresholds, at_least_one, split) -> dict:
  probs = exported.probabilities_of_ids(data.ids, data.lengths)
  diff = float(np.max(np.abs(probs - reference)))
  if exported.multi_label:
    expected = metrics_lib.multi_label_predictions(reference, np.asarray(thresholds),
                                                   at_least_one)
    differ = int(np.sum(np.any(exported.decide(probs) != expected, axis=1)))
  else:
    differ = int(np.sum(exported.decide(probs) != reference.argmax(axis=1)))
  return {"split": split, "examples": int(len(data)), "max_abs_difference": diff,
          "tolerance": TOLERANCE, "predictions_differing": differ,
          "reference": "the run's JAX model in its evaluation batches (as textclf predict)",
          "passed": bool(diff <= TOLERANCE and differ == 0)}


def _manifest(run, loaded, encoder, fmt, traced, temperature, thresholds,
              calibrated) -> dict:
  config = loaded.config
  from textclf_jax import models
  return {
      "format_version": serving.FORMAT_VERSION, "format": fmt,
      "model_file": formats.MODEL_FILES[fmt],
      "inputs": {"tokens": "int32 [batch, length], 0-padded ids of vocab.json",
                 "lengths": "int32 [batch], tokens per text (at least 1)"},
      "output": f"{formats.OUTPUT}: float32 [batch, {len(loaded.label_names)}]",
      "length": traced.length, "length_note": traced.why_fixed or None,
      "min_length": int(models.min_length(config)), "max_len": int(config.max_len),
      "model": config.model, "compute_dtype": config.get("compute_dtype", "float32"),
      "run": os.path.abspath(run), "checkpoint": loaded.which, "step": int(loaded.step),
      "config_sha256": config_sha256(run),
      # the encoder's settings ("tokenizer": the key exports have always had)
      "encoder": encoder.name,
      "tokenizer": dict(encoder.settings(), max_len=int(config.max_len)),
      "vocab_file": serving.VOCAB, "vocab_size": int(encoder.vocab_size),
      "labels": list(loaded.label_names), "multi_label": bool(loaded.multi_label),
      "calibrated": calibrated, "temperature": temperature,
      "thresholds": thresholds,
      "multilabel_at_least_one": bool(config.multilabel_at_least_one),
      "exported_at": time.strftime("%Y-%m-%d %H:%M:%S"),
  }


def export_run(run: str, fmt: str, out: str, *, split: str = "test", data_dir: str = "",
               max_examples: int = 512, calibrated: bool = True,
               overwrite: bool = False) -> dict:
  """Writes the export of `run` to `out` after checking parity; returns its manifest."""
  from textclf_jax.serve import runs
  if fmt not in formats.FORMATS:
    raise UsageError(f"--format {fmt}: expected one of {', '.join(formats.FORMATS)}")
  formats.check_available(fmt)
  _check_out(out, overwrite)
  why = runs.unsupported(run, "export")
  if why:
    raise UsageError(f"{run}: {why}")
  loaded = runs.load(run)
  encoder = loaded.encoder
  record = rundir.read_calibration(run) if calibrated else None
  temperature = record["temperature"] if record else None
  thresholds = None
  if loaded.multi_label:
    thresholds = record.get("thresholds", loaded.thresholds) if record else loaded.thresholds
  data = _parity_sample(loaded, run, split, data_dir, max_examples)

  reference_fn = trace_lib.inference_fn(
      trace_lib.export_model(loaded.steps, loaded.state, dense=False), temperature,
      loaded.multi_label)
  reference = _jax_probabilities(reference_fn, data, loaded.batcher)
  traced = trace_lib.trace(trace_lib.inference_fn(
      trace_lib.export_model(loaded.steps, loaded.state), temperature, loaded.multi_label),
      _fixed_length(loaded.config))

  parent = os.path.dirname(os.path.abspath(out))
  os.makedirs(parent, exist_ok=True)
  tmp = tempfile.mkdtemp(prefix=f".{os.path.basename(os.path.abspath(out))}.tmp-",
                         dir=parent)  # a new directory of our own, deleted below
  umask = os.umask(0)
  os.umask(umask)
  os.chmod(tmp, 0o777 & ~umask)  # as os.makedirs would make it (mkdtemp: 0700)
  try:
    compat.write_marker(tmp, "export")  # first: what `--overwrite` checks
    manifest = _manifest(run, loaded, encoder, fmt, traced, temperature, thresholds,
                         record is not None)
    manifest.update(formats.write(fmt, traced, os.path.join(tmp, formats.MODEL_FILES[fmt])))
    manifest["size_bytes"] = os.path.getsize(os.path.join(tmp, formats.MODEL_FILES[fmt]))
    manifest["versions"] = formats.versions(fmt)
    encoder.save(tmp)  # vocab.json (and whatever else its encoder keeps)
    rundir.write_json(os.path.join(tmp, serving.MANIFEST), manifest)
    parity = _parity(serving.load(tmp), reference, data, thresholds,
                     loaded.config.multilabel_at_least_one, split)
    if not parity["passed"]:
      raise ParityError(
          f"{out}: refused: the exported {fmt} model differs from the JAX model on "
          f"{parity['examples']} {split} examples (max |probability difference| "
          f"{parity['max_abs_difference']:.3g}, tolerance {TOLERANCE:g}; "
          f"{parity['predictions_differing']} predictions differ); nothing was written")
    manifest["parity"] = parity
    rundir.write_json(os.path.join(tmp, serving.MANIFEST), manifest)
    _publish(tmp, out, overwrite)
  finally:
    shutil.rmtree(tmp, ignore_errors=True)
  return manifest


def _publish(tmp: str, out: str, overwrite: bool):
  """Renames the finished export to `out` (an existing export there is replaced)."""
  _check_out(out, overwrite)  # still absent, or only an export of ours, after the parity check
  old = None
  if os.path.exists(out):
    old = f"{tmp}.old"
    os.rename(out, old)
  os.rename(tmp, out)
  if old:
    shutil.rmtree(old, ignore_errors=True)
