"""The command line's edges: every error is one `textclf: error:` line with exit
status 2 (bad input, usage or environment), 3 (training failed) or 1 (a bug);
`--debug` shows the traceback; options go anywhere; `predict` keeps one output
line per input line; `textclf config` explains every key."""

import errno
import io
import json
import os
import subprocess
import sys

import pytest

from conftest import REPO, run_textclf
from textclf_jax.cli import main as cli, config_doc
from textclf_jax.cli import failure as errors
from textclf_jax.errors import TrainingDiverged
from textclf_jax.serve import textinput
from textclf_jax import config as config_lib


_main = run_textclf  # (exit status, stdout, stderr)


def _error(args, capsys):
  code, _, err = _main(args, capsys)
  assert err.count("\n") == 1 and err.startswith("textclf: error: "), err
  return code, err[len("textclf: error: "):-1]


@pytest.fixture
def run(monkeypatch, tmp_path):
  """A stand-in run: runs.predict_texts labels "goal" texts sport, others money.

  The CLI's parsing and line keeping need no model (tests/test_cli.py runs
  predict on a trained one); `calls` records the texts the model was given."""
  from textclf_jax.serve import runs
  calls = []

  def predict_texts(run, texts, top_k=5, batch_size=0, calibrated=True):
    calls.append(list(texts))
    rows = []
    for text in texts:
      probs = {"sport": 0.8, "money": 0.2} if "goal" in text else {"money": 0.7, "sport": 0.3}
      rows.append({"text": text, "label": next(iter(probs)),
                   "probabilities": dict(list(probs.items())[:top_k])})
    return rows

  monkeypatch.setattr(runs, "predict_texts", predict_texts)
  monkeypatch.setattr(runs, "check_run", lambda run: calls.append(run))
  monkeypatch.setattr(cli, "calls", calls, raising=False)
  return str(tmp_path / "run")


# --- exit statuses and one-line messages --------------------------------------------


def test_predict_missing_input_file_is_one_line_exit_2(tmp_path, capsys):
  missing = str(tmp_path / "nonexistent.txt")
  assert _error(["predict", str(tmp_path), "--input", missing], capsys) == (
      2, f"--input {missing}: No such file or directory")
  assert _error(["predict", str(tmp_path), "--input", str(tmp_path)], capsys) == (
      2, f"--input {tmp_path}: Is a directory")


def test_predict_missing_input_file_from_the_shell(tmp_path):
  """The installed entry point: no traceback, status 2, the one line."""
  env = {**os.environ, "TEXTCLF_DEBUG": ""}
  result = subprocess.run([sys.executable, "-m", "textclf_jax", "predict", str(tmp_path),
                           "--input", "/nonexistent"], capture_output=True, text=True,
                          env=env, cwd=REPO)
  assert result.returncode == 2
  assert result.stderr == "textclf: error: --input /nonexistent: No such file or directory\n"


def test_unwritable_workdir_is_one_line_exit_2(topic_dir, tmp_path, capsys):
  """A run directory that cannot be made. Tests run as root, where chmod does not
  stop writes, so the parent here is a regular FILE: makedirs gets
  NotADirectoryError (an OSError like EACCES or EROFS, which take the same path)."""
  blocker = tmp_path / "file"
  blocker.write_text("not a directory")
  workdir = str(blocker / "run")
  code, message = _error(["train", f"--config.dataset={topic_dir}", "--workdir", workdir,
                          "--config.num_epochs=1"], capsys)
  assert (code, message) == (
      2, f"{workdir}: Not a directory (a part of the path is a file, not a directory)")


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into a 0o500 directory anyway")
def test_read_only_workdir_is_one_line_exit_2(topic_dir, tmp_path, capsys):
  parent = tmp_path / "ro"
  parent.mkdir(mode=0o500)
  workdir = str(parent / "run")
  code, message = _error(["train", f"--config.dataset={topic_dir}", "--workdir", workdir,
                          "--config.num_epochs=1"], capsys)
  assert code == 2 and message.startswith(f"{workdir}: Permission denied"), message


def test_os_error_without_a_file_names_the_run_and_the_cause(monkeypatch, capsys):
  """A full disk: the write that fails names no file; the line names the run, and
  the cause is found under whatever wrapped it."""
  def full_disk(args, overrides):
    errors.CONTEXT["path"] = "runs/r"
    try:
      raise OSError(errno.ENOSPC, "No space left on device")
    except OSError as e:
      raise RuntimeError("async save failed") from e

  monkeypatch.setattr(cli, "cmd_train", full_disk)
  monkeypatch.setattr(cli, "_initialize", lambda args: None)
  assert _error(["train"], capsys) == (
      2, "No space left on device (while working on runs/r; the disk is full)")


def test_training_failed_is_exit_3(monkeypatch, capsys):
  diverged = TrainingDiverged

  def diverge(args, overrides):
    raise diverged("the loss is NaN at step 4; the last good checkpoint (step 2) is kept")

  monkeypatch.setattr(cli, "cmd_train", diverge)
  monkeypatch.setattr(cli, "_initialize", lambda args: None)
  assert _error(["train"], capsys) == (
      3, "the loss is NaN at step 4; the last good checkpoint (step 2) is kept")


def test_unexpected_error_is_exit_1_and_says_how_to_see_more(monkeypatch, capsys):
  def boom(args):
    raise KeyError("surprise")

  monkeypatch.setattr(cli, "cmd_config", boom)
  assert _error(["config"], capsys) == (
      1, "KeyError: 'surprise' (run with --debug for the traceback)")


@pytest.mark.parametrize("args, message", [
    ([], "the following arguments are required: command (see `textclf --help`)"),
    (["trian"], "argument command: invalid choice: 'trian' (choose from 'train', 'config', "
                "'mesh'" + "".join(f", '{c}'" for c in cli.MODULE_COMMANDS)
                + ") (see `textclf --help`)"),
    (["predict"], "the following arguments are required: run (see `textclf predict --help`)"),
    (["predict", "R", "--top_k", "x"], "argument --top_k: invalid int value: 'x' "
                                       "(see `textclf predict --help`)"),
    (["predict", "R", "t", "--top_k", "0"], "--top_k 0: expected a number of labels >= 1"),
    (["predict", "R", "t", "--input", "F"], "predict: texts as arguments or --input FILE, "
                                            "not both"),
    (["eval", "R", "--config.seed=1"], "--config.* overrides apply to `train` and `tune` only"),
    (["train", "--config.seed"], "--config.seed needs a value: --config.seed=VALUE"),
    (["train", "--resume", "R", "--config.num_filters=4"],
     "--resume continues a run with its own config; --config.num_filters cannot change "
     "(allowed: num_epochs, early_stopping_patience, log_every_steps, "
     "checkpoint_every_steps, progress_bar, wandb, keep_checkpoints)"),
    (["train", "--config.num_epohcs=3"], "--config.num_epohcs: unknown key 'num_epohcs'"),
    (["train", "--resume", "R", "--config", "lstm"],
     "--resume continues a run with its own config; --config lstm cannot be given with it"),
    (["train", "--resume", "R", "--workdir", "X"],
     "--resume continues the run in its own directory; --workdir X cannot be given with it"),
])
def test_usage_errors_are_one_line_exit_2(args, message, capsys):
  code, got = _error(args, capsys)
  assert code == 2 and got.startswith(message), got


def test_a_config_file_with_a_syntax_error_is_bad_input(tmp_path, capsys):
  path = tmp_path / "mine.py"
  path.write_text("def get_config(:\n")
  code, message = _error(["config", str(path)], capsys)
  assert code == 2 and message.startswith(f"{path}:1: "), message


def test_main_raises_system_exit_whose_text_is_the_message(capsys):
  with pytest.raises(SystemExit, match="overrides apply to `train` and `tune` only") as info:
    cli.main(["eval", "R", "--config.seed=1"])
  assert info.value.code == 2


def test_debug_prints_the_traceback_then_the_line(monkeypatch, capsys):
  for args in (["train", "--debug", "--config.num_epohcs=3"],
               ["--debug", "train", "--config.num_epohcs=3"]):
    code, _, err = _main(args, capsys)
    lines = err.strip().splitlines()
    assert code == 2 and lines[0] == "Traceback (most recent call last):"
    assert "ConfigError" in err and lines[-1].startswith("textclf: error: --config.num_epohcs")
  monkeypatch.setenv("TEXTCLF_DEBUG", "1")
  code, _, err = _main(["train", "--config.num_epohcs=3"], capsys)
  assert code == 2 and err.startswith("Traceback (most recent call last):")
  monkeypatch.setenv("TEXTCLF_DEBUG", "0")
  code, _, err = _main(["train", "--config.num_epohcs=3"], capsys)
  assert code == 2 and "Traceback" not in err


# --- predict ------------------------------------------------------------------------


def _rows(out):
  return [json.loads(line) for line in out.splitlines()]


def test_options_before_between_and_after_the_texts(run, capsys):
  expected = None
  for args in ([run, "--top_k", "1", "the goal of the match", "stock market"],
               ["--top_k", "1", run, "the goal of the match", "stock market"],
               [run, "the goal of the match", "--top_k=1", "--debug", "stock market"],
               [run, "the goal of the match", "stock market", "--top_k", "1"]):
    code, out, err = _main(["predict"] + args, capsys)
    assert (code, err) == (0, ""), err
    rows = _rows(out)
    assert [r["text"] for r in rows] == ["the goal of the match", "stock market"]
    assert all(len(r["probabilities"]) == 1 for r in rows)
    expected = expected or rows
    assert rows == expected
  assert [r["label"] for r in expected] == ["sport", "money"]


def test_a_text_that_looks_like_an_option_after_double_dash(run, capsys):
  code, out, _ = _main(["predict", run, "--top_k", "2", "--", "--debug", "-5 stars"], capsys)
  assert code == 0 and [r["text"] for r in _rows(out)] == ["--debug", "-5 stars"]


def test_blank_lines_keep_their_place_in_the_output(run, tmp_path, capsys, monkeypatch):
  """One output line per input line: a blank line gets an `error` and no label."""
  monkeypatch.setattr("sys.stdin", io.TextIOWrapper(io.BytesIO(
      b"the goal of the match\n\n   \nstock market\n")))
  code, out, _ = _main(["predict", run, "--top_k", "1"], capsys)
  rows = _rows(out)
  assert code == 0 and len(rows) == 4
  assert cli.calls == [["the goal of the match", "stock market"]]  # no blank text
  assert rows[1] == {"text": "", "error": textinput.BLANK_LINE}
  assert rows[2] == {"text": "   ", "error": textinput.BLANK_LINE}
  assert (rows[0]["label"], rows[3]["label"]) == ("sport", "money")
  path = tmp_path / "texts.txt"  # a Windows file: CRLF, a byte order mark, no final newline
  path.write_bytes(b"\xef\xbb\xbfstock market\r\n\r\nthe goal of the match")
  code, out, _ = _main(["predict", run, "--input", str(path)], capsys)
  assert [r.get("label") for r in _rows(out)] == ["money", None, "sport"]
  assert [r["text"] for r in _rows(out)] == ["stock market", "", "the goal of the match"]
  code, out, _ = _main(["predict", run, ""], capsys)  # a blank argument: the same,
  assert _rows(out) == [{"text": "", "error": textinput.BLANK_LINE}]
  assert cli.calls[2:] == [run]  # the model is not even loaded; the run is checked


def test_blank_text_against_a_directory_that_is_not_a_run(tmp_path, capsys):
  code, message = _error(["predict", str(tmp_path), ""], capsys)
  assert code == 2 and str(tmp_path) in message and "run" in message, message


def test_predict_input_that_is_not_utf8_names_the_line(tmp_path, capsys):
  path = tmp_path / "latin1.txt"
  path.write_bytes(b"fine\ncaf\xe9\n")
  assert _error(["predict", str(tmp_path), "--input", str(path)], capsys) == (
      2, f"{path}:2: text is not valid UTF-8 (byte 0xe9 at column 4); re-encode it as UTF-8")


# --- train --help and textclf config --------------------------------------------------


def test_train_help_mentions_config_overrides_and_the_config_command(capsys):
  code, out, _ = _main(["train", "--help"], capsys)
  assert code == 0 and "--config.KEY=VALUE" in out and "textclf config PRESET" in out


@pytest.mark.parametrize("preset", config_lib.PRESETS)
def test_config_lists_every_key_with_default_and_meaning(preset, capsys):
  code, out, err = _main(["config", preset], capsys)
  assert (code, err) == (0, "")
  lines = [line for line in out.splitlines() if not line.startswith("#")]
  config = config_lib.load_preset(preset)
  listed = {}
  for line in lines:
    setting, meaning = line.split("  ", 1)
    key, value = setting.strip().split("=", 1)
    listed[key] = (value, meaning.strip())
  assert sorted(listed) == sorted(config.keys())
  for key, (value, meaning) in listed.items():
    assert meaning and "no comment explains" not in meaning, key
    # The default, as printed, is what --config.KEY= parses back to.
    parsed = config_lib._parse_value(key, value.strip('"') if value == '""' else value,
                                     config[key])
    assert parsed == config[key], (key, value)
  assert listed["dataset"][1].startswith("A built-in name (`bbc_news`)")  # the comment above
  assert listed["data_dir"][1] == "falls back to $TEXTCLF_DATA_DIR"  # the comment after
  assert "imbalance_label" in listed["imbalance_fraction"][1]  # a block naming both keys


def test_every_key_is_explained_by_a_comment_where_it_is_set():
  """The meanings come only from the comments in textclf_jax/configs/*.py: a key
  added without one fails here, naming the file that defines it."""
  missing = {}
  for preset in config_lib.PRESETS:
    for key, (defining, comment, _, _) in config_doc.key_comments(preset).items():
      if not comment:
        missing[key] = os.path.basename(defining) or "?"
  assert not missing, f"keys without a comment where they are defined: {missing}"


def test_config_of_a_python_file_reads_its_comments(tmp_path, capsys):
  path = tmp_path / "mine.py"
  path.write_text("from textclf_jax.configs import cnn\n\n\ndef get_config():\n"
                  "  c = cnn.get_config()\n"
                  "  c.num_epochs = 3  # a quick look\n"
                  "  # How wide the windows are.\n"
                  "  c.filter_widths = (2,)\n"
                  "  return c\n")
  code, out, _ = _main(["config", str(path)], capsys)
  lines = {line.split("=", 1)[0]: line for line in out.splitlines()}
  assert code == 0 and "a quick look" in lines["num_epochs"]
  assert lines["num_epochs"].startswith("num_epochs=3 ")
  assert "How wide the windows are." in lines["filter_widths"]
  assert "optimizer" in lines and "dropout" in lines
