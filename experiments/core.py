"""The core results table: one run per (dataset, model) cell of the README.

    python -m experiments.core [--only NAME,...] [--runs runs/core] [--data_dir DIR]
                               [--vectors FILE]

Each cell is a normal run directory under `--runs`; a cell whose results.json
exists is read, not re-run, so a killed invocation resumes where it stopped.
Writes `table.md` beside the runs and prints it. Benchmarks are read from
`--data_dir` (default ../shared/datasets) and GloVe 100d from `--vectors`.
"""

from __future__ import annotations

import argparse
import json
import os
import time

from textclf_jax import config as config_lib
from textclf_jax.families import cv, validate as validate_lib

GLOVE = ["embed_dim=100", "embedding=non-static"]

# name: (preset, overrides, metric reported, what it should reach)
CELLS = {
    "bbc_news-cnn": ("cnn", [], "accuracy", 0.95),
    "sst2-cnn": ("cnn", ["dataset=sst2", "max_len=64", "learning_rate=1e-3", *GLOVE],
                 "accuracy", 0.82),
    "trec-cnn": ("kim", ["dataset=trec", *GLOVE], "accuracy", 0.90),
    "sst2-lstm": ("lstm", ["dataset=sst2", "max_len=64", *GLOVE], "accuracy", 0.78),
    "sst2-hybrid": ("hybrid", ["dataset=sst2", "max_len=64", *GLOVE], "accuracy", 0.78),
    "reuters21578-cnn": ("cnn", ["dataset=reuters21578", "max_len=256", "learning_rate=1e-3",
                                 "num_epochs=20", "num_filters=200", *GLOVE], "micro_f1", 0.84),
    # IMDB: fastText's CLI reaches 0.894 on this split, NBSVM with bigrams 0.913.
    "imdb-fasttext_nb": ("fasttext_nb", ["dataset=imdb"], "accuracy", 0.90),
    "imdb-fasttext_nb3": ("fasttext_nb3", ["dataset=imdb"], "accuracy", 0.913),
    "imdb-cnn_doc": ("cnn_doc", ["dataset=imdb", *GLOVE], "accuracy", 0.88),
}


def cell_config(preset, overrides, data_dir, vectors):
  extra = [f"data_dir={data_dir}", "progress_bar=False"]
  if "embedding=non-static" in overrides:  # GloVe cells (not contextual ones)
    extra.append(f"vectors={vectors}")
  return validate_lib.validate(
      config_lib.apply_overrides(config_lib.load_preset(preset), [*overrides, *extra]))


def command(preset, overrides):
  args = " ".join(f"--config.{o}" for o in overrides)
  if "embedding=non-static" in overrides:
    args += " --config.vectors=$GLOVE"
  return f"textclf train --config {preset} {args}".strip()


def cells_parser(doc: str, runs: str) -> argparse.ArgumentParser:
  """The arguments of a cell table script: --only, --runs (default `runs`), --data_dir,
  --vectors (../shared's datasets and GloVe 100d by default)."""
  here = os.path.dirname(os.path.abspath(__file__))
  shared = os.path.join(here, "..", "..", "shared")
  parser = argparse.ArgumentParser(description=doc,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--only", default="", help="comma-separated cell names")
  parser.add_argument("--runs", default=runs)
  parser.add_argument("--data_dir", default=os.path.normpath(os.path.join(shared, "datasets")))
  parser.add_argument("--vectors", default=os.path.normpath(os.path.join(
      shared, "embeddings", "glove.6B.100d.subset.txt.gz")))
  return parser


def main():
  args = cells_parser(__doc__, "runs/core").parse_args()
  names = args.only.split(",") if args.only else list(CELLS)
  rows = []
  for name in names:
    preset, overrides, metric, target = CELLS[name]
    workdir = os.path.join(args.runs, name)
    path = os.path.join(workdir, "results.json")
    if not os.path.exists(path):
      print(f"== {name}: {command(preset, overrides)}", flush=True)
      cv.train_all_folds(cell_config(preset, overrides, args.data_dir, args.vectors),
                            workdir, resume=os.path.exists(os.path.join(workdir, "config.json")))
    with open(path) as f:
      results = json.load(f)
    rows.append((name, results, metric, target, command(preset, overrides)))
  lines = ["| cell | test metric | ours | target | train s | train examples/s | command |",
           "|---|---|---|---|---|---|---|"]
  for name, r, metric, target, cmd in rows:
    value = r["test"][metric]
    bar = f"{target:.2f}" if round(target, 2) == target else f"{target:.3f}"
    lines.append(f"| {name} | {metric} | {value:.4f} | ≥ {bar} "
                 f"{'✓' if value >= target else '✗'} | {r['train_seconds']:.0f} | "
                 f"{r['train_examples_per_second']:.0f} | `{cmd}` |")
  table = "\n".join(lines)
  os.makedirs(args.runs, exist_ok=True)
  with open(os.path.join(args.runs, "table.md"), "w") as f:
    f.write(table + f"\n\n(1 process, {time.strftime('%Y-%m-%d')}; "
            "GLOVE = glove.6B.100d.subset.txt.gz)\n")
  print(table)


if __name__ == "__main__":
  main()
