"""Turns a RawDataset into train/dev/test for one run, and builds the label map.

- Given train/dev/test are used as they are.
- No dev: a seeded, stratified `dev_fraction` of train.
- No test: k-fold cross-validation; fold k is the test set. Folds come from the
  rows' `fold` key when present, else a seeded stratified assignment.
- The built-in `bbc_news` (no splits at all) gets a seeded stratified
  train/dev/test split instead.
Split seeds are fixed (`split_seed`), independent of the training seed, so
seeds and variants are compared on the same examples.
"""

from __future__ import annotations

import collections

import numpy as np

from textclf_jax.errors import DataError
from textclf_jax.data.sources import BUILTIN, RawDataset

SPLIT_SEED = 12345


def _strata(labels) -> list:
  """The label to stratify on: itself, or a multi-label row's first label ("" if none)."""
  return [(l[0] if l else "") if isinstance(l, list) else l for l in labels]


def stratified_holdout(labels, fraction: float, seed: int) -> np.ndarray:
  """Boolean mask [N]: a seeded `fraction` of every class is held out."""
  rng = np.random.default_rng(seed)
  by_class = collections.defaultdict(list)
  for i, s in enumerate(_strata(labels)):
    by_class[s].append(i)
  held = np.zeros(len(labels), dtype=bool)
  for key in sorted(by_class, key=str):
    index = np.asarray(by_class[key])
    rng.shuffle(index)
    held[index[: int(round(fraction * len(index)))]] = True
  return held


def stratified_folds(labels, k: int, seed: int) -> np.ndarray:
  """Fold ids [N] in 0..k-1, each class spread evenly over the folds."""
  rng = np.random.default_rng(seed)
  by_class = collections.defaultdict(list)
  for i, s in enumerate(_strata(labels)):
    by_class[s].append(i)
  folds = np.zeros(len(labels), dtype=np.int64)
  offset = 0
  for key in sorted(by_class, key=str):
    index = np.asarray(by_class[key])
    rng.shuffle(index)
    folds[index] = (np.arange(len(index)) + offset) % k
    offset += len(index)
  return folds


def uses_cross_validation(raw: RawDataset) -> bool:
  return "test" not in raw.splits and raw.name not in BUILTIN


def fold_ids(raw: RawDataset, num_folds: int) -> np.ndarray:
  pool = raw.splits.get("all") or raw.splits["train"]
  if pool.folds is not None:
    return pool.folds
  return stratified_folds(pool.labels, num_folds, SPLIT_SEED)


def num_folds_of(raw: RawDataset, num_folds: int) -> int:
  return int(fold_ids(raw, num_folds).max()) + 1


def subsample_label(train, label: str, fraction: float, seed: int = SPLIT_SEED + 3):
  """Keeps a seeded round(fraction * count) (at least 1) of `label`'s examples.

  Returns (the smaller split, {label, fraction, kept, of}); order is preserved.
  """
  if not 0.0 < fraction <= 1.0:
    raise DataError(f"config.imbalance_fraction={fraction}: expected 0 < fraction <= 1")
  if train.labels and isinstance(train.labels[0], list):
    raise DataError("config.imbalance_label: single-label datasets only")
  index = np.flatnonzero(np.asarray([l == label for l in train.labels], dtype=bool))
  if len(index) == 0:
    known = ", ".join(sorted(set(map(str, train.labels)))[:20])
    raise DataError(f"config.imbalance_label={label!r}: no training example has this label "
                    f"(known: {known})")
  kept = max(1, int(round(fraction * len(index))))
  drop = np.random.default_rng(seed).permutation(index)[kept:]
  keep = np.setdiff1d(np.arange(len(train)), drop)
  info = {"label": label, "fraction": fraction, "kept": kept, "of": int(len(index)),
          "train_before": len(train), "train_after": int(len(keep))}
  return train.subset(keep), info


def make_splits(raw: RawDataset, config, fold: int = -1, stats: dict | None = None) -> dict:
  """Returns {'train', 'dev', 'test'} Splits for this run (fold k if CV).

  `stats`, when given, receives what was done to the training split (`imbalance`).
  """
  splits = dict(raw.splits)
  if uses_cross_validation(raw):
    pool = splits.pop("all", None) or splits.pop("train")
    folds = fold_ids(raw, config.num_folds)
    k = int(folds.max()) + 1
    if not 0 <= fold < k:
      raise DataError(f"{raw.name}: cross-validation fold {fold} out of range 0..{k - 1}")
    splits["test"] = pool.subset(np.flatnonzero(folds == fold))
    splits["train"] = pool.subset(np.flatnonzero(folds != fold))
  elif "all" in splits:
    pool = splits.pop("all")
    test = stratified_holdout(pool.labels, config.test_fraction, SPLIT_SEED)
    splits["test"] = pool.subset(np.flatnonzero(test))
    splits["train"] = pool.subset(np.flatnonzero(~test))
  if "dev" not in splits:
    train = splits["train"]
    dev = stratified_holdout(train.labels, config.dev_fraction, SPLIT_SEED + 1)
    splits["dev"] = train.subset(np.flatnonzero(dev))
    splits["train"] = train.subset(np.flatnonzero(~dev))
  train = splits["train"]
  if config.max_train_examples and config.max_train_examples < len(train):
    # A seeded stratified sample, not the head: files are often sorted by label.
    keep = stratified_holdout(train.labels, config.max_train_examples / len(train),
                              SPLIT_SEED + 2)
    splits["train"] = train.subset(np.flatnonzero(keep))
  if config.get("imbalance_label", ""):
    splits["train"], info = subsample_label(splits["train"], config.imbalance_label,
                                            config.imbalance_fraction)
    if stats is not None:
      stats["imbalance"] = info
  for name in ("train", "dev", "test"):
    if len(splits[name]) == 0:
      raise DataError(f"{raw.name}: the {name} split is empty")
  if stats is not None:
    stats["text_sha256"] = {name: texts_hash(splits[name].texts) for name in splits}
  return splits


def texts_hash(texts) -> str:
  """sha256 of a split's texts, in order (an ensemble's members must be scored on the
  same texts, not only the same label sequence)."""
  import hashlib
  digest = hashlib.sha256()
  for text in texts:
    encoded = text.encode("utf-8")
    digest.update(len(encoded).to_bytes(8, "little"))
    digest.update(encoded)
  return digest.hexdigest()


def check_label_map(raw: RawDataset, config, fold: int = -1):
  """`build_label_map`'s checks on this run's splits (a DataError naming FILE:LINE of a
  dev/test label training never saw), before a run directory is created."""
  build_label_map(raw, make_splits(raw, config, fold))


def build_label_map(raw: RawDataset, splits: dict) -> list:
  """Sorted label names seen in training; single-label dev/test labels must be among them."""
  train = splits["train"]
  if raw.multi_label:
    names = sorted({l for labels in train.labels for l in labels})
  else:
    names = sorted(set(train.labels))
    known = set(names)
    for split in ("dev", "test"):
      for i, label in enumerate(splits[split].labels):
        if label not in known:
          raise DataError(f"{splits[split].where(i, raw.name + ': ' + split)}: {split} label "
                          f"{label!r}, which the training split never saw (known: "
                          f"{', '.join(names[:20])})")
  if len(names) < 2 and not raw.multi_label:
    raise DataError(f"{raw.name}: training split has {len(names)} label(s); need at least 2")
  return names
