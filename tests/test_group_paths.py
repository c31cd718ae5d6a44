"""Paths of `train_many` (groups) and of old runs that no other test trains through:
LSTM and hybrid members, a multi-label group, schedule=plateau (solo, in a group
and across a resume), test_checkpoint=last with bfloat16 in a group, and run
directories made before `conv_backward` and `embedding_update` existed.

No persistent compilation cache in the test process: with one (every program
serialised) a later in-process compile crashed XLA in the full suite.
"""

import json
import os

import jax
import numpy as np
import orbax.checkpoint as ocp
import pytest

from conftest import make_rows, tiny_config, write_jsonl
from textclf_jax.cli import main as cli
from textclf_jax.serve import runs
from textclf_jax.training import loop as train
from textclf_jax import config as config_lib
from textclf_jax.run import compat

try:
  from textclf_jax.training.group import train_many
except ImportError:  # before the group path became a package
  from textclf_jax.many import train_many

# Results keys that are wall-clock measurements, not outcomes.
TIMING = ("train_seconds", "train_examples_per_second", "wall_seconds")
# The loop meta's throughput bookkeeping (a resumed run may count only what it timed).
THROUGHPUT = ("train_seconds", "train_examples")
# 150 rows: 15 go to dev (10%), 135 train in ceil(135 / 16) = 9 steps of 16.
STEPS_PER_EPOCH = 9
# Finished runs keep their latest checkpoint too: the tests compare final states.
KEEP = ({"keep_checkpoints": "both"} if "keep_checkpoints" in config_lib.load_preset("cnn")
        else {})


@pytest.fixture
def fixed_dir(tmp_path):
  d = tmp_path / "fixed"
  d.mkdir()
  write_jsonl(d / "train.jsonl", make_rows(150, 1))
  write_jsonl(d / "test.jsonl", make_rows(45, 2))
  return str(d)


def _config(preset="cnn", **overrides):
  """tiny_config with two padded lengths (12, 24: a member's batch of 12 tokens is
  padded to 24 when another member's batch is longer) and one train-log entry per
  epoch (a solo run's log then holds the same epoch means as a member's)."""
  small = dict(bucket_lengths=(12, 24), num_epochs=2, embed_dim=8,
               log_every_steps=STEPS_PER_EPOCH)
  if preset != "lstm":
    small["filter_widths"] = (3,)
  if preset in ("lstm", "hybrid"):
    small["lstm_hidden"] = 8
  return tiny_config(preset, **{**small, **KEEP, **overrides})


def _latest(workdir):
  """(state, meta) of a run's newest latest-checkpoint, as host arrays."""
  manager = ocp.CheckpointManager(os.path.join(workdir, "checkpoints", "latest"))
  restored = manager.restore(manager.latest_step(), args=ocp.args.Composite(
      state=ocp.args.StandardRestore(), meta=ocp.args.JsonRestore()))
  manager.close()
  return restored["state"], restored["meta"]


def _train_losses(workdir):
  """The epoch-mean training losses a run logged (one entry per epoch here)."""
  with open(os.path.join(workdir, "metrics.jsonl"), encoding="utf-8") as f:
    return [line["train"]["loss"] for line in map(json.loads, f) if "train" in line]


def _outcome(results):
  return {k: v for k, v in results.items() if k not in TIMING}


def _assert_bitwise_same_run(member_dir, solo_dir, member_results, solo_results):
  """Same results (every metric, to the bit), same final state, same loop meta."""
  assert _outcome(member_results) == _outcome(solo_results)
  (a, meta_a), (b, meta_b) = _latest(member_dir), _latest(solo_dir)
  paths_a = [jax.tree_util.keystr(p) for p, _ in jax.tree_util.tree_leaves_with_path(a)]
  paths_b = [jax.tree_util.keystr(p) for p, _ in jax.tree_util.tree_leaves_with_path(b)]
  assert paths_a == paths_b
  for path, x, y in zip(paths_a, jax.tree.leaves(a), jax.tree.leaves(b)):
    np.testing.assert_array_equal(np.asarray(x), np.asarray(y), err_msg=path)
  assert {k: v for k, v in meta_a.items() if k not in THROUGHPUT} == \
      {k: v for k, v in meta_b.items() if k not in THROUGHPUT}


def _train_group_and_solo_runs(tmp_path, configs):
  members = [str(tmp_path / f"member_{i}") for i in range(len(configs))]
  grouped = train_many(configs, members, str(tmp_path / "group"))
  solos = [str(tmp_path / f"solo_{i}") for i in range(len(configs))]
  alone = [train.train_and_evaluate(c, s) for c, s in zip(configs, solos)]
  return members, grouped, solos, alone


# --- LSTM and hybrid members ----------------------------------------------------------


@pytest.mark.parametrize("preset", ["lstm", "hybrid"])
def test_recurrent_members_match_solo_runs(tmp_path, fixed_dir, preset):
  """A group of two LSTM (bidirectional) or hybrid members, seeds 0 and 1: their
  batches differ, so each member's batch is at times padded from 12 to 24 tokens.

  Member 0 has dropout 0: padding is masked, so it equals its solo run up to
  float rounding. Asserted: parameters within atol 1e-6 (measured: 1.5e-7 LSTM,
  1.2e-7 hybrid), epoch-mean training losses within rtol 1e-6 (measured: equal
  for the LSTM, 1.3e-7 hybrid), dev/test metrics within 1e-6 (measured: equal),
  best and final step equal.

  Member 1 has dropout 0.5 on the [B, L, D] inputs: its dropout mask is drawn
  for the padded length, so at a padded step it differs from its solo run's and
  the member is equal only in distribution (parameters differ by up to 0.19).
  Asserted: its epoch-mean training loss (a mean over 135 examples) stays within
  0.03 of its solo run's in each of the 3 epochs (measured: at most 0.010 LSTM,
  0.010 hybrid). A member whose dropout were lost (keep probability 1) ends
  epoch 3 at 0.82 (LSTM) / 0.94 (hybrid) against its solo run's 1.07 / 1.09, one
  with half the rate at 1.01 / 1.02: both are caught. Accuracy is no yardstick at
  this size: dev and test accuracies of member 1 and its solo run differ by up
  to 9 points (45 test examples) after 3 epochs.
  """
  configs = [_config(preset, dataset=fixed_dir, seed=0, dropout=0.0, num_epochs=3,
                     learning_rate=1e-2),
             _config(preset, dataset=fixed_dir, seed=1, dropout=0.5, num_epochs=3,
                     learning_rate=1e-2)]
  members, grouped, solos, alone = _train_group_and_solo_runs(tmp_path, configs)
  for i in range(2):
    assert len(_train_losses(members[i])) == len(_train_losses(solos[i])) == 3

  # Member 0, no dropout: equal up to float rounding.
  np.testing.assert_allclose(_train_losses(members[0]), _train_losses(solos[0]), rtol=1e-6)
  for key in ("best_step", "final_step", "stopped_early"):
    assert grouped[0][key] == alone[0][key], key
  for split in ("dev", "test"):
    for key, value in alone[0][split].items():
      if isinstance(value, float):
        assert grouped[0][split][key] == pytest.approx(value, abs=1e-6), (split, key)
  (a, _), (b, _) = _latest(members[0]), _latest(solos[0])
  for x, y in zip(jax.tree.leaves(a["params"]), jax.tree.leaves(b["params"])):
    np.testing.assert_allclose(np.asarray(x), np.asarray(y), atol=1e-6, rtol=0)

  # Member 1, dropout 0.5: equal in distribution.
  np.testing.assert_allclose(_train_losses(members[1]), _train_losses(solos[1]), atol=0.03,
                             rtol=0)
  assert grouped[1]["final_step"] == alone[1]["final_step"] == 3 * STEPS_PER_EPOCH


# --- multi-label ------------------------------------------------------------------------


def test_multi_label_group_matches_solo_runs_bit_for_bit(tmp_path):
  """Sigmoid/BCE members with per-label thresholds tuned on dev: with the sparse
  conv backward pass every member ends exactly as its solo run (every metric,
  both threshold modes, thresholds.json, final state and loop meta)."""
  d = tmp_path / "ml"
  d.mkdir()
  write_jsonl(d / "train.jsonl", make_rows(150, 1, multi_label=True))
  write_jsonl(d / "test.jsonl", make_rows(45, 3, multi_label=True))
  configs = [_config(dataset=str(d), seed=s, conv_backward="sparse", num_epochs=3,
                     learning_rate=2e-2) for s in (0, 1)]
  members, grouped, solos, alone = _train_group_and_solo_runs(tmp_path, configs)
  for i in range(2):
    assert "micro_f1" in grouped[i]["test"] and "by_threshold_mode" in grouped[i]
    _assert_bitwise_same_run(members[i], solos[i], grouped[i], alone[i])
    with open(os.path.join(members[i], "thresholds.json"), encoding="utf-8") as f, \
        open(os.path.join(solos[i], "thresholds.json"), encoding="utf-8") as g:
      assert json.load(f) == json.load(g)
  assert grouped[0]["test"] != grouped[1]["test"]  # two different models
  assert runs.evaluate_run(members[1], "test")["matches_results"] is True


# --- schedule=plateau -------------------------------------------------------------------


def _plateau_config(fixed_dir, seed, **overrides):
  """Learning rate 3e-2: dev accuracy stops improving within 4 epochs, and with
  patience 1 every evaluation without improvement halves the rate."""
  return _config(dataset=fixed_dir, seed=seed, conv_backward="sparse", schedule="plateau",
                 plateau_patience=1, plateau_factor=0.5, early_stopping_patience=0,
                 learning_rate=3e-2, embed_dim=16, num_epochs=4, checkpoint_every_steps=4,
                 **overrides)


def _plateau_scale(state) -> float:
  """The scale held in the optimiser state (the leaf the update multiplies by)."""
  (scale,) = [x for p, x in jax.tree_util.tree_leaves_with_path(state["opt_state"])
              if "step_size" in jax.tree_util.keystr(p)]
  return float(scale)


def test_plateau_schedule_solo_in_a_group_and_across_a_resume(tmp_path, fixed_dir,
                                                              monkeypatch):
  """schedule=plateau through the real loops, all exact (sparse conv backward):

  - in a group, each member's scale follows the solo rule on its own dev
    metric: seed 0 stalls after epoch 3 (scale 0.5 in epoch 4, 0.25 at the
    end), seed 1 only after epoch 4 (0.5 at the end); members end bit for bit
    as their solo runs;
  - a solo run stopped right after its checkpoint mid-epoch 4 (step 32, scale
    already halved) and resumed with `train_and_evaluate(..., resume=True)`
    ends bit for bit as the uninterrupted run.
  """
  configs = [_plateau_config(fixed_dir, s) for s in (0, 1)]
  members, grouped, solos, alone = _train_group_and_solo_runs(tmp_path, configs)
  scales = []
  for i in range(2):
    _assert_bitwise_same_run(members[i], solos[i], grouped[i], alone[i])
    state, meta = _latest(solos[i])
    assert _plateau_scale(state) == meta["plateau_scale"]  # the scale is applied
    scales.append(meta["plateau_scale"])
  assert scales == [0.25, 0.5]  # per member: different epochs without improvement

  # Stopped right after saving the mid-epoch checkpoint at step 32 ...
  stop_at = 3 * STEPS_PER_EPOCH + 5
  save = ocp.CheckpointManager.save

  def save_then_stop(self, step, *args, **kwargs):
    saved = save(self, step, *args, **kwargs)
    if step == stop_at and os.path.basename(str(self.directory)) == "latest":
      raise KeyboardInterrupt(f"stopped after saving step {step}")
    return saved

  resumed = str(tmp_path / "resumed")
  monkeypatch.setattr(ocp.CheckpointManager, "save", save_then_stop)
  with pytest.raises(KeyboardInterrupt):
    train.train_and_evaluate(configs[0], resumed)
  monkeypatch.undo()
  state, meta = _latest(resumed)
  assert int(state["step"]) == stop_at and meta["position"] == 5
  assert meta["plateau_scale"] == _plateau_scale(state) == 0.5
  assert not os.path.exists(os.path.join(resumed, "results.json"))
  # ... and resumed.
  results = train.train_and_evaluate(configs[0], resumed, resume=True)
  _assert_bitwise_same_run(resumed, solos[0], results, alone[0])


# --- test_checkpoint=last with bfloat16 -------------------------------------------------


def test_last_checkpoint_and_bfloat16_in_a_group_match_solo_runs(tmp_path, fixed_dir):
  """Members computing in bfloat16 and scored on their last state (not the best
  dev one) end bit for bit as their solo runs (sparse conv backward pass); the
  member's directory evaluates its last state like a solo run's."""
  configs = [_config(dataset=fixed_dir, seed=s, conv_backward="sparse",
                     compute_dtype="bfloat16", test_checkpoint="last",
                     early_stopping_patience=0, learning_rate=3e-2, num_epochs=3)
             for s in (0, 1)]
  members, grouped, solos, alone = _train_group_and_solo_runs(tmp_path, configs)
  for i in range(2):
    assert grouped[i]["tested_checkpoint"] == "last"
    assert grouped[i]["final_step"] == 3 * STEPS_PER_EPOCH
    _assert_bitwise_same_run(members[i], solos[i], grouped[i], alone[i])
  # Some member's best dev evaluation was before its last: "last" chose a state.
  assert any(r["best_step"] < r["final_step"] for r in grouped)
  member = next(m for m, r in zip(members, grouped) if r["best_step"] < r["final_step"])
  assert runs.evaluate_run(member, "test")["matches_results"] is True


# --- runs made before conv_backward and embedding_update --------------------------------


def test_run_without_conv_backward_and_embedding_update_keys(tmp_path, fixed_dir, capsys):
  """A run made before `conv_backward` and `embedding_update` existed: its
  config.json lacks both keys, and it trained with autodiff's conv backward pass
  and the dense table update (its checkpoint holds the dense optimiser state).

  Kim's Adadelta preset at 80 tokens is where today's `auto` means `sparse` for
  both, so reading the keys as `auto` would restore the wrong state layout and
  round differently. The run reads as dense/dense, `textclf eval` reproduces
  its results.json, and `textclf train --resume` keeps dense/dense: it ends bit
  for bit as a run trained with them uninterrupted.
  """
  def config(num_epochs):
    return tiny_config("kim", dataset=fixed_dir, max_len=80, bucket_lengths=(80,),
                       filter_widths=(3,), embed_dim=8, num_epochs=num_epochs,
                       early_stopping_patience=0, conv_backward="dense",
                       embedding_update="dense", **KEEP)

  old = str(tmp_path / "old")
  train.train_and_evaluate(config(1), old)
  path = os.path.join(old, "config.json")
  with open(path, encoding="utf-8") as f:
    saved = json.load(f)
  del saved["conv_backward"], saved["embedding_update"]
  with open(path, "w", encoding="utf-8") as f:
    json.dump(saved, f)

  loaded = compat.read_config(path)  # read as a run: migrated
  assert (loaded.conv_backward, loaded.embedding_update) == ("dense", "dense")
  capsys.readouterr()
  cli.main(["eval", old, "--split", "test"])
  assert "matches results.json test metrics exactly: yes" in capsys.readouterr().err

  cli.main(["train", "--resume", old, "--config.num_epochs=2"])
  with open(path, encoding="utf-8") as f:
    resumed = json.load(f)
  assert (resumed["conv_backward"], resumed["embedding_update"]) == ("dense", "dense")
  straight = str(tmp_path / "straight")
  results = train.train_and_evaluate(config(2), straight)
  with open(os.path.join(old, "results.json"), encoding="utf-8") as f:
    _assert_bitwise_same_run(old, straight, json.load(f), results)
