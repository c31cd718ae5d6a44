"""`textclf tune`: hyper-parameter search on dev with optuna (textclf_jax/tune.py).

    textclf tune --config cnn --config.dataset=sst2 --space cnn --trials 30
    textclf tune ... --storage postgresql://USER@HOST/DB --study sst2-cnn   (many workers)

Run the same command again to resume: finished trials are kept, trials a killed
process left running are failed and their parameters tried again.
"""

from __future__ import annotations

import importlib.util
import json
import os

from textclf_jax.errors import UsageError

TAKES_CONFIG_OVERRIDES = True  # --config.KEY=VALUE set the base config of every trial


def add_parser(subparsers, parents):
  from textclf_jax.tune import search as tune, spaces as tune_spaces
  p = subparsers.add_parser(
      "tune", parents=parents, help="search hyper-parameters on dev (optuna)",
      description="Tune a preset's hyper-parameters on the dev split: TPE sampling, "
      "pruning on the per-epoch dev metric, every trial a run directory (DIR/trial-NNN); "
      "writes DIR/best_config.py (textclf train --config FILE) and DIR/best.json. "
      "--config.KEY=VALUE set the base config of every trial. Needs optuna "
      '(pip install "textclf_jax[tune]"); see docs/tuning.md.')
  p.add_argument("--config", default="cnn", help="preset name or Python config file")
  p.add_argument("--space", default="", help=f"search space: {', '.join(tune_spaces.names())} "
                 "(default: the preset's model)")
  p.add_argument("--trials", type=int, default=20,
                 help="finished trials (complete or pruned) the study ends with")
  p.add_argument("--workdir", default="", help="tune directory (default: runs/tune-STUDY)")
  p.add_argument("--study", default="", help="study name (default: DATASET-MODEL-SPACE)")
  p.add_argument("--storage", default="", metavar="URL",
                 help="SQLAlchemy database URL shared by workers (default: "
                 "sqlite:///DIR/study.db)")
  p.add_argument("--sampler_seed", type=int, default=0,
                 help="seeds the TPE sampler; give each parallel worker its own")
  p.add_argument("--pruner", default="median", choices=tune.PRUNERS)
  p.add_argument("--pruner_startup", type=int, default=5,
                 help="complete trials before the median pruner prunes")
  p.add_argument("--pruner_warmup", type=int, default=1,
                 help="dev evaluations a trial always gets before it may be pruned")
  p.add_argument("--enqueue", action="append", default=[], metavar="JSON",
                 help='parameters to try first, e.g. \'{"learning_rate": 0.001}\' '
                 "(repeatable; not queued twice)")
  return p


def _enqueued(items) -> list:
  out = []
  for text in items:
    try:
      value = json.loads(text)
    except json.JSONDecodeError as e:
      raise UsageError(f"--enqueue {text!r}: not JSON ({e.msg})") from None
    if not isinstance(value, dict):
      raise UsageError(f"--enqueue {text!r}: expected a JSON object of parameters")
    out.append(value)
  return out


def run(args):
  from textclf_jax import config as config_lib
  from textclf_jax.cli import failure as errors
  from textclf_jax.tune import search as tune, spaces as tune_spaces
  if importlib.util.find_spec("optuna") is None:
    raise UsageError('textclf tune needs optuna, which is not installed: '
                     'pip install "textclf_jax[tune]"')
  if args.trials < 1:
    raise UsageError(f"--trials {args.trials}: expected a number of trials >= 1")
  if args.pruner_startup < 0 or args.pruner_warmup < 0:
    raise UsageError("--pruner_startup and --pruner_warmup: expected numbers >= 0")
  from textclf_jax.families import validate as validate_lib
  overrides = getattr(args, "overrides", [])
  config = config_lib.apply_overrides(config_lib.load_preset(args.config), overrides)
  validate_lib.validate(config, "" if overrides or args.config in config_lib.PRESETS
                        else args.config)  # the base config, once; each trial's: search
  space = args.space or config.get("model", "")
  tune_spaces.get(space, config)
  study = args.study or tune.default_study(config, space)
  directory = args.workdir or os.path.join("runs", f"tune-{study}")
  errors.CONTEXT["path"] = directory
  result = tune.run_study(config, args.config, space, args.trials, directory,
                          storage=args.storage, study_name=study,
                          sampler_seed=args.sampler_seed, pruner=args.pruner,
                          pruner_startup=args.pruner_startup,
                          pruner_warmup=args.pruner_warmup, enqueue=_enqueued(args.enqueue))
  best = result["best"]
  if best is None:
    print(f"[textclf] tune: no trial of {study!r} completed; see {directory}/best.json")
    return
  print(f"[textclf] tune: best of {result['finished']} finished trials: trial "
        f"{best['number']}, dev {result['metric']} {best['value']:.4f} "
        f"({tune.describe(best['params'])})")
  print(f"[textclf] wrote {os.path.join(directory, tune.BEST_JSON)} and "
        f"{best['config_file']}; retrain with: textclf train --config {best['config_file']}")
