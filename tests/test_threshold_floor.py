"""The per-label threshold floor (`multilabel_min_f1`): chosen on dev by cross-validation
inside it (metrics.choose_min_f1), never on test; recorded in thresholds.json and
calibration.json; runs made before it keep the fixed 0.5 they were tuned with."""

import json

import numpy as np
import pytest

from conftest import make_rows, run_textclf, write_jsonl
from textclf_jax import config as config_lib
from textclf_jax.families import validate as validate_lib
from textclf_jax.run import compat
from textclf_jax.serve import ensemble, runs
from textclf_jax.scoring import calibration as calibration_lib, metrics
from textclf_jax.run import layout as rundir


def _helps(seed, n=500, noise=12):
  """Two well-separated labels (so the global threshold sits near 0.5) and `noise`
  labels with three positives each among uninformative scores under 0.3: a per-label
  threshold fitted on the other folds admits tens of false positives on the held-out
  one, the global threshold none."""
  rng = np.random.default_rng(seed)
  c = 2 + noise
  probs, labels = np.zeros((n, c)), np.zeros((n, c))
  for j in range(2):
    labels[:, j] = rng.random(n) < 0.3
    probs[:, j] = np.where(labels[:, j] > 0, rng.uniform(0.6, 1, n), rng.uniform(0, 0.4, n))
  for j in range(2, c):
    labels[rng.choice(n, 3, replace=False), j] = 1
    probs[:, j] = rng.uniform(0, 0.3, n)
  return probs.astype(np.float32), labels.astype(np.float32)


def _hurts(seed, n=500, junk=6):
  """One label the global threshold must go low for (positives 0.3-0.55, negatives under
  0.25), and `junk` labels scored 0.6-1 everywhere, their ~1% positives in the top
  quarter: each label's best dev F1 is under 0.1, yet its own threshold (~0.9) admits a
  quarter of the negatives where the global one (~0.3) admits them all."""
  rng = np.random.default_rng(seed)
  c = 1 + junk
  probs, labels = np.zeros((n, c)), np.zeros((n, c))
  labels[:, 0] = rng.random(n) < 0.5
  probs[:, 0] = np.where(labels[:, 0] > 0, rng.uniform(0.3, 0.55, n), rng.uniform(0, 0.25, n))
  for j in range(1, c):
    positive = rng.random(n) < 0.01
    positive[rng.choice(n, 2, replace=False)] = True
    labels[:, j] = positive
    probs[:, j] = np.where(positive, rng.uniform(0.9, 1, n), rng.uniform(0.6, 1, n))
  return probs.astype(np.float32), labels.astype(np.float32)


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("at_least_one", [False, True])
def test_a_floor_is_chosen_where_falling_back_helps_held_out_f1(seed, at_least_one):
  probs, labels = _helps(seed)
  chosen = metrics.choose_min_f1(probs, labels, at_least_one)
  cv = chosen["min_f1_cv"]
  assert chosen["min_f1_chosen_by"] == "dev_cv" and cv["folds"] == 5
  assert cv["candidates"] == list(metrics.MIN_F1_CANDIDATES)
  assert chosen["min_f1"] > 0
  never = cv["micro_f1"][cv["candidates"].index(0.0)]
  assert max(cv["micro_f1"]) > never + 0.2  # clearly, on the held-out folds
  # The thresholds fitted on all of dev use that floor: the noise labels fall back.
  search = metrics.search_thresholds(probs, labels, "per_label", at_least_one)
  glob = metrics.tune_thresholds(probs, labels, "global", at_least_one)
  assert search["min_f1"] == chosen["min_f1"] and search["min_f1_cv"] == cv
  assert all(t == glob for t in search["thresholds"][2:])


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("at_least_one", [False, True])
def test_no_floor_is_chosen_where_falling_back_hurts_held_out_f1(seed, at_least_one):
  probs, labels = _hurts(seed)
  chosen = metrics.choose_min_f1(probs, labels, at_least_one)
  cv = chosen["min_f1_cv"]
  assert chosen["min_f1"] == 0.0
  old = cv["micro_f1"][cv["candidates"].index(metrics.PER_LABEL_MIN_F1)]
  assert cv["micro_f1"][0] > old + 0.2
  search = metrics.search_thresholds(probs, labels, "per_label", at_least_one)
  glob = metrics.tune_thresholds(probs, labels, "global", at_least_one)
  assert search["min_f1"] == 0.0 and all(t > glob for t in search["thresholds"][1:])


def test_the_choice_is_deterministic_under_its_seed():
  probs, labels = _helps(3)
  probs[:, 3:] = np.random.default_rng(9).uniform(0, 0.6, probs[:, 3:].shape)  # closer calls
  first = metrics.choose_min_f1(probs, labels, True)
  assert json.dumps(first) == json.dumps(metrics.choose_min_f1(probs.copy(), labels.copy(),
                                                                True))
  assert first["min_f1_cv"]["seed"] == metrics.MIN_F1_SEED
  other = metrics.choose_min_f1(probs, labels, True, seed=1)
  assert other["min_f1_cv"]["seed"] == 1
  assert other["min_f1_cv"]["micro_f1"] != first["min_f1_cv"]["micro_f1"]  # other folds
  # Ties: equal micro- and macro-F1 go to the candidate nearest the old 0.5.
  assert metrics.choose_min_f1(*_helps(0), False)["min_f1"] == 0.5


def test_folds_shrink_with_dev_and_a_tiny_dev_keeps_the_old_floor():
  probs, labels = _helps(0, n=160)
  assert metrics.choose_min_f1(probs, labels)["min_f1_cv"]["folds"] == 3
  tiny = metrics.search_thresholds(probs[:99], labels[:99], "per_label")
  assert tiny["min_f1"] == metrics.PER_LABEL_MIN_F1 == 0.5
  assert tiny["min_f1_chosen_by"] == "default" and tiny["min_f1_cv"]["folds"] == 1
  assert tiny["thresholds"] == metrics.tune_thresholds(probs[:99], labels[:99], "per_label",
                                                       True, 0.5)


def test_a_floor_given_by_hand_is_used_as_given():
  probs, labels = _helps(0)
  for floor in (0.0, 0.3, 1.0):
    search = metrics.search_thresholds(probs, labels, "per_label", True, floor)
    assert search["min_f1"] == floor and search["min_f1_chosen_by"] == "config"
    assert "min_f1_cv" not in search
  assert metrics.search_thresholds(probs, labels, "global") == {
      "thresholds": metrics.tune_thresholds(probs, labels, "global"), "objective": "micro"}


# --- the config key --------------------------------------------------------------------


def test_the_config_key_is_validated_and_old_runs_keep_0_5(tmp_path):
  config = config_lib.load_preset("cnn")
  assert config.multilabel_min_f1 == metrics.MIN_F1_AUTO == -1
  for text in ("0", "0.35", "1", "-1"):
    config_lib.apply_overrides(config, [f"multilabel_min_f1={text}"])
    assert config.multilabel_min_f1 == float(text)
  for text in ("1.5", "-0.5", "nan"):
    with pytest.raises(config_lib.ConfigError, match="multilabel_min_f1"):
      validate_lib.validate(config_lib.apply_overrides(config_lib.load_preset("cnn"),
                                                       [f"multilabel_min_f1={text}"]))
  saved = json.loads(config_lib.to_json(config))
  del saved["multilabel_min_f1"]  # a run made before the key existed
  path = tmp_path / "config.json"
  path.write_text(json.dumps(saved))
  assert compat.read_config(str(path)).multilabel_min_f1 == 0.5


# --- runs ------------------------------------------------------------------------------


def _tfidf_run(tmp_path, capsys, n, *overrides):
  pytest.importorskip("sklearn")
  d = tmp_path / f"ml{n}"
  d.mkdir()
  write_jsonl(d / "train.jsonl", make_rows(n, 1, multi_label=True))
  write_jsonl(d / "test.jsonl", make_rows(60, 3, multi_label=True))
  run = str(tmp_path / f"run{n}")
  code, _, err = run_textclf(["train", "--config", "tfidf", f"--config.dataset={d}",
                              "--config.tfidf_c_grid=1.0", "--config.tfidf_c_extend=0",
                              "--workdir", run, *[f"--config.{o}" for o in overrides]], capsys)
  assert code == 0, err
  return run


def test_a_run_records_the_floor_it_chose_and_eval_reproduces_it(tmp_path, capsys):
  run = _tfidf_run(tmp_path, capsys, 1200)
  saved = rundir.read_json(rundir.path(run, rundir.THRESHOLDS))
  assert saved["mode"] == "per_label" and saved["min_f1_chosen_by"] == "dev_cv"
  assert saved["min_f1"] in metrics.MIN_F1_CANDIDATES
  cv = saved["min_f1_cv"]
  assert cv["folds"] == 2 and cv["num_examples"] >= 100
  assert len(cv["micro_f1"]) == len(cv["macro_f1"]) == len(metrics.MIN_F1_CANDIDATES)
  # The record is what the search gives on the saved dev predictions, calibrated.
  dev_probs, dev_labels = rundir.read_predictions(run, "dev")
  calibration = rundir.read_calibration(run)
  dev_probs = calibration_lib.apply_temperature(dev_probs, calibration["temperature"], True)
  assert json.loads(json.dumps(metrics.search_thresholds(dev_probs, dev_labels))) == \
      {k: v for k, v in saved.items() if k not in ("mode", "on")}
  assert saved["on"] == "calibrated" and saved["thresholds"] == calibration["thresholds"]
  assert calibration["min_f1_chosen_by"] == "dev_cv" and "min_f1_cv" in calibration
  results = rundir.read_results(run)
  assert results["by_threshold_mode"]["per_label"]["test"] == metrics.summary(results["test"])
  assert runs.evaluate_run(run, "test")["matches_results"] is True


def test_a_run_made_before_the_floor_was_chosen_still_evaluates_to_its_numbers(
    tmp_path, capsys, monkeypatch):
  """A run whose config.json lacks multilabel_min_f1, and whose thresholds.json and
  calibration.json lack the min_f1 keys (as the code wrote before the floor was chosen:
  its fixed floor was 0.5). eval reproduces results.json; an ensemble, which re-tunes the
  thresholds on the saved (calibrated) dev predictions, gets the run's own thresholds
  back. (Runs made before thresholds were searched on calibrated probabilities:
  tests/test_old_runs.py.)"""
  run = _tfidf_run(tmp_path, capsys, 1200, "multilabel_min_f1=0.5")
  for name, keys in ((rundir.CONFIG, ("multilabel_min_f1",)),
                     (rundir.THRESHOLDS, ("min_f1", "min_f1_chosen_by", "min_f1_cv")),
                     (rundir.CALIBRATION, ("min_f1", "min_f1_chosen_by", "min_f1_cv"))):
    record = rundir.read_json(rundir.path(run, name))
    assert record.pop(keys[0]) == 0.5
    for key in keys[1:]:
      record.pop(key, None)
    rundir.write_json(rundir.path(run, name), record)
  floors = []
  tune = metrics.tune_thresholds
  def spy(*args, **kwargs):  # the floor an ensemble re-tunes this run's thresholds with
    floors.append(args[4] if len(args) > 4 else kwargs.get("min_f1"))
    return tune(*args, **kwargs)
  monkeypatch.setattr(metrics, "tune_thresholds", spy)
  loaded = [runs.load(run)]
  assert loaded[0].config.multilabel_min_f1 == 0.5
  assert runs.evaluate_run(run, "test")["matches_results"] is True
  results = rundir.read_results(run)
  names = loaded[0].label_names
  assert ensemble._dev_thresholds([run], loaded, names, True) == \
      rundir.read_calibration(run)["thresholds"] == rundir.read_thresholds(run)
  scored = ensemble.evaluate([run], "test", calibrated=True)["ensemble"]
  assert scored["micro_f1"] == results["test"]["micro_f1"]
  assert scored["macro_f1"] == results["test"]["macro_f1"]
  assert floors and set(floors) == {0.5}
