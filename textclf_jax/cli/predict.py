"""`textclf predict RUN [TEXT ...] [--input FILE] [--ensemble RUN2,...]`: one JSON line
per input text, in input order (a run, or an ensemble of runs)."""

from __future__ import annotations

import json
import sys

import numpy as np

from textclf_jax.cli import failure as errors
from textclf_jax.serve import textinput
from textclf_jax.cli.eval import ensemble_flags
from textclf_jax.errors import UsageError

# A text none of whose words the run learned is labelled from the bias alone.
NO_KNOWN_WORD = "no known word: labelled from the model's bias alone"


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
      loaded = ensemble.load(members, args.batch_size)
      rows = ensemble.predict_loaded(members, loaded, chosen, args.top_k, args.calibrated)
    else:
      loaded = [runs.load(members[0], args.batch_size)]
      rows = runs.predict_loaded(loaded[0], chosen, top_k=args.top_k,
                                 calibrated=args.calibrated)
    unknown = ~np.any([runs.known_words(m, chosen) for m in loaded], axis=0)
    for row, none_known in zip(rows, unknown):
      if none_known:
        row["note"] = NO_KNOWN_WORD
    num_labels = len(loaded[0].label_names)
    if args.top_k < num_labels:
      print(f"[textclf] predict: probabilities of the top {args.top_k} of {num_labels} "
            f"labels per text (--top_k {num_labels} for all)", file=sys.stderr)
    return rows

  rows = textinput.rows_per_text(texts, predict)
  if not any(text.strip() for text in texts):
    for member in members:  # nothing to classify, but every RUN must still be a run
      runs.check_run(member)
  for row in rows:
    print(json.dumps(row, ensure_ascii=False))
