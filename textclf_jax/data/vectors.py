"""Pretrained word vectors: GloVe text, word2vec text/binary, fastText .vec.

`load_vectors(path, vocab, dim)` -> (matrix [V, dim] float32, found [V] bool).
Only rows for vocabulary words are kept; missing words get a seeded uniform
init U[-scale, scale] (Kim 2014 used 0.25); the padding row is zero.
"""

from __future__ import annotations

import gzip
import os

import numpy as np

from textclf_jax.errors import DataError
from textclf_jax.text.vocab import PAD_ID, Vocab

FORMATS = ("auto", "glove", "word2vec", "word2vec_bin", "fasttext")


def _open(path: str):
  if not os.path.isfile(path):
    raise DataError(f"{path}: vectors file not found")
  if path.endswith(".gz"):
    return gzip.open(path, "rb")
  return open(path, "rb")


def _header(line: bytes):
  parts = line.split()
  if len(parts) == 2 and all(p.isdigit() for p in parts):
    return int(parts[0]), int(parts[1])
  return None


def detect_format(path: str) -> str:
  name = path[:-3] if path.endswith(".gz") else path
  if name.endswith(".bin"):
    return "word2vec_bin"
  with _open(path) as f:
    first = f.readline()
  if not first.strip():
    raise DataError(f"{path}: vectors file is empty")
  return "word2vec" if _header(first) else "glove"


def _iter_text(path: str, has_header: bool):
  """Yields (line number, word, values bytes list, dim of the file)."""
  with _open(path) as f:
    dim = None
    for number, line in enumerate(f, start=1):
      if number == 1 and has_header:
        header = _header(line)
        if header is None:
          raise DataError(f"{path}:1: expected a 'COUNT DIM' header line")
        dim = header[1]
        continue
      parts = line.rstrip(b"\r\n").rstrip(b" ").split(b" ")
      if len(parts) < 2:
        if not line.strip():
          continue
        raise DataError(f"{path}:{number}: expected 'word v1 … vD', got {line[:60]!r}")
      if dim is None:
        dim = len(parts) - 1
      if len(parts) - 1 != dim:
        raise DataError(f"{path}:{number}: {len(parts) - 1} values, expected {dim} "
                        "(as on the first line)")
      yield number, parts[0], parts[1:], dim


def _iter_binary(path: str):
  with _open(path) as f:
    header = _header(f.readline())
    if header is None:
      raise DataError(f"{path}:1: expected a 'COUNT DIM' header (word2vec binary)")
    count, dim = header
    for number in range(count):
      word = bytearray()
      while True:
        ch = f.read(1)
        if not ch:
          raise DataError(f"{path}: truncated after {number} of {count} vectors")
        if ch == b" ":
          break
        if ch != b"\n":
          word += ch
      data = f.read(4 * dim)
      if len(data) != 4 * dim:
        raise DataError(f"{path}: truncated in vector {number + 1} of {count}")
      yield number + 2, bytes(word), np.frombuffer(data, dtype="<f4"), dim


def iter_vectors(path: str, fmt: str = "auto"):
  """Yields (where, word str, vector float32 [D] or raw parts, dim)."""
  if fmt not in FORMATS:
    raise DataError(f"vectors_format {fmt!r}: expected one of {', '.join(FORMATS)}")
  if fmt == "auto":
    fmt = detect_format(path)
  if fmt == "word2vec_bin":
    yield from _iter_binary(path)
  else:
    yield from _iter_text(path, has_header=fmt in ("word2vec", "fasttext"))


def vectors_dim(path: str, fmt: str = "auto") -> int:
  """The dimension of the vectors in `path` (read from its first vector)."""
  if not os.path.isfile(path):
    raise DataError(f"{path}: vectors file not found (config.vectors)")
  for _, _, _, dim in iter_vectors(path, fmt):
    return dim
  raise DataError(f"{path}: holds no vectors")


def _decode_word(path, where, word: bytes) -> str:
  try:
    return word.decode("utf-8")
  except UnicodeDecodeError:
    raise DataError(f"{path}:{where}: word is not valid UTF-8") from None


def vector_words(path: str, fmt: str = "auto") -> set:
  """Every word the file has (to extend a vocabulary with words that have vectors)."""
  return {_decode_word(path, n, w) for n, w, _, _ in iter_vectors(path, fmt)}


def load_vectors(path: str, vocab: Vocab, dim: int, fmt: str = "auto",
                 scale: float = 0.25, seed: int = 0):
  """Returns (matrix [len(vocab), dim] float32, found [len(vocab)] bool)."""
  rng = np.random.default_rng(seed)
  matrix = rng.uniform(-scale, scale, size=(len(vocab), dim)).astype(np.float32)
  matrix[PAD_ID] = 0.0
  found = np.zeros(len(vocab), dtype=bool)
  for where, word, values, file_dim in iter_vectors(path, fmt):
    if file_dim != dim:
      raise DataError(f"{path}: vectors have dimension {file_dim}, but the config says "
                      f"embed_dim={dim}; leave embed_dim unset (0: the file's dimension) "
                      f"or set --config.embed_dim={file_dim}")
    i = vocab.index.get(_decode_word(path, where, word))
    if i is None or found[i]:
      continue
    try:
      matrix[i] = np.asarray(values, dtype=np.float32) if not isinstance(
          values, np.ndarray) else values
    except ValueError:
      raise DataError(f"{path}:{where}: values of {word[:40]!r} are not numbers") from None
    found[i] = True
  return matrix, found
