"""The row-sparse (lazy Adadelta) embedding update: equal to the dense one, chosen
only where exact, vmappable with per-member learning rates, checkpointable."""

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from conftest import tiny_config
from textclf_jax import config as config_lib
from textclf_jax.families import validate as validate_lib
from textclf_jax.run import compat
from textclf_jax.training import build, sparse_embed
from textclf_jax.runtime import parallel
from textclf_jax.run import layout as rundir
from textclf_jax.training import steps as steps_lib
from textclf_jax.training.group import compiled, stack
from textclf_jax.run.checkpoint import Checkpoints
from textclf_jax.data.batching import Encoded

VOCAB, USED, DIM = 120, 60, 4  # tokens come from ids < USED: rows >= USED are never touched


def _config(mode, preset="kim", **overrides):
  """Kim's recipe (Adadelta, learning rate 1), shrunk."""
  shape = {"filter_widths": (3,)} if preset == "kim" else {"lstm_hidden": 6, "clip_norm": 0.0}
  recipe = dict(embed_dim=DIM, embedding_update=mode, optimizer="adadelta", learning_rate=1.0)
  return tiny_config(preset, **{**recipe, **shape, **overrides})


def _setup(mode, steps=8, **overrides):
  """(Steps, state, device batches) for a synthetic task over VOCAB ids."""
  config = _config(mode, **overrides)
  mesh = parallel.make_mesh(num_devices=1)
  vectors = np.random.default_rng(1).normal(0, 0.3, (VOCAB, DIM)).astype(np.float32)
  step_fns, state = build.make_steps(config, VOCAB, 3, False, mesh, 100,
                                     None if config.embedding == "rand" else vectors)
  rng = np.random.default_rng(0)
  n, length = steps * 8, 16
  lengths = rng.integers(3, length + 1, n).astype(np.int32)
  # Zipf-like ids: frequent rows come back every step, rare ones after gaps.
  tokens = np.minimum(rng.zipf(1.3, (n, length)), USED - 1).astype(np.int32)
  tokens[np.arange(length)[None, :] >= lengths[:, None]] = 0
  data = Encoded(tokens, lengths, rng.integers(0, 3, n).astype(np.int32))
  batcher = build.make_batcher(config, mesh, batch_size=8)
  batches = [build.device_batch(batcher, data, np.arange(i, i + 8), mesh)
             for i in range(0, n, 8)]
  return step_fns, state, batches


def _train(step_fns, state, batches, plateau_at=None):
  metrics = steps_lib.init_metrics()
  for i, batch in enumerate(batches):
    if i == plateau_at:
      state = step_fns.set_plateau_scale(state, jnp.float32(0.5))
    state, metrics = step_fns.train_step(state, batch, metrics)
  return jax.device_get(state), jax.device_get(metrics)


@pytest.mark.parametrize("shape, num_rows, high", [
    ((4, 16), 100, 100), ((4, 16), 100, 3), ((2, 8), 10, 10), ((3, 5), 7, 1),
    ((32, 512), 1_074_791, 1_074_791), ((8, 64), 1_000, 40)])
def test_unique_rows_are_jnp_unique(shape, num_rows, high):
  """unique_rows (sort + binary search) gives jnp.unique's rows and inverse to the
  integer, also where the rows fill the table (num_rows < tokens) or repeat heavily."""
  tokens = np.random.default_rng(high).integers(0, high, shape).astype(np.int32)
  tokens[0, : shape[1] // 2] = 0  # padding / the repeats `distinct` zeroes
  rows, inverse = jax.jit(sparse_embed.unique_rows, static_argnums=1)(tokens, num_rows)
  flat = tokens.reshape(-1)
  want_rows, want_inverse = jnp.unique(flat, size=min(flat.size, num_rows),
                                       fill_value=num_rows, return_inverse=True)
  assert rows.dtype == want_rows.dtype and inverse.dtype == want_inverse.dtype
  np.testing.assert_array_equal(rows, want_rows)
  np.testing.assert_array_equal(inverse, np.asarray(want_inverse).reshape(shape))


@pytest.mark.parametrize("preset, embedding, schedule", [
    ("kim", "non-static", "constant"), ("kim", "rand", "plateau"),
    ("kim", "multichannel", "linear"), ("lstm", "non-static", "constant")])
def test_sparse_equals_dense(preset, embedding, schedule):
  """Every parameter after 8 steps: dense and sparse agree to float rounding; rows
  no batch touched are bit-identical to their initial values; frozen tables too."""
  overrides = dict(preset=preset, embedding=embedding, schedule=schedule)
  out = {}
  for mode in ("dense", "sparse"):
    step_fns, state, batches = _setup(mode, **overrides)
    assert (step_fns.table_update is not None) == (mode == "sparse")
    initial = jax.device_get(state)
    out[mode] = initial, *_train(step_fns, state, batches, 3 if schedule == "plateau" else None)
  (initial, dense, dense_m), (_, sparse, sparse_m) = out["dense"], out["sparse"]
  assert "embed_opt" in sparse and "embed_opt" not in dense
  np.testing.assert_allclose(sparse_m["loss_sum"], dense_m["loss_sum"], rtol=1e-5)
  for (path, a), b in zip(jax.tree_util.tree_leaves_with_path(dense["params"]),
                          jax.tree.leaves(sparse["params"])):
    np.testing.assert_allclose(b, a, rtol=1e-5, atol=1e-6, err_msg=jax.tree_util.keystr(path))
  table0 = initial["params"]["embed"]["trainable"][...]
  for state in (dense, sparse):
    table = state["params"]["embed"]["trainable"][...]
    np.testing.assert_array_equal(table[USED:], table0[USED:])
    assert not np.array_equal(table[1:USED], table0[1:USED])
    for a, b in zip(jax.tree.leaves(initial["frozen"]), jax.tree.leaves(state["frozen"])):
      np.testing.assert_array_equal(a, b)
  # the lazy accumulators, brought up to the last step, are the dense ones
  opt = sparse["embed_opt"]
  lag = 0.95 ** (int(sparse["step"]) - opt["synced"])[:, None]
  dense_adadelta = next(s for s in dense["opt_state"] if hasattr(s, "e_g"))
  for name in ("e_g", "e_x"):
    dense_acc = getattr(dense_adadelta, name)["embed"]["trainable"][...]
    np.testing.assert_allclose(opt[name] * lag, dense_acc, rtol=1e-5, atol=1e-9)


def test_auto_is_sparse_only_where_exact():
  mode = sparse_embed.embedding_update
  assert mode(_config("auto", embedding="rand")) == "sparse"
  assert mode(_config("auto", embedding="non-static", schedule="plateau")) == "sparse"
  assert mode(_config("auto", optimizer="adam")) == "dense"
  assert mode(_config("auto", clip_norm=1.0)) == "dense"
  assert mode(_config("auto", weight_decay=1e-4)) == "dense"
  assert mode(_config("auto", mesh_model=2)) == "dense"
  assert mode(_config("auto", embedding="static")) == "dense"
  # Long batches: exact, but slower than dense; `sparse` can still be forced.
  assert mode(_config("auto", batch_size=50, max_len=400)) == "dense"
  assert mode(_config("sparse", batch_size=50, max_len=400)) == "sparse"
  assert mode(_config("dense")) == "dense"
  # Forcing `sparse` where it is not exact, or an unknown mode, is a config error.
  with pytest.raises(config_lib.ConfigError, match="config.optimizer='adam'"):
    validate_lib.validate(_config("sparse", optimizer="adam"))
  with pytest.raises(config_lib.ConfigError, match="config.clip_norm"):
    validate_lib.validate(_config("sparse", clip_norm=3.0))
  with pytest.raises(config_lib.ConfigError, match="config.embedding_update='lazy'"):
    validate_lib.validate(_config("lazy"))


def test_runs_made_before_the_key_stay_dense(tmp_path):
  """A run directory whose config.json predates embedding_update resumes dense
  (its checkpoints hold the dense optimiser state)."""
  raw = json.loads(config_lib.to_json(_config("auto")))
  del raw["embedding_update"]
  (tmp_path / "config.json").write_text(json.dumps(raw))
  config = compat.read_config(str(tmp_path / "config.json"))
  assert config.embedding_update == "dense"
  assert sparse_embed.embedding_update(config) == "dense"
  # the sweep runner resumes with a config rebuilt from the preset: it keeps dense too
  kept = rundir.keep_saved_choices(_config("auto"), str(tmp_path))
  assert kept.embedding_update == "dense"
  assert rundir.keep_saved_choices(_config("auto"), str(tmp_path / "new")).embedding_update \
      == "auto"


def test_vmapped_members_with_learning_rates_match_dense():
  """A group's vmapped step, members at learning rates 1 and 0.3 (the second one
  idle for two steps): sparse equals dense per member."""
  out = {}
  for mode in ("dense", "sparse"):
    step_fns, state, batches = _setup(mode, steps=6, embedding="non-static", dropout=0.0,
                                      learning_rate=1.0)
    train_step, _ = compiled.compile_steps(step_fns)
    device = jax.local_devices()[0]
    stacked = stack.stack_states([state, state], device)
    metrics = jax.tree.map(lambda x: jnp.stack([x] * 2), steps_lib.init_metrics())
    values = steps_lib.MemberValues(lr_scale=jnp.asarray([1.0, 0.3], jnp.float32))
    for i, batch in enumerate(batches):
      both = jax.tree.map(lambda x: jnp.stack([x] * 2), batch)
      active = np.asarray([True, i not in (1, 2)])  # steps 1, 2: the masked step
      stacked, metrics = train_step(stacked, both, metrics, jnp.asarray(active), values,
                                    bool(active.all()))
    out[mode] = jax.device_get(stacked)
  assert list(out["sparse"]["step"]) == [6, 4]
  assert out["sparse"]["embed_opt"]["synced"].shape == (2, VOCAB)
  for (path, a), b in zip(jax.tree_util.tree_leaves_with_path(out["dense"]["params"]),
                          jax.tree.leaves(out["sparse"]["params"])):
    np.testing.assert_allclose(b, a, rtol=1e-5, atol=1e-6, err_msg=jax.tree_util.keystr(path))
  table = out["sparse"]["params"]["embed"]["trainable"][...]
  assert not np.allclose(table[0], table[1])  # the rates made a difference


def test_checkpoint_round_trip_continues_identically(tmp_path):
  step_fns, state, batches = _setup("sparse", steps=6, embedding="rand")
  metrics = steps_lib.init_metrics()
  for batch in batches[:3]:
    state, metrics = step_fns.train_step(state, batch, metrics)
  ckpt = Checkpoints(str(tmp_path))
  ckpt.save_latest(3, state, {"epoch": 0})
  restored, meta = ckpt.restore_latest(parallel.abstract_like(state))
  ckpt.close()
  assert meta == {"epoch": 0}
  for a, b in zip(jax.tree.leaves(state), jax.tree.leaves(restored)):
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
  for batch in batches[3:]:
    state, metrics = step_fns.train_step(state, batch, metrics)
    restored, metrics = step_fns.train_step(restored, batch, metrics)
  for a, b in zip(jax.tree.leaves(state), jax.tree.leaves(restored)):
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
