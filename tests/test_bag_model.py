"""The fastText-style bag of n-grams (models/bag.py, preset fasttext): stable hashing,
masking, the forward pass against numpy, the NB ratios, exact row-sparse updates, and
a task only bigrams can solve."""

import json
import random
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from conftest import tiny_config, write_jsonl
from textclf_jax.models import bag, build_model, extra_rows

TOKENS = np.array([[5, 7, 9, 2, 0, 0], [3, 3, 3, 0, 0, 0], [70_000, 123_456, 1, 4, 8, 6]],
                  np.int32)
LENGTHS = np.array([4, 3, 6], np.int32)


def reference_hashes(row, n, buckets):
  """The n-gram buckets of one row with Python integers: h = h * P + a mod 2^32."""
  out = []
  for t in range(len(row) - n + 1):
    h = int(row[t])
    for k in range(1, n):
      h = (h * bag.PRIME + int(row[t + k])) % 2 ** 32
    out.append(h % buckets)
  return out


def test_ngram_hashes_are_fixed_integers_the_same_in_jax_numpy_and_another_process():
  buckets = 1_000_003
  expected = [[reference_hashes(row, n, buckets) for row in TOKENS] for n in (2, 3)]
  # Fixed values: a change to the hash would silently re-map every saved model's n-grams.
  assert expected[0][0] == [245_122, 343_170, 441_209, 98_046, 0]
  assert expected[0][2] == [931_704, 204_192, 49_027, 196_100, 392_190]
  assert expected[1][2] == [287_300, 541_434, 524_174, 795_661]
  for i, n in enumerate((2, 3)):
    assert np.asarray(bag.ngram_hashes(jnp.asarray(TOKENS), n, buckets)).tolist() == expected[i]
    assert bag.ngram_hashes(TOKENS, n, buckets, xp=np).tolist() == expected[i]
  code = ("import json, numpy as np, jax.numpy as jnp; from textclf_jax.models import bag; "
          f"t = np.array({TOKENS.tolist()}, np.int32); "
          f"print(json.dumps([np.asarray(bag.ngram_hashes(jnp.asarray(t), n, {buckets}))"
          ".tolist() for n in (2, 3)]))")
  out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                       env={"PYTHONHASHSEED": "123", "JAX_PLATFORMS": "cpu",
                            "PATH": "/usr/bin:/bin"})
  assert json.loads(out.stdout) == expected


def _model(word_ngrams=2, buckets=11, vocab=20, dim=4, num_classes=3, nb_prior=0.0,
           distinct_ngrams=False):
  config = tiny_config("fasttext", embed_dim=dim, word_ngrams=word_ngrams,
                       ngram_buckets=buckets, nb_prior=nb_prior,
                       distinct_ngrams=distinct_ngrams)
  return build_model(config, vocab + extra_rows(config), num_classes, seed=0), config


def test_table_ids_layout_and_padding_changes_nothing():
  model, _ = _model(word_ngrams=3)
  tokens = np.array([[4, 5, 6, 0, 0, 0, 0, 0]], np.int32)
  ids = np.asarray(model.table_ids(jnp.asarray(tokens), jnp.asarray([3])))
  offset = 20
  words, bigrams, trigrams = ids[0, :8], ids[0, 8:16], ids[0, 16:]
  assert words.tolist() == [4, 5, 6, 0, 0, 0, 0, 0]
  assert bigrams.tolist() == [offset + h for h in reference_hashes([4, 5, 6], 2, 11)] + [0] * 6
  assert trigrams.tolist() == [offset + reference_hashes([4, 5, 6], 3, 11)[0]] + [0] * 7
  # The same texts padded longer, or with junk past their lengths: the same logits.
  longer = np.concatenate([TOKENS % 20, np.zeros((3, 10), np.int32)], axis=1)
  junk = longer.copy()
  junk[np.arange(16)[None, :] >= LENGTHS[:, None]] = 13
  graphdef, state = nnx.split(model)
  logits = jax.jit(lambda t: nnx.merge(graphdef, state)(t, jnp.asarray(LENGTHS)))
  short = logits(TOKENS % 20)
  np.testing.assert_allclose(logits(longer), short, rtol=1e-6)
  np.testing.assert_allclose(logits(junk), short, rtol=1e-6)


@pytest.mark.parametrize("distinct_ngrams", [False, True])
def test_forward_pass_is_the_mean_of_table_rows_times_the_head(distinct_ngrams):
  model, _ = _model(nb_prior=0.7, distinct_ngrams=distinct_ngrams)
  nb = np.random.default_rng(0).normal(size=model.nb.shape).astype(np.float32)
  model.nb.set_value(jnp.asarray(nb))
  table = np.asarray(model.embed.trainable[...])
  kernel = np.asarray(model.head.kernel[...])
  tokens = np.array([[4, 5, 4, 5, 4, 0], [9, 1, 2, 0, 0, 0]], np.int32)
  lengths = np.array([5, 3], np.int32)
  expected = []
  for row, n in zip(tokens, lengths):
    rows = list(row[:n]) + [20 + h for h in reference_hashes(row[:n], 2, 11)]
    if distinct_ngrams:
      rows = sorted(set(rows))
    features = table[rows].mean(axis=0)
    expected.append(features @ kernel + 0.7 * nb[rows].mean(axis=0))
  logits = model(jnp.asarray(tokens), jnp.asarray(lengths))
  np.testing.assert_allclose(logits, np.stack(expected), rtol=1e-5, atol=1e-6)


def test_nb_ratios_match_a_hand_computation():
  # 3 texts over rows 1..4; labels 0, 1, 0 (one-hot); row 4 never seen.
  ids = np.array([[1, 2, 0], [2, 3, 0], [1, 0, 0]])
  labels = np.eye(2)[[0, 1, 0]]
  r = bag.nb_ratios(ids, labels, rows=5, alpha=1.0)
  seen = [1, 2, 3]
  p0 = np.array([0, 2, 1, 0, 0]) + 1.0  # texts of label 0 holding rows 0..4, + alpha
  q0 = np.array([0, 0, 1, 1, 0]) + 1.0  # the other texts
  expected = np.log(p0 / p0[seen].sum()) - np.log(q0 / q0[seen].sum())
  np.testing.assert_allclose(r[1:, 0], expected[1:], rtol=1e-6)
  np.testing.assert_allclose(r[1:, 1], -expected[1:], rtol=1e-6)  # two classes: symmetric
  assert r[0].tolist() == [0.0, 0.0]


@pytest.mark.parametrize("word_ngrams, multi_label", [(2, False), (3, True), (1, False)])
def test_nb_ratios_from_length_sorted_chunks_equal_the_full_width_ones(word_ngrams, multi_label):
  """fit_to_data's path (distinct_rows: texts by length, chunks cut to their longest
  text; nb_ratios_flat) gives the ratios of nb_ratios on the [N, K] matrix, bit for bit."""
  rng = np.random.default_rng(1)
  n, width, vocab, buckets = 300, 40, 50, 97
  lengths = rng.integers(1, width + 1, n).astype(np.int32)
  lengths[:3] = (1, width, 2)
  tokens = np.where(np.arange(width)[None, :] < lengths[:, None],
                    rng.integers(2, vocab, (n, width)), 0).astype(np.int32)
  tokens[7, :5] = 9  # repeats within a text count once
  labels = (rng.random((n, 3)) < 0.4).astype(np.float32) if multi_label else \
      np.eye(2, dtype=np.float32)[rng.integers(0, 2, n)]
  rows = vocab + buckets
  full = bag.distinct(bag.table_ids(tokens, lengths, word_ngrams, buckets, vocab, xp=np), xp=np)
  expected = bag.nb_ratios(full, labels, rows)
  held, text_of = bag.distinct_rows(tokens, lengths, word_ngrams, buckets, vocab, chunk=64)
  assert len(held) == np.count_nonzero(full)
  got = bag.nb_ratios_flat(held, text_of, labels, rows)
  assert got.dtype == expected.dtype and got.tobytes() == expected.tobytes()


@pytest.mark.parametrize("optimizer", ["adagrad", "sgd"])
def test_row_sparse_table_updates_equal_optax_dense_ones(optimizer):
  """Lazy Adagrad / SGD on the rows a batch reads = optax's update of the whole table
  (whose other rows get a zero gradient), step after step, learning rate decaying."""
  import optax
  from textclf_jax.training import optim, sparse_embed
  config = tiny_config("fasttext", optimizer=optimizer, momentum=0.0, learning_rate=0.5,
                       schedule="linear", adagrad_initial=0.0)
  lazy = sparse_embed.make_table_update(config, total_steps=6)
  assert type(lazy).__name__ == {"adagrad": "LazyAdagrad", "sgd": "LazySGD"}[optimizer]
  tx = optim.make_optimizer(config, total_steps=6)
  rng = np.random.default_rng(0)
  dense = sparse = jnp.asarray(rng.normal(size=(30, 3)), jnp.float32)
  dense_opt, sparse_opt = tx.init(dense), lazy.init(sparse)
  for step in range(6):
    rows = np.unique(rng.integers(0, 30, 8))
    grads = rng.normal(size=(len(rows), 3)).astype(np.float32)
    full = np.zeros((30, 3), np.float32)
    full[rows] = grads
    updates, dense_opt = tx.update(jnp.asarray(full), dense_opt, dense)
    dense = optax.apply_updates(dense, updates)
    padded = np.concatenate([rows, [30, 30]])  # ids >= V (unique_rows' fill) are ignored
    sparse, sparse_opt = lazy.update(sparse, sparse_opt, jnp.asarray(padded),
                                     jnp.asarray(np.concatenate([grads, np.ones((2, 3))])),
                                     jnp.asarray(step))
  np.testing.assert_allclose(sparse, dense, rtol=1e-5, atol=1e-6)


def _order_task(path, n, seed):
  """Each text holds words 'a' and 'b' once, among fillers: label pos if 'a b' is a
  bigram of it, neg if 'b a' is. The words alone say nothing about the label."""
  rng = random.Random(seed)
  rows = []
  for i in range(n):
    words = [rng.choice(["x", "y", "z", "w", "v"]) for _ in range(rng.randint(3, 8))]
    pair = ["a", "b"] if i % 2 else ["b", "a"]
    at = rng.randrange(len(words) + 1)
    rows.append({"text": " ".join(words[:at] + pair + words[at:]),
                 "label": "pos" if i % 2 else "neg"})
  return write_jsonl(path, rows)


@pytest.fixture(scope="module")
def order_dir(tmp_path_factory):
  d = tmp_path_factory.mktemp("order")
  for name, n, seed in (("train", 240, 1), ("dev", 60, 2), ("test", 200, 3)):
    _order_task(d / f"{name}.jsonl", n, seed)
  return str(d)


@pytest.mark.parametrize("word_ngrams", [2, 1])
def test_a_bigram_task_is_solved_with_bigrams_and_not_without(order_dir, tmp_path,
                                                              word_ngrams):
  from textclf_jax.training.loop import train_and_evaluate
  config = tiny_config("fasttext", dataset=order_dir, word_ngrams=word_ngrams,
                       ngram_buckets=1000, embed_dim=8,
                       learning_rate=0.5, num_epochs=3, max_len=16, bucket_lengths=(16,))
  results = train_and_evaluate(config, str(tmp_path / "run"))
  accuracy = results["test"]["accuracy"]
  if word_ngrams == 2:
    assert accuracy >= 0.95
  else:
    assert 0.35 <= accuracy <= 0.65  # chance: the bag of words is the same in both classes
