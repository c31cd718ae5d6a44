"""`textclf eval RUN [--split S] [--ensemble RUN2,...]`: a run's metrics recomputed from
its tested checkpoint (and checked against results.json), or an ensemble's beside its
members'."""

from __future__ import annotations

import argparse
import json
import sys

from textclf_jax.cli import failure as errors


def ensemble_flags(parser):
  """--ensemble and --calibrated, of `eval` and `predict` (docs/calibration.md)."""
  parser.add_argument("--ensemble", action="append", default=[], metavar="RUN2,RUN3",
                      help="average RUN's calibrated probabilities with these runs' (RUN "
                      "may also be a directory of runs: a sweep cell, a group)")
  parser.add_argument("--calibrated", action=argparse.BooleanOptionalAction, default=True,
                      help="use the temperature fitted on dev (calibration.json), when the "
                      "run has one (default: yes)")


def add_parser(subparsers, parents):
  from textclf_jax.cli import main as cli
  ev = subparsers.add_parser("eval", help="recompute a run's metrics from its best checkpoint",
                             parents=[cli.process_flags(), *parents])
  ev.add_argument("run")
  ev.add_argument("--split", default="test", choices=("test", "dev", "train"))
  ev.add_argument("--data_dir", default="", help="where the run's dataset lives now")
  ev.add_argument("--threshold_objective", default="", choices=("micro", "macro", "per_label"),
                  help="multi-label: re-search the thresholds on the run's saved dev "
                  "predictions for this objective (default: the run's own thresholds)")
  ensemble_flags(ev)
  return ev


def run(args):
  from textclf_jax.serve import ensemble, runs

  errors.CONTEXT["path"] = args.run
  members = ensemble.members(args.run, args.ensemble)
  if len(members) > 1:
    print(json.dumps(ensemble.evaluate(members, args.split, args.data_dir, args.calibrated),
                     indent=2))
    return
  result = runs.evaluate_run(members[0], args.split, data_dir=args.data_dir,
                             calibrated=args.calibrated,
                             objective=args.threshold_objective)
  print(json.dumps({**result["summary"], "calibration": result["calibration"]}, indent=2))
  if result["matches_results"] is not None:
    print(f"[textclf] matches results.json {args.split} metrics exactly: "
          f"{'yes' if result['matches_results'] else 'NO'}", file=sys.stderr)
