"""Readers for local files: JSON Lines (optionally .gz), CSV and TSV.

Each reader returns a `Split` of raw texts and labels. Multi-label rows carry a
list under `labels_key` (in CSV/TSV: labels joined by `|`). Every error names
the file and line.
"""

from __future__ import annotations

import codecs
import csv
import dataclasses
import gzip
import io
import json
import math
import os
import re
import zlib
from typing import Sequence

import numpy as np

from textclf_jax.errors import DataError

SUFFIXES = (".jsonl", ".jsonl.gz", ".json", ".json.gz", ".csv", ".csv.gz", ".tsv", ".tsv.gz")


@dataclasses.dataclass
class Split:
  """Raw examples of one split.

  texts: N strings. labels: N label strings (single-label) or N lists of label
  strings (multi-label). folds: int array [N] from a `fold` key, or None. path, lines:
  the file the examples came from and each one's line [N] (errors name file:line), or
  "" and None (a built-in dataset).
  """
  texts: list
  labels: list
  folds: np.ndarray | None = None
  path: str = ""
  lines: np.ndarray | None = None

  def __len__(self):
    return len(self.texts)

  def where(self, i: int, name: str) -> str:
    """Where example i is: "FILE:LINE", else "NAME example I"."""
    if self.path and self.lines is not None:
      return f"{self.path}:{int(self.lines[i])}"
    return f"{name} example {i}"

  def subset(self, index: Sequence[int]) -> "Split":
    index = np.asarray(index, dtype=np.int64)
    return Split([self.texts[i] for i in index], [self.labels[i] for i in index],
                 None if self.folds is None else self.folds[index], self.path,
                 None if self.lines is None else self.lines[index])


def _read_bytes(path: str) -> bytes:
  if not os.path.exists(path):
    raise DataError(f"{path}: file not found")
  if os.path.isdir(path):
    raise DataError(f"{path}: is a directory, expected a data file")
  try:
    with open(path, "rb") as f:
      data = f.read()
  except OSError as e:
    raise DataError(f"{path}: cannot read ({e.strerror or e})") from None
  if path.endswith(".gz"):
    try:
      data = gzip.decompress(data)
    except (OSError, EOFError, zlib.error) as e:
      raise DataError(f"{path}: not a valid gzip file ({e})") from None
  if data.startswith(codecs.BOM_UTF8):  # as Excel and Notepad write UTF-8
    data = data[len(codecs.BOM_UTF8):]
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
  """rows: (line number, dict). Multi-label iff the first row has `labels_key`.

  The line number is the row's first line (a CSV row may span several).
  """
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
    fold_array = np.asarray([_fold_of(path, line, f) for (line, _), f in zip(rows, folds)],
                            dtype=np.int64)
  return Split(texts, labels, fold_array, path,
               np.asarray([line for line, _ in rows], dtype=np.int64))


def _fold_of(path, line, value) -> int:
  """A `fold` value as an int: an integer, an integral number or a string of one."""
  fold = None
  if isinstance(value, int) and not isinstance(value, bool):
    fold = value
  elif isinstance(value, float) and math.isfinite(value) and value.is_integer():
    fold = int(value)
  elif isinstance(value, str) and re.fullmatch(r"\s*[+-]?\d{1,18}\s*", value):
    fold = int(value)
  if fold is None or not -2**62 < fold < 2**62:
    raise DataError(f"{path}:{line}: 'fold' must be an integer fold index, got "
                    f"{repr(value)[:80]}")
  return fold


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
    except (ValueError, RecursionError) as e:  # an integer of 4300+ digits; deep nesting
      raise DataError(f"{path}:{number}: invalid JSON ({type(e).__name__}: {e})") from None
    if not isinstance(row, dict):
      raise DataError(f"{path}:{number}: expected a JSON object, got {type(row).__name__}")
    rows.append((number, row))
  return _make_split(path, rows, text_key, label_key, labels_key)


def read_delimited(path: str, delimiter: str, text_key="text", label_key="label",
                   labels_key="labels") -> Split:
  """CSV/TSV with a header row naming the columns.

  A quoted field may span lines; every error names the line where the row
  starts (an unclosed quote swallows the lines after it, and the csv module
  notices only where the swallowed text stops making sense).
  """
  text = _decode(path, _read_bytes(path))
  reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, strict=True)
  start, rows, header = 1, [], None  # start: the first line of the row being read
  try:
    for values in reader:
      if header is None:
        if not values or not any(v.strip() for v in values):
          raise DataError(f"{path}:{start}: expected a header row naming the columns "
                          f"(e.g. text{delimiter}label), got a blank line")
        header = values
      elif values and any(v.strip() for v in values):
        if len(values) != len(header):
          raise DataError(f"{path}:{start}: expected {len(header)} columns "
                          f"({delimiter!r}-separated, as in the header), got {len(values)}"
                          + _spanning(start, reader.line_num))
        rows.append((start, dict(zip(header, values))))
      start = reader.line_num + 1
  except csv.Error as e:
    raise DataError(f"{path}:{start}: invalid CSV ({e})"
                    + _spanning(start, reader.line_num)) from None
  return _make_split(path, rows, text_key, label_key, labels_key)


def _spanning(start: int, end: int) -> str:
  if end <= start:
    return ""
  return (f"; the row runs on to line {end} inside a quoted field: is a quote (\") on "
          f"line {start} unclosed?")


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


def read_texts(path: str, text_key: str = "text") -> list:
  """Unlabelled texts (a distilled run's config.distill_unlabelled): .jsonl[.gz], one
  JSON object a line with the text under `text_key` (or a JSON string); any other file,
  one text a line. Blank lines are skipped; a bad line is a DataError naming FILE:LINE."""
  lines = _decode(path, _read_bytes(path)).splitlines()
  jsonl = path.endswith((".jsonl", ".jsonl.gz"))
  texts = []
  for number, line in enumerate(lines, 1):
    if not line.strip():
      continue
    if not jsonl:
      texts.append(line)
      continue
    try:
      row = json.loads(line)
    except ValueError as e:
      raise DataError(f"{path}:{number}: invalid JSON ({e})") from None
    text = row.get(text_key) if isinstance(row, dict) else row
    if not isinstance(text, str):
      raise DataError(f"{path}:{number}: expected a JSON object with a string {text_key!r} "
                      f"(or a JSON string), got {line.strip()[:60]!r}")
    texts.append(text)
  if not texts:
    raise DataError(f"{path}: no texts found")
  return texts
