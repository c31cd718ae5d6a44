"""The sweep's Markdown tables (ROOT/table.md): variants x datasets x metrics with
mean ± std (or a 95% CI), the published number and the Δ from the reference row, then
the paired comparisons of every row with the reference (experiments/report_significance.py)
with a footnote naming the tests."""

from __future__ import annotations

import math

from textclf_jax.scoring.significance import BOOTSTRAP_SEED, RESAMPLES, t_interval

from experiments.report_significance import NO_PREDICTIONS
from experiments.spec import (INTERVALS, Experiment, is_percent, metric_label, metric_names,
                              reference_arm)

NOT_SIGNIFICANT = "≈"  # the paired t-test over runs: p >= ALPHA
UNTESTED = "†"  # fewer than two matched runs: no test over runs
ALPHA = 0.05


def _format(metric: str, mean: float, std: float, n: int = 0, interval: str = "std") -> str:
  if metric == "num_params":
    return f"{mean / 1e6:.2f}M" if mean >= 1e5 else f"{mean / 1e3:.1f}k"
  digits = 1 if is_percent(metric) else 0
  if interval == "ci":
    ci = t_interval(mean, std, n)
    if ci is None:
      return f"{mean:.{digits}f}"
    return f"{mean:.{digits}f} [{ci[0]:.{digits}f}, {ci[1]:.{digits}f}]"
  return f"{mean:.{digits}f} ± {std:.{digits}f}"


def _marker(comparison) -> str:
  if comparison is None:
    return ""
  if comparison["n"] < 2:
    return f" {UNTESTED}"
  return f" {NOT_SIGNIFICANT}" if not comparison["t_p"] < ALPHA else ""


def _p(p: float) -> str:
  if math.isnan(p):
    return "–"
  return "<0.001" if p < 0.001 else f"{p:.3f}"


def _ci(low: float, high: float) -> str:
  return "–" if math.isnan(low) else f"[{low:+.2f}, {high:+.2f}]"


def format_table(exp: Experiment, summary: dict) -> str:
  """Markdown: variants (baselines last) x datasets x metrics, mean ± std (n) or, with
  exp.interval == "ci", mean [95% CI]; then the paired comparisons (`significance_table`).

  With a published number: `paper X (Δ d)`. Against the reference arm
  (`spec.reference_arm`): Δ of each percent metric's mean, marked ≈ when the paired
  t-test over the matched seeds/folds is not significant at 0.05 (summarise's
  `.significance`), † when fewer than two seeds/folds are matched.
  """
  if exp.interval not in INTERVALS:
    raise ValueError(f"Experiment.interval={exp.interval!r}: expected one of {INTERVALS}")
  metrics = metric_names(exp)
  reference = reference_arm(exp)
  tests = getattr(summary, "significance", {})
  variants = list(dict.fromkeys(v for v, _ in summary))
  variants = ([v for v in variants if v not in exp.baselines]
              + [v for v in variants if v in exp.baselines])
  datasets = list(dict.fromkeys(d for _, d in summary))
  columns = [(d, m) for d in datasets for m in metrics]
  header = [d if len(metrics) == 1 else f"{d} {metric_label(m)}" for d, m in columns]
  lines = [f"| {exp.name} | " + " | ".join(header) + " |", "|---|" + "---|" * len(columns)]
  marks = set()
  for variant in variants:
    cells = []
    for dataset, metric in columns:
      if (variant, dataset) not in summary:
        cells.append("–")
        continue
      mean, std, n = summary[(variant, dataset)][metric]
      text = _format(metric, mean, std, n, exp.interval) + (
          f" (n={n})" if metric == metrics[0] else "")
      published = exp.published.get((variant, dataset)) if metric == metrics[0] else None
      ref_stats = summary.get((reference, dataset))
      compared = bool(reference and variant != reference and ref_stats and is_percent(metric))
      if published is not None:
        text += (f" · paper {published:.1f} (Δ {mean - published:+.1f})" if compared
                 else f" · paper {published:.1f} · Δ {mean - published:+.1f}")
      if compared:
        mark = _marker(tests.get((variant, dataset), {}).get(metric))
        marks.add(mark.strip())
        text += f" · Δ {mean - ref_stats[metric][0]:+.1f}{mark}"
      cells.append(text)
    name = f"{variant} (ref)" if variant == reference else variant
    lines.append(f"| {name} | " + " | ".join(cells) + " |")
  notes = []
  if exp.interval == "ci":
    notes.append("Cells: mean [95% CI]: the t-interval over the runs (scipy.stats.t, n − 1 "
                 "degrees of freedom).")
  if reference and any(v == reference for v, _ in summary):
    note = (f"Δ: difference of the mean from the reference row `{reference}` on the same "
            f"dataset (percentage points). {NOT_SIGNIFICANT}: not significant at {ALPHA} by a "
            "two-sided paired t-test over the seeds/folds both rows ran "
            "(scipy.stats.ttest_rel); unmarked: significant.")
    if UNTESTED in marks:
      note += f" {UNTESTED}: fewer than two matched seeds/folds, not tested."
    if NOT_SIGNIFICANT not in marks and "" in marks:
      note += f" (No cell is marked {NOT_SIGNIFICANT}.)"
    notes.append(note + " CIs, Wilcoxon and paired-bootstrap p-values: the table below.")
  if exp.baselines:
    notes.append(f"{', '.join(exp.baselines)}: TF-IDF word uni+bigrams + logistic regression "
                 "(C picked on dev), on the same splits, folds and tokenisation.")
  if any(s[metrics[0]][2] < 5 for s in summary.values()):
    notes.append("Some cells have n < 5 runs: too few for a comparison.")
  if exp.published_note:
    notes.append(exp.published_note)
  table = "\n".join(lines) + "".join(f"\n\n{n}" for n in notes) + "\n"
  significance_md = significance_table(exp, summary)
  return table + (f"\n{significance_md}" if significance_md else "")


SIGNIFICANCE_COLUMNS = ("variant", "dataset", "metric", "runs", "Δ", "95% CI (t)",
                        "t-test p", "Wilcoxon p", "examples", "bootstrap Δ",
                        "bootstrap 95% CI", "bootstrap p")


def significance_table(exp: Experiment, summary: dict) -> str:
  """Markdown: one row per compared arm x dataset x percent metric (summarise's
  `.significance`), in the main table's order, with a footnote naming the tests;
  "" when nothing was compared."""
  tests = getattr(summary, "significance", {})
  if not tests:
    return ""
  reference = reference_arm(exp)
  variants = list(dict.fromkeys(v for v, _ in summary))
  variants = ([v for v in variants if v not in exp.baselines]
              + [v for v in variants if v in exp.baselines])
  datasets = list(dict.fromkeys(d for _, d in summary))
  lines = [f"Paired comparisons with `{reference}` (test scores, percentage points; "
           "row − reference):", "",
           "| " + " | ".join(SIGNIFICANCE_COLUMNS) + " |",
           "|" + "---|" * len(SIGNIFICANCE_COLUMNS)]
  missing = set()
  for variant in variants:
    for dataset in datasets:
      for metric, c in tests.get((variant, dataset), {}).items():
        boot = c["bootstrap"]
        if boot is None:
          missing.add(c["bootstrap_note"])
          bootstrap = ["–", f"– ({c['bootstrap_note']})", "–", "–"]
        else:
          bootstrap = [str(boot["examples"]), f"{boot['delta']:+.2f}",
                       _ci(boot["low"], boot["high"]), _p(boot["p"])]
        delta = "–" if math.isnan(c["delta"]) else f"{c['delta']:+.2f}{_marker(c)}"
        lines.append("| " + " | ".join([
            variant, dataset, metric_label(metric), str(c["n"]), delta,
            _ci(c["low"], c["high"]), _p(c["t_p"]), _p(c["wilcoxon_p"]), bootstrap[0],
            *bootstrap[1:]]) + " |")
  note = ("runs: the seeds/folds both rows ran; Δ: the mean of their paired differences. "
          "95% CI (t) and t-test p: two-sided paired t-test over those runs "
          f"(scipy.stats.ttest_rel) — the test behind {NOT_SIGNIFICANT} (not significant at "
          f"{ALPHA}); Wilcoxon p: two-sided signed-rank test over the same pairs "
          "(scipy.stats.wilcoxon, exact for small n: its smallest p is 2/2^n, 0.0625 for 5 "
          "runs). Bootstrap: paired bootstrap over the test examples of the runs' saved "
          f"predictions, pooled ({RESAMPLES:,} resamples of the examples with replacement, "
          f"numpy seed {BOOTSTRAP_SEED}; an example keeps every seed's prediction; examples: "
          "how many were resampled): the difference of the pooled metric, its 2.5–97.5 "
          "percentile interval, and p = twice the smaller share of resampled differences on "
          "either side of 0.")
  if NO_PREDICTIONS in missing:
    note += (f" {NO_PREDICTIONS}: runs made before test predictions were saved "
             "(RUN/predictions/): the run-level tests only.")
  return "\n".join(lines) + f"\n\n{note}\n"
