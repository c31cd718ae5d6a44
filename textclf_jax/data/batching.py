"""Id arrays and batches: length-bucketed, padded to a few fixed lengths, masked.

Texts are tokenised and encoded once per run (`encode_tokens`). Training batches
follow a plan that is a function of (seed, epoch) only; evaluation batches see
every example exactly once — the last batch is padded with weight-0 rows.
"""

from __future__ import annotations

import dataclasses
import queue
import threading

import numpy as np

from textclf_jax.text.encoder import pad_flat
from textclf_jax.text.tokenize import Tokenizer
from textclf_jax.text.vocab import PAD_ID, Vocab

POOL_BATCHES = 50  # training batches sorted by length together, then shuffled


@dataclasses.dataclass
class Ragged:
  """Per-text float32 arrays of different lengths, back to back with no padding: text i's
  rows are values[offsets[i]: offsets[i + 1]], [T_i, ...] (a frozen encoder's cached
  token states, training/encoder_cache.py). values [sum T_i, ...], offsets [N + 1]."""
  values: np.ndarray
  offsets: np.ndarray

  @classmethod
  def zeros(cls, lengths: np.ndarray, shape: tuple) -> "Ragged":
    offsets = np.concatenate([[0], np.cumsum(lengths, dtype=np.int64)])
    return cls(np.zeros((int(offsets[-1]),) + tuple(shape), np.float32), offsets)

  def spans(self, index: np.ndarray, length: int) -> tuple:
    """(row, position, flat) int arrays: text index[row]'s first `length` rows, each at
    `position` in it and at `flat` in values."""
    index = np.asarray(index, np.int64)
    counts = np.minimum(self.offsets[index + 1] - self.offsets[index], length)
    row = np.repeat(np.arange(len(index)), counts)
    position = np.arange(int(counts.sum())) - np.repeat(np.cumsum(counts) - counts, counts)
    return row, position, np.repeat(self.offsets[index], counts) + position

  def padded(self, index: np.ndarray, length: int, rows: int) -> np.ndarray:
    """[rows, length, ...] float32: texts `index` in the first rows, zero elsewhere."""
    out = np.zeros((rows, length) + self.values.shape[1:], np.float32)
    row, position, flat = self.spans(index, length)
    out[row, position] = self.values[flat]
    return out

  def put(self, index: np.ndarray, padded: np.ndarray):
    """Writes texts `index`' rows from `padded` [len(index) or more, L, ...]."""
    row, position, flat = self.spans(index, padded.shape[1])
    self.values[flat] = padded[row, position]

  @property
  def nbytes(self) -> int:
    return self.values.nbytes + self.offsets.nbytes


@dataclasses.dataclass
class Encoded:
  """A split as arrays. ids [N, max_len] int32 (0-padded), lengths [N] int32,
  labels [N] int32 (single-label) or [N, C] float32 (multi-hot). A distilled run's
  training split also has soft [N, C] float32 (its teachers' probabilities) and
  labelled [N] float32 (1; 0 for an unlabelled text, whose label is a placeholder);
  states: None, or a frozen encoder's cached token states of each text (a Ragged of
  lengths[i] rows)."""
  ids: np.ndarray
  lengths: np.ndarray
  labels: np.ndarray
  soft: np.ndarray | None = None
  labelled: np.ndarray | None = None
  states: Ragged | None = None

  def __len__(self):
    return len(self.lengths)


def encode_labels(labels: list, label_names: list, multi_label: bool) -> np.ndarray:
  index = {n: i for i, n in enumerate(label_names)}
  if multi_label:
    out = np.zeros((len(labels), len(label_names)), dtype=np.float32)
    for row, names in enumerate(labels):
      for name in names:
        if name in index:  # labels never seen in training cannot be predicted
          out[row, index[name]] = 1.0
    return out
  return np.asarray([index[l] for l in labels], dtype=np.int32)


def encode_tokens(token_lists: list, vocab: Vocab, max_len: int):
  """Returns ids [N, max_len] int32 and lengths [N] int32 (at least 1)."""
  ids = np.zeros((len(token_lists), max_len), dtype=np.int32)
  lengths = np.zeros(len(token_lists), dtype=np.int32)
  for row, tokens in enumerate(token_lists):
    encoded = vocab.encode(tokens[:max_len])
    ids[row, : len(encoded)] = encoded
    lengths[row] = max(len(encoded), 1)  # an empty text is one padding token
  return ids, lengths


def encode_flat(flat: np.ndarray, lengths: np.ndarray, max_len: int):
  """`encode_tokens` of texts already encoded back to back: flat [sum(lengths)] ids, text
  i's being the lengths[i] after those of texts 0..i-1. Returns ids [N, max_len] int32
  and lengths [N] int32 (at least 1), as encode_tokens does (`encoder.pad_flat`, which
  every TextEncoder's `encode` uses)."""
  return pad_flat(flat, lengths, max_len)


def encode_texts(texts: list, tokenizer: Tokenizer, vocab: Vocab, max_len: int):
  """Tokenises and encodes raw texts (prediction): ids [N, max_len], lengths [N]."""
  return encode_tokens([tokenizer(t) for t in texts], vocab, max_len)


BUCKET_MULTIPLE = 8  # the lengths of a geometric ladder (bucket_growth) are multiples of this


def padded_lengths(buckets, max_len: int, min_len: int = 1, growth: float = 0.0,
                   fit=None) -> np.ndarray:
  """The fixed set of padded lengths: buckets below max_len, then max_len.

  growth > 1: the buckets are instead a geometric ladder from the smallest given
  one (at least min_len), x growth each, rounded up to multiples of
  BUCKET_MULTIPLE: less padding than doubling, more lengths to compile.
  fit: maps a length to the one the model wants instead (never below it;
  `models.fit_length`), applied to the buckets below max_len.
  """
  if growth > 1:
    first = max(min(buckets), min_len)
    buckets, k = {first}, 1
    while (b := round_up(int(np.ceil(first * growth ** k)), BUCKET_MULTIPLE)) < max_len:
      buckets.add(b)
      k += 1
  below = {b for b in buckets if min_len <= b < max_len}
  if fit is not None:
    below = {fit(b) for b in below}
  return np.asarray(sorted({b for b in below if b < max_len} | {max_len}))


def round_up(n: int, multiple: int) -> int:
  return -(-n // multiple) * multiple


@dataclasses.dataclass
class Batcher:
  """Cuts Encoded splits into padded, masked numpy batches.

  batch_size: examples per step (global). pad_to_multiple: the batch dimension
  is rounded up to this (the device count) with weight-0 rows. buckets: the
  allowed padded lengths (see `padded_lengths`).
  """
  batch_size: int
  buckets: np.ndarray
  pad_to_multiple: int = 1

  def num_rows(self, num_examples: int) -> int:
    """Rows of a batch holding `num_examples`: batch_size rounded up to the multiple."""
    return round_up(max(self.batch_size, num_examples), self.pad_to_multiple)

  def make_batch(self, data: Encoded, index: np.ndarray, part: slice | None = None) -> dict:
    """tokens [B, L] int32, lengths [B] int32, labels [B] or [B, C], weights [B] f32;
    with `data.soft` also soft [B, C] f32 (padding rows: uniform, so that every row's
    loss is finite) and labelled [B] f32 (0 on padding rows); with `data.states`, states
    [B, L, ...] f32 too.

    B = `num_rows(len(index))`; rows past the examples are padding with weight 0.
    `part`: build only these rows of the batch (a process's share); the padded
    length L still follows the whole batch, so every process agrees on it.
    """
    rows = self.num_rows(len(index))
    start, stop, _ = (part or slice(None)).indices(rows)
    longest = int(data.lengths[index].max())
    length = int(self.buckets[np.searchsorted(self.buckets, min(longest, self.buckets[-1]))])
    mine = index[start:stop]  # the examples among this part's rows
    n = len(mine)
    tokens = np.full((stop - start, length), PAD_ID, dtype=np.int32)
    tokens[:n] = data.ids[mine, :length]
    lengths = np.ones(stop - start, dtype=np.int32)
    lengths[:n] = data.lengths[mine]
    labels = np.zeros((stop - start,) + data.labels.shape[1:], dtype=data.labels.dtype)
    labels[:n] = data.labels[mine]
    weights = np.zeros(stop - start, dtype=np.float32)
    weights[:n] = 1.0
    batch = {"tokens": tokens, "lengths": lengths, "labels": labels, "weights": weights}
    if data.soft is not None:
      soft = np.full((stop - start, data.soft.shape[1]), 1.0 / data.soft.shape[1], np.float32)
      soft[:n] = data.soft[mine]
      labelled = np.zeros(stop - start, dtype=np.float32)
      labelled[:n] = 1.0 if data.labelled is None else data.labelled[mine]
      batch.update(soft=soft, labelled=labelled)
    if data.states is not None:  # [B, L, ...] cached encoder states, zero on padding
      batch["states"] = data.states.padded(mine, length, stop - start)
    return batch

  def train_plan(self, data: Encoded, seed: int, epoch: int) -> list:
    """Index arrays, one per batch: a function of (seed, epoch) only.

    Shuffle, sort pools of POOL_BATCHES batches by length (so batches hold
    similar lengths and pad little), cut batches, shuffle the batch order.
    """
    rng = np.random.default_rng([seed, epoch])
    order = rng.permutation(len(data))
    pool = self.batch_size * POOL_BATCHES
    batches = []
    for start in range(0, len(order), pool):
      chunk = order[start: start + pool]
      chunk = chunk[np.argsort(data.lengths[chunk], kind="stable")]
      batches += [chunk[i: i + self.batch_size] for i in range(0, len(chunk), self.batch_size)]
    return [batches[i] for i in rng.permutation(len(batches))]

  def eval_plan(self, data: Encoded) -> list:
    """Every example once, sorted by length; the last batch may be short."""
    order = np.argsort(data.lengths, kind="stable")
    return [order[i: i + self.batch_size] for i in range(0, len(order), self.batch_size)]

  def padding_fraction(self, data: Encoded, plan: list) -> float:
    """Fraction of token slots that are padding (rows of padding included)."""
    total = real = 0
    for index in plan:
      batch = self.make_batch(data, index)
      total += batch["tokens"].size
      real += int(data.lengths[index].sum())
    return 1.0 - real / max(total, 1)


def prefetch(iterator, size: int = 2):
  """Runs `iterator` in a background thread, `size` items ahead.

  When the consumer stops early (an error, early stopping), the thread is told to
  stop and is joined, so no thread is left inside JAX when the interpreter exits.
  """
  items: queue.Queue = queue.Queue(maxsize=size)
  done = object()
  errors = []
  stop = threading.Event()

  def put(item) -> bool:
    while not stop.is_set():
      try:
        items.put(item, timeout=0.1)
        return True
      except queue.Full:
        continue
    return False

  def worker():
    try:
      for item in iterator:
        if not put(item):
          return
    except BaseException as e:  # re-raised in the consumer
      errors.append(e)
    finally:
      put(done)

  thread = threading.Thread(target=worker, daemon=True)
  thread.start()
  try:
    while True:
      item = items.get()
      if item is done:
        break
      yield item
  finally:
    stop.set()
    thread.join()
  if errors:
    raise errors[0]
