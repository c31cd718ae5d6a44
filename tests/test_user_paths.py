"""Project issue 26: what a new user of the CLI met, each item held by a test here."""

import json
import os
import shutil

import pytest

from conftest import make_rows, run_textclf, tiny_config, tiny_tfidf_run, write_jsonl
from textclf_jax import config as config_lib
from textclf_jax.run import layout as rundir


def _data(root, name, test_suffix=""):
  d = os.path.join(root, name)
  os.makedirs(d)
  write_jsonl(os.path.join(d, "train.jsonl"), make_rows(200, 1))
  write_jsonl(os.path.join(d, "dev.jsonl"), make_rows(45, 2))
  write_jsonl(os.path.join(d, "test.jsonl"),
              [{**r, "text": r["text"] + test_suffix} for r in make_rows(60, 3)])
  return d


@pytest.fixture(scope="module")
def made(tmp_path_factory):
  """TF-IDF runs on two datasets whose test splits have the same labels, in the same
  order, but other texts; and a tiny CNN on the first."""
  from textclf_jax.training import loop as train
  root = str(tmp_path_factory.mktemp("user_paths"))
  topics, other = _data(root, "topics"), _data(root, "other", test_suffix=" market")
  cnn = os.path.join(root, "cnn")
  train.train_and_evaluate(tiny_config(dataset=topics, num_epochs=1, bucket_lengths=(24,)), cnn)
  return {"a": tiny_tfidf_run(topics, os.path.join(root, "a")),
          "b": tiny_tfidf_run(other, os.path.join(root, "b")), "cnn": cnn, "root": root}


def test_eval_prints_only_json_on_stdout(made, capsys):
  """Item 12: the results.json check is a stderr line; stdout parses as JSON."""
  code, out, err = run_textclf(["eval", made["a"]], capsys)
  assert code == 0, err
  assert json.loads(out)["num_examples"] == 60
  assert "matches results.json test metrics exactly: yes" in err


def test_ensemble_compares_texts_not_only_labels(made, capsys):
  """Item 7: the same label sequence on other texts is refused, also for a run made
  before data.json recorded its splits' text hashes (recomputed from its dataset)."""
  data = rundir.read_json(rundir.path(made["a"], rundir.DATA))
  assert set(data["text_sha256"]) == {"train", "dev", "test"}
  code, _, err = run_textclf(["eval", made["a"], "--ensemble", made["b"]], capsys)
  assert code == 2 and "holds other texts than that of" in err and err.count("\n") == 1, err
  old = os.path.join(made["root"], "b_old")
  shutil.copytree(made["b"], old)
  data = rundir.read_json(rundir.path(old, rundir.DATA))
  del data["text_sha256"]
  rundir.write_json(rundir.path(old, rundir.DATA), data)
  code, _, err = run_textclf(["eval", made["a"], "--ensemble", old], capsys)
  assert code == 2 and "holds other texts than that of" in err, err
  code, out, err = run_textclf(["eval", made["a"], "--ensemble", made["cnn"]], capsys)
  assert code == 0 and json.loads(out)["ensemble"]["members"] == 2, err


def test_ensemble_names_a_member_still_training(made, capsys):
  """Item 12: a member whose lock is held and that has no results.json yet is named as
  still training, before any member's predictions are computed."""
  from textclf_jax.run import lock as runlock
  busy = os.path.join(made["root"], "busy")
  shutil.copytree(made["a"], busy, ignore=shutil.ignore_patterns(".lock*"))
  os.remove(rundir.path(busy, rundir.RESULTS))
  with runlock.RunLock(busy):
    code, out, err = run_textclf(["eval", made["cnn"], "--ensemble", busy], capsys)
  assert code == 2 and out == "" and err.count("\n") == 1, err
  assert f"ensemble: {busy} is still training (pid {os.getpid()}" in err


@pytest.mark.parametrize("which", ["cnn", "a"])
def test_predict_says_more_labels_exist_and_notes_texts_with_no_known_word(
    made, capsys, which):
  """Item 8: one stderr line when --top_k hides labels; a `note` on a text none of whose
  words the run knows (it gets the bias's label), none on the others."""
  code, out, err = run_textclf(["predict", made[which], "--top_k", "2", "the goal of the match",
                                "qqqq zzzz"], capsys)
  assert code == 0, err
  rows = [json.loads(line) for line in out.splitlines()]
  assert "note" not in rows[0] and rows[1]["note"].startswith("no known word")
  assert err.count("top 2 of 3 labels") == 1 and err.count("\n") == 1, err
  code, out, err = run_textclf(["predict", made[which], "--top_k", "3", "goal"], capsys)
  assert code == 0 and "top" not in err and len(json.loads(out)["probabilities"]) == 3


@pytest.mark.parametrize("preset", ["cnn", "tfidf"])
def test_dev_label_unseen_in_training_names_file_line_and_writes_nothing(
    tmp_path, capsys, preset):
  """Item 6: FILE:LINE of the dev row, and no run directory (not even its lock)."""
  if preset == "tfidf":
    pytest.importorskip("sklearn")
  d = tmp_path / "data"
  d.mkdir()
  write_jsonl(d / "train.jsonl", make_rows(60, 1))
  dev = make_rows(9, 2)
  dev[2]["label"] = "weather"
  write_jsonl(d / "dev.jsonl", dev)
  write_jsonl(d / "test.jsonl", make_rows(9, 3))
  run = tmp_path / "run"
  code, _, err = run_textclf(["train", "--config", preset, f"--config.dataset={d}",
                              "--config.wandb=disabled", "--workdir", str(run)], capsys)
  assert code == 2 and f"{d / 'dev.jsonl'}:3: dev label 'weather'" in err, err
  assert not run.exists()


def test_test_fold_label_unseen_in_training_writes_no_cv_parent(tmp_path, capsys):
  """Item 6 for cross-validation: a label only fold 0 holds is named by FILE:LINE before
  the CV parent directory (its marker, its lock) is made."""
  d = tmp_path / "data"
  d.mkdir()
  rows = make_rows(60, 1, with_fold=True)
  rows[5]["label"], rows[5]["fold"] = "weather", 0
  write_jsonl(d / "all.jsonl", rows)
  run = tmp_path / "run"
  code, _, err = run_textclf(["train", "--config", "cnn", f"--config.dataset={d}",
                              "--config.wandb=disabled", "--workdir", str(run)], capsys)
  assert code == 2 and f"{d / 'all.jsonl'}:6: test label 'weather'" in err, err
  assert not run.exists()


def test_ctrl_c_in_a_tune_trial_is_one_line_and_requeues_the_trial(tmp_path, capfd,
                                                                   monkeypatch):
  """Item 4: Ctrl-C while a trial trains (simulated: KeyboardInterrupt at its first dev
  evaluation) exits 130 with one stderr line, no optuna traceback; the trial is failed and
  its parameters queued again, as a killed trial's are; the next start runs them."""
  optuna = pytest.importorskip("optuna")
  from textclf_jax.training import loop
  from textclf_jax.tune import search as tune
  d = tmp_path / "data"
  d.mkdir()
  write_jsonl(d / "train.jsonl", make_rows(120, 1))
  write_jsonl(d / "dev.jsonl", make_rows(30, 2))
  write_jsonl(d / "test.jsonl", make_rows(30, 3))
  directory = str(tmp_path / "study")
  args = ["tune", "--config", "cnn", "--space", "lr", "--trials", "2", "--study", "toy",
          "--workdir", directory, "--pruner", "none",
          *(f"--config.{o}" for o in (f"dataset={d}", "max_len=16", "bucket_lengths=16",
                                      "embed_dim=16", "num_filters=8", "batch_size=32",
                                      "num_epochs=1", "progress_bar=false", "wandb=disabled"))]
  real, calls = loop.train_and_evaluate, []

  def train(config, workdir, **kwargs):
    calls.append(workdir)
    if len(calls) == 2:
      def on_dev(*_):
        raise KeyboardInterrupt
      kwargs["on_dev"] = on_dev
    return real(config, workdir, **kwargs)

  monkeypatch.setattr(loop, "train_and_evaluate", train)
  code, _, err = run_textclf(args, capfd)
  assert code == 130 and err == "textclf: error: interrupted\n", err
  trials = optuna.load_study(study_name="toy", storage=tune.storage_url(directory)).trials
  assert [t.state.name for t in trials] == ["COMPLETE", "FAIL", "WAITING"]
  assert trials[2].params == trials[1].params and trials[2].system_attrs["failed_trial"] == 1
  monkeypatch.setattr(loop, "train_and_evaluate", real)
  code, _, err = run_textclf(args, capfd)
  assert code == 0, err
  trials = optuna.load_study(study_name="toy", storage=tune.storage_url(directory)).trials
  assert [t.state.name for t in trials] == ["COMPLETE", "FAIL", "COMPLETE"]
  assert trials[2].params == trials[1].params


def test_large_max_len_prints_a_memory_estimate_and_impossible_lengths_are_refused(
    monkeypatch):
  """Item 3: a memory estimate (one line each) above checks.WARN_BYTES, none for the
  presets; a max_len beyond a model's positions, or a batch of more tokens than int32
  indexing holds, is a config error."""
  from textclf_jax.errors import ConfigError
  from textclf_jax.models import model_class
  from textclf_jax.training import checks
  for preset in ("cnn", "lstm", "fasttext"):
    assert checks.resource_notes(config_lib.load_preset(preset), vocab_size=20000) == []
  config = tiny_config(max_len=100000, batch_size=64, embed_dim=300, num_filters=100)
  notes = checks.resource_notes(config)
  assert len(notes) == 1 and "max_len 100000" in notes[0] and "GiB of activations" in notes[0]
  assert checks.memory_estimate(config)["activations"] == 64 * 100000 * (300 + 300) * 8
  checks.validate(config)  # large is allowed; it is said
  big_table = tiny_config("fasttext", ngram_buckets=200_000_000, embed_dim=10)
  assert "n-gram rows" in " ".join(checks.resource_notes(big_table, vocab_size=1000))
  with pytest.raises(ConfigError, match="tokens in one batch; expected at most"):
    checks.validate(tiny_config(max_len=2 ** 26, batch_size=64))
  monkeypatch.setattr(model_class("cnn"), "max_length", staticmethod(lambda config: 512))
  with pytest.raises(ConfigError, match=r"config.max_len=1000: model 'cnn' has positions for "
                     r"512 tokens; expected 1..512 \(0: from the data\)"):
    checks.validate(tiny_config(max_len=1000))
  checks.validate(tiny_config(max_len=512))


def test_max_len_0_says_what_it_resolved_to(tmp_path, capsys):
  """Item 3: one `[textclf]` line at train time names the max_len the data gave."""
  from textclf_jax.training import loop
  d = _data(str(tmp_path), "topics")
  loop.train_and_evaluate(tiny_config(dataset=d, num_epochs=1, max_len=0), str(tmp_path / "r"))
  out, err = capsys.readouterr()
  resolved = rundir.load_config(str(tmp_path / "r")).max_len
  lines = [l for l in out.splitlines() if "max_len 0 resolved to" in l]
  assert lines == [f"[textclf] max_len 0 resolved to {resolved} tokens (the training texts' "
                   "length at percentile 100)"] and resolved > 0
  assert "memory:" not in err
