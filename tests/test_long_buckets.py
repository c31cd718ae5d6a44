"""Long inputs: geometric length buckets, max_len from the data, exact masks and
every evaluation example exactly once at document lengths."""

import numpy as np
import pytest

from textclf_jax import config as config_lib
from textclf_jax.families import validate as validate_lib
from textclf_jax.training import checks
from textclf_jax.data.batching import (BUCKET_MULTIPLE, Batcher, Encoded, encode_tokens,
                                       padded_lengths)
from textclf_jax.data.pipeline import length_at_percentile, prepare
from textclf_jax.text.vocab import Vocab

from conftest import tiny_config, write_jsonl


def _documents(n=400, seed=0, longest=3000):
  """Token lists with a long tail (log-normal lengths, median ~150, a few ~longest)."""
  rng = np.random.default_rng(seed)
  lengths = np.clip(rng.lognormal(5.0, 0.9, n).astype(int), 1, longest)
  lengths[:3] = (longest, longest - 1, 1)
  return [[f"w{t}" for t in rng.integers(0, 60, l)] for l in lengths]


def test_growth_off_keeps_the_old_buckets():
  """bucket_growth 0 (every existing preset) gives exactly the list plus max_len."""
  default = (16, 32, 64, 128, 256, 512, 1024)
  assert padded_lengths(default, 400, 3).tolist() == [16, 32, 64, 128, 256, 400]
  assert padded_lengths(default, 400, 3, 0.0).tolist() == [16, 32, 64, 128, 256, 400]
  assert padded_lengths((8, 16, 24), 24, 5).tolist() == [8, 16, 24]


@pytest.mark.parametrize("growth", [1.1, 1.25, 1.5, 2.0])
def test_growth_ladder_spans_to_max_len_with_bounded_steps(growth):
  buckets = padded_lengths((16, 32), 2770, 5, growth)
  assert buckets[0] == 16 and buckets[-1] == 2770
  assert (np.diff(buckets) > 0).all()
  inner = buckets[1:-1]
  assert (inner % BUCKET_MULTIPLE == 0).all()
  # Each step is at most growth x (plus rounding up to the multiple).
  assert (buckets[1:] <= np.ceil(buckets[:-1] * growth) + 2 * BUCKET_MULTIPLE).all()
  assert len(padded_lengths((16,), 2770, 5, growth)) < np.log(2770 / 16) / np.log(growth) + 3


def test_fit_rounds_buckets_up_to_whole_windows():
  fit = lambda b: b if b <= 100 else 100 + -(-(b - 100) // 50) * 50  # chunk 100, stride 50
  buckets = padded_lengths((16,), 1000, 3, 1.25, fit)
  assert buckets[-1] == 1000
  assert all(b <= 100 or (b - 100) % 50 == 0 for b in buckets[:-1])


@pytest.mark.parametrize("cap", [400, 1000, 3000])
def test_long_eval_batches_keep_every_example_once_and_exact_masks(cap):
  docs = _documents()
  vocab = Vocab.build(docs, 1, 0)
  ids, lengths = encode_tokens(docs, vocab, cap)
  true = np.asarray([len(d) for d in docs])
  assert (lengths == np.minimum(true, cap)).all()
  data = Encoded(ids, lengths, np.zeros(len(docs), np.int32))
  batcher = Batcher(16, padded_lengths((16,), cap, 5, 1.25), pad_to_multiple=4)
  plan = batcher.eval_plan(data)
  order = np.concatenate(plan)
  assert sorted(order.tolist()) == list(range(len(docs)))  # each once: argsort restores order
  restored = np.empty(len(docs), np.int64)
  for index in plan:
    batch = batcher.make_batch(data, index)
    n = len(index)
    assert batch["tokens"].shape[1] in batcher.buckets
    assert batch["tokens"].shape[1] >= batch["lengths"][:n].max()
    mask = batch["tokens"] != 0  # ids of real tokens are >= 1 (UNK 1), padding 0
    assert (mask[:n].sum(axis=1) == np.minimum(true[index], cap)).all()
    assert (batch["lengths"][:n] == np.minimum(true[index], cap)).all()
    assert not mask[n:].any() and (batch["weights"][n:] == 0).all()
    assert (batch["tokens"][:n] == ids[index, :batch["tokens"].shape[1]]).all()
    restored[index] = index
  assert (restored == np.arange(len(docs))).all()


def test_growth_pads_less_than_doubling_on_long_documents():
  docs = _documents(2000, seed=1)
  vocab = Vocab.build(docs, 1, 0)
  data = Encoded(*encode_tokens(docs, vocab, 3000), np.zeros(len(docs), np.int32))
  doubling = Batcher(25, padded_lengths((16, 32, 64, 128, 256, 512, 1024), 3000, 5))
  ladder = Batcher(25, padded_lengths((16,), 3000, 5, 1.25))
  shares = [b.padding_fraction(data, b.train_plan(data, 0, 0)) for b in (doubling, ladder)]
  assert shares[1] < 0.75 * shares[0]


def test_length_at_percentile():
  docs = [["x"] * n for n in range(1, 101)]
  assert length_at_percentile(docs, 100) == 100
  assert length_at_percentile(docs, 50) == 51  # "higher": an actual length at or above
  assert length_at_percentile([[]], 100) == 1


def test_max_len_zero_is_resolved_from_the_training_texts(tmp_path):
  rows = [{"text": " ".join(["good"] * n), "label": "a" if n % 2 else "b"}
          for n in range(1, 201)]
  for name in ("train", "dev", "test"):
    write_jsonl(tmp_path / f"{name}.jsonl", rows if name == "train" else rows[:10] + [
        {"text": "bad " * 500, "label": "a"}])
  config = tiny_config("cnn", dataset=str(tmp_path), max_len=0)
  prepared = prepare(config)
  assert prepared.max_len == 200 and prepared.splits["train"].ids.shape[1] == 200
  assert prepared.splits["test"].lengths.max() == 200  # dev/test cut at the train length
  with config.unlocked():
    config.max_len_percentile = 90.0
  prepared = prepare(config)
  assert prepared.max_len == 181  # position 0.9 * 199 = 179.1 of the sorted lengths, up
  assert prepared.stats["truncated_train_fraction"] == pytest.approx(19 / 200)
  resolved = checks.resolve_max_len(config, prepared.max_len)
  assert resolved.max_len == 181 and config.max_len == 0
  assert checks.resolve_max_len(resolved, 7).max_len == 181  # an explicit max_len stays


@pytest.mark.parametrize("override, message", [
    ("max_len=-1", "max_len"), ("max_len_percentile=0", "max_len_percentile"),
    ("bucket_growth=1.0", "bucket_growth"), ("bucket_growth=0.5", "bucket_growth"),
    ("chunk_len=-3", "chunk_len"), ("chunk_pool=sum", "chunk_pool")])
def test_bad_values_are_named(override, message):
  config = config_lib.load_preset("cnn")
  with pytest.raises(config_lib.ConfigError, match=message):
    validate_lib.validate(config_lib.apply_overrides(config, [override]))
