"""Chunk-and-pool (models/chunked.py): windows, masked pooling, equality with the plain
model when a text fits one window, and runs through the CLI paths (train, eval,
predict, a vmapped group)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from conftest import tiny_config, write_jsonl
from textclf_jax.training import build, loop as train
from textclf_jax.run import layout as rundir
from textclf_jax.serve import runs
from textclf_jax import config as config_lib
from textclf_jax.training.group import train_many
from textclf_jax.models import build_model, chunked
from textclf_jax.families import validate as validate_lib

C, S = 8, 4  # window and stride of the model tests


def _config(preset, pool, stride=0, **kw):
  return tiny_config(preset, chunk_len=C, chunk_stride=stride, chunk_pool=pool,
                     embed_dim=8, **kw)


def _pair(preset, pool, stride=0, **kw):
  """(plain model, chunked model) built from the same seed."""
  plain = build_model(tiny_config(preset, embed_dim=8, **kw), 30, 3, seed=0)
  chunky = build_model(_config(preset, pool, stride, **kw), 30, 3, seed=0)
  return plain, chunky


def _tokens(lengths, width, seed=0):
  rng = np.random.default_rng(seed)
  tokens = np.zeros((len(lengths), width), np.int32)
  for i, n in enumerate(lengths):
    tokens[i, :n] = rng.integers(2, 30, n)
  return jnp.asarray(tokens), jnp.asarray(lengths, jnp.int32)


@nnx.jit
def _logits(model, tokens, lengths):
  return model(tokens, lengths)


MODELS = [("cnn", dict(conv_backward="dense")), ("cnn", dict(conv_backward="sparse")),
          ("lstm", dict(bidirectional=False)), ("lstm", dict(bidirectional=True)),
          ("hybrid", {}), ("lstm", dict(bidirectional=True, lstm_pool="max"))]


@pytest.mark.parametrize("preset, kw, pool", [
    *[(*MODELS[1], pool) for pool in chunked.POOLS], *[(*MODELS[3], pool) for pool in chunked.POOLS],
    (*MODELS[0], "max"), (*MODELS[4], "max"), (*MODELS[5], "attention")])
def test_a_text_in_one_window_gives_the_plain_models_logits(preset, kw, pool):
  plain, chunky = _pair(preset, pool, S, **kw)
  own = nnx.state(plain, nnx.Param)
  shared = {k: v for k, v in nnx.to_flat_state(nnx.state(chunky, nnx.Param))
            if k[0] != "chunks"}
  assert dict(nnx.to_flat_state(own)).keys() == shared.keys()  # same params, same values
  for k, v in nnx.to_flat_state(own):
    np.testing.assert_array_equal(v[...], shared[k][...])
  tokens, lengths = _tokens([8, 3, 1, 6], C)
  # Padded to 7 windows (the texts' own is the first): the plain model's logits. (A batch
  # no longer than a window is read whole, by the plain model's own code.)
  wide = jnp.pad(tokens, ((0, 0), (0, 3 * C)))
  np.testing.assert_allclose(_logits(chunky, wide, lengths), _logits(plain, tokens, lengths),
                             atol=1e-6)


@pytest.mark.parametrize("preset, kw, pool, stride", [
    (*MODELS[1], "attention", S), (*MODELS[3], "max", 0)])
def test_empty_windows_are_masked(preset, kw, pool, stride):
  """More padding (more windows, all empty) changes no text's logits, nor its gradient."""
  _, model = _pair(preset, pool, stride, **kw)
  tokens, lengths = _tokens([21, 3, 13, 1, 30], 32)
  wide = jnp.pad(tokens, ((0, 0), (0, 3 * C + 5)))
  np.testing.assert_allclose(_logits(model, wide, lengths), _logits(model, tokens, lengths),
                             atol=1e-5)

  @nnx.jit
  def grads(m, t):
    return nnx.grad(lambda m: m(t, lengths).sum())(m)

  for a, b in zip(jax.tree.leaves(grads(model, tokens)), jax.tree.leaves(grads(model, wide))):
    np.testing.assert_allclose(a, b, atol=1e-5)


def test_windows_hold_the_right_tokens_and_lengths():
  x = jnp.arange(1, 24, dtype=jnp.float32)[None, :, None] * jnp.ones((2, 1, 1))  # [2, 23, 1]
  lengths = jnp.asarray([23, 9])
  for stride in (S, C):
    windows, window_lengths = chunked.to_windows(x, lengths, C, stride)
    count = chunked.num_windows(23, C, stride)
    assert windows.shape == (2, count, C, 1)
    for w in range(count):
      want = np.zeros(C)
      part = np.arange(1, 24)[w * stride: w * stride + C]
      want[:len(part)] = part
      np.testing.assert_array_equal(windows[0, w, :, 0], want)
      assert window_lengths[0, w] == min(max(23 - w * stride, 0), C)
      assert window_lengths[1, w] == min(max(9 - w * stride, 0), C)
    assert chunked.fit_length(23, C, stride) == C + (count - 1) * stride


@pytest.mark.parametrize("pool", ["max", "mean", "attention"])
def test_pooling_over_the_non_empty_windows(pool):
  """Against numpy, with an encoder that sums each window's values (F = 1)."""
  pooler = chunked.ChunkPool(1, C, S, pool, rngs=nnx.Rngs(0))
  rng = np.random.default_rng(1)
  lengths = np.asarray([30, 5, 12, 1])
  x = rng.normal(size=(4, 32, 1)).astype(np.float32)
  x[np.arange(32)[None, :] >= lengths[:, None]] = 0.0
  out = np.asarray(pooler(lambda x, l: x.sum(axis=1), jnp.asarray(x), jnp.asarray(lengths)))
  for b, n in enumerate(lengths):
    sums = np.asarray([x[b, w * S: w * S + C, 0].sum()
                       for w in range(chunked.num_windows(int(n), C, S))])
    if pool == "max":
      want = sums.max()
    elif pool == "mean":
      want = sums.mean()
    else:
      scores = np.tanh(sums[:, None] * np.asarray(pooler.attend.kernel[...])[0]
                       + np.asarray(pooler.attend.bias[...])) @ np.asarray(pooler.query[...])
      weights = np.exp(scores - scores.max())
      want = (weights / weights.sum()) @ sums
    np.testing.assert_allclose(out[b, 0], want, rtol=1e-5, atol=1e-6)


def test_buckets_are_whole_windows():
  config = tiny_config("lstm", max_len=100, chunk_len=16, chunk_stride=8, bucket_lengths=(8,),
                       bucket_growth=1.5)
  buckets = build.make_batcher(config, build.make_mesh(config)).buckets
  assert buckets[-1] == 100
  assert all(b <= 16 or (b - 16) % 8 == 0 for b in buckets[:-1]), buckets


def test_chunk_len_on_a_model_without_windows_is_an_error():
  config = tiny_config("cnn", chunk_len=8)
  with config.unlocked():
    config.model = "nope"
  # An unknown model is the config check's to name (models/ takes the config as valid).
  assert any(p.startswith("config.model='nope'") for p in validate_lib.problems(config))


@pytest.fixture
def long_dir(tmp_path):
  """The 3-topic task as documents of 4-120 tokens: the topic words sit anywhere."""
  from conftest import FILLER, TOPICS
  rng = np.random.default_rng(0)
  names = sorted(TOPICS)

  def rows(n):
    out = []
    for i in range(n):
      topic = names[i % 3]
      words = list(rng.choice(FILLER, rng.integers(4, 120)))
      for _ in range(3):
        words.insert(rng.integers(len(words) + 1), rng.choice(TOPICS[topic]))
      out.append({"text": " ".join(words), "label": topic})
    return out

  d = tmp_path / "long"
  d.mkdir()
  for name, n in (("train", 120), ("dev", 30), ("test", 30)):
    write_jsonl(d / f"{name}.jsonl", rows(n))
  return str(d)


def test_chunked_runs_as_a_vmapped_group_and_solo_then_eval_and_predict(long_dir, tmp_path):
  """max_len 0 (one padded length: few compilations) and attention over windows, through
  a vmapped group of two seeds, a solo run of one of them, eval and predict."""
  configs = [tiny_config("cnn", dataset=long_dir, seed=s, max_len=0, max_len_percentile=25.0,
                         bucket_lengths=(64,), bucket_growth=2.0, chunk_len=16,
                         chunk_pool="attention", num_epochs=1, filter_widths=(3,))
             for s in range(2)]
  members = [str(tmp_path / f"m{s}") for s in range(2)]
  results = train_many(configs, members, str(tmp_path / "group"))
  solo = train.train_and_evaluate(configs[1], str(tmp_path / "solo"))
  for split in ("dev", "test"):
    assert results[1][split]["accuracy"] == pytest.approx(solo[split]["accuracy"], abs=1e-6)
    assert results[1][split]["macro_f1"] == pytest.approx(solo[split]["macro_f1"], abs=1e-6)
  saved = config_lib.from_json(rundir.path(members[0], rundir.CONFIG))
  assert 32 < saved.max_len < 64 and saved.max_len == results[0]["data"]["max_len"]
  assert saved.chunk_len == 16 and saved.chunk_pool == "attention"
  assert runs.evaluate_run(members[0], "test")["matches_results"] is True
  (row,) = runs.predict_texts(members[0], ["the a of " * 60 + "goal match team"])
  assert row["label"] in ("money", "sport", "tech")


def test_lstm_max_pool_is_the_max_over_each_texts_steps():
  model = build_model(tiny_config("lstm", embed_dim=8, lstm_pool="max"), 30, 3, seed=0)
  tokens, lengths = _tokens([5, 1, 8], 8)
  x = model.embed(tokens)
  outputs, _ = model.encoder(x, lengths)
  want = np.stack([np.asarray(outputs[i, :n]).max(axis=0) for i, n in enumerate(lengths)])
  np.testing.assert_allclose(model.encode(x, lengths), want, atol=1e-6)
  assert (want < 0).any()  # states can be negative: padding's zeros must not win
