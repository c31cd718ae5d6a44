"""The sweep runner: grid of cells, folds vs seeds, skip finished cells, table and plot."""

import csv
import os
import shutil

import matplotlib
import numpy as np
import pytest
from matplotlib.image import imread

from conftest import SHARED_DATASETS, make_rows, write_jsonl
from experiments import plots, report
from experiments.runner import Experiment, run_experiment
from experiments.spec import plan_cells
from textclf_jax.training import loop as train

needs_shared = pytest.mark.skipif(not os.path.isdir(SHARED_DATASETS),
                                  reason=f"benchmark copies not found at {SHARED_DATASETS}")

TINY = ("max_len=24", "embed_dim=16", "num_filters=8", "batch_size=16", "num_epochs=2",
        "bucket_lengths=(8,16,24)", "wandb=disabled", "log_every_steps=5")


def plot_colours(path, shape=None, palette="tab10", min_pixels=30) -> set:
  """Checks a written PNG is a picture (of `shape`: (height, width), when given) and
  not blank; returns the palette's colours (indices) covering `min_pixels` or more.
  The plots colour one bar series per variant, one line per dataset, in palette
  order. Greys are left out: anti-aliased black text has grey edges."""
  image = imread(str(path))
  assert image.ndim == 3 and (shape is None or image.shape[:2] == shape), image.shape
  rgb = image[..., :3].reshape(-1, 3)
  assert rgb.var() > 0.005, f"{path} is (nearly) blank"
  colours = np.array(matplotlib.colormaps[palette].colors)
  counts = [(np.abs(rgb - colour).max(axis=1) < 0.02).sum() for colour in colours]
  return {i for i, (n, colour) in enumerate(zip(counts, colours))
          if n >= min_pixels and np.ptp(colour) > 0.01}


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
  for name in ("results.csv", "table.md"):
    assert os.path.getsize(os.path.join(root, name)) > 0
  # Bars of two variants (w2, w3) on two datasets: 3.2 + 1.4 * 2 + 0.03 * 2 in x 3.6 in.
  assert plot_colours(os.path.join(root, "plot.png"), (432, 727)) == {0, 1}
  assert "paper 90.0" in out["table"] and "±" in out["table"]
  with open(os.path.join(root, "results.csv")) as f:
    assert len(list(csv.DictReader(f))) == 8
  # Every run saved the probabilities its scores come from, as plain .npy.
  for cell, n in (("fixed/w2/seed_0", 45), ("cv/w3/fold_1", 30)):
    for split in ("dev", "test"):
      probs = np.load(os.path.join(root, cell, "predictions", f"{split}_probs.npy"),
                      allow_pickle=False)
      labels = np.load(os.path.join(root, cell, "predictions", f"{split}_labels.npy"),
                       allow_pickle=False)
      assert probs.shape == (len(labels), 3) and labels.dtype.kind == "i"
    assert len(labels) == n
  # The table: w2 (the first variant) is the reference; w3 gets paired tests over the
  # matched seeds/folds and a paired bootstrap over the pooled test examples.
  table = out["table"]
  assert "| w2 (ref) |" in table and "scipy.stats.ttest_rel" in table
  assert "| 95% CI (t) | t-test p | Wilcoxon p | examples | bootstrap Δ | bootstrap 95% CI " \
         "| bootstrap p |" in table
  tests = out["summary"].significance
  assert tests[("w3", "fixed")]["accuracy"]["bootstrap"]["examples"] == 45  # 2 seeds, 1 set
  assert tests[("w3", "cv")]["accuracy"]["bootstrap"]["examples"] == 60  # 2 folds of 30
  row = [l for l in table.splitlines() if l.startswith("| w3 | fixed | acc | 2 |")]
  assert len(row) == 1 and row[0].count("[") == 2 and "no predictions" not in row[0]
  with open(os.path.join(root, "significance.csv")) as f:
    assert {(r["variant"], r["dataset"]) for r in csv.DictReader(f)} == {("w3", "fixed"),
                                                                          ("w3", "cv")}
  # A second invocation (as after a kill) trains nothing: every cell is read back.
  calls = []
  monkeypatch.setattr(train, "train_and_evaluate", lambda *a, **k: calls.append(a))
  again = run_experiment(exp, root, only_datasets=["fixed", "cv"], max_units=2)
  assert calls == [] and again["summary"] == out["summary"]
  # --report over a larger grid tabulates the finished cells and trains nothing: the
  # same table, tests included (the bootstrap is seeded).
  report = run_experiment(exp, root, max_units=3, report_only=True)
  assert calls == [] and len(report["rows"]) == 8 and report["table"] == table
  # Runs made before predictions were saved: the run-level tests only, and said so.
  shutil.rmtree(os.path.join(root, "cv", "w3", "fold_0", "predictions"))
  old = run_experiment(exp, root, max_units=3, report_only=True)["table"]
  assert [l for l in old.splitlines() if l.startswith("| w3 | cv |")][0].endswith(
      "| – (no predictions) | – | – |") and "runs made before test predictions" in old


def test_bar_plot_has_one_coloured_bar_series_per_variant(tmp_path):
  exp = Experiment(name="bars", preset="cnn", variants={}, datasets={})
  rows = [{"variant": v, "dataset": d, "accuracy": 0.6 + 0.1 * i + 0.01 * s}
          for d in ("a", "b") for i, v in enumerate(["x", "y", "z"]) for s in (0, 1)]
  plots.write_plot(exp, report.summarise(exp, rows), str(tmp_path / "plot.png"))
  assert plot_colours(tmp_path / "plot.png", (432, 730)) == {0, 1, 2}
  # Eleven variants: eleven colours of tab20.
  many = [{"variant": f"v{i}", "dataset": "a", "accuracy": 0.5 + 0.01 * i} for i in range(11)]
  plots.write_plot(exp, report.summarise(exp, many), str(tmp_path / "many.png"))
  assert plot_colours(tmp_path / "many.png", (432, 591), "tab20") == set(range(11))


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
  assert "| rand (ref) |" in table  # no reference named: the first variant
  for variant in ("static", "non-static", "multichannel"):
    assert f"| {variant} |" in table
  assert "paper 76.1 · Δ" in table  # CNN-rand on MR
  assert "paper 81.0 (Δ" in table and "| static | mr | acc | 1 |" in table  # Δ from rand too
