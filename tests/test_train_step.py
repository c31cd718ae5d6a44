"""The jitted, sharded train step: what it updates, and device-count invariance."""

import os
import textwrap

import jax
import numpy as np
import pytest

from conftest import REPO, run_on_eight_devices, tiny_config
from textclf_jax.training import build
from textclf_jax.runtime import parallel
from textclf_jax.training import steps as steps_lib
from textclf_jax.data.pipeline import prepare


def _setup(topic_dir, tmp_path, preset, **overrides):
  vectors = tmp_path / "v.txt"
  vectors.write_text("goal 1 0 0 0\nchip 0 1 0 0\nbank 0 0 1 0\nthe 1 1 1 1\n")
  config = tiny_config(preset, dataset=topic_dir, embed_dim=4, vectors=str(vectors), **overrides)
  prepared = prepare(config)
  mesh = parallel.make_mesh(num_devices=1)
  steps, state = build.make_steps(config, prepared.encoder.vocab_size, len(prepared.label_names),
                                  prepared.multi_label, mesh, 100, prepared.vectors)
  batcher = build.make_batcher(config, mesh)
  data = prepared.splits["train"]
  batch = build.device_batch(batcher, data, np.arange(16), mesh)
  return steps, state, batch


@pytest.mark.parametrize("preset, embedding", [("cnn", "multichannel"), ("cnn", "static"),
                                               ("lstm", "non-static"), ("hybrid", "multichannel")])
def test_step_changes_every_trainable_param_and_no_frozen(topic_dir, tmp_path, preset,
                                                          embedding):
  steps, state, batch = _setup(topic_dir, tmp_path, preset, embedding=embedding, max_norm=0.0)
  before = jax.device_get(state)
  after, _ = steps.train_step(state, batch, steps_lib.init_metrics())
  after = jax.device_get(after)
  changed = jax.tree.map(lambda a, b: not np.array_equal(a, b), before["params"],
                         after["params"])
  unchanged = [path for path, c in jax.tree_util.tree_leaves_with_path(changed) if not c]
  assert not unchanged, f"parameters not updated: {unchanged}"
  frozen_same = jax.tree.map(np.array_equal, before["frozen"], after["frozen"])
  assert all(jax.tree.leaves(frozen_same))
  if embedding in ("static", "multichannel"):
    assert jax.tree.leaves(before["frozen"]), "static embeddings must live in `frozen`"
  assert int(after["step"]) == 1


def test_max_norm_caps_output_columns(topic_dir, tmp_path):
  steps, state, batch = _setup(topic_dir, tmp_path, "cnn", embedding="rand", max_norm=0.05,
                               learning_rate=1.0)
  after, _ = steps.train_step(state, batch, steps_lib.init_metrics())
  kernel = np.asarray(after["params"]["head"]["kernel"][...])
  assert np.linalg.norm(kernel, axis=0).max() <= 0.05 + 1e-6


def test_bfloat16_compute_keeps_float32_params_and_tracks_float32_loss(topic_dir, tmp_path):
  """bf16 forward/backward on float32 parameters: the loss stays near the float32
  loss, the parameters and the optimiser state stay float32, and every one moves."""
  losses = {}
  for dtype in ("float32", "bfloat16"):
    steps, state, batch = _setup(topic_dir, tmp_path, "cnn", embedding="multichannel",
                                 compute_dtype=dtype, dropout=0.0)
    before = jax.device_get(state["params"])
    state, metrics = steps.train_step(state, batch, steps_lib.init_metrics())
    m = jax.device_get(metrics)
    losses[dtype] = float(m["loss_sum"] / m["count"])
    leaves = jax.tree.leaves(state["params"]) + jax.tree.leaves(state["opt_state"])
    assert all(x.dtype != np.dtype("bfloat16") for x in leaves), dtype
    moved = jax.tree.map(lambda a, b: not np.array_equal(a, b), before,
                         jax.device_get(state["params"]))
    assert all(jax.tree.leaves(moved)), dtype
  assert np.isfinite(losses["bfloat16"])
  assert abs(losses["bfloat16"] - losses["float32"]) < 2e-2 * abs(losses["float32"]), losses
  assert losses["bfloat16"] != losses["float32"]  # the bf16 path really ran


def test_embedding_rows_are_padded_to_split_over_the_model_axis():
  assert parallel.table_rows(301, 1) == 301
  assert parallel.table_rows(301, 2) == 302
  assert parallel.table_rows(301, 4, multiple=8) == 304
  assert parallel.table_rows(8, 4, multiple=8) == 8


EIGHT_DEVICES = textwrap.dedent("""
    import json, sys
    import numpy as np
    import jax
    sys.path.insert(0, {tests!r})
    from conftest import tiny_config
    from textclf_jax.training import build, evaluate
    from textclf_jax.runtime import parallel
    from textclf_jax.training import steps as steps_lib
    from textclf_jax.data.pipeline import prepare
    assert jax.device_count() == 8, jax.devices()
    out = {{}}
    for devices, model_axis in ((1, 1), (8, 1), (8, 2), (8, 4)):
      config = tiny_config({preset!r}, dataset={data!r}, batch_size={batch_size}, dropout=0.0,
                           embedding="non-static", vectors={vectors!r}, embed_dim=4,
                           mesh_model=model_axis)
      prepared = prepare(config)
      mesh = parallel.make_mesh(model_axis, num_devices=devices)
      steps, state = build.make_steps(config, prepared.encoder.vocab_size,
                                      len(prepared.label_names), prepared.multi_label, mesh,
                                      100, prepared.vectors)
      batcher = build.make_batcher(config, mesh)
      data = prepared.splits["train"]
      losses, count = [], 0
      for index in batcher.train_plan(data, seed=0, epoch=0)[:5]:
        metrics = steps_lib.init_metrics()
        batch = build.device_batch(batcher, data, index, mesh)
        state, metrics = steps.train_step(state, batch, metrics)
        m = jax.device_get(metrics)
        losses.append(float(m["loss_sum"] / m["count"]))
        count += int(m["count"])
      probs = evaluate.predict_probs(steps, state, prepared.splits["test"], batcher)
      table = state["params"]["embed"]["trainable"][...]
      out[f"{{devices}}x{{model_axis}}"] = {{
          "losses": losses, "count": count, "probs_sum": float(probs.sum()), "rows": len(probs),
          "batch_shard": list(batch["tokens"].sharding.shard_shape(batch["tokens"].shape)),
          "batch_rows": batch["tokens"].shape[0],
          "table_shard": list(table.sharding.shard_shape(table.shape)),
          "table_rows": table.shape[0], "vocab": prepared.encoder.vocab_size}}
    print(json.dumps(out))
""")


@pytest.mark.parametrize("preset, batch_size", [("cnn", 50), ("lstm", 12), ("kim", 50)])
def test_eight_simulated_devices_match_one(topic_dir, tmp_path, preset, batch_size):
  """The same steps on 1 device, on 8 (data-parallel) and on 8 with the embedding
  table split over a `model` axis of 2 or 4 give the same losses. A batch of 50 (or
  12) is padded to 56 (16) rows on 8 devices, with weight-0 rows; every test example
  is scored once. `kim` (Adadelta) updates the table row-sparsely on 1x1 and 8x1 and
  densely with the table split (2, 4): the same losses too."""
  vectors = tmp_path / "v.txt"
  vectors.write_text("goal 1 0 0 0\nchip 0 1 0 0\nbank 0 0 1 0\nthe 1 1 1 1\n")
  script = EIGHT_DEVICES.format(tests=os.path.join(REPO, "tests"), preset=preset, data=topic_dir,
                                batch_size=batch_size, vectors=str(vectors))
  out = run_on_eight_devices(script)
  one = out["1x1"]
  assert one["count"] == 5 * batch_size  # padding rows carry no weight
  for layout in ("8x1", "8x2", "8x4"):
    got = out[layout]
    np.testing.assert_allclose(got["losses"], one["losses"], rtol=1e-6, atol=1e-6,
                               err_msg=layout)
    assert got["count"] == one["count"], layout
    assert got["rows"] == one["rows"] == 90, layout  # every test example scored once
    np.testing.assert_allclose(got["probs_sum"], one["probs_sum"], rtol=1e-5, err_msg=layout)
  padded = -(-batch_size // 8) * 8
  assert out["8x1"]["batch_rows"] == padded and out["8x1"]["batch_shard"][0] == padded // 8
  assert out["8x2"]["batch_rows"] == -(-batch_size // 4) * 4
  assert out["8x2"]["batch_shard"][0] == out["8x2"]["batch_rows"] // 4
  assert one["batch_shard"][0] == batch_size
  # the table's rows are split over the model axis (padded to divide evenly)
  assert out["8x1"]["table_shard"][0] == out["8x1"]["table_rows"] == one["vocab"]
  assert out["8x2"]["table_rows"] % 2 == 0 and out["8x2"]["table_shard"][0] * 2 == \
      out["8x2"]["table_rows"]
  assert out["8x4"]["table_shard"][0] * 4 == out["8x4"]["table_rows"] >= one["vocab"]
