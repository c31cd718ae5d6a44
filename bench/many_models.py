"""K seeds of one model: one vmapped program (`textclf_jax.training.group.train_many`) vs K solo runs.

    python bench/many_models.py                    # 10 seeds of the SST-2 CNN, full recipe
    python bench/many_models.py --quick            # 1 epoch on 1,000 examples, 4 seeds
    python bench/many_models.py --k 5 --config.num_epochs=3 --config.embed_dim=64

Both ways run in this process, each from scratch (data preparation, initialisation,
compilation, training, dev/test scoring, run directories under a temporary folder),
vmapped first. Both use a persistent compilation cache in that folder, as the CLI
and the sweep runner do with theirs: the solo runs after the first load their
compiled steps instead of compiling them again (the group's programs are its own).
Prints the wall time of each way, the speed-up and every seed's test
accuracy both ways with the difference. The acceptance bar: >= 3x faster, every seed
within 0.3 accuracy points.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
os.environ.setdefault("WANDB_MODE", "disabled")

from textclf_jax import config as config_lib  # noqa: E402
from textclf_jax.runtime import bootstrap  # noqa: E402
from textclf_jax.training import group, loop as train  # noqa: E402

SHARED_DATASETS = os.path.normpath(os.path.join(HERE, "..", "..", "shared", "datasets"))
QUICK = ["num_epochs=1", "max_train_examples=1000"]


def parse():
  parser = argparse.ArgumentParser(description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--k", type=int, default=0, help="seeds (default 10; 4 with --quick)")
  parser.add_argument("--config", default="cnn", help="preset or config file")
  parser.add_argument("--dataset", default="sst2")
  parser.add_argument("--data_dir", default=SHARED_DATASETS)
  parser.add_argument("--quick", action="store_true", help=" ".join(QUICK) + ", 4 seeds")
  parser.add_argument("--workdir", default="", help="keep the runs here (default: a "
                      "temporary folder, removed)")
  args, rest = parser.parse_known_args()
  overrides = []
  for item in rest:
    if not item.startswith("--config."):
      parser.error(f"unknown argument {item!r} (overrides are --config.KEY=VALUE)")
    overrides.append(item[len("--config."):])
  args.k = args.k or (4 if args.quick else 10)
  return args, overrides


def configs_for(args, overrides) -> list:
  base = [f"dataset={args.dataset}", f"data_dir={args.data_dir}", "wandb=disabled",
          "progress_bar=False", *(QUICK if args.quick else []), *overrides]
  return [config_lib.apply_overrides(config_lib.load_preset(args.config),
                                     [*base, f"seed={seed}"]) for seed in range(args.k)]


def main():
  args, overrides = parse()
  with tempfile.TemporaryDirectory() as tmp:
    # as the CLI does, for both ways; a fresh compilation cache that both ways share
    bootstrap.start(cache=os.path.join(tmp, "compilation_cache"))
    configs = configs_for(args, overrides)
    root = args.workdir or tmp
    started = time.time()
    grouped = group.train_many(configs, [os.path.join(root, f"many/seed_{c.seed}")
                                         for c in configs], os.path.join(root, "many/group"))
    vmapped_s = time.time() - started
    started = time.time()
    solo = [train.train_and_evaluate(c, os.path.join(root, f"solo/seed_{c.seed}"))
            for c in configs]
    solo_s = time.time() - started
  print(f"\n{args.k} seeds of {args.config} on {args.dataset}"
        f"{' (quick: ' + ', '.join(QUICK) + ')' if args.quick else ''}"
        f"{' ' + ' '.join(overrides) if overrides else ''}")
  print(f"vmapped (one program): {vmapped_s:8.1f} s")
  print(f"sequential ({args.k} runs):  {solo_s:8.1f} s")
  speedup = solo_s / vmapped_s
  print(f"speed-up: {speedup:.2f}x")
  print("seed  test acc vmapped  test acc solo  diff (points)")
  worst = 0.0
  for c, a, b in zip(configs, grouped, solo):
    diff = 100 * (a["test"]["accuracy"] - b["test"]["accuracy"])
    worst = max(worst, abs(diff))
    print(f"{c.seed:4d}  {100 * a['test']['accuracy']:16.2f}  "
          f"{100 * b['test']['accuracy']:13.2f}  {diff:+13.2f}")
  ok = speedup >= 3.0 and worst <= 0.3
  print(f"bar (>= 3x, every seed within 0.3 points): {'met' if ok else 'NOT met'} "
        f"(speed-up {speedup:.2f}x, largest difference {worst:.2f} points)")


if __name__ == "__main__":
  main()
