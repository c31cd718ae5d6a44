"""The accelerator check (issue 18): one command that measures the project on a GPU.

Run it through bench/accelerator_check.sh, which installs the carried wheels, finds
the carried data and calls this file:

    bash bench/accelerator_check.sh [OUT]             # on the GPU: about 8 minutes
    bash bench/accelerator_check.sh [OUT] --dry-run   # on a CPU: tiny sizes, ~1 minute

Six parts, each in its own processes with its own time limit, so that a part that
fails or runs out of time leaves the others' figures standing:

  1. env               jax.devices(), versions, measured matmul peaks, the trainer's mesh
                       (`python -m textclf_jax mesh`), nvidia-smi
  2. tests             the GPU-meaningful test subset, `pytest -x -q`, in four groups
                       (models, steps, checkpoint/resume, many models); a failing
                       checkpoint/resume or many-models group on a GPU is run again with
                       XLA's deterministic ops, to tell rounding from a bug
  3. throughput        bench/throughput.py's `bench_one` for cnn, lstm and hybrid at the
                       SST-2 (20) and IMDB (400) shapes, float32 and bfloat16, batch 50 and
                       512; model FLOP/s against the H200's peaks (PEAKS below) and the peaks
                       measured in part 1; bench/torch_reference.py on the same device
                       when torch imports
  3b. encoder          bench/encoder_speed.py's BERT fine-tuning step (all-MiniLM-L6-v2's
                       shape, batch 32 x 128, AdamW on every parameter, dropout on), float32
                       and bfloat16 compute; its log goes into throughput.log
  4. many_models       bench/many_models.py: 10 seeds as one vmapped program vs 10 solo runs
  5. time_to_accuracy  seconds from process start to 0.80 dev on SST-2 (Kim CNN, as
                       bench/time_to_accuracy.py) and to 0.90 test on IMDB (issue 19's
                       CNN command), each with an empty and then a filled compilation cache

Everything lands in OUT as at most 8 files (what the device tool brings back):
summary.json, summary.md, check.log and one log per part (OUT_FILES; the encoder's
is throughput.log). The part
budgets (BUDGETS) add up to the whole budget (--budget, default 465 s); time a
part leaves unused passes to the next ones.

This file is the command line; the check itself is in bench/accelerator/: spec (the
constants above), budget (the clock), runner (`Check`: processes, limits, summary),
parts (the five parts), children (the child processes), report (summary.md) and
synthetic (the dry run's data).
"""

from __future__ import annotations

import time

SPAWNED = time.time()  # as early as possible: a child's "from process start" figures

import argparse  # noqa: E402
import os  # noqa: E402
import sys  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # bench/: the accelerator package
from accelerator.budget import Clock  # noqa: E402
from accelerator.children import (child_encoder, child_env, child_throughput,  # noqa: E402
                                  child_torch, child_tta)
from accelerator.runner import Check  # noqa: E402
from accelerator.spec import (BUDGETS, DEFAULT_BUDGET, DETERMINISTIC_FLAG,  # noqa: E402
                              ENCODER, FASTTEXT_IMDB, HERE, OUT_FILES, PARTS, PEAKS, REPO,
                              RERUN_DETERMINISTIC, TEST_GROUPS, THROUGHPUT)

__all__ = ["BUDGETS", "DEFAULT_BUDGET", "DETERMINISTIC_FLAG", "ENCODER", "FASTTEXT_IMDB",
           "HERE", "OUT_FILES", "PARTS", "PEAKS", "REPO", "RERUN_DETERMINISTIC", "TEST_GROUPS",
           "THROUGHPUT", "Check", "Clock", "SPAWNED", "child_encoder", "child_env",
           "child_throughput", "child_torch", "child_tta", "main"]


def main():
  parser = argparse.ArgumentParser(description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("child", nargs="?", default="",
                      help=argparse.SUPPRESS)  # _env | _throughput | _torch | _encoder | _tta
  parser.add_argument("--out", default=os.environ.get("OUT") or "accelerator_out")
  parser.add_argument("--dry-run", dest="dry_run", action="store_true",
                      help="tiny sizes on whatever device there is (the CPU in CI)")
  parser.add_argument("--budget", type=float, default=0,
                      help="seconds for the whole check (default 465; dry run 200)")
  parser.add_argument("--parts", default="", help="comma-separated subset of " + ",".join(PARTS))
  parser.add_argument("--python", default="", help="the Python for the children")
  shared = os.path.join(os.path.dirname(REPO), "shared")
  parser.add_argument("--data_dir", default=os.environ.get(
      "TEXTCLF_DATA_DIR", os.path.join(shared, "datasets")))
  parser.add_argument("--vectors", default=os.path.join(
      shared, "embeddings", "glove.6B.100d.subset.txt.gz"))
  parser.add_argument("--imdb_preset", default="cnn",
                      help="the preset timed to 0.90 test on IMDB (issue 19's command: cnn)")
  parser.add_argument("--imdb_override", dest="imdb_overrides", action="append", default=[],
                      help="KEY=VALUE: an override of that preset (repeatable)")
  # children's arguments
  parser.add_argument("--spec", default="{}", help=argparse.SUPPRESS)
  parser.add_argument("--matmul_n", type=int, default=4096, help=argparse.SUPPRESS)
  parser.add_argument("--matmul_repeats", type=int, default=10, help=argparse.SUPPRESS)
  for name, kind, default in (("preset", str, "kim"), ("dataset", str, ""),
                              ("dataset_name", str, ""), ("split", str, "dev"),
                              ("target", float, 0.8), ("eval_every", int, 50),
                              ("max_epochs", int, 5), ("eval_batch_size", int, 0),
                              ("overrides", str, "[]"), ("spawned", float, 0.0)):
    parser.add_argument(f"--{name}", type=kind, default=default, help=argparse.SUPPRESS)
  args = parser.parse_args()
  children = {"_env": child_env, "_throughput": child_throughput, "_torch": child_torch,
              "_encoder": child_encoder, "_tta": child_tta}
  args.spawned = args.spawned or SPAWNED
  if args.child:
    if args.child not in children:
      parser.error(f"unknown child {args.child!r}")
    return children[args.child](args)
  return Check(args, SPAWNED).main()


if __name__ == "__main__":
  sys.exit(main())
