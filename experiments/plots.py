"""A sweep's figures: plot.png, bars of the main metric per variant x dataset, or
line plots of a metric against a numeric variant parameter (`Plot`), one line per
dataset with its TF-IDF baselines dashed.
"""

from __future__ import annotations

import os

from experiments.spec import Experiment, is_percent, metric_label, metric_names


def write_plot(exp: Experiment, summary: dict, path: str):
  """plot.png: the first of `exp.plots` (more as plot_NAME.png beside it), or bars."""
  for i, plot in enumerate(exp.plots):
    target = path if i == 0 else os.path.join(os.path.dirname(path), f"plot_{plot.name}.png")
    _line_plot(exp, plot, summary, target)
  if not exp.plots:
    _bar_plot(exp, summary, path)


def _pyplot():
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt
  return plt


def _line_plot(exp: Experiment, plot, summary: dict, path: str):
  """One line per dataset of the metric against the variants' numeric parameter;
  the datasets' baselines as dashed horizontal lines in the same colour."""
  plt = _pyplot()
  metric = plot.metric or metric_names(exp)[0]
  datasets = list(dict.fromkeys(d for _, d in summary))
  fig, ax = plt.subplots(figsize=(6.0, 3.8))
  for dataset in datasets:
    points = sorted((x, summary[(v, dataset)][metric]) for v, x in plot.xs.items()
                    if (v, dataset) in summary)
    if not points:
      continue
    line = ax.errorbar([p[0] for p in points], [p[1][0] for p in points],
                       yerr=[p[1][1] for p in points], marker="o", capsize=2, label=dataset)
    for baseline in exp.baselines:
      if (baseline, dataset) in summary:
        ax.axhline(summary[(baseline, dataset)][metric][0], ls="--", lw=1,
                   color=line[0].get_color(), label=f"{dataset} {baseline}")
  if plot.log_x:
    ax.set_xscale("log")
  ax.set_xlabel(plot.xlabel or plot.name)
  ax.set_ylabel(f"test {metric_label(metric)} (mean ± std)")
  ax.legend(fontsize=7)
  ax.set_title(f"{exp.name}: {plot.name}")
  fig.tight_layout()
  fig.savefig(path, dpi=120)
  plt.close(fig)


def _bar_plot(exp: Experiment, summary: dict, path: str):
  plt = _pyplot()
  metric = metric_names(exp)[0]
  variants = list(dict.fromkeys(v for v, _ in summary))
  datasets = list(dict.fromkeys(d for _, d in summary))
  width = 0.8 / max(len(variants), 1)
  # One colour per variant (tab20 beyond 10), the legend beside the axes, not on the bars.
  colours = plt.get_cmap("tab10" if len(variants) <= 10 else "tab20").colors
  fig, ax = plt.subplots(figsize=(3.2 + 1.4 * len(datasets) + 0.03 * len(variants), 3.6))
  for i, variant in enumerate(variants):
    xs = [j + i * width for j, d in enumerate(datasets) if (variant, d) in summary]
    stats = [summary[(variant, d)][metric] for d in datasets if (variant, d) in summary]
    ax.bar(xs, [s[0] for s in stats], width, yerr=[s[1] for s in stats], label=variant,
           capsize=2, color=colours[i % len(colours)])
  ax.set_xticks([j + width * (len(variants) - 1) / 2 for j in range(len(datasets))], datasets)
  ax.set_ylabel(f"test {metric_label(metric)} (mean ± std)")
  lows = [s[metric][0] - s[metric][1] for s in summary.values()]
  if is_percent(metric):
    ax.set_ylim(max(0.0, min(lows) - 5), None)
  ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0)
  ax.set_title(exp.name)
  fig.tight_layout()
  fig.savefig(path, dpi=120)
  plt.close(fig)
