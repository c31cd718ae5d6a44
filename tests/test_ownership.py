"""The project never touches what it did not write (issue 26): run, export and tune study
directories carry a marker (DIR/textclf.json) written first; every command that deletes,
overwrites or resumes checks it and refuses anything else in one line, changing no byte.
Runs made before the marker are recognised by their whole file set."""

import hashlib
import json
import os
import shutil

import pytest
from hypothesis import HealthCheck, Phase, assume, example, given, settings
from hypothesis import strategies as st

from conftest import make_rows, run_textclf, tiny_config, write_jsonl
from textclf_jax import config as config_lib
from textclf_jax.run import compat, layout as rundir

TINY = ["--config.max_len=16", "--config.embed_dim=8", "--config.batch_size=16",
        "--config.num_epochs=1", "--config.num_filters=4", "--config.progress_bar=false",
        "--config.wandb=disabled", "--config.bucket_lengths=(16,)"]


def tree(directory: str) -> dict:
  """relative path -> sha256 of a file's bytes (or "dir"), for everything below."""
  out = {}
  for root, dirs, files in os.walk(directory):
    for d in dirs:
      out[os.path.relpath(os.path.join(root, d), directory)] = "dir"
    for f in files:
      with open(os.path.join(root, f), "rb") as fh:
        out[os.path.relpath(os.path.join(root, f), directory)] = \
            hashlib.sha256(fh.read()).hexdigest()
  return out


def one_error_line(err: str) -> str:
  lines = err.strip().splitlines()
  assert len(lines) == 1 and lines[0].startswith("textclf: error: "), err
  return lines[0]


@pytest.fixture(scope="module")
def topics(tmp_path_factory):
  d = tmp_path_factory.mktemp("topics")
  write_jsonl(d / "train.jsonl", make_rows(120, 1))
  write_jsonl(d / "dev.jsonl", make_rows(30, 2))
  write_jsonl(d / "test.jsonl", make_rows(30, 3))
  return str(d)


@pytest.fixture(scope="module")
def finished(topics, tmp_path_factory):
  """A tiny finished cnn run made by this code (it has the marker)."""
  from textclf_jax.training import loop as train
  run = str(tmp_path_factory.mktemp("runs") / "run")
  train.train_and_evaluate(tiny_config(dataset=topics, num_epochs=1, max_len=16,
                                       bucket_lengths=(16,), embed_dim=8), run)
  return run


# --- the marker --------------------------------------------------------------------------


def test_a_new_run_is_marked_first(finished):
  record = json.load(open(os.path.join(finished, compat.MARKER)))
  assert record["kind"] == "run" and record["format_version"] == compat.FORMAT_VERSION
  assert record["created_by"].startswith("textclf_jax ") and record["created"].endswith("Z")
  marker = os.stat(os.path.join(finished, compat.MARKER)).st_mtime_ns
  assert all(marker <= os.stat(os.path.join(finished, f)).st_mtime_ns
             for f in (rundir.CONFIG, rundir.VOCAB, rundir.LABELS, rundir.DATA))
  assert compat.kind_of(finished) == "run"


def test_a_run_from_before_the_marker_is_recognised_by_its_whole_file_set(finished, tmp_path,
                                                                         capsys):
  old = str(tmp_path / "old")
  shutil.copytree(finished, old)
  os.remove(os.path.join(old, compat.MARKER))
  assert compat.kind_of(old) == "run"
  code, out, err = run_textclf(["train", "--resume", old], capsys)  # finished: kept as is
  assert code == 0 and "nothing left to train" in out, err
  code, out, err = run_textclf(["eval", old], capsys)
  assert code == 0, err
  # One file of the set missing: not a run the project recognises; resume refuses it.
  os.remove(os.path.join(old, rundir.DATA))
  assert compat.kind_of(old) is None
  before = tree(old)
  code, _, err = run_textclf(["train", "--resume", old], capsys)
  assert code == 2 and "not a directory textclf wrote" in one_error_line(err)
  assert tree(old) == before


def test_a_marker_from_a_newer_format_is_refused(tmp_path, capsys):
  d = tmp_path / "future"
  d.mkdir()
  (d / compat.MARKER).write_text(json.dumps({"kind": "run", "format_version": 99}))
  (d / "config.json").write_text(config_lib.to_json(config_lib.load_preset("cnn")))
  code, _, err = run_textclf(["train", "--resume", str(d)], capsys)
  assert code == 2 and "newer textclf (format 99" in one_error_line(err)


# --- the two data-loss bugs ----------------------------------------------------------------


def test_resume_of_a_folder_holding_only_the_users_config_json_changes_nothing(tmp_path,
                                                                              capsys):
  """Was: the user's config.json replaced by a default config, data/, labels, vocab.json
  and .lock added, then an AttributeError."""
  mine = tmp_path / "mine"
  mine.mkdir()
  (mine / "config.json").write_text('{"mine": true}')
  before = tree(str(mine))
  code, _, err = run_textclf(["train", "--resume", str(mine)], capsys)
  message = one_error_line(err)
  assert code == 2 and f"{mine}: not a directory textclf wrote" in message
  assert "nothing was changed" in message
  assert tree(str(mine)) == before


def test_export_overwrite_replaces_only_an_export_of_ours(finished, tmp_path, capsys):
  """Was: --overwrite deleted any folder holding a manifest.json (the notes beside it)."""
  notes = tmp_path / "notes"
  notes.mkdir()
  (notes / "manifest.json").write_text('{"mine": true}')
  (notes / "notes.txt").write_text("my notes")
  before = tree(str(notes))
  code, _, err = run_textclf(["export", finished, "--format", "stablehlo", "--out", str(notes),
                              "--overwrite"], capsys)
  assert code == 2 and "not a directory textclf wrote" in one_error_line(err)
  assert tree(str(notes)) == before
  # A real export is replaced; one holding the user's file beside it is not.
  out = str(tmp_path / "export")
  for _ in range(2):
    code, _, err = run_textclf(["export", finished, "--format", "stablehlo", "--out", out,
                                "--overwrite"], capsys)
    assert code == 0, err
  assert compat.kind_of(out) == "export"
  assert [f for f in os.listdir(tmp_path) if ".tmp-" in f] == []
  with open(os.path.join(out, "notes.txt"), "w") as f:
    f.write("mine")
  before = tree(out)
  code, _, err = run_textclf(["export", finished, "--format", "stablehlo", "--out", out,
                              "--overwrite"], capsys)
  assert code == 2 and "notes.txt, which textclf did not write" in one_error_line(err)
  assert tree(out) == before


# --- the property: for any folder the project did not write, no command changes a byte ---

NAMES = ["config.json", "manifest.json", "vocab.json", "labels.json", "data.json",
         "results.json", "notes.txt", "tune.json", "group.json", "textclf.json", "model.onnx",
         "checkpoints/latest/1/x", "fold_0/config.json", "linear/model.json", "sub/a.md",
         ".lock", "metrics.jsonl"]
RUN_CONFIG = config_lib.to_json(tiny_config()).encode()
CONTENTS = st.one_of(
    st.binary(max_size=40),
    st.sampled_from([b'{"mine": true}', b"{}", b"[]", RUN_CONFIG,
                     b'{"kind": "run"}', b'{"kind": "export", "format_version": "1"}',
                     b'{"format": "onnx", "model_file": "model.onnx"}',
                     b'{"study": "s", "space": "cnn"}', b'{"words": ["a"]}']))


def _commands(directory: str, topics: str, run: str) -> list:
  data = [f"--config.dataset={topics}", *TINY]
  return [
      ["train", "--workdir", directory, *data],
      ["train", "--resume", directory],
      ["train", "--resume", directory, "--config.num_epochs=2"],
      ["export", run, "--format", "stablehlo", "--out", directory, "--overwrite"],
      ["tune", "--space", "cnn", "--trials", "1", "--workdir", directory, *data],
      ["eval", directory],
      ["predict", directory, "some text"],
  ]


# No shrinking: a failing example may train a model, and each shrink step would again.
@settings(max_examples=6, deadline=None, derandomize=True,
          phases=(Phase.explicit, Phase.generate), suppress_health_check=list(HealthCheck))
@given(files=st.dictionaries(st.sampled_from(NAMES), CONTENTS, min_size=1, max_size=5))
@example(files={"config.json": b'{"mine": true}'})  # the resume bug
@example(files={"manifest.json": b'{"mine": true}', "notes.txt": b"mine"})  # the export bug
@example(files={"config.json": RUN_CONFIG, "labels.json": b"{}", "vocab.json": b"{}"})
def test_no_command_changes_a_folder_the_project_did_not_write(topics, finished,
                                                               tmp_path_factory, files):
  directory = str(tmp_path_factory.mktemp("foreign") / "dir")
  for name, content in files.items():
    path = os.path.join(directory, name)
    if any(os.path.isfile(os.path.join(directory, p)) for p in _parents(name)):
      continue  # a name that is a file already cannot hold one
    os.makedirs(os.path.dirname(path), exist_ok=True)
    if os.path.isdir(path):
      continue
    with open(path, "wb") as f:
      f.write(content)
  try:
    assume(compat.kind_of(directory) is None)  # a forged marker or a whole old run: ours
  except compat.NotOwnedError:
    pass  # a marker of a newer format: refused like anything else
  before = tree(directory)
  for args in _commands(directory, topics, finished):
    code, _, err = run_textclf(args, _Capture())
    assert code != 0, (args, files)
    assert tree(directory) == before, (args, files, err)


def _parents(name: str) -> list:
  parts = name.split("/")[:-1]
  return ["/".join(parts[:i + 1]) for i in range(len(parts))]


class _Capture:
  """What run_textclf needs of capsys, for one command, without pytest's function-scoped
  fixture (a hypothesis test runs many examples per call)."""

  def __init__(self):
    import contextlib
    import io
    self._out, self._err = io.StringIO(), io.StringIO()
    self._stack = contextlib.ExitStack()
    self._stack.enter_context(contextlib.redirect_stdout(self._out))
    self._stack.enter_context(contextlib.redirect_stderr(self._err))

  def readouterr(self):
    self._stack.close()
    return self._out.getvalue(), self._err.getvalue()
