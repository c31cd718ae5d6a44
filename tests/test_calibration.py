"""Calibration (ECE, Brier, NLL, temperature scaling: textclf_jax/calibration.py) and
ensembles of runs (textclf_jax/ensemble.py): the definitions against hand-computed
values, the fit's guarantee as a property, and both through train, eval and predict."""

import json
import math
import os

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st
from scipy import special

from conftest import TOPICS, make_rows, run_textclf, tiny_config, tiny_tfidf_run, write_jsonl
from textclf_jax.scoring import calibration as cal
from textclf_jax.serve import ensemble, runs
from textclf_jax.run import layout as rundir

# --- the definitions -------------------------------------------------------------------


def test_ece_is_zero_for_perfectly_calibrated_probabilities_and_not_otherwise():
  rng = np.random.default_rng(0)
  logits = rng.normal(size=(200_000, 3)) * 2.0
  probs = special.softmax(logits, axis=1)
  # Labels drawn from the probabilities themselves: the top label is right with
  # probability equal to its confidence, so every bin's accuracy is its confidence.
  labels = (rng.random((len(probs), 1)) > probs.cumsum(axis=1)).sum(axis=1)
  assert cal.ece(probs, labels) < 0.005
  overconfident = special.softmax(logits * 3.0, axis=1)
  assert cal.ece(overconfident, labels) > 0.1
  # Multi-label: each label present with its own probability.
  p = special.expit(rng.normal(size=(50_000, 4)) * 2.0)
  y = (rng.random(p.shape) < p).astype(np.int32)
  assert cal.ece(p, y, multi_label=True) < 0.005
  assert cal.ece(p ** 3, y, multi_label=True) > 0.1


def test_single_label_scores_against_hand_computed_values():
  probs = np.array([[0.7, 0.2, 0.1],      # right, confidence 0.70 -> bin 10
                    [0.45, 0.5, 0.05],    # wrong, 0.50 -> bin 7
                    [0.19, 0.19, 0.62],   # right, 0.62 -> bin 9
                    [0.05, 0.68, 0.27]])  # wrong, 0.68 -> bin 10
  labels = np.array([0, 0, 2, 0])
  # bin 10: accuracy 1/2 at mean confidence 0.69; bins 7 and 9: one example each.
  assert cal.ece(probs, labels) == pytest.approx(0.5 * 0.19 + 0.25 * 0.5 + 0.25 * 0.38)
  assert cal.brier(probs, labels) == pytest.approx((0.14 + 0.555 + 0.2166 + 1.4378) / 4)
  assert cal.nll(probs, labels) == pytest.approx(
      -(math.log(0.7) + math.log(0.45) + math.log(0.62) + math.log(0.05)) / 4)
  assert cal.scores(probs, labels) == {"ece": cal.ece(probs, labels),
                                       "brier": cal.brier(probs, labels),
                                       "nll": cal.nll(probs, labels)}


def test_multi_label_scores_count_every_label_probability():
  probs = np.array([[0.9, 0.25], [0.3, 0.65]])  # bins 13, 3, 4, 9: one pair each
  labels = np.array([[1, 0], [1, 1]])
  assert cal.ece(probs, labels, True) == pytest.approx((0.1 + 0.25 + 0.7 + 0.35) / 4)
  assert cal.brier(probs, labels, True) == pytest.approx((0.01 + 0.0625 + 0.49 + 0.1225) / 4)
  assert cal.nll(probs, labels, True) == pytest.approx(
      -(math.log(0.9) + math.log(0.75) + math.log(0.3) + math.log(0.65)) / 4)


def test_temperature_on_probabilities_equals_temperature_on_logits():
  rng = np.random.default_rng(1)
  logits = rng.normal(size=(50, 4)) * 3
  probs = special.softmax(logits, axis=1)
  np.testing.assert_allclose(cal.apply_temperature(probs, 2.5, False),
                             special.softmax(logits / 2.5, axis=1), rtol=1e-10)
  np.testing.assert_allclose(cal.apply_temperature(special.expit(logits), [2.0, 1, 0.5, 3],
                                                   True),
                             special.expit(logits / np.array([2.0, 1, 0.5, 3])), rtol=1e-9)
  f32 = probs.astype(np.float32)
  assert cal.apply_temperature(f32, 1.0, False).tobytes() == f32.tobytes()  # T = 1: as is


def test_temperature_recovers_a_known_miscalibration():
  rng = np.random.default_rng(2)
  logits = rng.normal(size=(20_000, 5)) * 2
  labels = (rng.random((len(logits), 1)) > special.softmax(logits, 1).cumsum(1)).sum(1)
  fit = cal.fit_temperature(special.softmax(logits * 2.0, axis=1), labels)  # twice too sharp
  assert fit["temperature"] == pytest.approx(2.0, rel=0.05)
  assert fit["nll_after"] < fit["nll_before"]


@settings(max_examples=40, deadline=None)
@given(n=st.integers(1, 40), c=st.integers(2, 5), scale=st.floats(0.01, 30),
       multi=st.booleans(), seed=st.integers(0, 2 ** 16))
def test_temperature_scaling_never_raises_dev_nll(n, c, scale, multi, seed):
  rng = np.random.default_rng(seed)
  logits = rng.normal(size=(n, c)) * scale
  if multi:
    probs = special.expit(logits).astype(np.float32)
    labels = (rng.random((n, c)) < 0.4).astype(np.int32)
  else:
    probs = special.softmax(logits, axis=1).astype(np.float32)
    labels = rng.integers(0, c, n)
  fit = cal.fit_temperature(probs, labels, multi)
  after = cal.apply_temperature(probs, fit["temperature"], multi)
  assert fit["nll_before"] == cal.nll(probs, labels, multi)
  assert cal.nll(after, labels, multi) == fit["nll_after"] <= fit["nll_before"]
  if not multi:
    np.testing.assert_allclose(after.sum(axis=1), 1.0, atol=1e-5)


def test_read_calibration_names_the_file_and_key(tmp_path):
  run = str(tmp_path)
  rundir.write_json(rundir.path(run, rundir.LABELS), {"labels": ["a", "b"], "multi_label": True})
  assert rundir.read_calibration(run) is None
  file = rundir.path(run, rundir.CALIBRATION)
  for content, key in (("{", "unreadable JSON"), ('{"temperature": 2}', '"temperature"'),
                       ('{"temperature": [1, -1]}', '"temperature"'),
                       ('{"temperature": [1, 2], "thresholds": [0.5]}', '"thresholds"')):
    with open(file, "w", encoding="utf-8") as f:
      f.write(content)
    with pytest.raises(rundir.RunDirError, match=f"{file}: .*{key}"):
      rundir.read_calibration(run)
  rundir.write_json(file, {"temperature": [1.5, 0.5], "thresholds": 0.4})
  assert rundir.read_calibration(run)["temperature"] == [1.5, 0.5]


# --- runs: train writes it, eval reproduces it, predict applies it, ensembles average -----


def _data(root, name, multi_label=False, labels=None):
  d = os.path.join(root, name)
  os.makedirs(d)
  for split, n, seed in (("train", 240, 1), ("dev", 60, 2), ("test", 60, 3)):
    rows = make_rows(n, seed, multi_label)
    if labels is not None:
      rows = [r for r in rows if r["label"] in labels]
    write_jsonl(os.path.join(d, f"{split}.jsonl"), rows)
  return d


@pytest.fixture(scope="module")
def made(tmp_path_factory):
  """A tiny CNN and a TF-IDF run on the same topics (different vocabularies), a
  multi-label TF-IDF run, and a TF-IDF run on two of the three labels."""
  from textclf_jax.training import loop as train
  root = str(tmp_path_factory.mktemp("calibration"))
  topics = _data(root, "topics")
  cnn = os.path.join(root, "cells", "seed_0")
  train.train_and_evaluate(tiny_config(dataset=topics, num_epochs=2, bucket_lengths=(24,)), cnn)
  return {"cnn": cnn, "tfidf": tiny_tfidf_run(topics, os.path.join(root, "cells", "seed_1")),
          "multi": tiny_tfidf_run(_data(root, "multi", multi_label=True), os.path.join(root, "multi_run")),
          "two": tiny_tfidf_run(_data(root, "two", labels=("money", "sport")), os.path.join(root, "two_run")),
          "cells": os.path.join(root, "cells")}


def test_a_run_ends_with_its_calibration(made):
  import matplotlib.image
  for name in ("cnn", "tfidf"):
    run = made[name]
    results, record = rundir.read_results(run), rundir.read_calibration(run)
    assert isinstance(record["temperature"], float)
    assert record["dev_nll_after"] <= record["dev_nll_before"]
    entry = results["calibration"]
    assert entry["temperature"] == record["temperature"]
    assert entry["dev"]["after"]["nll"] == record["dev_nll_after"]
    for split in ("dev", "test"):
      assert set(entry[split]) == {"before", "after"}
      assert set(entry[split]["after"]) == {"ece", "brier", "nll"}
      probs, labels = rundir.read_predictions(run, split)
      assert entry[split]["before"] == cal.scores(probs, labels)  # of the saved predictions
    picture = matplotlib.image.imread(rundir.path(run, rundir.RELIABILITY))
    assert picture.shape[0] > 200 and picture.shape[1] > 400 and picture.std() > 0.05


@pytest.fixture(scope="module")
def loaded(made):
  """The CNN and TF-IDF runs on the topics, loaded once (a CNN compiles when loaded)."""
  return ensemble.load([made["cnn"], made["tfidf"]])


def test_eval_reproduces_the_calibrated_metrics_and_predict_applies_them(made, loaded, capsys):
  run = made["cnn"]
  results, record = rundir.read_results(run), rundir.read_calibration(run)
  report = runs.evaluate_run(run, "test")
  assert report["matches_results"] is True
  assert report["calibration"] == {"temperature": record["temperature"],
                                   **results["calibration"]["test"]}
  loaded = loaded[0]
  texts = ["the goal of the match", "a chip in the phone", "bank"]
  raw = runs.text_probs(loaded, texts)
  for calibrated, expected in ((True, cal.apply_temperature(raw, record["temperature"], False)),
                               (False, raw)):
    rows = runs.predict_loaded(loaded, texts, top_k=3, calibrated=calibrated)
    for row, p in zip(rows, expected):
      assert sum(row["probabilities"].values()) == pytest.approx(1.0, abs=3e-6)
      assert [row["probabilities"][n] for n in loaded.label_names] == pytest.approx(p, abs=1e-6)
  assert record["temperature"] != 1.0  # so that the two cases differ


def test_multi_label_runs_get_one_temperature_and_threshold_per_label(made):
  run = made["multi"]
  record = rundir.read_calibration(run)
  assert len(record["temperature"]) == len(record["thresholds"]) == len(TOPICS)
  entry = rundir.read_results(run)["calibration"]["test"]
  assert set(entry) == {"before", "after", "calibrated"} and "micro_f1" in entry["calibrated"]
  assert runs.evaluate_run(run, "test")["matches_results"] is True


def test_an_ensemble_averages_its_members_calibrated_probabilities(made, loaded, capsys):
  members = ensemble.members(made["cells"])  # a directory of runs: both, different vocabularies
  assert members == [made["cnn"], made["tfidf"]]
  texts = ["the goal of the match", "stock market prices", "software in the cloud"]
  rows = ensemble.predict_loaded(members, loaded, texts, top_k=3)
  alone = [runs.predict_loaded(m, texts, top_k=3) for m in loaded]
  for i, row in enumerate(rows):
    names = list(row["probabilities"])
    mean = np.mean([[a[i]["probabilities"][n] for n in names] for a in alone], axis=0)
    assert list(row["probabilities"].values()) == pytest.approx(mean, abs=2e-6)
    assert row["label"] == names[0]

  code, out, err = run_textclf(["eval", made["cnn"], "--ensemble", made["tfidf"]], capsys)
  assert code == 0, err
  report = json.loads(out)
  assert report["ensemble"]["members"] == 2 and report["ensemble"]["num_examples"] == 60
  for member, run in zip(report["members"], members):
    assert member["run"] == run
    assert member["accuracy"] == rundir.read_results(run)["test"]["accuracy"]
    assert member["ece"] == rundir.read_results(run)["calibration"]["test"]["after"]["ece"]


def test_an_ensemble_refuses_members_with_other_labels(made, capsys):
  for other, says in ((made["two"], "differ from those of"), (made["multi"], "multi-label")):
    code, _, err = run_textclf(["predict", made["tfidf"], "--ensemble", other, "goal"], capsys)
    assert code == 2 and "ensemble: " in err and says in err, err
    assert err.count("\n") == 1
