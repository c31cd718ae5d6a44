"""The sweep runner's entry point: plan an experiment's cells, train (or read back)
each, report. What an experiment script imports.

    exp = Experiment(name="kim2014", preset="kim", variants={...}, datasets={...}, seeds=(0, 1, 2))
    run_experiment(exp, root="runs/kim2014", only_datasets=["trec"], quick=False)

Cells are variants x datasets x units (experiments/spec.py), each a normal run
directory ROOT/DATASET/VARIANT/{fold_K,seed_S}; a finished cell is read, not re-run,
and a half-finished one is resumed (experiments/execute.py), so a sweep killed
half-way continues where it stopped. Writes ROOT/results.csv, ROOT/table.md and
ROOT/plot.png, and logs the tables to the sweep's W&B group (experiments/report.py).
"""

from __future__ import annotations

from textclf_jax.runtime import bootstrap, parallel

from experiments import execute, report
from experiments.spec import QUICK, Experiment, Plot, plan_cells

__all__ = ["Experiment", "Plot", "run_experiment"]


def run_experiment(exp: Experiment, root: str, only_datasets=(), only_variants=(),
                   max_units=0, quick=False, report_only=False, vmap=False) -> dict:
  """Runs (or reads) every cell, then writes results.csv, table.md and plot.png.

  quick: the first dataset (unless `only_datasets`), one unit, spec.QUICK's overrides.

  vmap: the unfinished cells of each dataset whose configs differ only in seed,
  fold, learning rate, dropout or class weights (a variant's seeds or folds, and
  variants that differ only in those) train together as one vmapped program
  (`execute.run_groups`); single process.

  report_only: train nothing; tabulate the cells that have finished (a sweep's
  progress, or the finished part of one that was stopped).

  Under a multi-process launch (launch/: JAX_* variables or TEXTCLF_DISTRIBUTED=1)
  every process runs every cell together; process 0 writes the outputs.
  """
  bootstrap.start()  # before the first XLA computation
  parallel.initialize()
  extra = list(QUICK) if quick else []
  if quick:
    only_datasets = only_datasets or [next(iter(exp.datasets))]
    max_units = max_units or 1
  cells = plan_cells(exp, only_datasets, only_variants, max_units, extra)
  if vmap and not report_only:
    execute.run_groups(exp, cells, root, extra)  # run_cell then reads their results
  if report_only:
    cells = [cell for cell in cells if execute.is_finished(cell, root)]
  rows = [report.result_row(exp, cell, execute.run_cell(exp, cell, root, extra), root)
          for cell in cells]
  if not rows:
    raise SystemExit(f"[{exp.name}] no finished cells under {root}")
  summary = report.summarise(exp, rows)
  table = report.format_table(exp, summary)
  if parallel.is_main_process():
    report.write_report(exp, root, rows, summary, table)
    print(table)
  return {"rows": rows, "summary": summary, "table": table}
