"""The command line shared by the ablation studies (filter_sizes, losses, architectures,
regularisation, preprocessing): `main`, argparse as in kim2014.py, a `--quick` mode,
and `Study`, one table of a study with the datasets and variants its quick mode runs.
A study script defines only its tables: `main(__doc__, NAME, studies, argv)`, with
`studies(args)` returning its `Study`s.

--quick: the quick datasets/variants (or --datasets/--variants) and baselines (else
the first), one unit, 2 epochs on 400 examples (spec.QUICK), random 32-d embeddings
and max_len 32, under ROOT/quick so that quick cells are never read as finished
cells of the full study.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import shutil

from experiments.runner import Experiment, run_experiment

HERE = os.path.dirname(os.path.abspath(__file__))
SHARED = os.path.normpath(os.path.join(HERE, "..", "..", "shared"))
GLOVE = os.path.join(SHARED, "embeddings", "glove.6B.100d.subset.txt.gz")
QUICK_SHRINK = ("embedding=rand", "embed_dim=32", "max_len=32", "bucket_lengths=(32,)", "vectors=")
SEEDS = "0,1,2,3,4"


@dataclasses.dataclass
class Study:
  """One table of a study: its experiment, the subdirectory of --root it writes
  to ("" for the root itself) and what `--quick` runs."""
  experiment: Experiment
  subdir: str = ""
  quick_datasets: tuple = ()
  quick_variants: tuple = ()
  quick_overrides: tuple = ()
  quick_baselines: tuple = ()  # (): the first baseline


def main(doc: str, name: str, studies, argv=None) -> list:
  """An ablation script's command line: parses argv (its help is `doc`, its default
  root runs/NAME), builds the tables with `studies(args)` and runs them (`run`)."""
  args = parse_args(doc, name, argv)
  return run(studies(args), args)


def parse_args(doc: str, name: str, argv=None):
  parser = argparse.ArgumentParser(description=doc,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--root", default=f"runs/{name}")
  parser.add_argument("--datasets", default="", help="comma-separated subset")
  parser.add_argument("--variants", default="", help="comma-separated subset (the TF-IDF "
                      "baseline rows are always included)")
  parser.add_argument("--units", type=int, default=0, help="first N folds/seeds only")
  parser.add_argument("--seeds", default=SEEDS, help="seeds of fixed-split datasets")
  parser.add_argument("--quick", action="store_true", help="a minute-long smoke run")
  parser.add_argument("--report", action="store_true", help="train nothing; tabulate the "
                      "cells that have finished")
  parser.add_argument("--interval", choices=("std", "ci"), default="std", help="table cells "
                      "as mean ± std, or mean [95%% CI] (t-interval over the runs)")
  parser.add_argument("--vmap", action="store_true", help="train the cells of a dataset "
                      "that differ only in seed, fold, learning rate, dropout or class "
                      "weights as one vmapped program (one process; for accelerators)")
  parser.add_argument("--export", default="", help="also copy each table's table.md and "
                      "plots to DIR/NAME.md, DIR/NAME.png, DIR/NAME_PLOT.png (the README's "
                      "figures: docs/ablations)")
  parser.add_argument("--data_dir", default=os.path.join(SHARED, "datasets"))
  parser.add_argument("--vectors", default=GLOVE)
  args = parser.parse_args(argv)
  args.seeds = tuple(int(s) for s in args.seeds.split(",") if s)
  return args


def run(studies: list, args) -> list:
  """Runs (or, with --report, tabulates) each study's table; returns the outputs.

  --datasets / --variants may name those of any table; a table that has none of
  the named ones is skipped, and a name no table has is an error.
  """
  split = lambda s: [x for x in s.split(",") if x]
  for flag in ("datasets", "variants"):
    known = {n for st in studies for n in [*getattr(st.experiment, flag),
                                           *(st.experiment.baselines if flag == "variants"
                                             else ())]}
    unknown = [n for n in split(getattr(args, flag)) if n not in known]
    if unknown:
      raise SystemExit(f"--{flag}: unknown {', '.join(unknown)} (known: "
                       f"{', '.join(sorted(known))})")
  outputs = []
  for study in studies:
    exp, root = study.experiment, os.path.join(args.root, study.subdir)
    datasets = [d for d in split(args.datasets) if d in exp.datasets]
    variants = [v for v in split(args.variants) if v in exp.variants or v in exp.baselines]
    if (args.datasets and not datasets) or (args.variants and not variants):
      continue  # --datasets / --variants name none of this table's
    units = args.units
    if getattr(args, "interval", exp.interval) != exp.interval:
      exp = dataclasses.replace(exp, interval=args.interval)
    if args.quick:
      exp = dataclasses.replace(exp, overrides=(*exp.overrides, *QUICK_SHRINK,
                                                *study.quick_overrides),
                                baselines={k: v for i, (k, v) in enumerate(exp.baselines.items())
                                           if k in study.quick_baselines
                                           or (not study.quick_baselines and i == 0)})
      root = os.path.join(args.root, "quick", study.subdir)
      datasets = datasets or list(study.quick_datasets)
      variants = variants or list(study.quick_variants)
      units = units or 1
    outputs.append(run_experiment(exp, root, datasets, variants, units, args.quick,
                                  report_only=args.report, vmap=args.vmap))
    if args.export:
      export(exp.name, root, args.export)
  return outputs


def export(name: str, root: str, target: str) -> list:
  """Copies ROOT/table.md and ROOT/plot*.png to TARGET/NAME.md, NAME.png, NAME_PLOT.png."""
  os.makedirs(target, exist_ok=True)
  copied = []
  for file in sorted(os.listdir(root)):
    if file == "table.md" or (file.startswith("plot") and file.endswith(".png")):
      suffix = file[len("plot"):] if file.startswith("plot") else ".md"
      dest = os.path.join(target, name + suffix)
      shutil.copyfile(os.path.join(root, file), dest)
      copied.append(dest)
  return copied
