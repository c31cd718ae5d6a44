"""Serving an exported run without JAX: tokenise as training did, run the model file.

    from textclf_jax.serve import serving
    model = serving.load("exports/bbc")   # manifest.json, vocab.json, model.onnx
    model.predict(["some text", ...])      # rows as `textclf predict` prints them
    model.probabilities(texts)             # [N, C] float32, the run's temperature applied

An export directory (written by `textclf export`, see docs/export.md) holds
manifest.json (labels, thresholds, temperature, tokenizer settings, the model's
inputs, the parity check's figures, versions), vocab.json ({"words": [...]}, as in
the run) and the model: model.onnx, run with onnxruntime, or model.stablehlo, a
`jax.export` artefact run with jax (imported only when one is loaded). This module
imports numpy, onnxruntime and the repo's text encoder (text/encoder.py, pure Python):
never JAX for an ONNX export.
"""

from __future__ import annotations

import json
import os

import numpy as np

from textclf_jax.scoring import metrics
from textclf_jax.serve import textinput
from textclf_jax.errors import DataError
from textclf_jax.text.encoder import VOCAB_FILE, load_encoder

MANIFEST = "manifest.json"
VOCAB = VOCAB_FILE
FORMAT_VERSION = 1  # of the export directory's layout and manifest
BATCH_SIZE = 64


def read_manifest(directory: str) -> dict:
  file = os.path.join(directory, MANIFEST)
  try:
    with open(file, encoding="utf-8") as f:
      manifest = json.load(f)
  except FileNotFoundError:
    raise DataError(f"{directory}: not an export directory (no {MANIFEST}; made by "
                    "`textclf export RUN --out DIR`)") from None
  except ValueError as e:
    raise DataError(f"{file}: unreadable JSON ({e})") from None
  if not isinstance(manifest, dict) or manifest.get("format_version") != FORMAT_VERSION:
    raise DataError(f"{file}: expected format_version {FORMAT_VERSION}, found "
                    f"{manifest.get('format_version') if isinstance(manifest, dict) else None}")
  return manifest


def _onnx_runner(file: str, threads: int):
  import onnxruntime as ort
  options = ort.SessionOptions()
  options.log_severity_level = 3  # errors only (not its notes on unused constants)
  if threads:
    options.intra_op_num_threads = threads
  session = ort.InferenceSession(file, options, providers=["CPUExecutionProvider"])

  def run(tokens, lengths):
    return session.run(None, {"tokens": tokens, "lengths": lengths})[0]
  return run


def _stablehlo_runner(file: str, threads: int):
  import jax
  with open(file, "rb") as f:
    exported = jax.export.deserialize(bytearray(f.read()))

  def run(tokens, lengths):
    return np.asarray(exported.call(tokens, lengths))
  return run


RUNNERS = {"onnx": _onnx_runner, "stablehlo": _stablehlo_runner}


class Exported:
  """An export directory, loaded: `probabilities(texts)`, `predict(texts)`."""

  def __init__(self, directory: str, threads: int = 0):
    self.directory = directory
    self.manifest = m = read_manifest(directory)
    if m.get("format") not in RUNNERS:
      raise DataError(f"{os.path.join(directory, MANIFEST)}: key \"format\": expected one of "
                      f"{', '.join(RUNNERS)}, found {m.get('format')!r}")
    # the run's encoder, its settings from the manifest (exports before encoders: "words")
    self.encoder = load_encoder(directory, m["tokenizer"], m.get("encoder", "words"))
    if self.encoder.vocab_size != m["vocab_size"]:
      raise DataError(f"{os.path.join(directory, VOCAB)}: {self.encoder.vocab_size} words, but "
                      f"the manifest says vocab_size {m['vocab_size']}")
    self.labels = m["labels"]
    self.multi_label = m["multi_label"]
    self.thresholds = m["thresholds"]
    self.max_len = m["max_len"]
    self.min_length = m["min_length"]
    self.fixed_length = m["length"]  # None: the length axis is dynamic
    file = os.path.join(directory, m["model_file"])
    if not os.path.isfile(file):
      raise DataError(f"{file}: missing (the export's model file)")
    self._run = RUNNERS[m["format"]](file, threads)

  def encode(self, texts: list):
    """Raw texts -> ids [N, max_len] int32, lengths [N] int32, as `textclf predict` does."""
    return self.encoder.encode(list(texts), self.max_len)

  def padded_length(self, longest: int) -> int:
    """The length a batch whose longest text has `longest` tokens is padded to."""
    return self.fixed_length or max(longest, self.min_length)

  def probabilities_of_ids(self, ids, lengths, batch_size: int = BATCH_SIZE) -> np.ndarray:
    """ids [N, >= longest] int32, lengths [N] -> probabilities [N, C] float32, in order.

    Texts go in batches of similar length (sorted), each padded to its longest text.
    """
    ids, lengths = np.asarray(ids, np.int32), np.asarray(lengths, np.int32)
    out = np.zeros((len(lengths), len(self.labels)), np.float32)
    order = np.argsort(lengths, kind="stable")
    for start in range(0, len(order), batch_size):
      index = order[start:start + batch_size]
      length = self.padded_length(int(lengths[index].max()))
      tokens = np.full((len(index), length), self.encoder.pad_id, np.int32)
      width = min(length, ids.shape[1])
      tokens[:, :width] = ids[index, :width]
      out[index] = self._run(tokens, lengths[index])
    return out

  def probabilities(self, texts: list, batch_size: int = BATCH_SIZE) -> np.ndarray:
    """Raw texts -> probabilities [N, C] float32 (calibrated when the manifest says so)."""
    ids, lengths = self.encode(texts)
    return self.probabilities_of_ids(ids, lengths, batch_size)

  def decide(self, probs) -> np.ndarray:
    """probs [N, C] -> predicted label indices [N] (single-label) or 0/1 [N, C]."""
    probs = np.asarray(probs)
    if not self.multi_label:
      return probs.argmax(axis=1)
    return metrics.multi_label_predictions(probs, self.thresholds,
                                           self.manifest["multilabel_at_least_one"])

  def predict(self, texts: list, top_k: int = 5) -> list:
    """[{text, label | labels, probabilities: the top_k {label: p}}], as `textclf predict`:
    a blank text gets {text, error} and no label (nothing to classify)."""
    return textinput.rows_per_text(texts, lambda chosen: metrics.label_rows(
        chosen, self.probabilities(chosen), self.labels, self.multi_label, self.thresholds,
        self.manifest["multilabel_at_least_one"], top_k))


def load(directory: str, threads: int = 0) -> Exported:
  """An export directory; threads: onnxruntime's intra-op threads (0: its default)."""
  return Exported(directory, threads)
