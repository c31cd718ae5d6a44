"""`textclf explain`: why a saved run labels texts as it does.

    textclf explain RUN "text" ... [--html OUT.html]   # or --input FILE, or stdin
    textclf explain RUN --dataset_split dev --top_ngrams 10 [--markdown]   # CNN runs

Per text, one JSON line: predict's row (label(s), probabilities) plus `tokens` (what
the model saw), and per explained label (the predicted one(s), or --label) the
integrated-gradients attribution of every token to its logit, the completeness
check (attributions sum to logit - baseline logit, within the tolerance) and, for a
CNN, the filters contributing most with their winning n-grams. A blank line gets
{"text": "", "error": ...}, as in predict. See docs/explain.md.
"""

from __future__ import annotations

import argparse
import json
import sys

from textclf_jax.serve import textinput
from textclf_jax.errors import UsageError

RULES = ("gausslegendre", "trapezoid")  # explain.integrated.RULES, without importing JAX

SPLITS = ("train", "dev", "test")  # what data.splits.make_splits gives every dataset


def add_parser(subparsers, parents):
  p = subparsers.add_parser(
      "explain", parents=parents, help="per-token attributions (and CNN n-grams) of a run",
      description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  p.add_argument("run")
  p.add_argument("texts", nargs="*", default=[], help="texts to explain (else --input or stdin)")
  p.add_argument("--input", default="", help="a UTF-8 file with one text per line")
  p.add_argument("--steps", type=int, default=50,
                 help="integration points on the path from the baseline (default 50)")
  p.add_argument("--rule", default="gausslegendre", choices=RULES,
                 help="quadrature rule for the path integral (default gausslegendre)")
  p.add_argument("--tolerance", type=float, default=0.01,
                 help="completeness holds if |sum - difference| <= TOL * max(1, |difference|)")
  p.add_argument("--label", default=None, metavar="NAME",
                 help="explain this label instead of the predicted one(s)")
  p.add_argument("--top_filters", "--top-filters", type=int, default=5, metavar="K",
                 help="CNN runs: the K filters contributing most, with their n-grams")
  p.add_argument("--top_k", "--top-k", type=int, default=5, help="probabilities per text")
  p.add_argument("--html", default="", metavar="OUT",
                 help="also write a self-contained HTML page of the attributions")
  p.add_argument("--dataset_split", "--dataset-split", default="", metavar="SPLIT",
                 help="CNN runs: n-grams over SPLIT (train, dev, test) of the run's dataset")
  p.add_argument("--top_ngrams", "--top-ngrams", type=int, default=10, metavar="K",
                 help="with --dataset_split: n-grams per filter width and label")
  p.add_argument("--markdown", action="store_true",
                 help="with --dataset_split: a markdown table instead of JSON lines")
  p.add_argument("--data_dir", default="", help="where the run's dataset lives now")
  return p


def _check(args):
  if args.steps < 1:
    raise UsageError(f"--steps {args.steps}: expected a number of path points >= 1")
  if args.tolerance <= 0:
    raise UsageError(f"--tolerance {args.tolerance}: expected a positive number")
  for name in ("top_filters", "top_k", "top_ngrams"):
    if getattr(args, name) < 1:
      raise UsageError(f"--{name} {getattr(args, name)}: expected a number >= 1")
  if args.dataset_split and (args.texts or args.input or args.html):
    raise UsageError("--dataset_split explains a split of the run's dataset: give no "
                     "texts, --input or --html with it")
  if args.dataset_split and args.dataset_split not in SPLITS:
    raise UsageError(f"--dataset_split {args.dataset_split}: the run's dataset has splits "
                     f"{', '.join(SPLITS)}")
  if args.markdown and not args.dataset_split:
    raise UsageError("--markdown goes with --dataset_split")


def _check_label(run: str, label: str):
  """--label must name one of the run's labels (checked before the model is loaded)."""
  from textclf_jax.run import layout as rundir
  from textclf_jax.serve import runs
  runs.check_run(run)
  names = rundir.read_labels(run)["labels"]
  if label not in names:
    raise UsageError(f"--label {label!r}: not a label of {run} (labels: "
                     f"{', '.join(names[:20])}{' ...' if len(names) > 20 else ''})")


def run(args):
  from textclf_jax.serve import explain, runs

  _check(args)
  if args.label is not None:
    _check_label(args.run, args.label)
  if args.dataset_split:
    explainer = explain.load(args.run)
    entries = explain.split_ngrams(explainer, args.dataset_split, args.top_ngrams,
                                   args.data_dir)
    if args.markdown:
      print(explain.ngrams_markdown(entries, args.dataset_split))
    else:
      for entry in entries:
        print(json.dumps(entry, ensure_ascii=False))
    return
  texts = textinput.gather("explain", args.texts, args.input)
  rows = textinput.rows_per_text(texts, lambda chosen: explain.explain_texts(
      explain.load(args.run, args.steps, args.rule), chosen, args.label, args.top_filters,
      args.tolerance, args.top_k))
  if not any(text.strip() for text in texts):
    runs.check_run(args.run)  # nothing to explain, but RUN must still be a run
  for row in rows:
    print(json.dumps(row, ensure_ascii=False))
  failed = sum(not e["completeness"]["ok"] for row in rows for e in row.get("explanations", ()))
  if failed:
    print(f"[textclf] {failed} attribution(s) miss completeness by more than the tolerance; "
          f"raise --steps (now {args.steps})", file=sys.stderr)
  if args.html:
    from textclf_jax.serve.explain import render
    with open(args.html, "w", encoding="utf-8") as f:
      f.write(render.page(rows, args.run, args.steps, args.rule))
    print(f"[textclf] wrote {args.html}", file=sys.stderr)
