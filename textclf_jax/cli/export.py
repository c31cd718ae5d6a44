"""`textclf export`: a saved run as a model file for serving without this repo.

    textclf export RUN --format onnx --out DIR        # DIR/model.onnx, manifest.json, vocab.json
    textclf export RUN --format stablehlo --out DIR   # DIR/model.stablehlo (jax.export)

The model takes token ids [batch, length] int32 and lengths [batch] int32 and
returns probabilities (the run's calibration.json temperature applied); both axes
are dynamic. The export is checked against the JAX model on (a sample of) the run's
test split and refused (exit 2, nothing written) unless every probability agrees
within 1e-5 and every prediction is the same. `textclf_jax.serve.serving` loads DIR
without JAX. See docs/export.md.
"""

from __future__ import annotations

import argparse

from textclf_jax.errors import UsageError

FORMATS = ("onnx", "stablehlo")  # export.formats.FORMATS, without importing JAX


def add_parser(subparsers, parents):
  p = subparsers.add_parser(
      "export", parents=parents, help="write a run as ONNX or StableHLO, checked for parity",
      description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  p.add_argument("run")
  p.add_argument("--format", required=True, choices=FORMATS)
  p.add_argument("--out", required=True, metavar="DIR", help="the export directory to write")
  p.add_argument("--overwrite", action="store_true", help="replace an export already at DIR")
  p.add_argument("--split", default="test", choices=("test", "dev", "train"),
                 help="the split the parity check runs on (default test)")
  p.add_argument("--max_examples", "--max-examples", type=int, default=512, metavar="N",
                 help="check parity on at most N examples of it (a seeded sample)")
  p.add_argument("--uncalibrated", action="store_true",
                 help="export the raw probabilities, ignoring the run's calibration.json")
  p.add_argument("--data_dir", default="", help="where the run's dataset lives now")
  return p


def run(args):
  from textclf_jax.serve import export

  if args.max_examples < 1:
    raise UsageError(f"--max_examples {args.max_examples}: expected a number >= 1")
  manifest = export.export_run(args.run, args.format, args.out, split=args.split,
                               data_dir=args.data_dir, max_examples=args.max_examples,
                               calibrated=not args.uncalibrated, overwrite=args.overwrite)
  parity = manifest["parity"]
  length = "dynamic" if manifest["length"] is None else f"fixed at {manifest['length']}"
  temperature = "" if manifest["temperature"] is None else ", temperature applied"
  print(f"[textclf] exported {args.run} ({manifest['model']}, {args.format}) to {args.out}: "
        f"{manifest['model_file']} {manifest['size_bytes'] / 2 ** 20:.2f} MiB, batch axis "
        f"dynamic, length {length}{temperature}; parity on {parity['examples']} "
        f"{parity['split']} examples: max |probability difference| "
        f"{parity['max_abs_difference']:.2g}, predictions identical")
