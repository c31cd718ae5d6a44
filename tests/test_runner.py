"""The sweep runner: grid of cells, folds vs seeds, skip finished cells, table and plot."""

import csv
import os

import pytest

from conftest import SHARED_DATASETS, make_rows, write_jsonl
from experiments.runner import Experiment, run_experiment
from experiments.spec import plan_cells
from textclf_jax import train

needs_shared = pytest.mark.skipif(not os.path.isdir(SHARED_DATASETS),
                                  reason=f"benchmark copies not found at {SHARED_DATASETS}")

TINY = ("max_len=24", "embed_dim=16", "num_filters=8", "batch_size=16", "num_epochs=2",
        "bucket_lengths=(8,16,24)", "wandb=disabled", "log_every_steps=5")


def _experiment(tmp_path):
  fixed = tmp_path / "fixed"
  fixed.mkdir()
  write_jsonl(fixed / "train.jsonl", make_rows(150, 1))
  write_jsonl(fixed / "test.jsonl", make_rows(45, 2))
  cv = tmp_path / "cv"
  cv.mkdir()
  rows = make_rows(90, 3)
  for i, row in enumerate(rows):
    row["fold"] = (i // 3) % 3
  write_jsonl(cv / "all.jsonl", rows)
  return Experiment(
      name="toy", preset="cnn", overrides=TINY,
      variants={"w2": ["filter_widths=(2,)"], "w3": ["filter_widths=(3,)"]},
      datasets={"fixed": [f"dataset={fixed}"], "cv": [f"dataset={cv}"]},
      seeds=(0, 1), published={("w2", "fixed"): 90.0})


def test_cells_are_folds_or_seeds(tmp_path):
  exp = _experiment(tmp_path)
  cells = plan_cells(exp)
  units = {(c.dataset, c.unit) for c in cells}
  assert units == {("fixed", "seed_0"), ("fixed", "seed_1"), ("cv", "fold_0"),
                   ("cv", "fold_1"), ("cv", "fold_2")}
  assert len(cells) == 10
  assert len(plan_cells(exp, only_datasets=["cv"], only_variants=["w3"], max_units=2)) == 2


def test_sweep_writes_outputs_and_skips_finished_cells(tmp_path, monkeypatch):
  exp = _experiment(tmp_path)
  root = str(tmp_path / "sweep")
  out = run_experiment(exp, root, only_datasets=["fixed", "cv"], max_units=2)
  assert len(out["rows"]) == 8
  for name in ("results.csv", "table.md", "plot.png"):
    assert os.path.getsize(os.path.join(root, name)) > 0
  assert "paper 90.0" in out["table"] and "±" in out["table"]
  with open(os.path.join(root, "results.csv")) as f:
    assert len(list(csv.DictReader(f))) == 8
  # A second invocation (as after a kill) trains nothing: every cell is read back.
  calls = []
  monkeypatch.setattr(train, "train_and_evaluate", lambda *a, **k: calls.append(a))
  again = run_experiment(exp, root, only_datasets=["fixed", "cv"], max_units=2)
  assert calls == [] and again["summary"] == out["summary"]
  # --report over a larger grid tabulates the finished cells and trains nothing.
  report = run_experiment(exp, root, max_units=3, report_only=True)
  assert calls == [] and len(report["rows"]) == 8


def test_quick_mode_runs_one_dataset_one_unit(tmp_path):
  exp = _experiment(tmp_path)
  out = run_experiment(exp, str(tmp_path / "quick"), quick=True)
  assert {r["dataset"] for r in out["rows"]} == {"fixed"} and len(out["rows"]) == 2


@needs_shared
def test_kim2014_quick_mode(tmp_path):
  import subprocess
  import sys
  from conftest import REPO
  root = str(tmp_path / "kim")
  proc = subprocess.run([sys.executable, "-m", "experiments.kim2014", "--quick", "--root", root],
                        cwd=REPO, capture_output=True, text=True, timeout=900,
                        env=dict(os.environ, WANDB_MODE="disabled"))
  assert proc.returncode == 0, proc.stderr[-2000:]
  table = open(os.path.join(root, "table.md")).read()
  for variant in ("rand", "static", "non-static", "multichannel"):
    assert f"| {variant} |" in table
  assert "paper 76.1" in table  # CNN-rand on MR
