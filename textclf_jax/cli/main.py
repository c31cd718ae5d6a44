"""`textclf train | eval | predict | config | mesh | explain | tune | export`
(also `python -m textclf_jax`).

    textclf train [--config cnn|kim|lstm|hybrid|tfidf|FILE.py] [--config.KEY=VALUE ...]
                  [--workdir RUN] [--resume RUN [--config.num_epochs=N]]
    textclf eval RUN [--split test|dev] [--data_dir DIR] [--ensemble RUN2,...] [--no-calibrated]
    textclf predict RUN [TEXT ...] [--input FILE] [--top_k K] [--ensemble RUN2,...]
                    [--no-calibrated]   (stdin if no text; RUN may be a directory of runs)
    textclf config [PRESET|FILE.py]         (every key: default and meaning)
    textclf mesh [--mesh_model M]          (the processes, devices and mesh JAX sees)
    textclf tune [--config PRESET] [--config.KEY=VALUE ...] --space cnn|lstm|hybrid|lr
                 [--trials N] [--workdir DIR] [--storage URL]   (docs/tuning.md)
    textclf explain RUN [TEXT ...] [--input FILE] [--steps N] [--label NAME] [--html OUT]
    textclf explain RUN --dataset_split dev [--top_ngrams K] [--markdown]   (docs/explain.md)
    textclf export RUN --format onnx|stablehlo --out DIR   (docs/export.md)

Options may come before, between or after the positional arguments
(`textclf predict RUN --top_k 1 "some text"`); after `--` everything is a
positional argument (a text that starts with `-`).

Multi-process (train, eval, mesh): every process runs the same command with
--distributed (JAX detects SLURM, Cloud TPU, Open MPI), or with
--coordinator_address HOST:PORT --num_processes N --process_id I, or with the
environment variables JAX_COORDINATOR_ADDRESS, JAX_NUM_PROCESSES, JAX_PROCESS_ID.
See launch/README.md.

Errors end in one line on stderr, `textclf: error: WHAT`, and the exit status says
whose move it is:
    0    done
    1    a bug in textclf: an exception nobody anticipated, printed as
         `textclf: error: Type: message (run with --debug for the traceback)`
    2    bad input, usage or environment: a config key or value (or config file), a
         data file (its line), a run directory, the command line, or the system refusing
         (no such file, permission denied, not a directory, no space left on
         device: the line names the path)
    3    training failed (it diverged): the message says what is kept
    130  interrupted (Ctrl-C)
`--debug` (anywhere on the command line) or TEXTCLF_DEBUG=1 prints the full
traceback before that line; the exit status stays the same. Called as a function,
`main()` raises SystemExit with that status, and str() of it is the message.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import traceback

from textclf_jax.cli import failure as errors
from textclf_jax.cli.failure import Exit
from textclf_jax.errors import UsageError

_CONTEXT = errors.CONTEXT  # the path the running command works on (for OS errors)

CONFIG_HELP = """\
Any config key can be set as --config.KEY=VALUE (or --config.KEY VALUE), e.g.
  textclf train --config kim --config.dataset=DIR --config.num_epochs=5
`textclf config PRESET` lists every key with its default and meaning."""


def _split_global_args(argv):
  """Takes the global options out of argv, wherever they are (up to a `--`).

  Returns (overrides, debug, rest): `--config.KEY=VALUE` / `--config.KEY VALUE`
  as "KEY=VALUE" strings, whether `--debug` was given, and the other arguments.
  """
  overrides, rest, debug, i = [], [], False, 0
  while i < len(argv):
    arg = argv[i]
    if arg == "--":
      rest.extend(argv[i:])
      break
    if arg == "--debug":
      debug = True
    elif arg.startswith("--config."):
      item = arg[len("--config."):]
      if "=" not in item:
        if i + 1 >= len(argv):
          raise UsageError(f"{arg} needs a value: {arg}=VALUE")
        item, i = f"{item}={argv[i + 1]}", i + 1
      overrides.append(item)
    else:
      rest.append(arg)
    i += 1
  return overrides, debug, rest


def _debug_from_environment() -> bool:
  return os.environ.get("TEXTCLF_DEBUG", "").strip().lower() in ("1", "true", "yes", "on")


class _Parser(argparse.ArgumentParser):
  """An ArgumentParser whose errors are one `textclf: error:` line (exit 2)."""

  def error(self, message):
    raise UsageError(f"{message} (see `{self.prog} --help`)")


def process_flags() -> argparse.ArgumentParser:
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


def _common_flags() -> argparse.ArgumentParser:
  flags = argparse.ArgumentParser(add_help=False)
  flags.add_argument("--debug", action="store_true",
                     help="on an error, print the full traceback (also TEXTCLF_DEBUG=1)")
  return flags


# Commands that live in a module of their own, textclf_jax/cli/NAME.py, with
# `add_parser(subparsers, parents)` (registers NAME) and `run(args)`. The module is
# imported to build the parser: it imports JAX inside run() only.
MODULE_COMMANDS = ("eval", "predict", "explain", "tune", "export")


def _command_module(name: str):
  import importlib
  return importlib.import_module(f"textclf_jax.cli.{name}")


def _parser():
  """The top-level parser and {command: its parser}."""
  parser = _Parser(prog="textclf", description=__doc__, parents=[_common_flags()],
                   formatter_class=argparse.RawDescriptionHelpFormatter)
  sub = parser.add_subparsers(dest="command", required=True)
  process, common = process_flags(), _common_flags()
  raw = argparse.RawDescriptionHelpFormatter
  train = sub.add_parser("train", help="train a model (or resume a run)",
                         parents=[process, common], epilog=CONFIG_HELP, formatter_class=raw,
                         description="Train a model on a dataset; or continue a run (--resume).")
  train.add_argument("--config", default="", help="preset name or Python config file "
                     "(default: cnn)")
  train.add_argument("--workdir", default="", help="run directory (default: runs/NAME-TIME)")
  train.add_argument("--resume", default="", metavar="RUN", help="continue RUN from its "
                     "latest checkpoint (with --config.num_epochs=N: train it longer)")
  co = sub.add_parser("config", help="list a preset's keys: default and meaning",
                      parents=[common], epilog=CONFIG_HELP, formatter_class=raw)
  co.add_argument("preset", nargs="?", default="cnn", help="preset name or Python config file")
  mesh = sub.add_parser("mesh", help="print the processes, devices and mesh",
                        parents=[process, common])
  mesh.add_argument("--mesh_model", type=int, default=1, help="size of the model axis")
  for name in MODULE_COMMANDS:
    _command_module(name).add_parser(sub, [common])
  return parser, dict(sub.choices)


def _parse(rest):
  """argparse, with options allowed anywhere among a command's positionals."""
  parser, commands = _parser()
  command = next((a for a in rest if not a.startswith("-")), None)
  if command not in commands:  # `--config kim train`: an option's value came first
    command = next((a for a in rest if a in commands), command)
  if command not in commands:
    parser.parse_args(rest)  # --help, or argparse's message for a missing/unknown command
    raise UsageError(f"expected a command: {', '.join(commands)}")
  i = rest.index(command)
  args = commands[command].parse_intermixed_args(rest[:i] + rest[i + 1:])
  args.command = command
  return args


def _initialize(args):
  from textclf_jax.runtime import parallel
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
    print(f"[textclf] {len(results['folds'])}-fold CV test (mean ± sample std): {line}")
    return
  test = results["test"]
  keys = ("accuracy", "macro_f1") if "accuracy" in test else (
      "micro_f1", "macro_f1", "precision_at_1", "subset_accuracy", "hamming_loss")
  print("[textclf] test: " + ", ".join(f"{k} {test[k]:.4f}" for k in keys if k in test)
        + f" ({test['num_examples']} examples; best dev step {results['best_step']}, "
        f"{results['train_examples_per_second']:.0f} train examples/s, "
        f"wall {results['wall_seconds']:.0f} s)")
  for mode, scores in sorted(results.get("by_threshold_mode", {}).items()):
    # Multi-label: the same model under both threshold modes (each tuned on dev).
    print(f"[textclf] test with {mode} thresholds: " + ", ".join(
        f"{k} {scores['test'][k]:.4f}" for k in ("micro_f1", "macro_f1") if k in scores["test"]))
  calibration = results.get("calibration")
  if calibration:  # temperature scaling fitted on dev (docs/calibration.md)
    t = calibration["temperature"]
    t = f"{t:.3g}" if isinstance(t, float) else f"{min(t):.3g}-{max(t):.3g} (per label)"
    before, after = calibration["test"]["before"], calibration["test"]["after"]
    print(f"[textclf] calibration: temperature {t} fitted on dev; test " + ", ".join(
        f"{name} {before[k]:.4f} -> {after[k]:.4f}"
        for k, name in (("ece", "ECE"), ("nll", "NLL"), ("brier", "Brier"))))


def cmd_train(args, overrides):
  from textclf_jax import config as config_lib
  from textclf_jax.families import validate as validate_lib
  from textclf_jax.runtime import parallel
  from textclf_jax.run import layout as rundir
  from textclf_jax.families import cv

  if args.resume:
    from textclf_jax.run import compat
    compat.check_resume_options(args.config, args.workdir, overrides)
    _CONTEXT["path"] = args.resume
    config = rundir.load_config_to_resume(args.resume)
    config = config_lib.apply_overrides(config, overrides)
    where = "" if overrides else rundir.path(args.resume, rundir.CONFIG)
    workdir = args.resume
  else:
    preset = args.config or "cnn"
    config = config_lib.apply_overrides(config_lib.load_preset(preset), overrides)
    where = "" if overrides or preset in config_lib.PRESETS else preset
    workdir = args.workdir or _default_workdir(config)
  validate_lib.validate(config, where)  # once, on the config trained, before any write
  _CONTEXT["path"] = workdir
  main_process = parallel.is_main_process()
  if main_process:
    print(f"[textclf] run directory: {workdir}", flush=True)
  results_file = os.path.join(workdir, rundir.RESULTS)
  before = os.path.getmtime(results_file) if os.path.exists(results_file) else None
  results = cv.train_all_folds(config, workdir, resume=bool(args.resume), checked=True)
  if not main_process:
    return
  _print_results(results)
  written = results_file if "test" in results else os.path.join(workdir, rundir.CV_RESULTS)
  done = "wrote" if "test" not in results or os.path.getmtime(written) != before else "kept"
  print(f"[textclf] {done} {written}; the run directory holds "
        f"{rundir.disk_usage(workdir) / 2 ** 20:.1f} MB")


def cmd_mesh(args):
  import jax
  from textclf_jax.runtime import parallel

  mesh = parallel.make_mesh(args.mesh_model)
  rows = parallel.local_rows(mesh, parallel.data_size(mesh))
  print(f"[textclf] process {jax.process_index()} of {jax.process_count()}: "
        f"{jax.local_device_count()} local of {jax.device_count()} devices "
        f"({jax.devices()[0].device_kind}); {parallel.describe(mesh)}; this process builds "
        f"rows {rows.start}:{rows.stop} of every {parallel.data_size(mesh)}", flush=True)


def cmd_config(args):
  from textclf_jax.cli import config_doc
  print(config_doc.describe(args.preset))


def _exit_now():
  """Ends the `textclf` program at once (status 0) after a finished `train`, without the
  interpreter's teardown: freeing every module and object of a process that imported JAX,
  Flax, orbax and holds a run's data takes ~0.3-0.5 CPU s, which is nothing but waiting
  for the shell (IMDB's fasttext_nb trains in ~15 s). Everything is written and closed by
  now (the run directory, its logs and checkpoints); stdout and stderr are flushed here.
  Not in a Python process that called main(), nor with several processes (JAX's
  distributed client shuts down at exit)."""
  if not _CONTEXT.get("program"):
    return
  import jax
  if jax.process_count() > 1:
    return
  jax.effects_barrier()  # what JAX's own exit handler waits for
  try:
    sys.stdout.flush()
    sys.stderr.flush()
  except (OSError, ValueError):  # a closed or broken stream: the ordinary exit handles it
    return
  os._exit(0)


def _run(argv, debug_box):
  overrides, debug, rest = _split_global_args(argv)
  debug_box[0] = debug_box[0] or debug
  args = _parse(rest)
  args.overrides = overrides  # a module command with TAKES_CONFIG_OVERRIDES reads them
  if overrides and not (args.command == "train" or (args.command in MODULE_COMMANDS and getattr(
      _command_module(args.command), "TAKES_CONFIG_OVERRIDES", False))):
    raise UsageError("--config.* overrides apply to `train` and `tune` only")
  if args.command == "config":
    cmd_config(args)
    return
  from textclf_jax.runtime import bootstrap
  # malloc tuning is process-wide: not for a Python process that calls main()
  bootstrap.start(program=bool(_CONTEXT.get("program")))
  if args.command in ("train", "eval", "mesh"):
    _initialize(args)
  if _CONTEXT.get("program") and not debug_box[0] and args.command != "mesh":
    from textclf_jax.run import checkpoint
    checkpoint.MUTE_AFTER_FAILURE = True  # orbax's noise after a failure stays unseen
  if args.command == "train":
    cmd_train(args, overrides)
    _exit_now()
  elif args.command == "mesh":
    cmd_mesh(args)
  else:
    _CONTEXT["path"] = getattr(args, "run", "")
    _command_module(args.command).run(args)


def main(argv=None):
  _CONTEXT["program"] = argv is None  # the `textclf` program, not a call from Python
  argv = sys.argv[1:] if argv is None else list(argv)
  debug = [_debug_from_environment()]
  _CONTEXT["path"] = ""
  try:
    _run(argv, debug)
  except Exit:
    raise
  except SystemExit as e:
    if e.code is None or isinstance(e.code, int):
      raise  # --help, or an exit status chosen on purpose
    errors.fail(*errors.classify(e))
  except KeyboardInterrupt:
    if debug[0]:
      traceback.print_exc()
    errors.fail(130, "interrupted")
  except BrokenPipeError:  # `textclf predict ... | head`: the reader has gone; so do we
    try:
      sys.stdout = open(os.devnull, "w")  # noqa: SIM115 (no flush error at exit)
    except OSError:
      pass
    raise Exit(141, "broken pipe") from None
  except Exception as e:  # noqa: BLE001
    if debug[0]:
      traceback.print_exc()
    errors.fail(*errors.classify(e))


if __name__ == "__main__":
  main()
