"""Kim (2014), Table 2: CNN-rand/static/non-static/multichannel on MR, SST-1, SST-2, Subj, TREC.

    python -m experiments.kim2014                      # the full table (hours on a 2-core CPU)
    python -m experiments.kim2014 --datasets trec --variants rand,non-static --units 1
    python -m experiments.kim2014 --quick              # MR fold 0, 2 epochs on 400 examples
    python -m experiments.kim2014 --report             # tabulate the cells finished so far
    python -m experiments.kim2014 --vmap               # each variant's 10 folds as one program

Kim's recipe (configs/kim.py): widths 3/4/5 x 100 maps, ReLU, max-over-time, dropout 0.5,
max-norm 3, batch 50, Adadelta (rho 0.95), up to 25 epochs with early stopping on a 10%
dev split. MR and Subj: the datasets' 10 fixed folds; SST-1/SST-2/TREC: seeds. Vectors:
GloVe 6B 100d, where Kim used 300-d word2vec; SST is sentence-level only here.
"""

from __future__ import annotations

import argparse
import os

from experiments.runner import Experiment, run_experiment

HERE = os.path.dirname(os.path.abspath(__file__))
SHARED = os.path.normpath(os.path.join(HERE, "..", "..", "shared"))

PAPER = {  # Kim (2014) Table 2, test accuracy %
    "rand": {"mr": 76.1, "sst5": 45.0, "sst2": 82.7, "subj": 89.6, "trec": 91.2},
    "static": {"mr": 81.0, "sst5": 45.5, "sst2": 86.8, "subj": 93.0, "trec": 92.8},
    "non-static": {"mr": 81.5, "sst5": 48.0, "sst2": 87.2, "subj": 93.4, "trec": 93.6},
    "multichannel": {"mr": 81.1, "sst5": 47.4, "sst2": 88.1, "subj": 93.2, "trec": 92.2},
}


def experiment(data_dir: str, vectors: str, seeds=(0, 1, 2)) -> Experiment:
  pretrained = ["embed_dim=100", f"vectors={vectors}"]
  return Experiment(
      name="kim2014", preset="kim", overrides=(f"data_dir={data_dir}",),
      variants={"rand": ["embedding=rand", "embed_dim=100"],
                "static": ["embedding=static", *pretrained],
                "non-static": ["embedding=non-static", *pretrained],
                "multichannel": ["embedding=multichannel", *pretrained]},
      datasets={name: [f"dataset={name}"] for name in ("mr", "sst5", "sst2", "subj", "trec")},
      seeds=seeds,
      published={(v, d): x for v, row in PAPER.items() for d, x in row.items()},
      published_note="Ours: GloVe 6B 100d, SST sentences only; paper: word2vec 300d, SST "
                     "phrases + sentences. Cells: mean ± std over folds (MR, Subj) or seeds.")


def main():
  parser = argparse.ArgumentParser(description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--root", default="runs/kim2014")
  parser.add_argument("--datasets", default="", help="comma-separated subset")
  parser.add_argument("--variants", default="", help="comma-separated subset")
  parser.add_argument("--units", type=int, default=0, help="first N folds/seeds only")
  parser.add_argument("--seeds", default="0,1,2")
  parser.add_argument("--quick", action="store_true")
  parser.add_argument("--report", action="store_true", help="train nothing; tabulate the "
                      "cells that have finished")
  parser.add_argument("--vmap", action="store_true", help="train the folds/seeds of each "
                      "variant x dataset together as one vmapped program (one process)")
  parser.add_argument("--data_dir", default=os.path.join(SHARED, "datasets"))
  parser.add_argument("--vectors", default=os.path.join(
      SHARED, "embeddings", "glove.6B.100d.subset.txt.gz"))
  args = parser.parse_args()
  exp = experiment(args.data_dir, args.vectors, tuple(int(s) for s in args.seeds.split(",")))
  split = lambda s: [x for x in s.split(",") if x]
  run_experiment(exp, args.root, split(args.datasets), split(args.variants), args.units,
                 args.quick, report_only=args.report, vmap=args.vmap)


if __name__ == "__main__":
  main()
