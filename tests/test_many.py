"""Many models in one program: members equal their solo runs (seeds, folds, early
stopping), their run directories evaluate like solo ones, groups resume, the runner's
vmap mode makes the same table."""

import os

import jax
import numpy as np
import orbax.checkpoint as ocp
import pytest

from conftest import make_rows, tiny_config, write_jsonl
from textclf_jax import many, runs, train

TOL = 1e-5


def _config(**overrides):
  """tiny_config with one filter width and two padded lengths: few compilations."""
  return tiny_config(**{"filter_widths": (3,), "bucket_lengths": (12, 24), **overrides})


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
  calls, score = [], train.score

  def dying_score(*args, **kwargs):
    calls.append(1)
    if len(calls) == 4:
      raise KeyboardInterrupt("killed")
    return score(*args, **kwargs)

  monkeypatch.setattr(train, "score", dying_score)
  with pytest.raises(KeyboardInterrupt):
    many.train_many(configs, members, group)
  monkeypatch.setattr(train, "score", score)
  # ... and resumed from that checkpoint.
  results = many.train_many(configs, members, group)
  for s, config in enumerate(configs):
    solo = train.train_and_evaluate(config, str(tmp_path / f"solo_{s}"))
    _assert_same_run(members[s], str(tmp_path / f"solo_{s}"), results[s], solo)
  first, second = (jax.tree.leaves(_latest(m)[0]["params"]) for m in members[:2])
  assert not np.allclose(first[0], second[0])  # the members are different models
  # Finished members are read back, not trained.
  assert many.train_many(configs, members, group) == results


def test_cv_folds_match_solo_runs(tmp_path, cv_dir):
  configs = [_config(dataset=cv_dir, fold=k, num_epochs=2) for k in range(3)]
  members = [str(tmp_path / f"fold_{k}") for k in range(3)]
  results = many.train_many(configs, members, str(tmp_path / "group"))
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
  results = many.train_many(configs, members, str(tmp_path / "group"))
  assert results[1]["stopped_early"] and results[1]["best_step"] == results[1]["final_step"] / 2
  assert results[1]["final_step"] < max(r["final_step"] for r in (results[0], results[2]))
  for i, config in enumerate(configs):
    solo = train.train_and_evaluate(config, str(tmp_path / f"solo_{i}"))
    _assert_same_run(members[i], str(tmp_path / f"solo_{i}"), results[i], solo)


def test_configs_differing_in_other_keys_raise(tmp_path, fixed_dir):
  configs = [_config(dataset=fixed_dir), _config(dataset=fixed_dir, num_filters=4)]
  with pytest.raises(ValueError, match="num_filters"):
    many.train_many(configs, [str(tmp_path / "a"), str(tmp_path / "b")], str(tmp_path / "g"))
  configs = [_config(dataset=fixed_dir), _config(dataset=fixed_dir, eval_every_steps=5)]
  with pytest.raises(ValueError, match="eval_every_steps"):
    many.train_many(configs, [str(tmp_path / "a"), str(tmp_path / "b")], str(tmp_path / "g"))
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
  monkeypatch.setattr(many, "train_many", lambda *a, **k: calls.append(a))
  again = runner.run_experiment(exp, str(tmp_path / "many"), vmap=True, **only)
  assert calls == [] and again["table"] == grouped["table"]
