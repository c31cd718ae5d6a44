"""The sweep tables' significance (experiments/report.py): the paired tests over runs
against scipy and hand computation, the paired bootstrap over test examples, the
t-interval cells, and the tables built from saved predictions (RUN/predictions/)."""

import dataclasses
import math
import os

import numpy as np
import pytest
from scipy import stats

from experiments import report
from experiments.spec import Experiment
from textclf_jax.scoring import metrics as metrics_lib
from textclf_jax.run import layout as rundir

A = [81.2, 80.4, 82.0, 79.9, 81.5]
B = [80.1, 80.8, 81.1, 79.6, 80.2]  # A - B = 1.1, -0.4, 0.9, 0.3, 1.3


def test_paired_t_test_against_scipy_and_by_hand():
  got = report.paired_run_test(A, B)
  d = np.subtract(A, B)
  assert got["n"] == 5 and got["delta"] == pytest.approx(0.64)
  assert got["t_p"] == pytest.approx(stats.ttest_rel(A, B).pvalue, rel=1e-12)
  # By hand: t = mean / (s / sqrt(n)) on n - 1 = 4 degrees of freedom.
  sem = d.std(ddof=1) / math.sqrt(5)
  t = d.mean() / sem
  assert got["t_p"] == pytest.approx(2 * stats.t.sf(abs(t), 4), rel=1e-9)
  # d: mean 0.64, s = sqrt(1.912 / 4) = 0.6914, t = 0.64 / (0.6914 / sqrt 5) = 2.070.
  assert got["t_p"] == pytest.approx(0.1072, abs=1e-4)
  half = stats.t.ppf(0.975, 4) * sem
  assert (got["low"], got["high"]) == pytest.approx((d.mean() - half, d.mean() + half))


def test_wilcoxon_against_scipy_and_the_exact_distribution():
  got = report.paired_run_test(A, B)
  assert got["wilcoxon_p"] == pytest.approx(stats.wilcoxon(A, B).pvalue, rel=1e-12)
  # |d| ranks 4, 2, 3, 1, 5; the negative one has rank 2: W- = 2. Of the 32 equally
  # likely sign patterns, 3 have W- <= 2 ({}, {1}, {2}): two-sided p = 2 * 3 / 32.
  assert got["wilcoxon_p"] == pytest.approx(6 / 32)
  # Five runs, every one better: the smallest two-sided p a Wilcoxon test can give.
  assert report.paired_run_test([2, 3, 4, 5, 6], [1, 2, 3, 4, 5])["wilcoxon_p"] == \
      pytest.approx(2 / 32)


def test_paired_tests_edge_cases():
  same = report.paired_run_test([80.0, 81.0, 82.0], [80.0, 81.0, 82.0])
  assert same["t_p"] == 1.0 and same["wilcoxon_p"] == 1.0 and same["delta"] == 0.0
  one = report.paired_run_test([80.0], [79.0])
  assert one["n"] == 1 and one["delta"] == 1.0 and math.isnan(one["t_p"])
  constant = report.paired_run_test([81.0, 82.0, 83.0], [80.0, 81.0, 82.0])
  assert constant["t_p"] == 0.0 and constant["low"] == constant["high"] == 1.0


def test_t_interval_of_a_cell():
  values = [80.1, 81.7, 79.4, 82.2, 80.9]
  mean, std, n = report._stats(values)
  expected = stats.t.interval(0.95, 4, loc=np.mean(values), scale=stats.sem(values))
  assert report.t_interval(mean, std, n) == pytest.approx(expected)
  assert report.t_interval(80.0, 0.0, 1) is None
  assert report._format("accuracy", mean, std, n, "ci") == \
      f"{mean:.1f} [{expected[0]:.1f}, {expected[1]:.1f}]"
  assert report._format("accuracy", mean, std, n) == f"{mean:.1f} ± {std:.1f}"


def _classifier(labels, p, seed, classes=2):
  """Probabilities [N, classes] whose argmax is the label with probability p."""
  rng = np.random.default_rng(seed)
  n = len(labels)
  pred = np.where(rng.random(n) < p, labels, (labels + rng.integers(1, classes, n)) % classes)
  return np.eye(classes)[pred] * 0.8 + 0.2 / classes


def _two_arms(n=3000, seed=1, p_a=0.8, p_b=0.7, classes=2):
  """Predictions of two classifiers on the same examples, right with p_a and p_b."""
  labels = np.random.default_rng(seed).integers(0, classes, n)
  return (_classifier(labels, p_a, seed + 1000, classes),
          _classifier(labels, p_b, seed + 2000, classes), labels)


def test_bootstrap_ci_contains_the_true_difference_and_is_seeded():
  probs_a, probs_b, labels = _two_arms()
  counts_a, counts_b = (report.example_counts(p, labels) for p in (probs_a, probs_b))
  got = report.paired_bootstrap(counts_a, counts_b, ["accuracy", "macro_f1"])
  acc = got["accuracy"]
  observed = (probs_a.argmax(1) == labels).mean() - (probs_b.argmax(1) == labels).mean()
  assert acc["delta"] == pytest.approx(observed) and acc["examples"] == 3000
  assert acc["low"] < 0.10 < acc["high"]  # the true difference, 0.8 - 0.7
  assert acc["high"] - acc["low"] < 0.06 and acc["p"] < 0.001
  # Deterministic for a seed; another seed draws other resamples.
  assert report.paired_bootstrap(counts_a, counts_b, ["accuracy", "macro_f1"]) == got
  other = report.paired_bootstrap(counts_a, counts_b, ["accuracy"], seed=1)["accuracy"]
  assert other["delta"] == acc["delta"] and other["low"] != acc["low"]
  # scipy's paired percentile bootstrap of the same difference agrees.
  correct_a = (probs_a.argmax(1) == labels).astype(float)
  correct_b = (probs_b.argmax(1) == labels).astype(float)
  ref = stats.bootstrap((correct_a, correct_b), lambda a, b, axis=-1: a.mean(axis) - b.mean(axis),
                        paired=True, vectorized=True, n_resamples=10_000, method="percentile",
                        rng=np.random.default_rng(0)).confidence_interval
  assert (acc["low"], acc["high"]) == pytest.approx((ref.low, ref.high), abs=2e-3)


def test_bootstrap_of_identical_arms_and_small_differences():
  probs_a, _, labels = _two_arms(n=500)
  counts = report.example_counts(probs_a, labels)
  same = report.paired_bootstrap(counts, counts, ["accuracy"], resamples=500)["accuracy"]
  assert same["delta"] == same["low"] == same["high"] == 0.0 and same["p"] == 1.0
  probs_a, probs_b, labels = _two_arms(n=400, p_a=0.75, p_b=0.74, seed=3)
  close = report.paired_bootstrap(report.example_counts(probs_a, labels),
                                  report.example_counts(probs_b, labels), ["accuracy"])
  assert close["accuracy"]["low"] < 0 < close["accuracy"]["high"]
  assert close["accuracy"]["p"] > 0.05


def test_counts_reproduce_the_metrics_module():
  rng = np.random.default_rng(0)
  probs = rng.dirichlet(np.ones(4), 200)
  labels = rng.integers(0, 3, 200)  # class 3 absent: macro means skip it, as metrics does
  single = metrics_lib.single_label_metrics(probs, labels, list("abcd"))
  totals = report.example_counts(probs, labels).sum(0)
  for m in ("accuracy", "micro_f1", "macro_f1", "macro_precision", "macro_recall"):
    assert report.metric_from_counts(m, totals) == pytest.approx(single[m], abs=1e-12), m
  multi_probs = rng.random((150, 5))
  multi_labels = (rng.random((150, 5)) < 0.3).astype(np.float32)
  multi_labels[:, 4] = 0  # a label without positives
  thresholds = [0.3, 0.5, 0.6, 0.4, 0.5]
  multi = metrics_lib.multi_label_metrics(multi_probs, multi_labels, list("abcde"), thresholds)
  totals = report.example_counts(multi_probs, multi_labels, True, thresholds).sum(0)
  for m in ("micro_f1", "micro_precision", "micro_recall", "macro_f1", "subset_accuracy"):
    assert report.metric_from_counts(m, totals) == pytest.approx(multi[m], abs=1e-12), m


def test_seeds_are_resampled_as_one_example():
  """Groups: three seeds' predictions of one example are drawn together."""
  probs_a, probs_b, labels = _two_arms(n=300)
  counts_a = np.concatenate([report.example_counts(probs_a, labels)] * 3)
  counts_b = np.concatenate([report.example_counts(probs_b, labels)] * 3)
  groups = np.tile(np.arange(300), 3)
  pooled = report.paired_bootstrap(counts_a, counts_b, ["accuracy"], groups)["accuracy"]
  single = report.paired_bootstrap(counts_a[:300], counts_b[:300], ["accuracy"])["accuracy"]
  assert pooled["examples"] == 300
  # Three identical seeds are one seed: the same resamples give the same interval.
  assert (pooled["delta"], pooled["low"], pooled["high"]) == pytest.approx(
      (single["delta"], single["low"], single["high"]))
  apart = report.paired_bootstrap(counts_a, counts_b, ["accuracy"])["accuracy"]
  assert apart["examples"] == 900 and apart["high"] - apart["low"] < pooled["high"] - pooled["low"]


def _save_run(workdir, probs, labels, multi_label=False, dev=None, thresholds=None):
  """A finished run as far as the report reads it: labels.json, predictions/ (and for
  multi-label data config.json, thresholds.json)."""
  os.makedirs(workdir, exist_ok=True)
  rundir.write_json(rundir.path(workdir, rundir.LABELS),
                    {"labels": [f"l{i}" for i in range(probs.shape[1])],
                     "multi_label": multi_label})
  predictions = {"test": (probs, labels)}
  if dev is not None:
    predictions["dev"] = dev
  rundir.write_predictions(workdir, predictions)
  if multi_label:
    rundir.write_json(rundir.path(workdir, rundir.CONFIG), {"multilabel_at_least_one": True})
    rundir.write_thresholds(workdir, "global", thresholds)
  return str(workdir)


def _sweep_rows(tmp_path):
  """Arms ref / better / same over 3 seeds on dataset d (predictions saved), and `old`
  whose runs have none."""
  rows = []
  test_labels = np.random.default_rng(0).integers(0, 2, 600)  # one test set, every seed
  for k, (variant, p) in enumerate((("ref", 0.70), ("better", 0.80), ("same", 0.70),
                                    ("old", 0.72))):
    for seed in range(3):
      probs = _classifier(test_labels, p, 100 * k + seed)
      workdir = str(tmp_path / variant / f"seed_{seed}")
      if variant != "old":
        _save_run(workdir, probs, test_labels)
      acc = float((probs.argmax(1) == test_labels).mean())
      rows.append({"variant": variant, "dataset": "d", "unit": f"seed_{seed}",
                   "accuracy": acc, "train_seconds": 1.0, "workdir": workdir})
  return rows


def test_table_carries_the_tests_and_names_them(tmp_path):
  exp = Experiment(name="toy", preset="cnn", variants={"ref": [], "better": [], "same": [],
                                                        "old": []}, datasets={})
  rows = _sweep_rows(tmp_path)
  summary = report.summarise(exp, rows)
  table = report.format_table(exp, summary)
  main = table.split("\n\n")[0]
  lines = {l.split(" |")[0]: l for l in main.splitlines() if l.startswith("| ")}
  assert "| ref (ref)" in lines  # no reference named: the first variant
  assert "Δ +10." in lines["| better"] and "≈" not in lines["| better"]
  assert lines["| old"].endswith("Δ +4.2 ≈ |")  # t-test p = 0.118: not significant
  assert "not significant at 0.05 by a two-sided paired t-test" in table
  assert "scipy.stats.ttest_rel" in table and "scipy.stats.wilcoxon" in table
  assert "10,000 resamples" in table
  assert "| variant | dataset | metric | runs | Δ | 95% CI (t) | t-test p | Wilcoxon p | " \
         "examples | bootstrap Δ | bootstrap 95% CI | bootstrap p |" in table
  tests = summary.significance
  better = tests[("better", "d")]["accuracy"]
  values = lambda v: [r["accuracy"] * 100 for r in rows if r["variant"] == v]
  assert better["t_p"] == pytest.approx(stats.ttest_rel(values("better"), values("ref")).pvalue)
  boot = better["bootstrap"]
  assert boot["examples"] == 600  # three seeds of the same 600 examples
  assert boot["delta"] == pytest.approx(better["delta"])  # pooled accuracy = mean over seeds
  assert boot["low"] < better["delta"] < boot["high"] and boot["p"] < 0.001
  same = tests[("same", "d")]["accuracy"]  # as accurate as ref: the bootstrap sees it
  assert same["bootstrap"]["low"] < 0 < same["bootstrap"]["high"] and same["bootstrap"]["p"] > 0.2
  # The old runs: the run-level tests only, and the table says so.
  old = tests[("old", "d")]["accuracy"]
  assert old["bootstrap"] is None and old["bootstrap_note"] == "no predictions"
  assert not math.isnan(old["t_p"])
  old_line = [l for l in table.splitlines() if l.startswith("| old | d |")][0]
  assert "– (no predictions)" in old_line and "runs made before test predictions" in table
  # A second report of the same runs is the same table (the bootstrap is seeded).
  assert report.format_table(exp, report.summarise(exp, rows)) == table
  csv_rows = report.significance_rows(summary)
  assert {r["variant"] for r in csv_rows} == {"better", "same", "old"}
  # The 95% CI option of the cells.
  ci = report.format_table(dataclasses.replace(exp, interval="ci"), summary)
  assert "Cells: mean [95% CI]: the t-interval" in ci and " ± " not in ci.split("\n\n")[0]


def test_predictions_that_do_not_match_are_not_resampled(tmp_path):
  rows = _sweep_rows(tmp_path)
  rows[3]["accuracy"] += 0.01  # `better`'s seed_0 no longer matches its predictions
  exp = Experiment(name="toy", preset="cnn", variants={"ref": [], "better": []}, datasets={})
  tests = report.significance(exp, [r for r in rows if r["variant"] in ("ref", "better")])
  assert tests[("better", "d")]["accuracy"]["bootstrap_note"] == \
      "predictions do not match results.json"


def test_multi_label_threshold_modes_are_resampled_with_their_thresholds(tmp_path):
  """`MODE:METRIC` columns: the configured mode's thresholds.json, the other mode's
  thresholds tuned on the saved dev predictions as the run tuned them."""
  rng = np.random.default_rng(0)
  metrics = ("global:micro_f1", "per_label:macro_f1")
  rows = []
  truth = lambda n: (rng.random((n, 4)) < 0.3).astype(np.float32)
  # Per seed its own test examples: as CV folds, they are pooled side by side.
  data = [(truth(80), truth(120)) for _ in range(2)]
  for variant, noise in (("bce", 0.3), ("focal", 0.5)):
    for seed in range(2):
      dev_labels, test_labels = data[seed]
      blur = lambda t: np.clip(t * 0.6 + 0.2 + noise * (rng.random(t.shape) - 0.5), 0, 1)
      dev_probs, test_probs = blur(dev_labels), blur(test_labels)
      thresholds = metrics_lib.tune_thresholds(dev_probs, dev_labels, "global")
      workdir = _save_run(tmp_path / variant / f"seed_{seed}", test_probs, test_labels, True,
                          (dev_probs, dev_labels), thresholds)
      scores = metrics_lib.scores_by_threshold_mode(dev_probs, dev_labels, test_probs,
                                                    test_labels, list("abcd"))
      rows.append({"variant": variant, "dataset": "reuters", "unit": f"seed_{seed}",
                   "workdir": workdir, **{m: scores[m.split(":")[0]]["test"][m.split(":")[1]]
                                          for m in metrics}})
  exp = Experiment(name="ml", preset="cnn", variants={"bce": [], "focal": []}, datasets={},
                   metrics=metrics)
  tests = report.significance(exp, rows)[("focal", "reuters")]
  for m in metrics:
    assert tests[m]["bootstrap"] is not None, tests[m]["bootstrap_note"]
    # Seeds with different test examples are not pooled as one example.
    assert tests[m]["bootstrap"]["examples"] == 240
