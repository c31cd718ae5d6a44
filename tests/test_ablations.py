"""Ablation studies: TF-IDF baseline cells, the spread marker, stemming, imbalance, quick modes."""

import json
import os

import numpy as np
import pytest

from conftest import SHARED_DATASETS, make_rows, tiny_config, write_jsonl
from test_runner import plot_colours
from experiments import plots, report, spec
from experiments.runner import Experiment, Plot, run_experiment
from textclf_jax.data import pipeline, splits
from textclf_jax.text.tokenize import Tokenizer

needs_shared = pytest.mark.skipif(not os.path.isdir(SHARED_DATASETS),
                                  reason=f"benchmark copies not found at {SHARED_DATASETS}")

TINY = ("max_len=24", "embed_dim=16", "num_filters=8", "batch_size=16", "num_epochs=1",
        "bucket_lengths=(8,16,24)", "wandb=disabled", "log_every_steps=5")


def _fixed_dataset(tmp_path, multi_label=False):
  d = tmp_path / ("multi" if multi_label else "fixed")
  d.mkdir()
  write_jsonl(d / "train.jsonl", make_rows(150, 1, multi_label))
  write_jsonl(d / "test.jsonl", make_rows(45, 2, multi_label))
  return str(d)


def test_tfidf_baseline_cells_are_read_like_any_cell(tmp_path):
  data = _fixed_dataset(tmp_path)
  exp = Experiment(name="toy", preset="cnn", overrides=TINY,
                   variants={"w2": ["filter_widths=(2,)"]},
                   datasets={"fixed": [f"dataset={data}"],
                             "fixed-imb": [f"dataset={data}", "imbalance_label=sport",
                                           "imbalance_fraction=0.1"]},
                   seeds=(0,), metrics=("accuracy", "macro_f1", "num_params"),
                   reference="w2", baselines={"tfidf+lr": []})
  root = str(tmp_path / "sweep")
  out = run_experiment(exp, root, only_variants=["w2"])  # baselines are always included
  assert {(r["variant"], r["dataset"]) for r in out["rows"]} == {
      ("w2", "fixed"), ("w2", "fixed-imb"), ("tfidf+lr", "fixed"), ("tfidf+lr", "fixed-imb")}
  workdir = os.path.join(root, "fixed", "tfidf+lr", "seed_0")
  with open(os.path.join(workdir, "results.json")) as f:
    results = json.load(f)
  assert results["model"] == "tfidf+lr" and results["test"]["accuracy"] > 0.9
  assert results["num_params"] > 0 and "confusion_matrix" in results["test"]
  with open(os.path.join(root, "fixed-imb", "tfidf+lr", "seed_0", "data.json")) as f:
    assert json.load(f)["imbalance"]["kept"] == 4  # round(0.1 * 45 sport training rows)
  assert "| tfidf+lr |" in out["table"] and "TF-IDF" in out["table"]
  # The baseline saved its probabilities too: its comparison has a paired bootstrap.
  probs = np.load(os.path.join(workdir, "predictions", "test_probs.npy"), allow_pickle=False)
  assert probs.shape == (45, 3) and probs.dtype == np.float64
  tests = out["summary"].significance
  assert tests[("tfidf+lr", "fixed")]["accuracy"]["bootstrap"]["examples"] == 45
  assert tests[("tfidf+lr", "fixed")]["macro_f1"]["n"] == 1  # one seed: no t-test
  assert "· Δ" in out["table"] and " †" in out["table"] and "fewer than two matched" in out["table"]
  assert out["table"].index("| w2 (ref) |") < out["table"].index("| tfidf+lr |")
  # The network's parameters are counted from its run directory.
  assert out["summary"][("w2", "fixed")]["num_params"][0] > 1000
  # Read back, not refitted: a second run reproduces the summary without training.
  again = run_experiment(exp, root, only_variants=["w2"], report_only=True)
  assert again["summary"] == out["summary"]


def test_multilabel_baseline_tunes_thresholds(tmp_path):
  from textclf_jax.families.tfidf.fit import train_tfidf
  config = tiny_config(dataset=_fixed_dataset(tmp_path, multi_label=True),
                       multilabel_threshold="global")
  results = train_tfidf(config, str(tmp_path / "run"))
  assert 0.5 < results["test"]["micro_f1"] <= 1.0 and "macro_f1" in results["test"]
  with open(tmp_path / "run" / "thresholds.json") as f:
    assert isinstance(json.load(f)["thresholds"], float)
  # The same fitted model under both threshold modes; the configured one is `test`.
  by_mode = results["by_threshold_mode"]
  assert by_mode["global"]["test"]["micro_f1"] == results["test"]["micro_f1"]
  assert report.metric_value(results, "per_label:macro_f1", "run") == \
      by_mode["per_label"]["test"]["macro_f1"]
  assert spec.metric_label("per_label:macro_f1") == "macro-F1 (per-label thr.)"
  assert spec.is_percent("global:micro_f1")
  with pytest.raises(KeyError, match="by_threshold_mode.global.test.nope"):
    report.metric_value(results, "global:nope", "run")


def test_significance_marker_and_reference_deltas():
  """≈: not significant at 0.05 by the paired t-test over the matched runs."""
  exp = Experiment(name="t", preset="cnn", variants={}, datasets={}, reference="ref",
                   metrics=("accuracy", "macro_f1"), baselines={"tfidf+lr": []})
  rows = []
  for variant, accs in {"ref": [0.80, 0.82], "close": [0.805, 0.815],
                        "far": [0.90, 0.91], "tfidf+lr": [0.7, 0.7]}.items():
    rows += [{"variant": variant, "dataset": "d", "accuracy": a, "macro_f1": a - 0.1}
             for a in accs]
  summary = report.summarise(exp, rows)
  table = report.format_table(exp, summary)
  main = table.split("\n\n")[0]
  lines = {l.split(" |")[0]: l for l in main.splitlines() if l.startswith("| ")}
  assert "| ref (ref)" in lines and "Δ" not in lines["| ref (ref)"]
  assert lines["| close"].count("Δ +0.0 ≈") == 2  # differences +0.5, -0.5: p = 1
  assert "Δ +9.5" in lines["| far"] and "≈" not in lines["| far"]  # +10, +9: p = 0.033
  assert summary.significance[("far", "d")]["accuracy"]["t_p"] == pytest.approx(0.0334, abs=1e-4)
  assert "Δ -11.0 ≈" in lines["| tfidf+lr"]  # -10, -12: p = 0.058
  assert "d acc" in table and "d macro-F1" in table and "n < 5" in table
  assert "not significant at 0.05 by a two-sided paired t-test" in table
  # Rows without run directories: no predictions to resample, and the table says so.
  assert "| far | d | acc | 2 | +9.50 |" in table and "– (no predictions)" in table


def test_line_plot_against_a_numeric_parameter(tmp_path):
  exp = Experiment(name="t", preset="cnn", variants={}, datasets={},
                   baselines={"tfidf+lr": []},
                   plots=(Plot("width", {"w1": 1, "w3": 3}, "region size"),
                          Plot("maps", {"m10": 10, "m100": 100}, log_x=True)))
  rows = [{"variant": v, "dataset": d, "accuracy": 0.5 + 0.1 * i + (0.05 if d == "b" else 0)}
          for d in ("a", "b") for i, v in enumerate(["w1", "w3", "m10", "m100", "tfidf+lr"])]
  plots.write_plot(exp, report.summarise(exp, rows), str(tmp_path / "plot.png"))
  # Two figures of 6 x 3.8 in at 120 dpi, each one line per dataset (and its baseline).
  for name in ("plot.png", "plot_maps.png"):
    assert plot_colours(tmp_path / name, (456, 720)) == {0, 1}
  only_a = [r for r in rows if r["dataset"] == "a"]
  plots.write_plot(exp, report.summarise(exp, only_a), str(tmp_path / "a.png"))
  assert plot_colours(tmp_path / "a.png", (456, 720)) == {0}


def test_stemming_option():
  text = "The movies weren't running generously"
  assert Tokenizer()(text) == ["the", "movies", "were", "n't", "running", "generously"]
  assert Tokenizer(stem=True)(text) == ["the", "movi", "were", "n't", "run", "generous"]
  assert Tokenizer(stem=True, remove_stopwords=True)(text) == ["movi", "n't", "run", "generous"]
  assert Tokenizer(stem=True, remove_stopwords=True, keep_negations=False)(text) == [
      "movi", "run", "generous"]
  config = tiny_config(stem=True)
  assert Tokenizer.from_config(config).stem


def test_imbalance_keeps_the_fraction_of_one_class_in_train_only(topic_dir):
  data = topic_dir  # train/dev/test of 300/60/90 rows
  plain = pipeline.prepare(tiny_config(dataset=str(data)))
  config = tiny_config(dataset=str(data), imbalance_label="tech", imbalance_fraction=0.1)
  prepared = pipeline.prepare(config)
  tech = prepared.label_names.index("tech")
  counts = lambda p, split: np.bincount(p.splits[split].labels, minlength=3)
  assert counts(plain, "train")[tech] == 100 and counts(prepared, "train")[tech] == 10
  for other in set(range(3)) - {tech}:
    assert counts(prepared, "train")[other] == counts(plain, "train")[other]
  for split in ("dev", "test"):
    np.testing.assert_array_equal(counts(prepared, split), counts(plain, split))
  assert prepared.stats["imbalance"] == {"label": "tech", "fraction": 0.1, "kept": 10,
                                         "of": 100, "train_before": 300, "train_after": 210}
  # Seeded: the same examples every time; 1% of 100 keeps one.
  again = pipeline.prepare(config)
  np.testing.assert_array_equal(again.splits["train"].ids, prepared.splits["train"].ids)
  one = pipeline.prepare(tiny_config(dataset=str(data), imbalance_label="tech",
                                     imbalance_fraction=0.01))
  assert counts(one, "train")[tech] == 1
  with pytest.raises(splits.DataError, match="imbalance_label='nope'.*known: money"):
    pipeline.prepare(tiny_config(dataset=str(data), imbalance_label="nope"))


@pytest.mark.slow
@needs_shared
@pytest.mark.parametrize("study,table,rows,colours", [
    # line plots: one dataset, one colour; bar charts: one colour per row
    ("filter_sizes", "", ("w5", "w3-4-5 (ref)", "tfidf+lr"), 1),
    ("losses", "single", ("ce (ref)", "focal2", "tfidf+lr"), 3),
    ("architectures", "", ("cnn (ref)", "lstm", "tfidf+lr"), 3),
    ("regularisation", "", ("default (ref)", "dropout0.0", "tfidf+lr"), 1),
    ("preprocessing", "", ("default (ref)", "stem", "tfidf+lr default", "tfidf+lr stem"), 4),
    ("documents", "", ("fasttext_nb", "tfidf+lr"), 2),
])
def test_study_quick_mode(tmp_path, study, table, rows, colours):
  """`python -m experiments.STUDY --quick`, in-process: a table, a plot, one result per cell."""
  import importlib
  module = importlib.import_module(f"experiments.{study}")
  root = tmp_path / study
  outputs = module.main(["--quick", "--root", str(root)])
  quick = root / "quick" / table
  text = (quick / "table.md").read_text()
  for row in rows:
    assert f"| {row} |" in text
  assert len(plot_colours(quick / "plot.png")) == colours
  assert all(len({r["unit"] for r in out["rows"]}) == 1 for out in outputs)
  if study == "losses":  # the imbalanced TREC and the multi-label table
    assert "trec-hum10 macro-F1" in text
    multi = (root / "quick" / "multilabel" / "table.md").read_text()
    assert "reuters21578 micro-F1 (global thr.)" in multi
    assert "reuters21578 macro-F1 (per-label thr.)" in multi and "| tfidf+lr |" in multi
    data = json.loads((quick / "trec-hum10" / "ce" / "seed_0" / "data.json").read_text())
    assert data["imbalance"]["label"] == "HUM" and data["imbalance"]["fraction"] == 0.1
  if study == "architectures":
    assert "trec params" in text and "trec train ex/s" in text
  # Resumable: a second invocation reads every cell back and trains nothing.
  figures = tmp_path / "figures"
  again = module.main(["--quick", "--root", str(root), "--report", "--export", str(figures)])
  assert [o["summary"] for o in again] == [o["summary"] for o in outputs]
  assert (figures / f"{study}.md").read_text() == text
  assert os.path.getsize(figures / f"{study}.png") > 0
  if study == "losses":
    assert (figures / "losses_multilabel.md").read_text() == multi


def test_table_goes_to_wandb_offline(tmp_path, monkeypatch):
  """wandb=offline: the summary and per-run tables are logged in the sweep's group."""
  monkeypatch.setenv("WANDB_MODE", "offline")
  monkeypatch.setenv("WANDB_SILENT", "true")
  exp = Experiment(name="wbtoy", preset="cnn", variants={}, datasets={}, reference="a",
                   metrics=("accuracy", "macro_f1"), overrides=("wandb=auto",))
  rows = [{"variant": v, "dataset": "d", "unit": f"seed_{s}", "accuracy": 0.5 + 0.01 * s,
           "macro_f1": 0.4, "train_seconds": 1.0, "workdir": "x"} for v in "ab" for s in (0, 1)]
  summary = report.summarise(exp, rows)
  plots.write_plot(exp, summary, str(tmp_path / "plot.png"))
  report.log_wandb_table(exp, str(tmp_path), rows, summary)
  tables = [name for _, _, files in os.walk(tmp_path / "wandb") for name in files
            if name.endswith(".table.json")]
  assert any(t.startswith("summary_table") for t in tables)
  assert any(t.startswith("runs_table") for t in tables)


def test_study_command_line_rejects_unknown_names(tmp_path):
  from experiments import losses
  with pytest.raises(SystemExit, match="--variants: unknown nope"):
    losses.main(["--variants", "ce,nope", "--root", str(tmp_path)])
  with pytest.raises(SystemExit, match="--datasets: unknown sst3"):
    losses.main(["--datasets", "sst3", "--root", str(tmp_path)])
