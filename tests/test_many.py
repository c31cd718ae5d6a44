"""Many models in one program: members equal their solo runs (seeds, folds, early
stopping), their run directories evaluate like solo ones, groups resume, the runner's
vmap mode makes the same table."""

import json
import os
import subprocess
import sys
import textwrap

import jax
import jax.numpy as jnp
import numpy as np
import orbax.checkpoint as ocp
import pytest

from conftest import XLA_TEST_FLAGS, make_rows, rerun_at_default_xla, tiny_config, write_jsonl
from textclf_jax.training import build, evaluate, loop as train
from textclf_jax.runtime import parallel
from textclf_jax.run import layout as rundir
from textclf_jax.serve import runs
from textclf_jax.training import steps as steps_lib
from textclf_jax.training import group as group_lib
from textclf_jax.training.group import compiled, stack, train_many
from textclf_jax.data.batching import Encoded

TOL = 1e-5


def _config(**overrides):
  """tiny_config with one filter width and two padded lengths: few compilations."""
  return tiny_config(**{"filter_widths": (3,), "bucket_lengths": (12, 24),
                        "keep_checkpoints": "both", **overrides})


def _latest(workdir):
  """(state, meta) of a run's newest latest-checkpoint, as host arrays."""
  manager = ocp.CheckpointManager(os.path.join(workdir, "checkpoints", "latest"))
  restored = manager.restore(manager.latest_step(), args=ocp.args.Composite(
      state=ocp.args.StandardRestore(), meta=ocp.args.JsonRestore()))
  manager.close()
  return restored["state"], restored["meta"]


def _assert_same_run(group_dir, solo_dir, group_results, solo_results):
  for split in ("dev", "test"):
    for key, value in solo_results[split].items():
      if isinstance(value, float):
        assert group_results[split][key] == pytest.approx(value, abs=TOL), (split, key)
  for key in ("best_step", "final_step", "stopped_early"):
    assert group_results[key] == solo_results[key], key
  # A member is calibrated at its finish as a run alone is (calibration.json, results.json).
  assert group_results["calibration"]["temperature"] == pytest.approx(
      solo_results["calibration"]["temperature"], rel=1e-3)
  assert rundir.read_calibration(group_dir)["temperature"] == \
      group_results["calibration"]["temperature"]
  (a, meta_a), (b, meta_b) = _latest(group_dir), _latest(solo_dir)
  for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
    assert np.shape(x) == np.shape(y)
    np.testing.assert_allclose(np.asarray(x), np.asarray(y), atol=TOL, rtol=TOL)
  timing = ("train_seconds",)
  assert {k: v for k, v in meta_a.items() if k not in timing} == \
      {k: v for k, v in meta_b.items() if k not in timing}


@pytest.fixture
def fixed_dir(tmp_path):
  d = tmp_path / "fixed"
  d.mkdir()
  write_jsonl(d / "train.jsonl", make_rows(150, 1))
  write_jsonl(d / "test.jsonl", make_rows(45, 2))
  return str(d)


@pytest.fixture
def cv_dir(tmp_path):
  """Three folds of 20/30/50 rows: other vocabularies and train sizes per fold."""
  d = tmp_path / "cv"
  d.mkdir()
  rows = make_rows(100, 3)
  for i, row in enumerate(rows):
    row["fold"] = 0 if i < 20 else 1 if i < 50 else 2
  write_jsonl(d / "all.jsonl", rows)
  return str(d)


def test_seeds_match_solo_runs_and_resume(tmp_path, fixed_dir, monkeypatch):
  configs = [_config(dataset=fixed_dir, seed=s, num_epochs=2) for s in range(3)]
  members = [str(tmp_path / f"many_{s}") for s in range(3)]
  group = str(tmp_path / "group")
  # Interrupted in epoch 2's dev evaluation (after epoch 1's group checkpoint) ...
  calls, score = [], evaluate.score

  def dying_score(*args, **kwargs):
    calls.append(1)
    if len(calls) == 4:
      raise KeyboardInterrupt("killed")
    return score(*args, **kwargs)

  monkeypatch.setattr(evaluate, "score", dying_score)
  with pytest.raises(KeyboardInterrupt):
    train_many(configs, members, group)
  monkeypatch.setattr(evaluate, "score", score)
  # ... and resumed from that checkpoint.
  results = train_many(configs, members, group)
  for s, config in enumerate(configs):
    solo = train.train_and_evaluate(config, str(tmp_path / f"solo_{s}"))
    _assert_same_run(members[s], str(tmp_path / f"solo_{s}"), results[s], solo)
  first, second = (jax.tree.leaves(_latest(m)[0]["params"]) for m in members[:2])
  assert not np.allclose(first[0], second[0])  # the members are different models
  # The finished group keeps its member list, not its stacked checkpoint (each member
  # has its own); finished members are read back, not trained.
  assert os.path.isfile(rundir.path(group, rundir.GROUP))
  assert not os.path.exists(rundir.path(group, rundir.CHECKPOINTS))
  assert train_many(configs, members, group) == results


def test_cv_folds_match_solo_runs(tmp_path, cv_dir):
  configs = [_config(dataset=cv_dir, fold=k, num_epochs=2) for k in range(3)]
  members = [str(tmp_path / f"fold_{k}") for k in range(3)]
  results = train_many(configs, members, str(tmp_path / "group"))
  vocab_sizes = {r["data"]["vocab_size"] for r in results}
  train_sizes = {r["data"]["num_train"] for r in results}
  assert len(vocab_sizes) > 1 and len(train_sizes) == 3
  for k, config in enumerate(configs):
    solo = train.train_and_evaluate(config, str(tmp_path / f"solo_{k}"), fold=k)
    _assert_same_run(members[k], str(tmp_path / f"solo_{k}"), results[k], solo)
  # (d) a member's directory is a normal run: eval reproduces results.json exactly.
  for split in ("test", "dev"):
    assert runs.evaluate_run(members[1], split)["matches_results"] is True
  (row,) = runs.predict_texts(members[0], ["goal match team"])
  assert row["label"] in ("money", "sport", "tech")


def test_early_stopping_of_one_member_leaves_others_alone(tmp_path, fixed_dir):
  # Learning rate 0 never improves on dev: that member stops after 2 epochs.
  settings = [(0, 5e-3), (0, 0.0), (1, 5e-3)]
  configs = [_config(dataset=fixed_dir, seed=s, learning_rate=lr, num_epochs=4,
                         early_stopping_patience=1) for s, lr in settings]
  members = [str(tmp_path / f"many_{i}") for i in range(3)]
  results = train_many(configs, members, str(tmp_path / "group"))
  assert results[1]["stopped_early"] and results[1]["best_step"] == results[1]["final_step"] / 2
  assert results[1]["final_step"] < max(r["final_step"] for r in (results[0], results[2]))
  for i, config in enumerate(configs):
    solo = train.train_and_evaluate(config, str(tmp_path / f"solo_{i}"))
    _assert_same_run(members[i], str(tmp_path / f"solo_{i}"), results[i], solo)


@pytest.mark.parametrize("preset, overrides", [
    ("cnn", dict(optimizer="adam", learning_rate=3e-3, max_norm=3.0)),  # dense table update
    ("kim", dict(embedding="non-static", embedding_update="sparse"))])  # lazy Adadelta rows
def test_group_steps_equal_solo_steps_bit_for_bit(preset, overrides, request):
  """With the sparse conv backward pass, a member of a vmapped group ends in exactly
  its solo run's state, though the group pads its batches to the other member's
  length and runs it idle for a step: same dropout keys, gradients and optimiser
  arithmetic (the update runs per member, `member_axis.per_member`). At XLA's default
  optimisation level, the one users compile at (at level 0 Adadelta's accumulators
  differ in the last bit)."""
  if rerun_at_default_xla(request):
    return
  vocab, steps = 50, 4
  mesh = parallel.make_mesh(num_devices=1)
  vectors = np.random.default_rng(1).normal(0, 0.3, (vocab, 8)).astype(np.float32)
  rng = np.random.default_rng(0)
  solo_states, batches = [], []
  for seed, (shortest, longest) in enumerate([(3, 12), (13, 24)]):  # buckets 12 and 24
    config = tiny_config(preset, seed=seed, embed_dim=8, filter_widths=(3, 4),
                         conv_backward="sparse", bucket_lengths=(12, 24), **overrides)
    step_fns, state = build.make_steps(config, vocab, 3, False, mesh, 100, vectors)
    lengths = rng.integers(shortest, longest + 1, 8 * steps).astype(np.int32)
    tokens = rng.integers(2, vocab, (8 * steps, 24)).astype(np.int32)
    tokens[np.arange(24)[None, :] >= lengths[:, None]] = 0
    data = Encoded(tokens, lengths, rng.integers(0, 3, 8 * steps).astype(np.int32))
    batcher = build.make_batcher(config, mesh, batch_size=8)
    batches.append([batcher.make_batch(data, np.arange(i, i + 8)) for i in range(0, 8 * steps, 8)])
    solo_states.append(state)
  idle = {(1, 2)}  # (member, step): member 1 has no batch at step 2
  train_step, _ = compiled.compile_steps(step_fns)
  device = jax.local_devices()[0]
  stacked = stack.stack_states(solo_states, device)
  metrics = jax.tree.map(lambda x: jnp.stack([x] * 2), steps_lib.init_metrics())
  for i in range(steps):
    parts = [None if (k, i) in idle else batches[k][i] for k in range(2)]
    active = np.asarray([p is not None for p in parts])
    batch = jax.device_put(stack.stack_batches(parts, (), np.int32), device)
    stacked, metrics = train_step(stacked, batch, metrics, jnp.asarray(active), steps_lib.SOLO,
                                  bool(active.all()))
  assert batch["tokens"].shape == (2, 8, 24)  # member 0's [8, 12] batches were padded
  stacked = jax.device_get(stacked)
  for k, state in enumerate(solo_states):
    metrics = steps_lib.init_metrics()
    for i in range(steps):
      if (k, i) not in idle:
        state, metrics = step_fns.train_step(
            state, parallel.put_batch(batches[k][i], mesh, 8), metrics)
    for (path, a), b in zip(jax.tree_util.tree_leaves_with_path(jax.device_get(state)),
                            jax.tree.leaves(stacked)):
      np.testing.assert_array_equal(np.asarray(b)[k], np.asarray(a),
                                    err_msg=f"member {k} {jax.tree_util.keystr(path)}")


GROUP_ON_DEVICES = textwrap.dedent("""
    import json, sys
    sys.path.insert(0, {tests!r})
    import jax
    from conftest import tiny_config
    from textclf_jax.training.group import train_many
    configs = [tiny_config(dataset={data!r}, seed=s, num_epochs=2, filter_widths=(3,),
                           bucket_lengths=(12, 24), conv_backward="sparse") for s in range(2)]
    results = train_many(configs, [{root!r} + f"/m{{s}}" for s in range(2)], {root!r} + "/g")
    print(json.dumps({{"devices": jax.local_device_count(),
                      "results": [{{k: r[k] for k in ("dev", "test", "best_step")}}
                                  for r in results]}}))
""")


def test_members_split_over_two_devices_match_one_device(tmp_path, fixed_dir):
  """Two simulated devices hold one member each (a GPU host's layout): the members
  end with exactly the metrics of the same group on one device."""
  out = {}
  for devices in (1, 2):
    script = GROUP_ON_DEVICES.format(tests=os.path.dirname(os.path.abspath(__file__)),
                                     data=fixed_dir, root=str(tmp_path / f"on_{devices}"))
    env = dict(os.environ, JAX_PLATFORMS="cpu",
               XLA_FLAGS=f"--xla_force_host_platform_device_count={devices} {XLA_TEST_FLAGS}")
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out[devices] = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out[devices]["devices"] == devices
    assert ("NamedSharding" in proc.stdout) == (devices == 2)  # "members on ..."
  assert out[2]["results"] == out[1]["results"]


def test_dropout_rates_and_class_weights_vary_within_a_group(tmp_path, fixed_dir):
  """A grid over dropout rates and loss weights is one program: each member's own
  keep probability and class weights enter the step traced, and every member ends
  exactly as its solo run (sparse conv backward pass: no padding rounding)."""
  settings = [(0.5, "none"), (0.2, "1,2,3"), (0.0, "balanced")]
  configs = [_config(dataset=fixed_dir, dropout=d, class_weights=w, num_epochs=2,
                     conv_backward="sparse") for d, w in settings]
  members = [str(tmp_path / f"many_{i}") for i in range(3)]
  results = train_many(configs, members, str(tmp_path / "group"))
  for i, config in enumerate(configs):
    solo = train.train_and_evaluate(config, str(tmp_path / f"solo_{i}"))
    _assert_same_run(members[i], str(tmp_path / f"solo_{i}"), results[i], solo)
    assert results[i]["test"] == solo["test"]
  params = [jax.tree.leaves(_latest(m)[0]["params"]) for m in members]
  assert not np.allclose(params[0][0], params[1][0])
  bad = [_config(dataset=fixed_dir, dropout=d) for d in (0.5, 1.0)]
  with pytest.raises(ValueError, match="dropout=1.0"):
    train_many(bad, [str(tmp_path / "bad_0"), str(tmp_path / "bad_1")],
                    str(tmp_path / "bad_group"))
  assert not os.path.exists(tmp_path / "bad_0") and not os.path.exists(tmp_path / "bad_group")


def test_configs_differing_in_other_keys_raise(tmp_path, fixed_dir):
  configs = [_config(dataset=fixed_dir), _config(dataset=fixed_dir, num_filters=4)]
  with pytest.raises(ValueError, match="num_filters"):
    train_many(configs, [str(tmp_path / "a"), str(tmp_path / "b")], str(tmp_path / "g"))
  configs = [_config(dataset=fixed_dir), _config(dataset=fixed_dir, eval_every_steps=5)]
  with pytest.raises(ValueError, match="eval_every_steps"):
    train_many(configs, [str(tmp_path / "a"), str(tmp_path / "b")], str(tmp_path / "g"))
  assert not os.path.exists(tmp_path / "a") and not os.path.exists(tmp_path / "g")


def test_runner_vmap_makes_the_same_table(tmp_path, monkeypatch):
  from experiments import runner
  from test_runner import _experiment
  exp = _experiment(tmp_path)
  only = dict(only_datasets=["cv"], only_variants=["w3"], max_units=2)
  solo = runner.run_experiment(exp, str(tmp_path / "solo"), **only)
  grouped = runner.run_experiment(exp, str(tmp_path / "many"), vmap=True, **only)
  assert grouped["table"] == solo["table"]
  assert [(r["dataset"], r["unit"]) for r in grouped["rows"]] == \
      [(r["dataset"], r["unit"]) for r in solo["rows"]]
  for a, b in zip(grouped["rows"], solo["rows"]):
    assert a["accuracy"] == pytest.approx(b["accuracy"], abs=TOL)
  for name in ("results.csv", "table.md", "plot.png"):
    assert os.path.getsize(tmp_path / "many" / name) > 0
  # Finished cells are read back: nothing is trained again.
  calls = []
  monkeypatch.setattr(group_lib, "train_many", lambda *a, **k: calls.append(a))
  again = runner.run_experiment(exp, str(tmp_path / "many"), vmap=True, **only)
  assert calls == [] and again["table"] == grouped["table"]


def test_runner_vmap_groups_variants_that_differ_in_dropout(tmp_path, capsys):
  """Variants that differ only in dropout (a regularisation grid) and their seeds
  are one program; the table equals the solo sweep's to the bit."""
  from experiments import runner
  from test_runner import _experiment
  exp = _experiment(tmp_path)
  exp = runner.Experiment(
      name="dropout", preset="cnn", overrides=[*exp.overrides, "conv_backward=sparse"],
      variants={"p5": ["dropout=0.5"], "p2": ["dropout=0.2"], "w2": ["filter_widths=(2,)"]},
      datasets={"fixed": exp.datasets["fixed"]}, seeds=(0, 1))
  solo = runner.run_experiment(exp, str(tmp_path / "solo"))
  capsys.readouterr()
  grouped = runner.run_experiment(exp, str(tmp_path / "many"), vmap=True)
  printed = capsys.readouterr().out
  assert "fixed / p5+p2 / seed_0, seed_1, seed_0, seed_1 as one program" in printed
  assert "fixed / w2 / seed_0, seed_1 as one program" in printed
  assert grouped["table"] == solo["table"]
  assert [(r["variant"], r["unit"], r["accuracy"]) for r in grouped["rows"]] == \
      [(r["variant"], r["unit"], r["accuracy"]) for r in solo["rows"]]
