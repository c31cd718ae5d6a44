"""Run directories written by the code before the layer/family redesign still evaluate,
predict, export and resume, with the numbers they were made with.

The runs are fixtures made at commit 3882f67 (tests/fixtures/old_runs/README.md says how);
each test works on a copy, so the fixtures are never written.
"""

import importlib.util
import json
import os
import shutil

import pytest

from conftest import rerun_at_default_xla, run_textclf

FIXTURES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures", "old_runs")


@pytest.fixture
def old_runs(tmp_path, monkeypatch):
  """A copy of the fixture folder as the working directory (the runs name their dataset
  by the relative path `data`)."""
  root = tmp_path / "old_runs"
  shutil.copytree(FIXTURES, root)
  monkeypatch.chdir(root)
  return root


def _lines(path):
  with open(path, encoding="utf-8") as f:
    return [json.loads(line) for line in f if line.strip()]


@pytest.mark.parametrize("run", ["cnn", "tfidf"])
def test_old_run_evaluates_to_its_results(old_runs, capsys, run):
  code, out, err = run_textclf(["eval", run], capsys)
  assert code == 0, err
  assert "matches results.json test metrics exactly: yes" in out + err
  saved = json.loads((old_runs / run / "results.json").read_text())
  report = json.loads(out[:out.rindex("}") + 1])
  assert report["accuracy"] == saved["test"]["accuracy"]


@pytest.mark.parametrize("run", ["cnn", "tfidf"])
def test_old_run_predicts_what_it_predicted(old_runs, capsys, run):
  texts = ["match goal team the a", "bank market stock of and"] + ([""] if run == "cnn" else [])
  code, out, err = run_textclf(["predict", run, *texts], capsys)
  assert code == 0, err
  got = [json.loads(line) for line in out.splitlines() if line.strip()]
  assert got == _lines(old_runs / "expected" / f"{run}_predict.jsonl")


def test_old_run_resumes_to_the_old_codes_numbers(old_runs, capsys, request):
  """Trained one epoch longer by today's code, it ends where the old code ended, to the
  bit (at XLA's default optimisation level, which the fixture was made at)."""
  if rerun_at_default_xla(request):
    return
  code, _, err = run_textclf(["train", "--resume", "cnn", "--config.num_epochs=4"], capsys)
  assert code == 0, err
  got = json.loads((old_runs / "cnn" / "results.json").read_text())
  expected = json.loads((old_runs / "expected" / "cnn_resumed_results.json").read_text())
  for key in ("dev", "test", "best_step", "final_step", "epochs_trained", "calibration"):
    assert got[key] == expected[key], key


@pytest.mark.skipif(importlib.util.find_spec("jax2onnx") is None
                    or importlib.util.find_spec("onnxruntime") is None,
                    reason="textclf export needs the export extra (jax2onnx, onnxruntime)")
def test_old_run_exports_with_parity(old_runs, capsys):
  code, out, err = run_textclf(["export", "cnn", "--format", "onnx", "--out", "exported"],
                               capsys)
  assert code == 0, err
  manifest = json.loads((old_runs / "exported" / "manifest.json").read_text())
  assert manifest["format"] == "onnx"
  assert manifest["parity"]["passed"] is True
