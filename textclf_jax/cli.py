"""`textclf train | eval | predict | config` (also `python -m textclf_jax`).

    textclf train [--config cnn|kim|lstm|hybrid|tfidf|FILE.py] [--config.KEY=VALUE ...]
                  [--workdir RUN] [--resume RUN [--config.num_epochs=N]]
    textclf eval RUN [--split test|dev] [--data_dir DIR]
    textclf predict RUN [TEXT ...] [--input FILE] [--top_k K]   (stdin if no text)
    textclf config [PRESET|FILE.py]         (every key: default and meaning)
    textclf mesh [--mesh_model M]          (the processes, devices and mesh JAX sees)

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
import errno
import json
import os
import re
import sys
import time
import traceback

CONFIG_HELP = """\
Any config key can be set as --config.KEY=VALUE (or --config.KEY VALUE), e.g.
  textclf train --config kim --config.dataset=DIR --config.num_epochs=5
`textclf config PRESET` lists every key with its default and meaning."""


class UsageError(Exception):
  """A command line that cannot work (exit status 2)."""


class Exit(SystemExit):
  """How main() ends on an error: `code` is the exit status, str() the message."""

  def __init__(self, code: int, message: str):
    super().__init__(code)
    self.message = message

  def __str__(self):
    return self.message


# What the running command reads or writes: named by an error from the operating
# system that does not name its file (a write that finds the disk full).
_CONTEXT = {"path": ""}


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


# Settings a resumed run may change: how long it trains and how it reports.
RESUME_OVERRIDES = ("num_epochs", "early_stopping_patience", "log_every_steps",
                    "checkpoint_every_steps", "progress_bar", "wandb", "keep_checkpoints")


class _Parser(argparse.ArgumentParser):
  """An ArgumentParser whose errors are one `textclf: error:` line (exit 2)."""

  def error(self, message):
    raise UsageError(f"{message} (see `{self.prog} --help`)")


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


def _common_flags() -> argparse.ArgumentParser:
  flags = argparse.ArgumentParser(add_help=False)
  flags.add_argument("--debug", action="store_true",
                     help="on an error, print the full traceback (also TEXTCLF_DEBUG=1)")
  return flags


def _parser():
  """The top-level parser and {command: its parser}."""
  parser = _Parser(prog="textclf", description=__doc__, parents=[_common_flags()],
                   formatter_class=argparse.RawDescriptionHelpFormatter)
  sub = parser.add_subparsers(dest="command", required=True)
  process, common = _process_flags(), _common_flags()
  raw = argparse.RawDescriptionHelpFormatter
  train = sub.add_parser("train", help="train a model (or resume a run)",
                         parents=[process, common], epilog=CONFIG_HELP, formatter_class=raw,
                         description="Train a model on a dataset; or continue a run (--resume).")
  train.add_argument("--config", default="cnn", help="preset name or Python config file")
  train.add_argument("--workdir", default="", help="run directory (default: runs/NAME-TIME)")
  train.add_argument("--resume", default="", metavar="RUN", help="continue RUN from its "
                     "latest checkpoint (with --config.num_epochs=N: train it longer)")
  ev = sub.add_parser("eval", help="recompute a run's metrics from its best checkpoint",
                      parents=[process, common])
  ev.add_argument("run")
  ev.add_argument("--split", default="test", choices=("test", "dev", "train"))
  ev.add_argument("--data_dir", default="", help="where the run's dataset lives now")
  pr = sub.add_parser("predict", help="label raw texts with a saved run", parents=[common],
                      description="One JSON line per input text, in input order. A blank "
                      "line gets {\"text\": \"\", \"error\": ...} and no label.")
  pr.add_argument("run")
  pr.add_argument("texts", nargs="*", default=[], help="texts to label (else --input or stdin)")
  pr.add_argument("--input", default="", help="a UTF-8 file with one text per line")
  pr.add_argument("--top_k", type=int, default=5, help="probabilities to print per text")
  pr.add_argument("--batch_size", type=int, default=0)
  co = sub.add_parser("config", help="list a preset's keys: default and meaning",
                      parents=[common], epilog=CONFIG_HELP, formatter_class=raw)
  co.add_argument("preset", nargs="?", default="cnn", help="preset name or Python config file")
  mesh = sub.add_parser("mesh", help="print the processes, devices and mesh",
                        parents=[process, common])
  mesh.add_argument("--mesh_model", type=int, default=1, help="size of the model axis")
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


def cmd_train(args, overrides):
  from textclf_jax import config as config_lib
  from textclf_jax import parallel, rundir, train

  if args.resume:
    refused = [key for key in (o.split("=", 1)[0] for o in overrides)
               if key not in RESUME_OVERRIDES]
    if refused:
      raise UsageError(f"--resume continues a run with its own config; "
                       f"--config.{refused[0]} cannot change (allowed: "
                       f"{', '.join(RESUME_OVERRIDES)})")
    _CONTEXT["path"] = args.resume
    config = rundir.load_config_to_resume(args.resume)
    config = config_lib.apply_overrides(config, overrides)
    workdir = args.resume
  else:
    config = config_lib.apply_overrides(config_lib.load_preset(args.config), overrides)
    workdir = args.workdir or _default_workdir(config)
  _CONTEXT["path"] = workdir
  main_process = parallel.is_main_process()
  if main_process:
    print(f"[textclf] run directory: {workdir}", flush=True)
  results_file = os.path.join(workdir, rundir.RESULTS)
  before = os.path.getmtime(results_file) if os.path.exists(results_file) else None
  results = train.train_all_folds(config, workdir, resume=bool(args.resume))
  if not main_process:
    return
  _print_results(results)
  written = results_file if "test" in results else os.path.join(workdir, rundir.CV_RESULTS)
  done = "wrote" if "test" not in results or os.path.getmtime(written) != before else "kept"
  print(f"[textclf] {done} {written}; the run directory holds "
        f"{rundir.disk_usage(workdir) / 2 ** 20:.1f} MB")


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

  _CONTEXT["path"] = args.run
  result = runs.evaluate_run(args.run, args.split, data_dir=args.data_dir)
  print(json.dumps(result["summary"], indent=2))
  if result["matches_results"] is not None:
    print(f"[textclf] matches results.json {args.split} metrics exactly: "
          f"{'yes' if result['matches_results'] else 'NO'}")


BLANK_LINE = "blank line: nothing to classify"


def _read_lines(name: str, data: bytes) -> list:
  """One text per line (\\n or \\r\\n), blank lines included; errors name the line."""
  lines = data.split(b"\n")
  if lines and lines[-1] == b"":
    lines.pop()  # the final newline ends the last line; it does not start another
  texts = []
  for number, raw in enumerate(lines, start=1):
    if number == 1 and raw.startswith(b"\xef\xbb\xbf"):
      raw = raw[3:]  # a UTF-8 byte order mark
    try:
      texts.append(raw.decode("utf-8").removesuffix("\r"))
    except UnicodeDecodeError as e:
      from textclf_jax.data.errors import DataError
      raise DataError(f"{name}:{number}: text is not valid UTF-8 (byte 0x{raw[e.start]:02x} "
                      f"at column {e.start + 1}); re-encode it as UTF-8") from None
  return texts


def cmd_predict(args):
  """One output line per input line: blank lines (nothing to classify) get a row
  with an `error` and no label, so that the output lines up with the input and no
  label is invented for an empty text."""
  from textclf_jax import runs

  _CONTEXT["path"] = args.run
  if args.top_k < 1:
    raise UsageError(f"--top_k {args.top_k}: expected a number of labels >= 1")
  if args.texts and args.input:
    raise UsageError("predict: texts as arguments or --input FILE, not both")
  if args.texts:
    texts = list(args.texts)
  elif args.input:
    try:
      with open(args.input, "rb") as f:
        data = f.read()
    except OSError as e:
      raise UsageError(f"--input {args.input}: {e.strerror or e}") from None
    texts = _read_lines(args.input, data)
  else:
    stdin = getattr(sys.stdin, "buffer", None)
    texts = (_read_lines("<stdin>", stdin.read()) if stdin is not None
             else [line.removesuffix("\n").removesuffix("\r") for line in sys.stdin])
  if not texts:
    raise UsageError("predict: no texts given (arguments, --input FILE or stdin)")
  index = [i for i, text in enumerate(texts) if text.strip()]
  rows = [{"text": text, "error": BLANK_LINE} for text in texts]
  if index:
    predicted = runs.predict_texts(args.run, [texts[i] for i in index], top_k=args.top_k,
                                   batch_size=args.batch_size)
    for i, row in zip(index, predicted):
      rows[i] = row
  else:
    runs.check_run(args.run)  # nothing to classify, but RUN must still be a run
  for row in rows:
    print(json.dumps(row, ensure_ascii=False))


def cmd_config(args):
  from textclf_jax import config_doc
  print(config_doc.describe(args.preset))


# --- errors -----------------------------------------------------------------------


def _training_failed_type():
  """progress.TrainingDiverged (imported only when needed: it brings in JAX)."""
  from textclf_jax.progress import TrainingDiverged
  return TrainingDiverged


def _chain(error: BaseException):
  """error, then its causes and contexts (and an exception group's members)."""
  seen, todo = set(), [error]
  while todo:
    e = todo.pop(0)
    if e is None or id(e) in seen:
      continue
    seen.add(id(e))
    yield e
    todo.extend(getattr(e, "exceptions", ()) or ())
    todo.append(e.__cause__)
    if not e.__suppress_context__:
      todo.append(e.__context__)


HINTS = {
    errno.ENOSPC: "the disk is full",
    errno.EDQUOT: "the disk quota is used up",
    errno.EROFS: "the file system is read-only",
    errno.EACCES: "choose a path this user may write, or change its permissions",
    errno.ENOTDIR: "a part of the path is a file, not a directory",
}


def describe_os_error(error: OSError) -> str:
  """`PATH: what went wrong (hint)`; the running command's path when the error has none."""
  what = error.strerror or str(error)
  path = error.filename
  if path is not None and error.filename2 is not None:
    path = f"{path} -> {error.filename2}"
  hint = HINTS.get(error.errno, "")
  if path is None and _CONTEXT["path"]:
    return f"{what} (while working on {_CONTEXT['path']}{'; ' + hint if hint else ''})"
  return f"{path}: {what}{f' ({hint})' if hint else ''}" if path is not None else what


def _classify(error: BaseException):
  """(exit status, message) for an error that ended a command."""
  from textclf_jax.config import ConfigError
  from textclf_jax.data.errors import DataError

  # By name first: importing the module that defines it imports JAX (~1 s).
  if any(c.__name__ == "TrainingDiverged" for c in type(error).__mro__):
    diverged = _training_failed_type()
    if diverged is not None and isinstance(error, diverged):
      return 3, str(error)
  if isinstance(error, (UsageError, ConfigError, DataError)):
    return 2, str(error)
  if isinstance(error, SyntaxError) and error.filename and not os.path.abspath(
      error.filename).startswith(os.path.dirname(os.path.abspath(__file__)) + os.sep):
    return 2, f"{error.filename}:{error.lineno}: {error.msg} (a Python config file?)"
  if isinstance(error, SystemExit):  # raise SystemExit("message") from somewhere
    return 2, re.sub(r"^textclf(:| \w+:)\s*", "", str(error.code))
  if isinstance(error, OSError):
    return 2, str(error) if error.errno is None else describe_os_error(error)
  os_error = next((e for e in _chain(error) if isinstance(e, OSError) and e.errno), None)
  if os_error is not None:
    return 2, describe_os_error(os_error)
  if isinstance(error, ValueError):  # the project's way to reject a value
    return 2, str(error)
  return 1, (f"{type(error).__name__}: {error} (run with --debug for the traceback)")


def _fail(code: int, message: str):
  message = " ".join(message.split("\n")).strip() or "(no message)"
  sys.stdout.flush()
  print(f"textclf: error: {message}", file=sys.stderr, flush=True)
  raise Exit(code, message)


def _run(argv, debug_box):
  overrides, debug, rest = _split_global_args(argv)
  debug_box[0] = debug_box[0] or debug
  args = _parse(rest)
  if overrides and args.command != "train":
    raise UsageError("--config.* overrides apply to `train` only")
  if args.command == "config":
    cmd_config(args)
    return
  from textclf_jax import compile_cache, hostmem
  if _CONTEXT.get("program"):  # process-wide: not for a Python process that calls main()
    hostmem.keep_heap_mapped()  # before the first XLA computation
  compile_cache.enable()  # compiled steps are loaded from disk after the first run
  if args.command in ("train", "eval", "mesh"):
    _initialize(args)
  if _CONTEXT.get("program") and not debug_box[0] and args.command in ("train", "eval",
                                                                     "predict"):
    from textclf_jax import checkpoint
    checkpoint.MUTE_AFTER_FAILURE = True  # orbax's noise after a failure stays unseen
  if args.command == "train":
    cmd_train(args, overrides)
  elif args.command == "eval":
    cmd_eval(args)
  elif args.command == "mesh":
    cmd_mesh(args)
  else:
    cmd_predict(args)


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
    _fail(*_classify(e))
  except KeyboardInterrupt:
    if debug[0]:
      traceback.print_exc()
    _fail(130, "interrupted")
  except BrokenPipeError:  # `textclf predict ... | head`: the reader has gone; so do we
    try:
      sys.stdout = open(os.devnull, "w")  # noqa: SIM115 (no flush error at exit)
    except OSError:
      pass
    raise Exit(141, "broken pipe") from None
  except Exception as e:  # noqa: BLE001
    if debug[0]:
      traceback.print_exc()
    _fail(*_classify(e))


if __name__ == "__main__":
  main()
