"""config.threshold_objective: what multi-label thresholds optimise on dev, searched on the
calibrated dev probabilities that `predict` labels with; results.json's headline is
`predict`'s output; thresholds that saturate warn once; old runs keep their numbers."""

import json
import random

import numpy as np
import pytest

from conftest import run_textclf, write_jsonl
from textclf_jax.configs import base
from textclf_jax.run import compat, finish, layout as rundir
from textclf_jax.scoring import calibration as calibration_lib, metrics, objective
from textclf_jax.serve import runs

LABELS = [f"t{i}" for i in range(8)]
WORDS = {name: [f"{name}w{j}" for j in range(3)] for name in LABELS}
FILLER = [f"f{j}" for j in range(30)]


def _rows(n, seed):
  """Skewed multi-label topics (label i drawn with weight 1 / (i + 1)), each named by a
  topic word only some of the time, with topic words of other labels as noise: per-label
  thresholds matter, and rare labels differ from frequent ones."""
  rng = random.Random(seed)
  weights = [1 / (i + 1) for i in range(len(LABELS))]
  rows = []
  for _ in range(n):
    labels = sorted(set(rng.choices(LABELS, weights, k=rng.choice((1, 1, 2, 3)))))
    words = [rng.choice(FILLER) for _ in range(rng.randint(5, 12))]
    for name in labels:
      words += [rng.choice(WORDS[name])] if rng.random() < 0.75 else []
    if rng.random() < 0.3:
      words.append(rng.choice(WORDS[rng.choice(LABELS)]))
    rng.shuffle(words)
    rows.append({"text": " ".join(words), "labels": labels})
  return rows


@pytest.fixture(scope="module")
def data(tmp_path_factory):
  d = tmp_path_factory.mktemp("ml8")
  write_jsonl(d / "train.jsonl", _rows(1000, 1))
  write_jsonl(d / "test.jsonl", _rows(300, 2))
  return d


def _train(tmp_path, capsys, data, name, *overrides):
  pytest.importorskip("sklearn")
  run = str(tmp_path / name)
  code, _, err = run_textclf(["train", "--config", "tfidf", f"--config.dataset={data}",
                              "--config.tfidf_c_grid=4.0", "--config.tfidf_c_extend=0",
                              "--workdir", run, *[f"--config.{o}" for o in overrides]], capsys)
  assert code == 0, err
  return run


def _synthetic(seed=0, n=400, c=6):
  rng = np.random.default_rng(seed)
  truth = (rng.random((n, c)) < np.linspace(0.05, 0.4, c)).astype(np.float32)
  probs = np.clip(truth * 0.35 + rng.random((n, c)) * 0.65, 0, 1).astype(np.float32)
  return probs, truth


def test_the_objective_is_what_the_dev_thresholds_maximise():
  probs, truth = _synthetic()
  dev = {}
  for goal in ("micro", "macro", "per_label"):
    search = metrics.search_thresholds(probs, truth, "per_label", True, -1.0, goal)
    assert search["objective"] == goal
    dev[goal] = metrics.multi_label_metrics(probs, truth, list("abcdef"), search["thresholds"])
  assert dev["macro"]["macro_f1"] >= dev["micro"]["macro_f1"]
  assert dev["per_label"]["macro_f1"] >= dev["macro"]["macro_f1"]  # each label at its best
  assert metrics.search_thresholds(probs, truth, "per_label", objective="per_label")[
      "min_f1_chosen_by"] == "objective"
  glob = {g: metrics.search_thresholds(probs, truth, "global", objective=g)["thresholds"]
          for g in ("micro", "macro")}
  scored = {g: metrics.multi_label_metrics(probs, truth, list("abcdef"), t)
            for g, t in glob.items()}
  assert scored["macro"]["macro_f1"] >= scored["micro"]["macro_f1"]
  assert scored["micro"]["micro_f1"] >= scored["macro"]["micro_f1"]
  with pytest.raises(ValueError, match="threshold_objective"):
    metrics.search_thresholds(probs, truth, "per_label", objective="auto")


def test_auto_follows_the_selection_metric_and_old_runs_kept_micro(tmp_path):
  config = base.get_config()
  assert config.threshold_objective == "auto" and objective.resolve(config) == "micro"
  config.early_stopping_metric = "macro_f1"
  assert objective.resolve(config) == "macro"
  config.threshold_objective = "per_label"
  assert objective.resolve(config) == "per_label"
  saved = base.get_config().to_dict()
  del saved["threshold_objective"]
  saved["early_stopping_metric"] = "macro_f1"
  path = tmp_path / "config.json"
  path.write_text(json.dumps(saved))
  assert compat.read_config(str(path)).threshold_objective == "micro"


def _predicted_metrics(run, data):
  """micro/macro F1 of `predict`'s labels on the test texts."""
  rows = [json.loads(line) for line in (data / "test.jsonl").read_text().splitlines()]
  names = runs.load(run).label_names
  predicted = runs.predict_texts(run, [r["text"] for r in rows])
  chosen = np.array([[name in p["labels"] for name in names] for p in predicted], np.float32)
  truth = np.array([[name in r["labels"] for name in names] for r in rows], np.float32)
  return metrics.multi_label_metrics(chosen, truth, names, 0.5, at_least_one=False)


def test_the_headline_is_what_predict_and_eval_give(tmp_path, capsys, data):
  scored = {}
  for goal in ("micro", "macro"):
    run = _train(tmp_path, capsys, data, goal, f"threshold_objective={goal}")
    results = rundir.read_results(run)
    assert results["threshold_objective"] == goal and results["thresholds_on"] == "calibrated"
    saved = rundir.read_json(rundir.path(run, rundir.THRESHOLDS))
    assert saved["objective"] == goal and saved["on"] == "calibrated"
    assert saved["thresholds"] == rundir.read_calibration(run)["thresholds"]
    report = runs.evaluate_run(run, "test")
    assert report["matches_results"] is True
    assert report["metrics"] == results["test"]
    # The calibrated block of results.json is the headline itself now.
    assert results["calibration"]["test"]["calibrated"] == metrics.summary(results["test"])
    predicted = _predicted_metrics(run, data)
    for key in ("micro_f1", "macro_f1", "micro_precision", "micro_recall"):
      assert predicted[key] == results["test"][key], key
    # Re-searching for the run's own objective gives its thresholds back.
    again = runs.evaluate_run(run, "test", objective=goal)
    assert again["matches_results"] is True
    assert again["summary"]["threshold_objective"] == goal
    # Another view than results.json's is not compared with it.
    other = "per_label" if goal == "micro" else "micro"
    assert runs.evaluate_run(run, "test", objective=other)["matches_results"] is None
    assert runs.evaluate_run(run, "test", calibrated=False)["matches_results"] is None
    scored[goal] = results
  assert scored["macro"]["dev"]["macro_f1"] >= scored["micro"]["dev"]["macro_f1"]


def test_a_run_scored_before_calibrated_thresholds_keeps_its_numbers(tmp_path, capsys, data):
  """A multi-label run as the code wrote it before: thresholds.json searched on the raw
  dev probabilities (micro-F1), results.json scored on the raw ones, no objective keys."""
  run = _train(tmp_path, capsys, data, "old")
  config = rundir.read_json(rundir.path(run, rundir.CONFIG))
  del config["threshold_objective"]
  rundir.write_json(rundir.path(run, rundir.CONFIG), config)
  dev_probs, dev_labels = rundir.read_predictions(run, "dev")
  test_probs, test_labels = rundir.read_predictions(run, "test")
  search = metrics.search_thresholds(dev_probs, dev_labels)
  rundir.write_thresholds(run, "per_label", search["thresholds"],
                          {k: v for k, v in search.items() if k != "objective"})
  results = rundir.read_results(run)
  for key in ("threshold_objective", "thresholds_on"):
    del results[key]
  names = runs.load(run).label_names
  for split, probs, labels in (("dev", dev_probs, dev_labels), ("test", test_probs,
                                                                 test_labels)):
    results[split] = json.loads(json.dumps(metrics.multi_label_metrics(
        probs, labels, names, search["thresholds"])))
  rundir.write_json(rundir.path(run, rundir.RESULTS), results)
  report = runs.evaluate_run(run, "test")
  assert report["matches_results"] is True and report["metrics"] == results["test"]


def test_saturated_thresholds_warn_once(tmp_path, capsys, monkeypatch):
  assert objective.saturation([0.4, 0.6, 0.3]) is None
  assert "3 of 4" in objective.saturation([0.99997, 0.99999, 0.9995, 0.6])
  # A fasttext_nb-like model on multi-label data: every label's dev probabilities near
  # 0 or 1, confidently wrong ones included, so every threshold sits near 1. (The
  # temperature is held at 1: the thresholds a run applies are what is checked.)
  monkeypatch.setattr(calibration_lib, "fit_temperature", lambda p, y, multi: {
      "temperature": [1.0] * p.shape[1], "nll_before": 0.0, "nll_after": 0.0})
  rng = np.random.default_rng(0)
  truth = (rng.random((300, 5)) < 0.3).astype(np.float32)
  wrong = rng.random(truth.shape) < 0.1
  # Near 1 the order still tells (true labels above confidently wrong ones): the cut
  # F1 wants lies between two probabilities near 1.
  near_one = np.where(truth > 0, 1 - rng.random(truth.shape) * 1e-5,
                      1 - 1e-5 - rng.random(truth.shape) * 9e-5)
  saturated = np.where((truth > 0) ^ wrong, near_one, rng.random(truth.shape) * 1e-4)
  fields = {k: None for k in rundir.RESULT_KEYS if k not in ("dev", "test")}
  config = base.get_config()
  for name, probs in (("saturated", saturated.astype(np.float32)),
                      ("normal", _synthetic(1, 300, 5)[0])):
    scores = finish.score(config, list("abcde"), True, (probs, truth), (probs, truth))
    workdir = tmp_path / name
    workdir.mkdir()
    finish.write(str(workdir), config, name, True, scores, finish.results(scores, fields))
    err = capsys.readouterr().err
    if name == "saturated":
      assert min(scores["thresholds"]) >= objective.SATURATED
      assert err.count("warning") == 1 and f"{name} ({workdir})" in err
      assert "tfidf" in err  # what to do
    else:
      assert "warning" not in err
