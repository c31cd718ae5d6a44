"""Readers for local files: JSON Lines (optionally .gz), CSV and TSV.

Each reader returns a `Split` of raw texts and labels. Multi-label rows carry a
list under `labels_key` (in CSV/TSV: labels joined by `|`). Every error names
the file and line.
"""

from __future__ import annotations

import csv
import dataclasses
import gzip
import io
import json
import os
from typing import Sequence

import numpy as np

from textclf_jax.data.errors import DataError

SUFFIXES = (".jsonl", ".jsonl.gz", ".json", ".json.gz", ".csv", ".csv.gz", ".tsv", ".tsv.gz")


@dataclasses.dataclass
class Split:
  """Raw examples of one split.

  texts: N strings. labels: N label strings (single-label) or N lists of label
  strings (multi-label). folds: int array [N] from a `fold` key, or None.
  """
  texts: list
  labels: list
  folds: np.ndarray | None = None

  def __len__(self):
    return len(self.texts)

  def subset(self, index: Sequence[int]) -> "Split":
    index = np.asarray(index, dtype=np.int64)
    return Split([self.texts[i] for i in index], [self.labels[i] for i in index],
                 None if self.folds is None else self.folds[index])


def _read_bytes(path: str) -> bytes:
  if not os.path.exists(path):
    raise DataError(f"{path}: file not found")
  if os.path.isdir(path):
    raise DataError(f"{path}: is a directory, expected a data file")
  with open(path, "rb") as f:
    data = f.read()
  if path.endswith(".gz"):
    try:
      data = gzip.decompress(data)
    except (OSError, EOFError) as e:
      raise DataError(f"{path}: not a valid gzip file ({e})") from None
  if not data.strip():
    raise DataError(f"{path}: file is empty")
  return data


def _decode(path: str, data: bytes) -> str:
  try:
    return data.decode("utf-8")
  except UnicodeDecodeError as e:
    line = data.count(b"\n", 0, e.start) + 1
    raise DataError(
        f"{path}:{line}: text is not valid UTF-8 (byte 0x{data[e.start]:02x}); "
        "re-encode the file as UTF-8") from None


def _label_of(path, line, row, label_key, labels_key, multi_label):
  if multi_label:
    if labels_key not in row:
      raise DataError(f"{path}:{line}: missing key {labels_key!r} (a list of labels)")
    value = row[labels_key]
    if isinstance(value, str):
      value = [v for v in value.split("|") if v]
    if not isinstance(value, list) or not all(isinstance(v, (str, int)) for v in value):
      raise DataError(f"{path}:{line}: {labels_key!r} must be a list of labels, got {value!r}")
    return [str(v) for v in value]
  if label_key not in row:
    raise DataError(f"{path}:{line}: missing key {label_key!r}")
  value = row[label_key]
  if value is None or (isinstance(value, str) and not value.strip()):
    raise DataError(f"{path}:{line}: empty value for {label_key!r}")
  if not isinstance(value, (str, int, bool)):
    raise DataError(f"{path}:{line}: {label_key!r} must be a string or integer, got {value!r}")
  return str(value)


def _make_split(path, rows, text_key, label_key, labels_key) -> Split:
  """rows: (line number, dict). Multi-label iff the first row has `labels_key`."""
  if not rows:
    raise DataError(f"{path}: no examples found")
  first_line, first = rows[0]
  multi_label = labels_key in first and label_key not in first
  texts, labels, folds = [], [], []
  for line, row in rows:
    if text_key not in row:
      raise DataError(f"{path}:{line}: missing key {text_key!r} "
                      f"(keys present: {', '.join(map(str, row.keys()))})")
    text = row[text_key]
    if not isinstance(text, str):
      raise DataError(f"{path}:{line}: {text_key!r} must be a string, got {type(text).__name__}")
    texts.append(text)
    labels.append(_label_of(path, line, row, label_key, labels_key, multi_label))
    folds.append(row.get("fold"))
  fold_array = None
  if all(f is not None for f in folds):
    try:
      fold_array = np.asarray([int(f) for f in folds], dtype=np.int64)
    except (TypeError, ValueError):
      raise DataError(f"{path}: 'fold' values must be integers") from None
  return Split(texts, labels, fold_array)


def read_jsonl(path: str, text_key="text", label_key="label", labels_key="labels") -> Split:
  text = _decode(path, _read_bytes(path))
  rows = []
  for number, line in enumerate(text.split("\n"), start=1):
    if not line.strip():
      continue
    try:
      row = json.loads(line)
    except json.JSONDecodeError as e:
      raise DataError(f"{path}:{number}: invalid JSON ({e.msg} at column {e.colno})") from None
    if not isinstance(row, dict):
      raise DataError(f"{path}:{number}: expected a JSON object, got {type(row).__name__}")
    rows.append((number, row))
  return _make_split(path, rows, text_key, label_key, labels_key)


def read_delimited(path: str, delimiter: str, text_key="text", label_key="label",
                   labels_key="labels") -> Split:
  """CSV/TSV with a header row naming the columns."""
  text = _decode(path, _read_bytes(path))
  reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, strict=True)
  try:
    header = next(reader)
    rows = []
    for values in reader:
      if not values or all(not v.strip() for v in values):
        continue
      if len(values) != len(header):
        raise DataError(f"{path}:{reader.line_num}: expected {len(header)} columns "
                        f"({delimiter!r}-separated, as in the header), got {len(values)}")
      rows.append((reader.line_num, dict(zip(header, values))))
  except csv.Error as e:
    raise DataError(f"{path}:{reader.line_num}: invalid CSV ({e})") from None
  return _make_split(path, rows, text_key, label_key, labels_key)


def read_file(path: str, text_key="text", label_key="label", labels_key="labels") -> Split:
  """Reads a data file by suffix: .jsonl/.json(.gz), .csv(.gz), .tsv(.gz)."""
  name = path[:-3] if path.endswith(".gz") else path
  keys = dict(text_key=text_key, label_key=label_key, labels_key=labels_key)
  if name.endswith((".jsonl", ".json")):
    return read_jsonl(path, **keys)
  if name.endswith(".csv"):
    return read_delimited(path, ",", **keys)
  if name.endswith(".tsv"):
    return read_delimited(path, "\t", **keys)
  raise DataError(f"{path}: unknown file type; expected one of {', '.join(SUFFIXES)}")


def find_split_file(directory: str, split: str) -> str | None:
  """The file for `split` in `directory` (e.g. train.jsonl, dev.csv), or None."""
  names = {"dev": ("dev", "validation", "valid", "val")}.get(split, (split,))
  for name in names:
    for suffix in SUFFIXES:
      path = os.path.join(directory, name + suffix)
      if os.path.isfile(path):
        return path
  return None
