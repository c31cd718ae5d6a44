"""Whole runs on data the tests write: accuracy, eval reproduction, predict, CV,
kill -9 and resume, divergence, and the run directory's contract."""

import json
import math
import os
import signal
import subprocess
import sys
import time

import numpy as np
import orbax.checkpoint as ocp
import pytest

from conftest import REPO, make_rows, tiny_config, write_jsonl
from textclf_jax.cli import main as cli
from textclf_jax.families import cv
from textclf_jax.training import progress, loop as train
from textclf_jax.run import layout as rundir
from textclf_jax.serve import runs
from textclf_jax.errors import DataError


def _run(args, **kw):
  env = dict(os.environ, WANDB_MODE="disabled", JAX_PLATFORMS="cpu")
  return subprocess.Popen([sys.executable, "-m", "textclf_jax", *args], cwd=REPO, env=env,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kw)


@pytest.fixture(scope="module")
def single_label_run(tmp_path_factory):
  """(data directory, run directory) of the 3-topic task trained for 4 epochs, shared by
  the tests that read a finished run (each of its runs compiles and trains ~8 CPU s)."""
  root = tmp_path_factory.mktemp("e2e")
  data = root / "topics"
  data.mkdir()
  write_jsonl(data / "train.jsonl", make_rows(300, 1))  # conftest.topic_dir's rows
  write_jsonl(data / "dev.jsonl", make_rows(60, 2))
  write_jsonl(data / "test.jsonl", make_rows(90, 3))
  workdir = str(root / "run")
  results = train.train_and_evaluate(tiny_config(dataset=str(data), num_epochs=4), workdir)
  return str(data), workdir, results


def test_train_eval_predict_single_label(single_label_run, capsys):
  _, workdir, results = single_label_run
  assert results["test"]["accuracy"] >= 0.9, results["test"]
  assert results["test"]["num_examples"] == 90
  for name in ("config.json", "vocab.json", "labels.json", "data.json", "metrics.jsonl",
               "results.json"):
    assert os.path.exists(os.path.join(workdir, name)), name
  lines = [json.loads(l) for l in open(os.path.join(workdir, "metrics.jsonl"))]
  assert any("train" in l for l in lines) and sum("dev" in l for l in lines) == 4
  # eval reproduces results.json exactly, via the CLI.
  capsys.readouterr()  # training's lines
  cli.main(["eval", workdir, "--split", "test"])
  out, err = capsys.readouterr()
  json.loads(out)  # stdout is the JSON alone (issue 26, item 12); the check is on stderr
  assert "matches results.json test metrics exactly: yes" in err
  assert runs.evaluate_run(workdir, "dev")["matches_results"]
  rows = runs.predict_texts(workdir, ["the goal of the match", "a chip in the phone"], top_k=2)
  assert [r["label"] for r in rows] == ["sport", "tech"]
  assert list(rows[0]["probabilities"]) == ["sport", "tech"]  # top 2, most probable first


def test_train_refuses_to_overwrite_a_run(single_label_run):
  data, workdir, _ = single_label_run
  before = open(os.path.join(workdir, "results.json")).read()
  with pytest.raises(FileExistsError, match="already holds"):
    train.train_and_evaluate(tiny_config(dataset=data, num_epochs=1), workdir)
  assert open(os.path.join(workdir, "results.json")).read() == before


def test_multi_label_run_tunes_and_saves_thresholds(tmp_path):
  d = tmp_path / "ml"
  d.mkdir()
  write_jsonl(d / "train.jsonl", make_rows(400, 1, multi_label=True))
  write_jsonl(d / "test.jsonl", make_rows(90, 3, multi_label=True))
  workdir = str(tmp_path / "run")
  config = tiny_config(dataset=str(d), num_epochs=6, multilabel_threshold="per_label")
  results = train.train_and_evaluate(config, workdir)
  assert results["test"]["micro_f1"] >= 0.8, results["test"]
  saved = json.load(open(os.path.join(workdir, "thresholds.json")))
  assert saved["mode"] == "per_label" and len(saved["thresholds"]) == 3
  # Both threshold modes are scored for the same model; the configured one is `test`.
  by_mode = results["by_threshold_mode"]
  assert set(by_mode) == {"global", "per_label"}
  assert by_mode["per_label"]["test"]["micro_f1"] == results["test"]["micro_f1"]
  assert 0.0 < by_mode["global"]["test"]["macro_f1"] <= 1.0
  assert runs.evaluate_run(workdir, "test")["matches_results"]
  row = runs.predict_texts(workdir, ["goal chip"])[0]
  assert set(row["labels"]) <= {"money", "sport", "tech"} and row["labels"]


def test_cross_validation_runs_every_fold(tmp_path):
  d = tmp_path / "cv"
  d.mkdir()
  rows = make_rows(90, 1)
  for i, row in enumerate(rows):
    row["fold"] = (i // 3) % 3  # every fold holds every label
  write_jsonl(d / "all.jsonl", rows)
  workdir = str(tmp_path / "run")
  summary = cv.train_all_folds(tiny_config(dataset=str(d), num_epochs=2), workdir)
  assert summary["folds"] == [0, 1, 2]
  assert set(summary["test_mean"]) >= {"accuracy", "macro_f1"}
  per_fold = [json.load(open(os.path.join(workdir, f"fold_{k}", "results.json")))
              for k in range(3)]
  assert sum(r["test"]["num_examples"] for r in per_fold) == 90
  np.testing.assert_allclose(summary["test_mean"]["accuracy"],
                             np.mean([r["test"]["accuracy"] for r in per_fold]))
  with pytest.raises(DataError, match="cross-validation run"):
    rundir.load_config(workdir)
  with pytest.raises(FileExistsError, match="already holds a run"):
    cv.train_all_folds(tiny_config(dataset=str(d), num_epochs=1), workdir)
  again = cv.train_all_folds(tiny_config(dataset=str(d), num_epochs=2), workdir, resume=True)
  assert again["test_mean"] == summary["test_mean"]  # finished folds are read, not re-run


def test_not_a_run_directory(tmp_path):
  with pytest.raises(DataError, match="not a run directory"):
    runs.load(str(tmp_path))
  with pytest.raises(DataError, match="not a directory"):
    runs.load(str(tmp_path / "missing"))


def test_divergence_stops_naming_the_step_and_keeps_last_checkpoint(topic_dir, tmp_path):
  workdir = str(tmp_path / "run")
  config = tiny_config(dataset=topic_dir, optimizer="sgd", momentum=0.0, learning_rate=1e30,
                       num_epochs=2, max_norm=0.0, log_every_steps=1)
  with pytest.raises(progress.TrainingDiverged, match=r"NaN/Inf at step \d+"):
    train.train_and_evaluate(config, workdir)
  assert not os.path.exists(os.path.join(workdir, "results.json"))


def _params(workdir):
  """Final parameters from the latest checkpoint, as numpy."""
  path = os.path.join(workdir, "checkpoints", "latest")
  manager = ocp.CheckpointManager(path)
  step = manager.latest_step()
  restored = manager.restore(step, args=ocp.args.Composite(state=ocp.args.StandardRestore()))
  manager.close()
  return step, restored["state"]["params"]


def test_kill_and_resume_is_bitwise_identical(topic_dir, tmp_path):
  """A run killed with SIGKILL mid-epoch and resumed ends with the same bits as a run
  that was never interrupted."""
  args = ["--config", "cnn", f"--config.dataset={topic_dir}", "--config.max_len=24",
          "--config.embed_dim=16", "--config.num_filters=16", "--config.batch_size=8",
          "--config.num_epochs=2", "--config.checkpoint_every_steps=6",
          "--config.log_every_steps=4", "--config.progress_bar=False",
          "--config.bucket_lengths=(8,16,24)", "--config.keep_checkpoints=both"]
  straight = str(tmp_path / "straight")
  proc = _run(["train", *args, "--workdir", straight])
  out, err = proc.communicate(timeout=600)
  assert proc.returncode == 0, err[-2000:]

  killed = str(tmp_path / "killed")
  proc = _run(["train", *args, "--workdir", killed])
  latest = os.path.join(killed, "checkpoints", "latest")
  deadline = time.time() + 300
  while time.time() < deadline:
    names = os.listdir(latest) if os.path.isdir(latest) else []
    if any(int(n) >= 12 for n in names if n.isdigit()):
      break
    time.sleep(0.01)
  proc.send_signal(signal.SIGKILL)
  proc.communicate()
  assert proc.returncode == -signal.SIGKILL
  assert not os.path.exists(os.path.join(killed, "results.json")), "killed too late"

  proc = _run(["train", "--resume", killed])
  out, err = proc.communicate(timeout=600)
  assert proc.returncode == 0, err[-2000:]
  step_a, params_a = _params(straight)
  step_b, params_b = _params(killed)
  assert step_a == step_b
  import jax
  same = jax.tree.map(lambda a, b: np.array_equal(np.asarray(a), np.asarray(b)), params_a,
                      params_b)
  assert all(jax.tree.leaves(same))
  results_a = json.load(open(os.path.join(straight, "results.json")))
  results_b = json.load(open(os.path.join(killed, "results.json")))
  assert results_a["test"] == results_b["test"] and results_a["dev"] == results_b["dev"]


def test_test_checkpoint_last_scores_the_final_state(topic_dir, tmp_path):
  workdir = str(tmp_path / "run")
  config = tiny_config(dataset=topic_dir, num_epochs=3, early_stopping_patience=0,
                       test_checkpoint="last")
  results = train.train_and_evaluate(config, workdir)
  assert results["tested_checkpoint"] == "last"
  assert results["final_step"] == 3 * math.ceil(300 / 16)
  # eval restores the same (last) state and reproduces results.json exactly.
  assert runs.evaluate_run(workdir, "test")["matches_results"]
  assert runs.evaluate_run(workdir, "dev")["matches_results"]
  bad = tiny_config(dataset=topic_dir, test_checkpoint="final")
  with pytest.raises(ValueError, match="test_checkpoint"):
    train.train_and_evaluate(bad, str(tmp_path / "bad"))
  assert not os.path.exists(tmp_path / "bad")
  for key, value in [("conv_backward", "fast"), ("embedding_update", "lazy")]:
    bad = tiny_config(dataset=topic_dir, **{key: value})
    with pytest.raises(ValueError, match=f"config.{key}='{value}'"):
      train.train_and_evaluate(bad, str(tmp_path / key))
    assert not os.path.exists(tmp_path / key)
