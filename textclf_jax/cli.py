"""`textclf train | eval | predict` (also `python -m textclf_jax`).

    textclf train [--config cnn|kim|lstm|hybrid|FILE.py] [--config.KEY=VALUE ...]
                  [--workdir RUN] [--resume RUN [--config.num_epochs=N]]
    textclf eval RUN [--split test|dev] [--data_dir DIR]
    textclf predict RUN [TEXT ...] [--input FILE] [--top_k K]   (stdin if no text)
    textclf mesh [--mesh_model M]          (the processes, devices and mesh JAX sees)

Multi-process (train, eval, mesh): every process runs the same command with
--distributed (JAX detects SLURM, Cloud TPU, Open MPI), or with
--coordinator_address HOST:PORT --num_processes N --process_id I, or with the
environment variables JAX_COORDINATOR_ADDRESS, JAX_NUM_PROCESSES, JAX_PROCESS_ID.
See launch/README.md.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time


def _split_config_args(argv):
  """Separates `--config.KEY=VALUE` / `--config.KEY VALUE` overrides from the rest."""
  overrides, rest, i = [], [], 0
  while i < len(argv):
    arg = argv[i]
    if arg.startswith("--config."):
      item = arg[len("--config."):]
      if "=" not in item:
        if i + 1 >= len(argv):
          raise SystemExit(f"textclf: {arg} needs a value")
        item, i = f"{item}={argv[i + 1]}", i + 1
      overrides.append(item)
    else:
      rest.append(arg)
    i += 1
  return overrides, rest


# Settings a resumed run may change: how long it trains and how it reports.
RESUME_OVERRIDES = ("num_epochs", "early_stopping_patience", "log_every_steps",
                    "checkpoint_every_steps", "progress_bar", "wandb")


def _process_flags() -> argparse.ArgumentParser:
  flags = argparse.ArgumentParser(add_help=False)
  group = flags.add_argument_group("multi-process (see launch/README.md)")
  group.add_argument("--distributed", action="store_true",
                     help="join a multi-process job; unset values are detected by JAX "
                          "(SLURM, Cloud TPU, Open MPI) or read from JAX_* variables")
  group.add_argument("--coordinator_address", default="", metavar="HOST:PORT",
                     help="process 0's address (or $JAX_COORDINATOR_ADDRESS)")
  group.add_argument("--num_processes", type=int, default=0, help="(or $JAX_NUM_PROCESSES)")
  group.add_argument("--process_id", type=int, default=-1, help="(or $JAX_PROCESS_ID)")
  return flags


def _parser():
  parser = argparse.ArgumentParser(prog="textclf", description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  sub = parser.add_subparsers(dest="command", required=True)
  process = _process_flags()
  train = sub.add_parser("train", help="train a model (or resume a run)", parents=[process])
  train.add_argument("--config", default="cnn", help="preset name or Python config file")
  train.add_argument("--workdir", default="", help="run directory (default: runs/NAME-TIME)")
  train.add_argument("--resume", default="", metavar="RUN", help="continue RUN from its "
                     "latest checkpoint (with --config.num_epochs=N: train it longer)")
  ev = sub.add_parser("eval", help="recompute a run's metrics from its best checkpoint",
                      parents=[process])
  ev.add_argument("run")
  ev.add_argument("--split", default="test", choices=("test", "dev", "train"))
  ev.add_argument("--data_dir", default="", help="where the run's dataset lives now")
  pr = sub.add_parser("predict", help="label raw texts with a saved run")
  pr.add_argument("run")
  pr.add_argument("texts", nargs="*", help="texts to label (else --input or stdin)")
  pr.add_argument("--input", default="", help="a file with one text per line")
  pr.add_argument("--top_k", type=int, default=5, help="probabilities to print per text")
  pr.add_argument("--batch_size", type=int, default=0)
  mesh = sub.add_parser("mesh", help="print the processes, devices and mesh", parents=[process])
  mesh.add_argument("--mesh_model", type=int, default=1, help="size of the model axis")
  return parser


def _initialize(args):
  from textclf_jax import parallel
  parallel.initialize(args.distributed, args.coordinator_address, args.num_processes,
                      args.process_id)


def _default_workdir(config) -> str:
  name = config.dataset.replace("tfds:", "").replace("/", "_").replace(os.sep, "_")
  name = os.path.basename(name.rstrip("_")) or "data"
  return os.path.join("runs", f"{name}-{config.model}-{time.strftime('%Y%m%d-%H%M%S')}")


def _print_results(results: dict):
  if "test_mean" in results:
    line = ", ".join(f"{k} {results['test_mean'][k]:.4f} ± {results['test_std'][k]:.4f}"
                     for k in ("accuracy", "macro_f1", "micro_f1") if k in results["test_mean"])
    print(f"[textclf] {len(results['folds'])}-fold CV test: {line}")
    return
  test = results["test"]
  keys = ("accuracy", "macro_f1") if "accuracy" in test else (
      "micro_f1", "macro_f1", "precision_at_1", "subset_accuracy", "hamming_loss")
  print("[textclf] test: " + ", ".join(f"{k} {test[k]:.4f}" for k in keys if k in test)
        + f" ({test['num_examples']} examples; best dev step {results['best_step']}, "
        f"{results['train_examples_per_second']:.0f} train examples/s, "
        f"wall {results['wall_seconds']:.0f} s)")


def cmd_train(args, overrides):
  from textclf_jax import config as config_lib
  from textclf_jax import parallel, runs, train

  if args.resume:
    refused = [key for key in (o.split("=", 1)[0] for o in overrides)
               if key not in RESUME_OVERRIDES]
    if refused:
      raise SystemExit(f"textclf: --resume continues a run with its own config; "
                       f"--config.{refused[0]} cannot change (allowed: "
                       f"{', '.join(RESUME_OVERRIDES)})")
    config = runs.load_config(args.resume, allow_cv=True)
    config = config_lib.apply_overrides(config, overrides)
    workdir = args.resume
  else:
    config = config_lib.apply_overrides(config_lib.load_preset(args.config), overrides)
    workdir = args.workdir or _default_workdir(config)
  main_process = parallel.is_main_process()
  if main_process:
    print(f"[textclf] run directory: {workdir}", flush=True)
  results = train.train_all_folds(config, workdir, resume=bool(args.resume))
  if not main_process:
    return
  _print_results(results)
  print(f"[textclf] wrote {os.path.join(workdir, 'results.json' if 'test' in results else 'cv_results.json')}")


def cmd_mesh(args):
  import jax
  from textclf_jax import parallel

  mesh = parallel.make_mesh(args.mesh_model)
  rows = parallel.local_rows(mesh, parallel.data_size(mesh))
  print(f"[textclf] process {jax.process_index()} of {jax.process_count()}: "
        f"{jax.local_device_count()} local of {jax.device_count()} devices "
        f"({jax.devices()[0].device_kind}); {parallel.describe(mesh)}; this process builds "
        f"rows {rows.start}:{rows.stop} of every {parallel.data_size(mesh)}", flush=True)


def cmd_eval(args):
  from textclf_jax import runs

  result = runs.evaluate_run(args.run, args.split, data_dir=args.data_dir)
  print(json.dumps(result["summary"], indent=2))
  if result["matches_results"] is not None:
    print(f"[textclf] matches results.json {args.split} metrics exactly: "
          f"{'yes' if result['matches_results'] else 'NO'}")


def cmd_predict(args):
  from textclf_jax import runs

  if args.texts:
    texts = args.texts
  elif args.input:
    with open(args.input, encoding="utf-8") as f:
      texts = [line.rstrip("\n") for line in f if line.strip()]
  else:
    texts = [line.rstrip("\n") for line in sys.stdin if line.strip()]
  if not texts:
    raise SystemExit("textclf predict: no texts given (arguments, --input FILE or stdin)")
  for row in runs.predict_texts(args.run, texts, top_k=args.top_k, batch_size=args.batch_size):
    print(json.dumps(row, ensure_ascii=False))


def main(argv=None):
  from textclf_jax.config import ConfigError
  from textclf_jax.data.errors import DataError

  argv = sys.argv[1:] if argv is None else argv
  try:
    overrides, rest = _split_config_args(argv)
    args = _parser().parse_args(rest)
    if overrides and args.command != "train":
      raise SystemExit("textclf: --config.* overrides apply to `train` only")
    from textclf_jax import compile_cache, hostmem
    hostmem.keep_heap_mapped()  # before the first XLA computation
    compile_cache.enable()  # compiled steps are loaded from disk after the first run
    if args.command in ("train", "eval", "mesh"):
      _initialize(args)
    if args.command == "train":
      cmd_train(args, overrides)
    elif args.command == "eval":
      cmd_eval(args)
    elif args.command == "mesh":
      cmd_mesh(args)
    else:
      cmd_predict(args)
  except (ConfigError, DataError, FileExistsError, ValueError) as e:
    print(f"textclf: error: {e}", file=sys.stderr)
    sys.exit(2)
  except Exception as e:
    from textclf_jax.train import TrainingDiverged
    if isinstance(e, TrainingDiverged):
      print(f"textclf: error: {e}", file=sys.stderr)
      sys.exit(3)
    raise


if __name__ == "__main__":
  main()
