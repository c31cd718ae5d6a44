"""training/encoder_cache.py: a frozen encoder's states of the training texts computed once
(config.encoder_cache), against the encoder run inside every step.

Tiny random BERTs (tests/tiny_hf.py) on the 3-topic toy task. Cached and uncached runs
differ only in where the encoder's states are computed (length-sorted eval batches
before training vs each training batch): equal up to float rounding, asserted within
rtol 1e-5 (measured: every logged loss bit-equal, for mean_last_2 and mix)."""

import json
import os

import numpy as np
import pytest

pytest.importorskip("safetensors", reason="needs the `encoders` extra (safetensors)")
pytest.importorskip("tokenizers", reason="needs the `encoders` extra (tokenizers)")

from conftest import (REPO, make_rows, run_on_eight_devices, run_textclf,  # noqa: E402
                      tiny_config, write_jsonl)
from tiny_hf import DIMS, numpy_model  # noqa: E402

RTOL, ATOL = 1e-5, 1e-6


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
  """(a tiny BERT folder, a 96/30/30 topic dataset)."""
  root = tmp_path_factory.mktemp("cache")
  numpy_model(str(root / "bert"), "bert")
  data = root / "data"
  data.mkdir()
  for split, n, seed in (("train", 96, 1), ("dev", 30, 2), ("test", 30, 3)):
    write_jsonl(data / f"{split}.jsonl", make_rows(n, seed))
  return str(root / "bert"), str(data)


def contextual(tiny, **overrides):
  folder, data = tiny
  return tiny_config("cnn", embedding="contextual", encoder="subword", encoder_path=folder,
                     dataset=data, max_len=24, num_epochs=2, log_every_steps=1,
                     **overrides)


def built_run(config, num_devices=0):
  from textclf_jax.data.pipeline import prepare
  from textclf_jax.runtime import parallel
  from textclf_jax.training import build, checks
  config = checks.resolve(config)
  prepared = prepare(config)
  mesh = parallel.make_mesh(1, num_devices=num_devices)
  return config, prepared, mesh, build.build(config, prepared, mesh)


def train_losses(workdir):
  with open(os.path.join(workdir, "metrics.jsonl"), encoding="utf-8") as f:
    return [e["train"]["loss"] for e in map(json.loads, f) if "train" in e]


def results(workdir):
  with open(os.path.join(workdir, "results.json"), encoding="utf-8") as f:
    return json.load(f)


@pytest.mark.parametrize("layers", ["last", "mix"])
def test_cache_holds_each_texts_states_back_to_back(tiny, layers):
  """values [sum T_i, H] (last) or [sum T_i, L + 1, H] (mix), offsets the lengths' running
  sum; text i's rows are the encoder's states of it alone; a batch gathers them padded
  with zeros."""
  import jax.numpy as jnp
  from textclf_jax.training import build, encoder_cache
  config, prepared, mesh, built = built_run(contextual(tiny, encoder_layers=layers))
  train = prepared.splits["train"]
  cache = encoder_cache.compute(built.steps, built.state, train, build.eval_batcher(config, mesh))
  hidden, states = DIMS["hidden_size"], DIMS["num_hidden_layers"] + 1
  assert cache.values.dtype == np.float32
  assert cache.values.shape == ((int(train.lengths.sum()), hidden) if layers == "last" else
                                (int(train.lengths.sum()), states, hidden))
  assert cache.offsets.tolist() == [0] + np.cumsum(train.lengths).tolist()
  model = built.steps.model(built.state["params"], built.state["frozen"])
  for i in (0, 7, 95):
    alone = np.asarray(model.embed.cached(jnp.asarray(train.ids[i:i + 1, :train.lengths[i]])))[0]
    np.testing.assert_allclose(cache.values[cache.offsets[i]: cache.offsets[i + 1]], alone,
                               rtol=0, atol=1e-5)
  if layers == "mix":  # its last hidden state is what `last` caches
    last = contextual(tiny, encoder_layers="last")
    _, _, _, other = built_run(last)
    again = encoder_cache.compute(other.steps, other.state, train, build.eval_batcher(last, mesh))
    np.testing.assert_array_equal(cache.values[:, -1], again.values)
  batch = build.make_batcher(config, mesh).make_batch(
      encoder_cache.attach(config, built.steps, built.state, train,
                           build.eval_batcher(config, mesh), announce=False),
      np.asarray([3, 0, 5]))
  rows, length = batch["tokens"].shape
  assert batch["states"].shape == (rows, length) + cache.values.shape[1:]
  for row, i in enumerate((3, 0, 5)):
    n = train.lengths[i]
    np.testing.assert_array_equal(batch["states"][row, :n],
                                  cache.values[cache.offsets[i]: cache.offsets[i + 1]])
    assert not batch["states"][row, n:].any()
  assert not batch["states"][3:].any()  # padding rows


def test_only_a_frozen_contextual_encoder_is_cached(tiny):
  from textclf_jax.training import encoder_cache
  assert encoder_cache.enabled(contextual(tiny))
  assert not encoder_cache.enabled(contextual(tiny, encoder_cache="off"))
  assert not encoder_cache.enabled(contextual(tiny, encoder_trainable=True))
  assert not encoder_cache.enabled(tiny_config("cnn"))
  assert encoder_cache.enabled(tiny_config("lstm", embedding="contextual"))
  assert not encoder_cache.enabled(tiny_config("fasttext", embedding="contextual"))
  from textclf_jax.run import compat
  assert compat.OLD_RUN_DEFAULTS["encoder_cache"] == "off"  # runs from before: uncached
  from textclf_jax.errors import ConfigError
  from textclf_jax.training import checks
  with pytest.raises(ConfigError, match="encoder_cache='always'"):
    checks.validate(contextual(tiny, encoder_cache="always"))


@pytest.mark.parametrize("layers", ["mean_last_2", "mix"])
def test_cached_training_matches_the_encoder_in_every_step(tiny, tmp_path, capsys, layers):
  """Every step's loss within rtol 1e-5 of the uncached run's; the same dev and test
  accuracy; the cache announced once, only when on; `textclf eval` of the cached run
  (the encoder run on the fly) matches its results.json."""
  from textclf_jax.training import loop
  runs = {}
  for mode in ("auto", "off"):
    config = contextual(tiny, encoder_layers=layers, encoder_cache=mode)
    runs[mode] = loop.train_and_evaluate(config, str(tmp_path / mode))
    out = capsys.readouterr().out
    assert out.count("[textclf] encoder cache: 96 train texts") == (mode == "auto"), out
  cached, plain = (train_losses(str(tmp_path / m)) for m in ("auto", "off"))
  assert len(cached) == len(plain) == 2 * 6
  np.testing.assert_allclose(cached, plain, rtol=RTOL, atol=ATOL)
  for split in ("dev", "test"):
    assert runs["auto"][split]["accuracy"] == runs["off"][split]["accuracy"]
  if layers == "mix":  # `eval` runs the encoder on the fly, and reproduces results.json
    code, out, err = run_textclf(["eval", str(tmp_path / "auto")], capsys)
    assert code == 0 and "matches results.json test metrics exactly: yes" in out + err


def test_resumed_cached_run_ends_bit_identical(tiny, tmp_path, monkeypatch, capsys):
  """Stopped right after its mid-epoch checkpoint (step 3 of 6) and resumed: the cache
  is computed again, and the run ends as the uninterrupted one, bit for bit (logged
  losses, results, dev/test probabilities)."""
  import orbax.checkpoint as ocp
  from textclf_jax.training import loop
  config = contextual(tiny, checkpoint_every_steps=3)
  plain = str(tmp_path / "plain")
  expected = loop.train_and_evaluate(config, plain)
  save = ocp.CheckpointManager.save

  def save_then_stop(self, step, *args, **kwargs):
    saved = save(self, step, *args, **kwargs)
    if step == 3 and os.path.basename(str(self.directory)) == "latest":
      raise KeyboardInterrupt("stopped after saving step 3")
    return saved

  resumed = str(tmp_path / "resumed")
  monkeypatch.setattr(ocp.CheckpointManager, "save", save_then_stop)
  with pytest.raises(KeyboardInterrupt):
    loop.train_and_evaluate(config, resumed)
  monkeypatch.undo()
  assert not os.path.exists(os.path.join(resumed, "results.json"))
  capsys.readouterr()
  got = loop.train_and_evaluate(config, resumed, resume=True)
  out = capsys.readouterr().out
  assert "resuming from step 3" in out and "[textclf] encoder cache:" in out
  assert train_losses(resumed) == train_losses(plain)
  for key in ("dev", "test", "best_step", "final_step"):
    assert got[key] == expected[key], key
  for name in ("dev_probs", "test_probs"):
    a, b = (np.load(os.path.join(w, "predictions", f"{name}.npy")) for w in (plain, resumed))
    np.testing.assert_array_equal(a, b)


EIGHT_DEVICES = """
import json, sys
sys.path.insert(0, {tests!r})
import jax, numpy as np
from test_encoder_cache import built_run, contextual
from textclf_jax.training import build, encoder_cache, evaluate, steps as steps_lib
out = {{}}
for devices, mode in ((1, "off"), (1, "auto"), (8, "auto")):
  config, prepared, mesh, built = built_run(contextual(({folder!r}, {data!r}),
                                            encoder_cache=mode, encoder_layers="mix",
                                            batch_size=12), devices)
  steps, state = built.steps, built.state
  batcher = build.make_batcher(config, mesh)
  train = encoder_cache.attach(config, steps, state, prepared.splits["train"],
                               build.eval_batcher(config, mesh), announce=False)
  losses = []
  for index in batcher.train_plan(train, seed=0, epoch=0)[:5]:
    batch = build.device_batch(batcher, train, index, mesh)
    state, m = steps.train_step(state, batch, steps_lib.init_metrics())
    m = jax.device_get(m)
    losses.append(float(m["loss_sum"] / m["count"]))
  probs = evaluate.predict_probs(steps, state, prepared.splits["dev"], batcher)
  run = {{"losses": losses, "probs_sum": float(probs.sum())}}
  if mode == "auto":
    run["cache_sum"] = float(np.abs(train.states.values).sum())
    run["states_shard"] = list(batch["states"].sharding.shard_shape(batch["states"].shape))
  out[f"{{devices}}:{{mode}}"] = run
print(json.dumps(out))
"""


def test_eight_simulated_devices_match_one(tiny, tmp_path):
  """A cached step sharded over 8 devices (a batch of 12 padded to 16 rows, 2 a device)
  gives one device's losses; both give the uncached run's, within rtol 1e-5."""
  folder, data = tiny
  script = EIGHT_DEVICES.format(tests=os.path.join(REPO, "tests"), folder=folder, data=data)
  out = run_on_eight_devices(script)
  one, eight, plain = out["1:auto"], out["8:auto"], out["1:off"]
  np.testing.assert_allclose(eight["losses"], one["losses"], rtol=1e-6, atol=1e-6)
  np.testing.assert_allclose(one["losses"], plain["losses"], rtol=RTOL, atol=ATOL)
  np.testing.assert_allclose(eight["cache_sum"], one["cache_sum"], rtol=1e-6)
  np.testing.assert_allclose(eight["probs_sum"], one["probs_sum"], rtol=1e-5)
  assert eight["states_shard"][0] == 2 and one["states_shard"][0] == 12
  assert eight["states_shard"][2:] == [DIMS["num_hidden_layers"] + 1, DIMS["hidden_size"]]


def test_group_members_share_the_cache(tiny, tmp_path, capsys):
  """Two seeds trained as one vmapped group compute the cache once and end as their
  solo cached runs (dev/test probabilities within 1e-5)."""
  from textclf_jax.training import loop
  from textclf_jax.training.group import train_many
  configs = [contextual(tiny, seed=s) for s in (0, 1)]
  members = [str(tmp_path / f"member_{s}") for s in (0, 1)]
  train_many(configs, members, str(tmp_path / "group"))
  assert capsys.readouterr().out.count("[textclf] encoder cache:") == 1
  for config, member in zip(configs, members):
    solo = str(tmp_path / f"solo_{config.seed}")
    loop.train_and_evaluate(config, solo)
    for name in ("dev_probs", "test_probs"):
      a, b = (np.load(os.path.join(w, "predictions", f"{name}.npy")) for w in (solo, member))
      np.testing.assert_allclose(b, a, rtol=0, atol=1e-5)
    assert results(member)["best_step"] == results(solo)["best_step"]
