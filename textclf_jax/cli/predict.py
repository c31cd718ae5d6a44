"""`textclf predict RUN [TEXT ...] [--input FILE] [--ensemble RUN2,...]`: one JSON line
per input text, in input order (a run, or an ensemble of runs)."""

from __future__ import annotations

import json
import os
import sys

from textclf_jax.cli import failure as errors
from textclf_jax.serve import textinput
from textclf_jax.cli.eval import ensemble_flags
from textclf_jax.errors import UsageError


def add_parser(subparsers, parents):
  pr = subparsers.add_parser("predict", help="label raw texts with a saved run",
                             parents=parents, description="One JSON line per input text, in "
                             "input order. A blank line gets {\"text\": \"\", \"error\": ...} "
                             "and no label.")
  pr.add_argument("run")
  pr.add_argument("texts", nargs="*", default=[], help="texts to label (else --input or stdin)")
  pr.add_argument("--input", default="", help="a UTF-8 file with one text per line")
  pr.add_argument("--top_k", type=int, default=5, help="probabilities to print per text")
  pr.add_argument("--batch_size", type=int, default=0)
  ensemble_flags(pr)
  return pr


def run(args):
  """One output line per input line: blank lines (nothing to classify) get a row
  with an `error` and no label, so that the output lines up with the input and no
  label is invented for an empty text."""
  from textclf_jax.serve import ensemble, runs

  errors.CONTEXT["path"] = args.run
  if args.top_k < 1:
    raise UsageError(f"--top_k {args.top_k}: expected a number of labels >= 1")
  texts = textinput.gather("predict", args.texts, args.input)
  members = ensemble.members(args.run, args.ensemble)

  def predict(chosen):
    if len(members) > 1:
      return ensemble.predict_texts(members, chosen, args.top_k, args.batch_size,
                                    args.calibrated)
    return runs.predict_texts(members[0], chosen, top_k=args.top_k,
                              batch_size=args.batch_size, calibrated=args.calibrated)

  rows = textinput.rows_per_text(texts, predict)
  if not any(text.strip() for text in texts):
    for member in members:  # nothing to classify, but every RUN must still be a run
      runs.check_run(member)
  num_labels = _num_labels(members[0])
  if any("probabilities" in row for row in rows) and args.top_k < num_labels:
    print(f"[textclf] predict: probabilities of the top {args.top_k} of {num_labels} labels "
          f"per text (--top_k {num_labels} for all)", file=sys.stderr)
  for row in rows:
    print(json.dumps(row, ensure_ascii=False))


def _num_labels(run: str) -> int:
  """The number of labels of a run (0 if it has no labels.json)."""
  from textclf_jax.run import layout as rundir
  if not os.path.isfile(rundir.path(run, rundir.LABELS)):
    return 0
  return len(rundir.read_labels(run)["labels"])
