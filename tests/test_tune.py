"""`textclf tune` (textclf_jax/tune.py): an optuna study in SQLite whose trials are run
directories; a study killed mid-trial resumes without repeating finished trials; the
pruner stops a clearly worse trial through the training loop's on_dev hook; the best
config retrains to the same dev score, bit for bit."""

import json
import os
import subprocess
import sys
import time

import numpy as np
import pytest

from conftest import REPO, make_rows, run_textclf, write_jsonl
from textclf_jax import config as config_lib
from textclf_jax.run import layout as rundir, lock as runlock
from textclf_jax.tune import search as tune, spaces as tune_spaces

optuna = pytest.importorskip("optuna")

# A CNN that trains in about a second; one bucket length, so one program per trial.
# (The pruner's test trains 2 epochs.)
TINY = ("dataset={data}", "max_len=16", "bucket_lengths=16", "embed_dim=16", "num_filters=8",
        "batch_size=32", "num_epochs=1", "log_every_steps=5", "checkpoint_every_steps=1000",
        "progress_bar=false", "wandb=disabled")


@pytest.fixture(scope="module")
def env(tmp_path_factory):
  base = tmp_path_factory.mktemp("tune")
  data = base / "data"
  data.mkdir()
  write_jsonl(data / "train.jsonl", make_rows(300, 1))
  write_jsonl(data / "dev.jsonl", make_rows(60, 2))
  write_jsonl(data / "test.jsonl", make_rows(90, 3))
  process_env = dict(os.environ, WANDB_MODE="disabled", JAX_PLATFORMS="cpu",
                     TEXTCLF_COMPILATION_CACHE=str(base / "cache"), TEXTCLF_DEBUG="",
                     PYTHONUNBUFFERED="1")
  return {"base": base, "data": str(data), "env": process_env}


def _args(env, *args):
  """TINY first: an override among `args` wins."""
  return [*(f"--config.{o.format(data=env['data'])}" for o in TINY), *args]


def _command(env, *args):
  return [sys.executable, "-m", "textclf_jax", *_args(env, *args)]


def _run(env, *args, timeout=300):
  done = subprocess.run(_command(env, *args), cwd=REPO, env=env["env"], capture_output=True,
                        text=True, timeout=timeout)
  assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
  return done.stdout


def _trials(directory):
  return optuna.load_study(study_name="toy", storage=tune.storage_url(directory)).trials


@pytest.fixture(scope="module")
def killed_and_resumed(env):
  """A 3-trial study killed (SIGKILL) while its second trial trains, then resumed."""
  directory = str(env["base"] / "study")
  args = ("tune", "--config", "cnn", "--space", "lr", "--trials", "3", "--study", "toy",
          "--workdir", directory, "--pruner", "none")
  process = subprocess.Popen(_command(env, *args), cwd=REPO, env=env["env"],
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
  started = os.path.join(directory, tune.trial_dir(1), rundir.CONFIG)
  deadline = time.time() + 240
  while not os.path.exists(started) and process.poll() is None and time.time() < deadline:
    time.sleep(0.05)
  assert process.poll() is None, process.stderr.read()[-2000:]
  process.kill()
  process.wait()
  first = rundir.read_results(os.path.join(directory, tune.trial_dir(0)))
  first_mtime = os.path.getmtime(os.path.join(directory, tune.trial_dir(0), rundir.RESULTS))
  killed = [(t.number, t.state.name, t.params) for t in _trials(directory)]
  out = _run(env, *args)
  return {"dir": directory, "killed": killed, "first": first, "first_mtime": first_mtime,
          "out": out}


def test_a_study_writes_its_database_trial_runs_and_summary(killed_and_resumed):
  directory = killed_and_resumed["dir"]
  assert os.path.isfile(os.path.join(directory, tune.STUDY_DB))
  trials = _trials(directory)
  complete = [t for t in trials if t.state.name == "COMPLETE"]
  assert len(complete) == 3
  for t in complete:  # every trial is a normal, finished run directory
    run = os.path.join(directory, t.user_attrs["workdir"])
    results = rundir.read_results(run)
    assert results["dev"]["accuracy"] == t.value
    config = config_lib.from_json(os.path.join(run, rundir.CONFIG))
    assert config.learning_rate == t.params["learning_rate"]
    assert config.dropout == t.params["dropout"] and config.wandb_group == "toy"
  summary = rundir.read_json(os.path.join(directory, tune.BEST_JSON))
  best = max(complete, key=lambda t: t.value)
  assert summary["best"]["number"] == best.number and summary["best"]["value"] == best.value
  assert summary["finished"] == 3 and summary["metric"] == "accuracy"
  assert f"best of 3 finished trials: trial {best.number}" in killed_and_resumed["out"]


def test_a_killed_study_resumes_without_repeating_finished_trials(env, killed_and_resumed,
                                                                  capsys):
  killed = killed_and_resumed["killed"]
  assert [(n, s) for n, s, _ in killed] == [(0, "COMPLETE"), (1, "RUNNING")]
  directory = killed_and_resumed["dir"]
  trials = _trials(directory)
  # Trial 1, left RUNNING by the killed process, is failed and its parameters re-run once.
  assert [t.state.name for t in trials] == ["COMPLETE", "FAIL", "COMPLETE", "COMPLETE"]
  assert trials[2].params == killed[1][2] and trials[2].system_attrs["failed_trial"] == 1
  assert trials[3].params not in (killed[0][2], killed[1][2])
  assert "trial 1 left running by a killed process: failed" in killed_and_resumed["out"]
  # The finished trial 0 was not trained again.
  run0 = os.path.join(directory, tune.trial_dir(0))
  assert os.path.getmtime(os.path.join(run0, rundir.RESULTS)) == killed_and_resumed[
      "first_mtime"]
  assert rundir.read_results(run0) == killed_and_resumed["first"]
  # Run again with the study complete: nothing trains.
  code, out, err = run_textclf(_args(env, "tune", "--config", "cnn", "--space", "lr",
                                     "--trials", "3", "--study", "toy", "--workdir",
                                     directory, "--pruner", "none"), capsys)
  assert code == 0, err
  assert "3 of 3 trials finished" in out and len(_trials(directory)) == 4


def test_the_best_config_retrains_to_the_same_dev_score(env, killed_and_resumed, tmp_path):
  directory = killed_and_resumed["dir"]
  best = rundir.read_json(os.path.join(directory, tune.BEST_JSON))["best"]
  retrained = str(tmp_path / "retrained")
  done = subprocess.run([sys.executable, "-m", "textclf_jax", "train", "--config",
                         best["config_file"], "--workdir", retrained], cwd=REPO,
                        env=env["env"], capture_output=True, text=True, timeout=300)
  assert done.returncode == 0, done.stderr[-2000:]
  trial = os.path.join(directory, best["workdir"])
  assert rundir.read_results(retrained)["dev"] == rundir.read_results(trial)["dev"]
  for split in ("dev", "test"):  # the same model: its probabilities to the bit
    assert np.array_equal(rundir.read_predictions(retrained, split)[0],
                          rundir.read_predictions(trial, split)[0])


def test_the_pruner_stops_a_clearly_worse_trial_and_its_run_is_complete(env, capsys):
  directory = str(env["base"] / "pruned")
  _run(env, "tune", "--config", "cnn", "--space", "lr", "--trials", "2", "--study", "toy",
       "--workdir", directory, "--pruner", "median", "--pruner_startup", "1",
       "--pruner_warmup", "0", "--enqueue", '{"learning_rate": 0.01, "dropout": 0.0}',
       "--enqueue", '{"learning_rate": 0.0001, "dropout": 0.0}', "--config.num_epochs=2")
  trials = _trials(directory)
  assert [t.state.name for t in trials] == ["COMPLETE", "PRUNED"]
  assert list(trials[1].intermediate_values) == [0]  # stopped after its first evaluation
  run = os.path.join(directory, tune.trial_dir(1))
  results = rundir.read_results(run)  # a finished run, not a crashed one
  assert results["pruned"].startswith("pruned by the median pruner after 1 dev evaluation")
  assert results["stopped_early"] and results["epochs_trained"] == 1  # of num_epochs=2
  assert rundir.read_results(os.path.join(directory, tune.trial_dir(0)))["epochs_trained"] == 2
  assert runlock.holder(run) is None
  code, out, err = run_textclf(["eval", run, "--split", "dev"], capsys)
  assert code == 0 and "matches results.json dev metrics exactly: yes" in err, err


@pytest.mark.parametrize("preset", ["cnn", "lstm", "hybrid"])
def test_every_space_samples_valid_configs(preset, tmp_path):
  vectors = tmp_path / "vectors.txt"
  vectors.write_text("the 0.1 0.2\ngoal 0.3 0.4\n")
  for with_vectors in (False, True):
    base = config_lib.load_preset(preset)
    if with_vectors:
      with base.unlocked():
        base.vectors = str(vectors)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    names = {"cnn": ["cnn", "lr"], "lstm": ["lstm", "lr"], "hybrid": ["hybrid", "lr"]}[preset]
    for name in names:
      seen = set()
      for _ in range(15):
        values = tune_spaces.suggest(name, study.ask(), base)
        tune.trial_config(base, values)  # validates
        seen.add(values.get("embedding", "rand"))
      assert len(seen) > 1 if with_vectors and name != "lr" else seen == {"rand"}


def test_unknown_spaces_and_mismatched_settings_are_clear_errors(env, capsys):
  code, _, err = run_textclf(["tune", "--space", "nope"], capsys)
  assert code == 2 and "--space 'nope': not a search space; expected one of cnn, lstm, " \
      "hybrid, bag, lr" in err
  code, _, err = run_textclf(["tune", "--config", "lstm", "--space", "cnn",
                              f"--config.dataset={env['data']}", "--workdir",
                              str(env["base"] / "mismatch")], capsys)
  assert code == 2 and "tunes filter_widths, num_filters" in err
  # A tune directory that holds another study's settings is refused, naming what differs.
  directory = env["base"] / "other"
  directory.mkdir()
  record = {"study": "toy", "preset": "cnn", "space": "lr", "base_config": {"dropout": 0.1}}
  (directory / tune.TUNE_JSON).write_text(json.dumps(record))
  code, _, err = run_textclf(["tune", "--space", "lr", "--study", "toy", "--workdir",
                              str(directory), f"--config.dataset={env['data']}"], capsys)
  assert code == 2 and "holds the study 'toy' tuning other settings" in err \
      and "config.dropout" in err


def test_the_slurm_array_script_starts_one_seeded_worker_on_the_shared_study(tmp_path):
  """launch/slurm_tune.sbatch: the study's URL and the array index as the sampler seed."""
  python = tmp_path / "python"
  python.write_text('#!/bin/sh\nprintf "%s\\n" "$@"\n')
  python.chmod(0o755)
  script = os.path.join(REPO, "launch", "slurm_tune.sbatch")
  env = dict(os.environ, PYTHON=str(python), SLURM_ARRAY_TASK_ID="3",
             TEXTCLF_TUNE_STORAGE="postgresql://tuner@db/optuna")
  done = subprocess.run(["bash", script, "--space", "cnn", "--trials", "64"], env=env,
                        capture_output=True, text=True, timeout=30)
  assert done.returncode == 0, done.stderr
  assert done.stdout.split("\n", 1)[1].split() == [
      "-m", "textclf_jax", "tune", "--storage", "postgresql://tuner@db/optuna",
      "--sampler_seed", "3", "--space", "cnn", "--trials", "64"]
  del env["TEXTCLF_TUNE_STORAGE"]
  done = subprocess.run(["bash", script], env=env, capture_output=True, text=True, timeout=30)
  assert done.returncode != 0 and "set TEXTCLF_TUNE_STORAGE" in done.stderr
