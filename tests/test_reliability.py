"""Issue 15, item by item: each numbered problem, run as its command on data the test
writes, gives the expected behaviour (the test names carry the item number).

  1  divergence: no NaN checkpoint is ever kept; eval/predict refuse NaN parameters;
     a run that learns nothing is called out
  2  one writer per run directory (a lock naming its holder; a dead holder's lock is
     taken over); readers say which committed step they use
  3  every bad config value named at once, before anything is written; a run that died
     before its first checkpoint restarts in place
  4  a full disk (a real tmpfs): one line, the previous checkpoint kept, --resume works
  5  a read-only workdir and a missing --input file: one line each
  6  predict RUN --top_k 1 "text"
  7  --resume says where it continues; a finished run is left untouched; predict keeps
     blank lines in place
  8  vectors set embed_dim; only an explicit contradiction is an error
  10 cross-validation: a subset of folds, per-fold scores, the sample std, labelled
  11 a finished run keeps only the checkpoint it was tested with; its size is printed

The kill -9 / full disk / corrupt checkpoint suite is tests/test_fault_injection.py,
whose helpers (real `textclf` processes, the fault harness) are used here too.
"""

import json
import os
import shutil
import socket
import subprocess
import sys
import time

import numpy as np
import pytest

from conftest import TOPICS, make_rows, run_textclf, write_jsonl
from test_fault_injection import (TINY, Textclf, all_finite, compile_cache,
                                  known_abort_on_exit, one_error_line, restore_arrays,
                                  resume_message, steps_in, temporary_dirs, write_topics)
from textclf_jax.run import layout as rundir, lock as runlock
from textclf_jax.serve import runs, textinput
from textclf_jax import config as config_lib
from textclf_jax.training import checks
from textclf_jax.run import compat

EPOCHS = 2  # 15 steps an epoch: latest checkpoints at 5, 10, 15, 20, 25, 30


@pytest.fixture(scope="module")
def textclf(tmp_path_factory):
  return Textclf(compile_cache(tmp_path_factory), str(tmp_path_factory.mktemp("harness")))


@pytest.fixture(scope="module")
def topics(tmp_path_factory):
  return write_topics(tmp_path_factory.mktemp("topics"))


def train_args(data, workdir, *more, tiny=TINY):
  return ["train", f"--config.dataset={data}", *tiny, f"--config.num_epochs={EPOCHS}", *more,
          "--workdir", workdir]


main = run_textclf  # (exit status, stdout, stderr)


def last_error_line(err):
  """The message of stderr's last line, which must be its one `textclf: error:` line
  (orbax's absl warnings may come before it; no traceback may)."""
  lines = err.splitlines()
  assert "Traceback" not in err and lines, err[-3000:]
  assert sum(line.startswith("textclf: error: ") for line in lines) == 1, err[-3000:]
  assert lines[-1].startswith("textclf: error: "), err[-3000:]
  return lines[-1][len("textclf: error: "):]


@pytest.fixture(scope="module")
def finished(textclf, topics, tmp_path_factory):
  """A finished run with the default keep_checkpoints=tested; (workdir, its stdout)."""
  workdir = str(tmp_path_factory.mktemp("finished") / "run")
  code, out, err = textclf.run(train_args(topics, workdir))
  assert code == 0, err[-3000:]
  return workdir, out


def copy_of(run, tmp_path, name="copy"):
  shutil.copytree(run, str(tmp_path / name))
  return str(tmp_path / name)


def read_bytes(path):
  with open(path, "rb") as f:
    return f.read()


def dead_pid():
  """The pid of a process that has ended."""
  proc = subprocess.Popen([sys.executable, "-c", "pass"])
  proc.wait()
  return proc.pid


# --- 1: divergence ---------------------------------------------------------------------


def test_1_sgd_at_lr_1e6_stops_with_exit_3_and_keeps_only_finite_checkpoints(
    textclf, topics, tmp_path):
  """The issue's command, with a checkpoint every step (as many chances as there are to
  keep a NaN one): the parameters blow up; exit 3, one error line naming the last good
  checkpoint, which exists and, like every checkpoint kept, is finite; the loss growth
  was called out (once) before."""
  workdir = str(tmp_path / "run")
  code, out, err = textclf.run(train_args(
      topics, workdir, "--config.optimizer=sgd", "--config.learning_rate=1e6",
      "--config.num_epochs=3", "--config.checkpoint_every_steps=1",
      "--config.log_every_steps=1"))
  known_abort_on_exit(err)
  message = last_error_line(err)
  assert code == 3, err[-3000:]
  kept = steps_in(workdir, "latest")
  assert kept, "expected a few finite checkpoints before the blow-up"
  assert message.startswith(f"{workdir}: ") and "NaN/Inf" in message, message
  assert f"The last good checkpoint (step {kept[-1]}) is kept in checkpoints/latest" in message
  for which in ("latest", "best"):
    for step in steps_in(workdir, which):
      assert all_finite(restore_arrays(workdir, which, step)[1]), (which, step)
  assert err.count("times that of a uniform guess") == 1, err
  assert not os.path.exists(os.path.join(workdir, "results.json"))


def poison(workdir, which, step):
  """Rewrites a checkpoint with NaN parameters (as an older textclf could keep one)."""
  import jax
  import orbax.checkpoint as ocp
  manager = ocp.CheckpointManager(os.path.join(workdir, "checkpoints", which))
  restored = manager.restore(step, args=ocp.args.Composite(
      state=ocp.args.StandardRestore(), meta=ocp.args.JsonRestore()))
  state = dict(restored["state"])
  state["params"] = jax.tree.map(
      lambda x: np.full(np.shape(x), np.nan, np.asarray(x).dtype)
      if np.issubdtype(np.asarray(x).dtype, np.floating) else x, state["params"])
  manager.delete(step)
  manager.save(step, args=ocp.args.Composite(state=ocp.args.StandardSave(state),
                                             meta=ocp.args.JsonSave(restored["meta"])))
  manager.wait_until_finished()
  manager.close()


def test_1_eval_and_predict_refuse_parameters_that_are_not_finite(textclf, finished,
                                                                   tmp_path):
  workdir = copy_of(finished[0], tmp_path)
  (step,) = steps_in(workdir, "best")
  poison(workdir, "best", step)
  for command in (["predict", workdir, "hi"], ["eval", workdir]):
    code, out, err = textclf.run(command)
    assert (code, out) == (2, ""), (command, out, err[-3000:])  # no NaN "probabilities"
    assert last_error_line(err) == (
        f"{workdir}: the parameters of its best checkpoint (step {step}) are NaN/Inf; "
        "the run diverged and has nothing to evaluate or serve")


def test_1_adam_at_lr_1e6_is_called_out(textclf, topics, tmp_path):
  workdir = str(tmp_path / "run")
  code, out, err = textclf.run(train_args(topics, workdir, "--config.learning_rate=1e6",
                                          "--config.num_epochs=3"))
  assert code == 0, err[-3000:]
  assert "[textclf] warning:" in err, "Adam at lr 1e6 trained garbage without a word"


def test_1_dev_accuracy_no_better_than_the_majority_label_is_called_out_once(
    textclf, tmp_path):
  """A dev set of one label: no model beats always answering it, so from the second
  epoch on every evaluation qualifies; the warning comes once."""
  data = write_topics(tmp_path / "data")
  write_jsonl(os.path.join(data, "dev.jsonl"),
              [r for r in make_rows(90, 2) if r["label"] == "sport"])
  code, out, err = textclf.run(train_args(data, str(tmp_path / "run"),
                                          "--config.num_epochs=3"))
  assert code == 0, err[-3000:]
  assert err.count("[textclf] warning:") == 1, err
  assert "is no better than always predicting the most frequent label (1.0000)" in err


# --- 2: one writer ---------------------------------------------------------------------


def test_2_a_second_writer_is_refused_at_once_and_a_reader_names_its_step(
    textclf, topics, tmp_path, capsys):
  """A trainer is held before its 21st batch (latest checkpoint 20, best 15). A second
  `train --resume` is refused at once, naming it; `eval` reads the last committed best
  checkpoint and says which; released, the first run finishes undisturbed."""
  workdir = str(tmp_path / "run")
  hold, holding = str(tmp_path / "hold"), str(tmp_path / "holding")
  open(hold, "w").close()
  proc = textclf.start(train_args(topics, workdir), {"hold_before_batch": 21, "hold": hold,
                                                     "holding": holding})
  try:
    deadline = time.time() + 300
    while not os.path.exists(holding) and proc.poll() is None and time.time() < deadline:
      time.sleep(0.05)
    assert os.path.exists(holding), proc.communicate()[1][-3000:]
    host = socket.gethostname()

    started = time.time()
    code, out, err = main(["train", "--resume", workdir], capsys)
    assert time.time() - started < 30
    message = one_error_line(err)
    assert code == 2 and message.startswith(f"{workdir}: in use by pid {proc.pid} on {host} "
                                            "(since "), message
    assert message.endswith(f"wait for it to finish or stop it (lock file "
                            f"{os.path.join(workdir, '.lock')})"), message

    code, out, err = main(["eval", workdir], capsys)
    assert code == 0, err
    assert (f"[textclf] {workdir} is being trained now (pid {proc.pid} on {host}); using its "
            f"last committed best checkpoint, step 15") in err
    assert json.loads(out)["num_examples"] == 30
  finally:
    os.remove(hold)
  out, err = proc.communicate(timeout=300)
  assert proc.returncode == 0, err[-3000:]
  with open(os.path.join(workdir, "metrics.jsonl"), encoding="utf-8") as f:
    log = [json.loads(line) for line in f]
  train_steps = [entry["step"] for entry in log if "train" in entry]
  assert train_steps == list(range(5, 31, 5))  # one writer: no second sequence
  assert [entry["step"] for entry in log if "dev" in entry] == [15, 30]
  assert not temporary_dirs(workdir)
  assert not os.path.exists(os.path.join(workdir, rundir.LOCK_INFO))
  assert runlock.holder(workdir) is None


# --- 3: validation; a run that never got a checkpoint -----------------------------------


def test_3_bad_values_are_named_together_before_anything_is_written(topics, tmp_path,
                                                                    capsys):
  workdir = str(tmp_path / "run")
  code, out, err = main(["train", f"--config.dataset={topics}", "--config.batch_size=0",
                         "--config.num_epochs=-1", "--config.dropout=1.5",
                         "--workdir", workdir], capsys)
  message = one_error_line(err)
  assert code == 2
  for part in ("config.batch_size=0: expected an integer >= 1",
               "config.num_epochs=-1: expected an integer >= 1",
               "config.dropout=1.5: expected a number in [0, 1]"):
    assert part in message, message
  assert not os.path.exists(workdir)
  # The library entry point checks the same, before it creates anything.
  from conftest import tiny_config
  from textclf_jax.training import loop as train
  with pytest.raises(config_lib.ConfigError, match="batch_size=0.*num_epochs=-1"):
    train.train_and_evaluate(tiny_config(dataset=topics, batch_size=0, num_epochs=-1),
                             workdir)
  assert not os.path.exists(workdir)


def test_3_a_run_that_died_before_its_first_checkpoint_restarts_in_place(textclf, topics,
                                                                        tmp_path):
  """What a run that died before its first checkpoint may leave: config.json alone, and
  the lock record of its dead process. `train --resume` takes the lock over, starts
  from step 0, and writes a whole run (vocabulary and labels too: eval works)."""
  workdir = str(tmp_path / "run")
  config = config_lib.apply_overrides(config_lib.load_preset("cnn"), [
      f"dataset={topics}", f"num_epochs={EPOCHS}",
      *(arg[len("--config."):] for arg in TINY)])
  rundir.write_config(checks.resolve(config), workdir)
  pid = dead_pid()
  rundir.write_json(os.path.join(workdir, rundir.LOCK_INFO),
                    {"host": socket.gethostname(), "pid": pid, "since": "earlier",
                     "command": "textclf train"})
  code, out, err = textclf.run(["train", "--resume", workdir])
  assert code == 0, err[-3000:]
  assert f"{workdir}: took over the lock of pid {pid} on {socket.gethostname()}" in out
  assert f"{workdir}: {resume_message(None)}" in out
  assert rundir.read_results(workdir)["final_step"] == 30
  assert runs.evaluate_run(workdir, "test")["matches_results"]


# --- 4: a full disk (a real one) ---------------------------------------------------------


def _mount_tmpfs(path, options):
  os.makedirs(path, exist_ok=True)
  result = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", path],
                          capture_output=True, text=True)
  return result.returncode == 0


def _can_mount():
  if os.geteuid() != 0 or not shutil.which("mount"):
    return False
  import tempfile
  with tempfile.TemporaryDirectory() as d:
    if not _mount_tmpfs(d, "size=1m"):
      return False
    subprocess.run(["umount", d], check=False)
  return True


needs_mount = pytest.mark.skipif(not _can_mount(), reason="mounting a tmpfs is not permitted")


@pytest.fixture(scope="module")
def full_disk(textclf, topics, tmp_path_factory):
  """A run on an 8 MB tmpfs that a file fills up after its 5th checkpoint save (latest,
  step 20) but for 16 kB, with the free-space check off (as if another process had
  filled it): the next save (latest 25) fails in the middle of its writes with the file
  system's own ENOSPC."""
  disk = str(tmp_path_factory.mktemp("disk"))
  assert _mount_tmpfs(disk, "size=8m")
  workdir = os.path.join(disk, "run")
  filler = os.path.join(disk, "filler")
  code, out, err = textclf.run(train_args(topics, workdir),
                               {"fill_disk_after": 5, "filler": filler, "leave_bytes": 16384})
  yield workdir, filler, code, out, err
  subprocess.run(["umount", disk], check=False)


@needs_mount
def test_4_a_real_full_disk_keeps_the_previous_checkpoint_and_resume_finishes(full_disk,
                                                                            textclf):
  workdir, filler, code, out, err = full_disk
  known_abort_on_exit(err)
  # What orbax's failed writes log may follow the error line (a bug: see the xfail case
  # of test_fault_injection.py::test_a_full_disk_keeps_...); the line itself is the one.
  lines = [line for line in err.splitlines() if line.startswith("textclf: error: ")]
  assert len(lines) == 1 and err.startswith(lines[0]), err[-3000:]
  message = lines[0][len("textclf: error: "):]
  latest = os.path.join(workdir, "checkpoints", "latest")
  assert code == 2 and message.startswith(
      f"no space left on the disk for checkpoint step 25 in {latest} (the disk filled up "
      "while writing); the previous checkpoints (step 15, 20) are kept. Free some space, "
      f"then continue with `textclf train --resume {workdir}`"), message
  assert not temporary_dirs(workdir) and steps_in(workdir) == [15, 20]
  assert all_finite(restore_arrays(workdir, "latest", 20)[1])
  os.remove(filler)
  code, out, err = textclf.run(["train", "--resume", workdir])
  assert code == 0, err[-3000:]
  assert f"{workdir}: {resume_message(20)}" in out
  assert rundir.read_results(workdir)["final_step"] == 30


@needs_mount
def test_4_too_small_a_disk_is_refused_before_the_first_save(textclf, topics, tmp_path):
  disk = str(tmp_path / "disk")
  assert _mount_tmpfs(disk, "size=3m")
  try:
    workdir = os.path.join(disk, "run")
    code, out, err = textclf.run(train_args(topics, workdir))
    known_abort_on_exit(err)
    message = last_error_line(err)
    latest = os.path.join(workdir, "checkpoints", "latest")
    assert code == 2 and message.startswith(
        f"no space left on the disk for checkpoint step 5 in {latest} (it needs ~4 MB, ")
    assert "MB are free); no earlier checkpoint of this kind exists." in message
    assert not temporary_dirs(workdir)
  finally:
    subprocess.run(["umount", disk], check=False)


# --- 5, 6, 7: the command line -----------------------------------------------------------


@needs_mount
def test_5_a_read_only_workdir_is_one_line(topics, tmp_path, capsys):
  disk = str(tmp_path / "ro")
  assert _mount_tmpfs(disk, "ro,size=1m")
  try:
    workdir = os.path.join(disk, "run")
    code, out, err = main(["train", f"--config.dataset={topics}", "--workdir", workdir],
                          capsys)
    assert (code, one_error_line(err)) == (
        2, f"{workdir}: Read-only file system (the file system is read-only)")
  finally:
    subprocess.run(["umount", disk], check=False)


def test_5_predict_with_a_missing_input_file_is_one_line(finished, capsys):
  code, out, err = main(["predict", finished[0], "--input", "/nonexistent"], capsys)
  assert (code, one_error_line(err)) == (2, "--input /nonexistent: No such file or directory")


def test_6_and_7_options_before_the_texts_and_blank_texts_keep_their_place(textclf,
                                                                           finished):
  code, out, err = textclf.run(["predict", finished[0], "--top_k", "1",
                                "the goal of the match", "", "a chip in the phone"])
  assert code == 0, err[-3000:]
  rows = [json.loads(line) for line in out.splitlines()]
  assert [r["text"] for r in rows] == ["the goal of the match", "", "a chip in the phone"]
  assert rows[1] == {"text": "", "error": textinput.BLANK_LINE}
  for row in (rows[0], rows[2]):
    assert len(row["probabilities"]) == 1 and row["label"] in row["probabilities"]


def test_7_predict_says_nothing_on_stderr_when_all_is_well(textclf, finished):
  code, out, err = textclf.run(["predict", finished[0], "the goal of the match"])
  assert code == 0 and len(out.splitlines()) == 1
  assert err == ""


def test_7_resume_of_a_finished_run_leaves_it_untouched(finished, tmp_path, capsys):
  workdir = copy_of(finished[0], tmp_path)
  results = os.path.join(workdir, "results.json")
  before = (read_bytes(results), os.stat(results).st_mtime_ns)
  code, out, err = main(["train", "--resume", workdir], capsys)
  assert code == 0, err
  final = json.loads(before[0])["final_step"]
  assert (f"[textclf] {workdir}: finished at step {final}; nothing left to train, "
          "results.json is unchanged") in out
  assert (read_bytes(results), os.stat(results).st_mtime_ns) == before


def test_7_resume_of_a_finished_run_says_only_what_is_true(finished, tmp_path, capsys):
  workdir = copy_of(finished[0], tmp_path)
  code, out, err = main(["train", "--resume", workdir], capsys)
  assert code == 0 and "nothing left to train" in out, err
  assert "raise --config.num_epochs to train longer" not in out
  assert f"wrote {os.path.join(workdir, 'results.json')}" not in out


# --- 8: vectors --------------------------------------------------------------------------


def test_8_vectors_give_embed_dim_and_only_a_contradiction_is_an_error(textclf, topics,
                                                                       tmp_path, capsys):
  vectors = tmp_path / "vectors.txt"
  rng = np.random.default_rng(0)
  words = sorted({w for topic in TOPICS.values() for w in topic})
  vectors.write_text("".join(f"{w} {' '.join(f'{x:.4f}' for x in rng.normal(size=8))}\n"
                             for w in words))
  tiny = [a for a in TINY if not a.startswith("--config.embed_dim=")]
  workdir = str(tmp_path / "run")
  code, out, err = textclf.run(train_args(topics, workdir, "--config.embedding=non-static",
                                          f"--config.vectors={vectors}", tiny=tiny))
  assert code == 0, err[-3000:]
  assert rundir.read_json(os.path.join(workdir, "config.json"))["embed_dim"] == 8
  assert rundir.read_json(os.path.join(workdir, "data.json"))["vectors_found"] == len(words)

  other = str(tmp_path / "contradiction")
  code, out, err = main(train_args(topics, other, "--config.embedding=non-static",
                                   f"--config.vectors={vectors}", "--config.embed_dim=16",
                                   tiny=tiny), capsys)
  message = one_error_line(err)
  assert code == 2 and message.startswith(
      f"{vectors}: vectors have dimension 8, but the config says embed_dim=16"), message
  left = sorted(os.listdir(other)) if os.path.exists(other) else []
  # The marker (written first) and the lock; no config.json: `train` there works as new.
  assert set(left) <= {rundir.LOCK, compat.MARKER}, left
  rundir.check_can_start(other, resume=False)


# --- 10: cross-validation --------------------------------------------------------------


def test_10_a_subset_of_folds_with_per_fold_scores_and_the_sample_std(textclf, tmp_path,
                                                                      capsys):
  data = tmp_path / "cv"
  data.mkdir()
  rows = make_rows(150, 1)
  for i, row in enumerate(rows):
    row["fold"] = (i // 3) % 3  # every fold holds every label
  write_jsonl(data / "all.jsonl", rows)
  workdir = str(tmp_path / "run")
  code, out, err = main(train_args(str(data), workdir, "--config.folds=0,7"), capsys)
  assert (code, one_error_line(err)) == (2, "config.folds: cv has folds 0..2, not 7")
  assert not os.path.exists(workdir)

  code, out, err = textclf.run(train_args(str(data), workdir, "--config.folds=0,2"))
  assert code == 0, err[-3000:]
  assert sorted(d for d in os.listdir(workdir) if d.startswith("fold_")) == ["fold_0", "fold_2"]
  summary = rundir.read_json(os.path.join(workdir, "cv_results.json"))
  per_fold = {k: rundir.read_results(os.path.join(workdir, f"fold_{k}")) for k in (0, 2)}
  assert summary["folds"] == [0, 2] and [f["fold"] for f in summary["per_fold"]] == [0, 2]
  for entry in summary["per_fold"]:
    results = per_fold[entry["fold"]]
    assert entry["best_step"] == results["best_step"]
    assert entry["test"] == {k: v for k, v in results["test"].items() if isinstance(v, float)}
    assert (f"[textclf] fold {entry['fold']}: test accuracy "
            f"{results['test']['accuracy']:.4f}") in out
  accuracies = [per_fold[k]["test"]["accuracy"] for k in (0, 2)]
  assert summary["test_mean"]["accuracy"] == pytest.approx(np.mean(accuracies), abs=1e-12)
  assert summary["test_std"]["accuracy"] == pytest.approx(np.std(accuracies, ddof=1),
                                                          abs=1e-12)
  assert summary["std"] == "sample standard deviation over folds (ddof=1)"
  assert "2-fold CV test (mean ± sample std): accuracy" in out


# --- 11: what a finished run keeps -------------------------------------------------------


def test_11_a_finished_run_keeps_only_its_tested_checkpoint_and_says_its_size(finished):
  workdir, out = finished
  results = rundir.read_results(workdir)
  assert results["tested_checkpoint"] == "best"
  assert steps_in(workdir, "best") == [results["best_step"]]
  assert steps_in(workdir, "latest") == []
  size = rundir.disk_usage(workdir) / 2 ** 20
  assert (f"[textclf] wrote {os.path.join(workdir, 'results.json')}; the run directory "
          f"holds {size:.1f} MB") in out
  assert runs.evaluate_run(workdir, "test")["matches_results"]


def test_11_keep_checkpoints_both_keeps_latest_too(textclf, topics, tmp_path):
  workdir = str(tmp_path / "run")
  code, out, err = textclf.run(train_args(topics, workdir, "--config.keep_checkpoints=both"))
  assert code == 0, err[-3000:]
  results = rundir.read_results(workdir)
  assert steps_in(workdir, "best") == [results["best_step"]]
  assert steps_in(workdir, "latest")[-1] == results["final_step"] == 30
