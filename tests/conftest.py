"""Shared fixtures: small synthetic datasets written by the tests themselves."""

import json
import os
import random
import shutil
import subprocess
import sys
import tempfile

import pytest

os.environ.setdefault("WANDB_MODE", "disabled")
# The CLI and the runner keep compiled steps in ~/.cache; tests leave it alone
# (test_cli.py tests the cache in a directory of its own).
os.environ.setdefault("TEXTCLF_COMPILATION_CACHE", "off")
# glibc's default malloc in the test process and the programs it starts: the CLI's
# and the runner's malloc tuning (hostmem.py) is for speed, which tests do not measure.
os.environ.setdefault("TEXTCLF_MALLOC_TUNING", "0")
# One BLAS thread in the test process and the programs it starts. OpenBLAS's threads
# busy-wait for each other, and on a loaded machine (CI: 2 cores, 2 test processes) they
# mostly wait: the paired bootstraps of tests/test_ablations.py's quick studies took 97 CPU s
# with 2 threads, 43 with 1. GEMM splits its output among threads, not its sums, so the
# numbers are the same. numpy is loaded before this file (a pytest plugin imports it), so
# the environment variable reaches only child processes; threadpoolctl (a dependency of
# scikit-learn, in the `test` extra) limits this one.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
try:
  import threadpoolctl
  threadpoolctl.threadpool_limits(1, user_api="blas")
except ImportError:
  pass
# XLA:CPU at LLVM optimisation level 0: the suite compiles hundreds of small programs and
# runs each for a few steps, and compiling takes most of its time (a tiny run: 7 programs,
# 5.3 s of compiling at the default level, 2.9 s at 0; the whole suite: 1,230 CPU s
# instead of 1,900). Most tests compare runs made with the same flags, or check bounds, so
# they hold at either level; the programs tests start inherit it (XLA_TEST_FLAGS adds to
# theirs). A test of bit-identity between two different programs (a vmapped group's step
# against the solo step) holds at the level users compile at, which reorders float
# arithmetic differently from level 0: it runs itself in a child at the default level
# (`rerun_at_default_xla`).
XLA_TEST_FLAGS = "--xla_backend_optimization_level=0"
_AT_DEFAULT = "TEXTCLF_TEST_XLA_DEFAULT"
if os.environ.get(_AT_DEFAULT) != "1":
  os.environ["XLA_FLAGS"] = f"{os.environ.get('XLA_FLAGS', '')} {XLA_TEST_FLAGS}".strip()


# One persistent JAX compilation cache for the session, in a temporary directory (never
# ~/.cache), for the test processes and every program they start: tests compile the same
# small programs again and again (a solo run and its group, a run and its resume, the same
# tiny model in many files). A program loaded from the cache is the program XLA compiled,
# so results are the same to the bit (tests/test_cli.py checks it), and the key holds the
# XLA flags, so the level-0 and default-level programs never mix. tests/test_many.py alone:
# 258 CPU s without, 197 with. The controller makes the directory before xdist starts its
# workers, which inherit the environment; it is removed when the session ends.
_SESSION_CACHE = "TEXTCLF_TESTS_JAX_CACHE"


def pytest_configure(config):
  if not os.environ.get(_SESSION_CACHE) and not hasattr(config, "workerinput"):
    os.environ[_SESSION_CACHE] = tempfile.mkdtemp(prefix="textclf-tests-jax-cache-")
    config.textclf_session_cache = os.environ[_SESSION_CACHE]
  if os.environ.get(_SESSION_CACHE):
    os.environ.setdefault("JAX_COMPILATION_CACHE_DIR", os.environ[_SESSION_CACHE])
    os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")
    import jax
    jax.config.update("jax_compilation_cache_dir", os.environ["JAX_COMPILATION_CACHE_DIR"])
    jax.config.update("jax_persistent_cache_min_compile_time_secs",
                      float(os.environ["JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"]))


def pytest_unconfigure(config):
  path = getattr(config, "textclf_session_cache", None)
  if path:
    shutil.rmtree(path, ignore_errors=True)


def rerun_at_default_xla(request) -> bool:
  """In a test process at optimisation level 0: runs this test again in a child pytest at
  XLA's default level, asserts it passed, and returns True (the caller then returns).
  In that child (or a suite run without the test flag): returns False, run the test."""
  flags = os.environ.get("XLA_FLAGS", "")
  if XLA_TEST_FLAGS not in flags:
    return False
  env = dict(os.environ, XLA_FLAGS=flags.replace(XLA_TEST_FLAGS, "").strip(), **{_AT_DEFAULT: "1"})
  env.pop("PYTEST_XDIST_WORKER", None)
  proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                         "-p", "no:xdist", request.node.nodeid], cwd=REPO, env=env,
                        capture_output=True, text=True, timeout=900)
  assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
  assert " passed" in proc.stdout, proc.stdout[-2000:]
  return True

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHARED = os.path.abspath(os.path.join(REPO, "..", "shared"))
SHARED_DATASETS = os.path.join(SHARED, "datasets")
GLOVE = os.path.join(SHARED, "embeddings", "glove.6B.100d.subset.txt.gz")

TOPICS = {
    "sport": "match goal team coach season player score win league cup".split(),
    "tech": "software chip computer phone internet data code robot cloud app".split(),
    "money": "bank market stock price profit trade shares economy fund tax".split(),
}
FILLER = "the a of and to in is it that was for on with as at by this from".split()


def make_rows(n, seed, multi_label=False, with_fold=False):
  """Texts of filler words plus 2-4 topic words; the label is the topic."""
  rng = random.Random(seed)
  names = sorted(TOPICS)
  rows = []
  for i in range(n):
    topic = names[i % len(names)]
    words = [rng.choice(FILLER) for _ in range(rng.randint(4, 14))]
    for _ in range(rng.randint(2, 4)):
      words.insert(rng.randrange(len(words) + 1), rng.choice(TOPICS[topic]))
    row = {"text": " ".join(words)}
    if multi_label:
      labels = [topic]
      if rng.random() < 0.4:
        other = rng.choice([t for t in names if t != topic])
        words.append(rng.choice(TOPICS[other]))
        row["text"] = " ".join(words)
        labels.append(other)
      row["labels"] = sorted(labels)
    else:
      row["label"] = topic
    if with_fold:
      row["fold"] = i % 5
    rows.append(row)
  return rows


def run_on_eight_devices(script: str) -> dict:
  """Runs `script` (Python source) in a child process with 8 simulated CPU devices at the
  suite's XLA level; returns the JSON object its last stdout line prints."""
  env = dict(os.environ, XLA_FLAGS=f"--xla_force_host_platform_device_count=8 {XLA_TEST_FLAGS}",
             JAX_PLATFORMS="cpu")
  proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env,
                        cwd=REPO, timeout=600)
  assert proc.returncode == 0, proc.stderr[-3000:]
  return json.loads(proc.stdout.strip().splitlines()[-1])


def write_jsonl(path, rows):
  with open(path, "w", encoding="utf-8") as f:
    for row in rows:
      f.write(json.dumps(row) + "\n")
  return str(path)


@pytest.fixture
def topic_dir(tmp_path):
  """A directory with train/dev/test.jsonl of the 3-topic toy task."""
  d = tmp_path / "topics"
  d.mkdir()
  write_jsonl(d / "train.jsonl", make_rows(300, 1))
  write_jsonl(d / "dev.jsonl", make_rows(60, 2))
  write_jsonl(d / "test.jsonl", make_rows(90, 3))
  return str(d)


@pytest.fixture(autouse=True, scope="module")
def _release_compiled_programs():
  """Each test file's compiled XLA programs are dropped after it. Kept for the whole
  session they pile up (each executable maps memory of its own), and late in the suite
  an XLA compile segfaulted, at the same test every run."""
  yield
  import gc
  import jax
  jax.clear_caches()
  gc.collect()


def run_textclf(args, capsys):
  """(exit status, stdout, stderr) of `textclf ARGS` run in this process."""
  from textclf_jax.cli import main as cli
  try:
    cli.main(args)
    code = 0
  except SystemExit as e:
    code = e.code
  out, err = capsys.readouterr()
  return code, out, err


def tiny_config(preset="cnn", **overrides):
  """A preset shrunk to train in seconds on the CPU."""
  from textclf_jax import config as config_lib
  config = config_lib.load_preset(preset)
  small = dict(max_len=24, embed_dim=16, batch_size=16, num_epochs=3, log_every_steps=5,
               checkpoint_every_steps=1000, progress_bar=False, wandb="disabled",
               bucket_lengths=(8, 16, 24), learning_rate=5e-3)
  if "num_filters" in config:
    small["num_filters"] = 8
  if "lstm_hidden" in config:
    small["lstm_hidden"] = 12
  small.update(overrides)
  with config.unlocked():
    for k, v in small.items():
      config[k] = v
  return config


def tiny_tfidf_run(data, workdir):
  """A TF-IDF run fitted on `data` into `workdir` with one C (skips without
  scikit-learn); returns workdir."""
  pytest.importorskip("sklearn")
  from textclf_jax import config as config_lib
  from textclf_jax.families.tfidf import fit as linear
  config = config_lib.load_preset("tfidf")
  with config.unlocked():
    config.dataset, config.wandb, config.tfidf_c_grid = data, "disabled", (1.0,)
  linear.train_and_evaluate(config, workdir)
  return workdir
