"""The jitted, sharded train step: what it updates, and device-count invariance."""

import os
import subprocess
import sys
import textwrap

import jax
import numpy as np
import pytest

from conftest import REPO, tiny_config
from textclf_jax import parallel, train
from textclf_jax.data.pipeline import prepare


def _setup(topic_dir, tmp_path, preset, **overrides):
  vectors = tmp_path / "v.txt"
  vectors.write_text("goal 1 0 0 0\nchip 0 1 0 0\nbank 0 0 1 0\nthe 1 1 1 1\n")
  config = tiny_config(preset, dataset=topic_dir, embed_dim=4, vectors=str(vectors), **overrides)
  prepared = prepare(config)
  mesh = parallel.make_mesh(1)
  steps, state = train.make_steps(config, len(prepared.vocab), len(prepared.label_names),
                                  prepared.multi_label, mesh, 100, prepared.vectors)
  batcher = train.make_batcher(config, mesh)
  data = prepared.splits["train"]
  batch = parallel.put_batch(batcher.make_batch(data, np.arange(16)), mesh)
  return steps, state, batch


@pytest.mark.parametrize("preset, embedding", [("cnn", "multichannel"), ("cnn", "static"),
                                               ("lstm", "non-static"), ("hybrid", "multichannel")])
def test_step_changes_every_trainable_param_and_no_frozen(topic_dir, tmp_path, preset,
                                                          embedding):
  steps, state, batch = _setup(topic_dir, tmp_path, preset, embedding=embedding, max_norm=0.0)
  before = jax.device_get(state)
  after, _ = steps.train_step(state, batch, train.steps_lib.init_metrics())
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
  after, _ = steps.train_step(state, batch, train.steps_lib.init_metrics())
  kernel = np.asarray(after["params"]["head"]["kernel"][...])
  assert np.linalg.norm(kernel, axis=0).max() <= 0.05 + 1e-6


EIGHT_DEVICES = textwrap.dedent("""
    import json, sys
    import numpy as np
    import jax
    sys.path.insert(0, {tests!r})
    from conftest import tiny_config
    from textclf_jax import parallel, train
    from textclf_jax.data.pipeline import prepare
    assert jax.device_count() == 8, jax.devices()
    config = tiny_config({preset!r}, dataset={data!r}, batch_size=12, dropout=0.0)
    prepared = prepare(config)
    out = {{}}
    for n in (1, 8):
      mesh = parallel.make_mesh(n)
      steps, state = train.make_steps(config, len(prepared.vocab), len(prepared.label_names),
                                      prepared.multi_label, mesh, 100)
      batcher = train.make_batcher(config, mesh)
      data = prepared.splits["train"]
      losses = []
      for index in batcher.train_plan(data, seed=0, epoch=0)[:6]:
        metrics = train.steps_lib.init_metrics()
        batch = parallel.put_batch(batcher.make_batch(data, index), mesh)
        state, metrics = steps.train_step(state, batch, metrics)
        m = jax.device_get(metrics)
        losses.append(float(m["loss_sum"] / m["count"]))
      probs = train.predict_probs(steps, state, prepared.splits["test"], batcher)
      out[n] = {{"losses": losses, "probs_sum": float(probs.sum()), "rows": len(probs),
                 "shape": list(batch["tokens"].sharding.shard_shape(batch["tokens"].shape))}}
    print(json.dumps(out))
""")


@pytest.mark.parametrize("preset", ["cnn", "lstm"])
def test_eight_simulated_devices_match_one(topic_dir, preset):
  """Losses of the same steps on a 1-device and an 8-device mesh agree (batch 12 is
  padded to 16 rows on 8 devices, with weight-0 rows)."""
  script = EIGHT_DEVICES.format(tests=os.path.join(REPO, "tests"), preset=preset, data=topic_dir)
  env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=8",
             JAX_PLATFORMS="cpu")
  proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env,
                        cwd=REPO, timeout=600)
  assert proc.returncode == 0, proc.stderr[-3000:]
  import json
  out = json.loads(proc.stdout.strip().splitlines()[-1])
  one, eight = out["1"], out["8"]
  np.testing.assert_allclose(eight["losses"], one["losses"], rtol=1e-6, atol=1e-6)
  assert eight["rows"] == one["rows"] == 90  # every test example scored once
  np.testing.assert_allclose(eight["probs_sum"], one["probs_sum"], rtol=1e-5)
  assert eight["shape"][0] == 2 and one["shape"][0] == 12  # per-device rows
