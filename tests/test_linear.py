"""The TF-IDF + logistic regression model (textclf_jax/linear.py) as a first-class model:
`textclf train --config tfidf`, eval, predict, CV, multi-label, no pickle anywhere."""

import json
import os
import sys

import numpy as np
import pytest

from conftest import make_rows, run_textclf, tiny_config, write_jsonl
from textclf_jax.families.tfidf import fit as linear, model as linear_model
from textclf_jax.run import layout as rundir
from textclf_jax.serve import runs
from textclf_jax import config as config_lib
from textclf_jax.data import splits as splits_lib
from textclf_jax.data.batching import encode_labels
from textclf_jax.data.sources import load_source
from textclf_jax.text.tokenize import Tokenizer

pytest.importorskip("sklearn")


_main = run_textclf  # (exit status, stdout, stderr)


def _train(capsys, data, workdir, *overrides):
  code, out, err = _main(["train", "--config", "tfidf", f"--config.dataset={data}",
                          "--workdir", workdir, *[f"--config.{o}" for o in overrides]], capsys)
  assert code == 0, err
  return out


def _fixed(tmp_path, name, rows_train, rows_test):
  d = tmp_path / name
  d.mkdir()
  write_jsonl(d / "train.jsonl", rows_train)
  write_jsonl(d / "test.jsonl", rows_test)
  return str(d)


def _eval(capsys, run, split="test"):
  code, out, err = _main(["eval", run, "--split", split], capsys)
  assert code == 0, err
  return out + err


def _refit_probs(run, split="test"):
  """The saved run's split probabilities, and those of scikit-learn's own classifier
  fitted again from scratch with the C the run chose (the fits are deterministic)."""
  loaded = linear_model.LinearRun(run)
  config = loaded.config
  raw = load_source(config)
  data = splits_lib.make_splits(raw, config, rundir.read_fold(run))
  tokenizer = Tokenizer.from_config(config)
  tokens = {k: [tokenizer(t) for t in s.texts] for k, s in data.items()}
  vectorizer = linear_model.make_vectorizer()
  train = vectorizer.fit_transform(tokens["train"])
  c = rundir.read_results(run)["baseline"]["C"]
  model = linear_model.make_classifier(c, loaded.multi_label, config.class_weights == "balanced",
                             config.seed)
  model.fit(train, encode_labels(data["train"].labels, loaded.label_names, loaded.multi_label))
  refit = model.predict_proba(vectorizer.transform(tokens[split]))
  return loaded.predict_proba(tokens[split]), refit


def _assert_no_pickle(run):
  """Every file is JSON or a plain .npy array; nothing carries a pickle stream."""
  names = []
  for root, _, files in os.walk(run):
    for name in files:
      path = os.path.join(root, name)
      names.append(os.path.relpath(path, run))
      with open(path, "rb") as f:
        head = f.read(2)
      assert not (head[:1] == b"\x80" and head[1:2] in b"\x02\x03\x04\x05"), path  # pickle
      assert not name.endswith((".pkl", ".pickle", ".joblib")), path
      if name.endswith(".npy"):
        array = np.load(path, allow_pickle=False)
        assert array.dtype == np.float64 or name.endswith("_labels.npy"), path
      elif name.endswith(".json"):
        rundir.read_json(path)
      elif name == rundir.RELIABILITY:
        assert head == b"\x89P", path  # a PNG picture
      else:
        assert name == rundir.LOCK, path  # the (empty) lock file
  return names


def test_tfidf_train_eval_predict_through_the_cli(tmp_path, capsys):
  data = _fixed(tmp_path, "topics", make_rows(150, 1), make_rows(45, 2))
  run = str(tmp_path / "run")
  out = _train(capsys, data, run)
  assert "[textclf] test: accuracy" in out
  results = rundir.read_results(run)
  assert results["model"] == "tfidf+lr" and results["test"]["accuracy"] > 0.9
  assert results["baseline"]["C"] in linear.C_GRID and results["num_params"] > 0
  config = config_lib.from_json(os.path.join(run, "config.json"))
  assert config.model == "tfidf" and tuple(config.tfidf_c_grid) == linear.C_GRID
  names = _assert_no_pickle(run)
  assert sorted(names) == sorted(
      ["textclf.json", "config.json", "labels.json", "data.json", "results.json", ".lock",
       rundir.CALIBRATION,
       rundir.RELIABILITY]
      + [f"linear/{f}" for f in linear_model.MODEL_FILES] + list(rundir.PREDICTION_FILES))
  # eval: the same metrics, exactly; the probabilities are scikit-learn's, bit for bit.
  assert "matches results.json test metrics exactly: yes" in _eval(capsys, run)
  assert "matches results.json dev metrics exactly: yes" in _eval(capsys, run, "dev")
  saved, refit = _refit_probs(run)
  assert saved.dtype == np.float64 and np.array_equal(saved, refit)
  # predict: the neural runs' JSON lines, options anywhere, a blank line kept in place.
  code, out, err = _main(["predict", run, "--top_k", "3", "goal match team", "",
                          "bank stock price"], capsys)
  assert code == 0, err
  rows = [json.loads(line) for line in out.splitlines()]
  assert [r.get("label") for r in rows] == ["sport", None, "money"] and "error" in rows[1]
  for row in (rows[0], rows[2]):
    assert set(row) == {"text", "label", "probabilities"} and len(row["probabilities"]) == 3
    assert abs(sum(row["probabilities"].values()) - 1) < 1e-5
  # The same run directory rules as a network's: refused when used, resumed when finished.
  code, _, err = _main(["train", "--config", "tfidf", f"--config.dataset={data}",
                        "--workdir", run], capsys)
  assert code == 2 and "already holds a finished run" in err
  code, out, _ = _main(["train", "--resume", run], capsys)
  assert code == 0 and "nothing left to train" in out
  assert rundir.read_results(run) == results


def test_binary_and_balanced_probabilities_are_scikit_learns(tmp_path, capsys):
  """Two labels: one coefficient row (scikit-learn's expit path), class_weights=balanced."""
  two = lambda rows: [r for r in rows if r["label"] != "tech"]  # noqa: E731
  data = _fixed(tmp_path, "two", two(make_rows(150, 1)), two(make_rows(45, 2)))
  run = str(tmp_path / "run")
  _train(capsys, data, run, "class_weights=balanced", "tfidf_c_grid=0.5,2")
  assert np.load(os.path.join(run, "linear", "coef.npy"), allow_pickle=False).shape[0] == 1
  assert rundir.read_results(run)["baseline"]["C_grid"] == [0.5, 2.0]
  saved, refit = _refit_probs(run)
  assert saved.shape[1] == 2 and np.array_equal(saved, refit)
  assert "exactly: yes" in _eval(capsys, run)


def test_multi_label_with_thresholds_and_a_constant_label(tmp_path, capsys):
  """One-vs-rest: one row per label; `all` is on every training row, so scikit-learn
  keeps a constant predictor for it (no coefficients), which the saved model reproduces."""
  def rows(n, seed):
    out = make_rows(n, seed, multi_label=True)
    for row in out:
      row["labels"] = sorted(row["labels"] + ["all"])
    return out
  data = _fixed(tmp_path, "multi", rows(150, 1), rows(45, 2))
  run = str(tmp_path / "run")
  with pytest.warns(UserWarning, match="present in all training examples"):
    _train(capsys, data, run, "multilabel_threshold=per_label")
  meta = rundir.read_json(os.path.join(run, "linear", "model.json"))
  labels = rundir.read_labels(run)["labels"]
  assert meta["constant_labels"] == {str(labels.index("all")): 1}
  assert len(rundir.read_thresholds(run)) == len(labels) == 4
  with pytest.warns(UserWarning, match="present in all training examples"):
    saved, refit = _refit_probs(run)
  assert np.array_equal(saved, refit) and (saved[:, labels.index("all")] == 1.0).all()
  assert "exactly: yes" in _eval(capsys, run)
  code, out, err = _main(["predict", run, "goal bank"], capsys)
  assert code == 0, err
  row = json.loads(out)
  assert "all" in row["labels"] and set(row) == {"text", "labels", "probabilities"}
  _assert_no_pickle(run)


def test_cross_validation_dataset(tmp_path, capsys):
  d = tmp_path / "cv"
  d.mkdir()
  write_jsonl(d / "all.jsonl", make_rows(100, 1, with_fold=True))
  run = str(tmp_path / "run")
  out = _train(capsys, str(d), run, "folds=0,3")
  assert "2-fold CV test" in out and "fold 3: test accuracy" in out
  summary = rundir.read_json(os.path.join(run, "cv_results.json"))
  assert summary["model"] == "tfidf" and summary["folds"] == [0, 3]
  assert sorted(f for f in os.listdir(run) if not f.startswith(".")) == [
      "config.json", "cv_results.json", "fold_0", "fold_3", "textclf.json"]
  assert rundir.read_json(os.path.join(run, "textclf.json"))["kind"] == "cv"
  assert rundir.read_json(os.path.join(run, "fold_3", "data.json"))["fold"] == 3
  assert "exactly: yes" in _eval(capsys, os.path.join(run, "fold_3"))
  saved, refit = _refit_probs(os.path.join(run, "fold_3"))
  assert np.array_equal(saved, refit)
  code, _, err = _main(["eval", run], capsys)
  assert code == 2 and "give one fold's directory" in err


def test_a_sweep_cell_is_a_tfidf_run_too(tmp_path):
  """train_tfidf (the sweep's baseline cell, from a network's preset) records model
  `tfidf` and the grid, so `eval` and `predict` work on the cell; refitting is allowed."""
  data = _fixed(tmp_path, "topics", make_rows(150, 1), make_rows(45, 2))
  run = str(tmp_path / "cell")
  config = tiny_config(dataset=data)
  first = linear.train_tfidf(config, run)
  assert config_lib.from_json(os.path.join(run, "config.json")).model == "tfidf"
  assert runs.evaluate_run(run)["matches_results"] is True
  assert runs.predict_texts(run, ["bank stock"], top_k=1)[0]["label"] == "money"
  again = linear.train_tfidf(config, run)
  assert again["test"] == first["test"]


def test_without_scikit_learn_one_clear_error_and_nothing_written(tmp_path, capsys,
                                                                  monkeypatch):
  data = _fixed(tmp_path, "topics", make_rows(30, 1), make_rows(15, 2))
  monkeypatch.setitem(sys.modules, "sklearn", None)  # `import sklearn` raises ImportError
  run = tmp_path / "run"
  code, _, err = _main(["train", "--config", "tfidf", f"--config.dataset={data}",
                        "--workdir", str(run)], capsys)
  assert code == 2 and err.count("\n") == 1
  assert 'needs scikit-learn' in err and 'pip install "textclf_jax[linear]"' in err
  assert not run.exists()


def test_bad_keys_are_named_before_anything_is_written(tmp_path, capsys):
  run = tmp_path / "run"
  code, _, err = _main(["train", "--config", "tfidf", "--config.tfidf_c_grid=0,-1",
                        "--config.class_weights=balanced_sqrt", "--workdir", str(run)], capsys)
  assert code == 2 and "config.tfidf_c_grid" in err and "config.class_weights" in err
  assert not run.exists()


def test_a_damaged_model_file_is_named(tmp_path, capsys):
  data = _fixed(tmp_path, "topics", make_rows(60, 1), make_rows(15, 2))
  run = str(tmp_path / "run")
  _train(capsys, data, run)
  coef = os.path.join(run, "linear", "coef.npy")
  with open(coef, "r+b") as f:
    f.truncate(100)
  code, _, err = _main(["predict", run, "goal"], capsys)
  assert code == 2 and "coef.npy" in err
  # An object array (it would need pickle to load) is refused, not unpickled.
  np.save(coef, np.array([{"a": 1}], dtype=object), allow_pickle=True)
  code, _, err = _main(["eval", run], capsys)
  assert code == 2 and "coef.npy" in err
  os.remove(coef)
  code, _, err = _main(["eval", run], capsys)
  assert code == 2 and "missing linear/coef.npy" in err


def test_the_c_search_extends_past_the_grid_until_the_best_is_inside():
  """search_c: the grid, then x ratio outwards while the best is at an edge (with a cap)."""
  peak = lambda best: (lambda c: (-abs(np.log(c / best)), c))  # noqa: E731
  c, payload, tried = linear.search_c((0.25, 1, 4, 16, 64, 256), 3, peak(1024))
  assert c == payload == 1024 and [t for t, _ in tried][6:] == [1024, 4096]
  c, _, tried = linear.search_c((1, 4, 16), 3, peak(1 / 64))  # downwards, by the same ratio
  assert c == 1 / 64 and [t for t, _ in tried] == [1, 4, 16, 0.25, 1 / 16, 1 / 64]
  c, _, tried = linear.search_c((1, 4), 2, lambda c: (c, c))  # capped at 2 more
  assert c == 64 and [t for t, _ in tried] == [1, 4, 16, 64]
  c, _, tried = linear.search_c((16, 1, 4), 0, lambda c: (c, c))  # 0: the grid, sorted
  assert c == 16 and [t for t, _ in tried] == [1, 4, 16]
  c, _, tried = linear.search_c((1, 4, 16), 3, lambda c: (min(c, 4), c))  # ties: first
  assert c == 4 and [t for t, _ in tried] == [1, 4, 16]
