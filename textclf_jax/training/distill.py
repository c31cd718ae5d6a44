"""Knowledge distillation's data side (Hinton et al. 2015; Tang et al. 2019): the soft
targets a distilled run trains on, and its training set with them.

    targets = distill.compute(config, raw, fold, teacher)   # before the run directory
    train = distill.training_set(prepared.splits["train"], targets, prepared.encoder, L)

The teachers (config.teacher: saved runs of any family) are loaded by the family layer
(families/distill.py: `Teacher`), which this layer must not import: it is handed in as
`teacher`, an object with `targets(texts, label_names, multi_label, splits)` -> float32
[N, C] in the student's label order, and `record()` -> [{run, ...}] for data.json. The
teachers see the student's training texts and its unlabelled texts
(config.distill_unlabelled), never a dev or test text or any label.
The targets are saved in the run directory (rundir.TEACHER_PROBS, .npy) when it starts:
`--resume` trains on exactly the same ones without loading a teacher.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from textclf_jax.data.batching import Encoded
from textclf_jax.data.readers import read_texts
from textclf_jax.data.splits import build_label_map, make_splits
from textclf_jax.errors import ConfigError, DataError
from textclf_jax.run import layout as rundir


@dataclasses.dataclass
class SoftTargets:
  """probs: [N + U, C] float32, the teachers' mean calibrated probabilities on the N
  training texts (in split order), then the U unlabelled texts; record: data.json's
  "distillation" (None when read back from a run directory: data.json has it)."""
  probs: np.ndarray
  unlabelled: list
  record: dict | None = None


def unlabelled_texts(config) -> list:
  path = config.get("distill_unlabelled", "")
  return read_texts(path, config.text_key) if path else []


def compute(config, raw, fold: int, teacher) -> SoftTargets:
  """The teachers' probabilities on the run's training texts (and unlabelled texts).
  Checks the dataset's labels as `splits.check_label_map` does, and the teachers'
  labels against them (the teacher's error names its run), before anything is written."""
  if teacher is None:
    raise ConfigError(f"config.teacher={config.teacher!r}: the teachers are loaded by the "
                      "neural family; train with `textclf train` or "
                      "families.registry.for_config(config).train(...)")
  splits = make_splits(raw, config, fold)
  label_names = build_label_map(raw, splits)
  unlabelled = unlabelled_texts(config)
  texts = list(splits["train"].texts) + unlabelled
  probs = np.asarray(teacher.targets(texts, label_names, raw.multi_label, splits), np.float32)
  if probs.shape != (len(texts), len(label_names)) or not np.all(np.isfinite(probs)):
    raise DataError(f"config.teacher={config.teacher!r}: expected finite probabilities "
                    f"[{len(texts)}, {len(label_names)}], got shape {probs.shape}")
  record = {"teachers": teacher.record(),
            "temperature": float(config.distill_temperature),
            "alpha": float(config.distill_alpha),
            "unlabelled": config.get("distill_unlabelled", ""),
            "num_unlabelled": len(unlabelled), "num_targets": len(texts)}
  return SoftTargets(probs, unlabelled, record)


def saved(config, workdir: str, num_train: int, num_labels: int) -> SoftTargets | None:
  """The targets a run saved when it started (None: none yet), with its unlabelled texts
  read again; a DataError when they no longer fit (the unlabelled file changed)."""
  probs = rundir.read_teacher_probs(workdir)
  if probs is None:
    return None
  unlabelled = unlabelled_texts(config)
  if probs.shape != (num_train + len(unlabelled), num_labels):
    raise DataError(
        f"{rundir.path(workdir, rundir.TEACHER_PROBS)}: shape {probs.shape}, but the run has "
        f"{num_train} training + {len(unlabelled)} unlabelled texts and {num_labels} labels "
        f"(did {config.get('distill_unlabelled', '') or 'the data'} change since it started?)")
  return SoftTargets(probs, unlabelled)


def save(workdir: str, targets: SoftTargets):
  rundir.write_array(rundir.path(workdir, rundir.TEACHER_PROBS), targets.probs)


def training_set(train: Encoded, targets: SoftTargets, encoder, max_len: int) -> Encoded:
  """`train` with the soft targets, then the unlabelled texts (encoded with the run's
  encoder, fitted on the training split; a placeholder label, labelled 0)."""
  n, extra = len(train), len(targets.unlabelled)
  if not extra:
    return dataclasses.replace(train, soft=targets.probs, labelled=np.ones(n, np.float32))
  ids, lengths = encoder.encode(targets.unlabelled, max_len)
  labels = np.zeros((extra,) + train.labels.shape[1:], train.labels.dtype)
  return Encoded(np.concatenate([train.ids, ids]), np.concatenate([train.lengths, lengths]),
                 np.concatenate([train.labels, labels]), targets.probs,
                 np.concatenate([np.ones(n, np.float32), np.zeros(extra, np.float32)]))
