"""Long inputs: real tokens per second and padded share of real IMDB training batches.

    python bench/long_inputs.py                                  # CNN at 400 / 1,000 / full
    python bench/long_inputs.py --models cnn,lstm,lstm@50 --max_lens 400 --growth 1.25

For each model, max_len (0: the longest training text) and bucket_growth (0: the
default doubling bucket_lengths; g > 1: the geometric ladder) it prints the
share of texts cut, the padded share of the epoch-0 training plan's token slots
(all of its batches), the padded lengths used, the compile time of their train
steps, and the real (unpadded) tokens per second, padded slots per second and
CPU seconds of `--batches` training batches taken in the plan's (shuffled)
order, so they sample every length. `MODEL@N` reads windows of N tokens
(config.chunk_len). The data are IMDB's training split (untruncated tokens,
prepared once); the model is the preset's with a random 100-d embedding table
(the step costs the same as with non-static GloVe: one trainable table), the
preset's optimiser, batch 50. Every row runs in this process, one after another:
compare rows of one run, and read the load average printed at the start and end.
"""

from __future__ import annotations

import argparse
import os
import time

import jax
import numpy as np

from textclf_jax.runtime import bootstrap  # noqa: E402

from textclf_jax.training import build
from textclf_jax import config as config_lib
from textclf_jax.families import validate as validate_lib
from textclf_jax.data.batching import Encoded
from textclf_jax.data.pipeline import prepare
from textclf_jax.training.steps import init_metrics


def load_train(data_dir: str, dataset: str) -> Encoded:
  """The training split at full length (max_len 0, percentile 100)."""
  config = config_lib.load_preset("cnn")
  with config.unlocked():
    config.dataset, config.data_dir, config.max_len, config.embedding = (
        dataset, data_dir, 0, "rand")
  return prepare(config, load_vectors_file=False), config


def cut(data: Encoded, max_len: int) -> Encoded:
  return Encoded(np.ascontiguousarray(data.ids[:, :max_len]),
                 np.minimum(data.lengths, max_len).astype(np.int32), data.labels)


def model_config(spec: str, max_len: int, growth: float, dataset_config):
  """A preset's config for `spec` (`cnn`, `lstm`, `lstm@50`: chunk_len 50)."""
  preset, _, chunk = spec.partition("@")
  config = config_lib.load_preset(preset)
  with config.unlocked():
    config.max_len, config.bucket_growth, config.chunk_len = max_len, growth, int(chunk or 0)
    config.embedding, config.embed_dim, config.batch_size = "rand", 100, 50
    config.dataset, config.data_dir = dataset_config.dataset, dataset_config.data_dir
  validate_lib.validate(config)
  return config


def bench_row(spec, max_len, growth, prepared, dataset_config, batches: int) -> dict:
  full = prepared.splits["train"]
  data = cut(full, max_len)
  config = model_config(spec, max_len, growth, dataset_config)
  mesh = build.make_mesh(config)
  batcher = build.make_batcher(config, mesh)
  plan = batcher.train_plan(data, config.seed, 0)
  share = batcher.padding_fraction(data, plan)
  steps, state = build.make_steps(config, prepared.encoder.vocab_size, len(prepared.label_names),
                                  False, mesh, total_steps=10 ** 6)
  sample = plan[:batches]
  device = [build.device_batch(batcher, data, index, mesh) for index in sample]
  metrics = init_metrics()
  start = time.perf_counter()
  seen = set()
  for batch in device:  # one step per padded length: compiles them all
    if batch["tokens"].shape[1] not in seen:
      seen.add(batch["tokens"].shape[1])
      state, metrics = steps.train_step(state, batch, metrics)
  jax.block_until_ready(metrics)
  compile_s = time.perf_counter() - start
  start, cpu = time.perf_counter(), time.process_time()
  for batch in device:
    state, metrics = steps.train_step(state, batch, metrics)
  jax.block_until_ready(metrics)
  seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
  real = sum(int(data.lengths[index].sum()) for index in sample)
  slots = sum(b["tokens"].size for b in device)
  return {"model": spec, "max_len": max_len, "growth": growth,
          "cut": float(np.mean(full.lengths > max_len)), "padded": share,
          "buckets": [int(b) for b in batcher.buckets], "compiled": len(seen),
          "compile_s": compile_s, "real_tokens_per_s": real / seconds,
          "slots_per_s": slots / seconds, "examples_per_s": len(sample) * 50 / seconds,
          "cpu_s": cpu, "wall_s": seconds, "batches": len(sample)}


def main():
  parser = argparse.ArgumentParser(description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--models", default="cnn", help="comma-separated; MODEL@N: chunk_len N")
  parser.add_argument("--max_lens", default="400,1000,0", help="0: the longest training text")
  parser.add_argument("--growth", default="0,1.25", help="bucket_growth values (0: doubling)")
  parser.add_argument("--batches", type=int, default=60, help="timed batches per row")
  parser.add_argument("--dataset", default="imdb")
  parser.add_argument("--data_dir", default=os.environ.get("TEXTCLF_DATA_DIR",
                                                          "/work/shared/datasets"))
  args = parser.parse_args()
  bootstrap.start(cache=False)  # compile_s is a compilation, not a cache load
  prepared, dataset_config = load_train(args.data_dir, args.dataset)
  full = prepared.splits["train"]
  lengths = full.lengths
  print(f"# jax {jax.__version__}, {os.cpu_count()} cores, load average "
        f"{os.getloadavg()[0]:.1f} at the start")
  print(f"# {args.dataset} train: {len(full):,} texts, tokens mean {lengths.mean():.0f}, "
        f"median {np.median(lengths):.0f}, p90 {np.percentile(lengths, 90):.0f}, "
        f"p99 {np.percentile(lengths, 99):.0f}, max {lengths.max():,}; vocabulary "
        f"{prepared.encoder.vocab_size:,}")
  print("| model | max_len | buckets | texts cut | padded slots | lengths compiled | compile s "
        "| real tokens/s | slots/s | examples/s | CPU s / wall s |")
  print("|---|---|---|---|---|---|---|---|---|---|---|")
  for spec in args.models.split(","):
    for max_len in (int(m) or int(lengths.max()) for m in args.max_lens.split(",")):
      for growth in (float(g) for g in args.growth.split(",")):
        r = bench_row(spec, max_len, growth, prepared, dataset_config, args.batches)
        scheme = "doubling" if not growth else f"x{growth:g}"
        print(f"| {spec} | {max_len:,} | {scheme} ({len(r['buckets'])}) | {100 * r['cut']:.1f}% "
              f"| {100 * r['padded']:.1f}% | {r['compiled']} | {r['compile_s']:.1f} "
              f"| {r['real_tokens_per_s']:,.0f} | {r['slots_per_s']:,.0f} "
              f"| {r['examples_per_s']:,.0f} | {r['cpu_s']:.1f} / {r['wall_s']:.1f} |",
              flush=True)
  print(f"# load average {os.getloadavg()[0]:.1f} at the end; timed: {args.batches} batches of "
        "50 per row, in the epoch-0 plan's order; padded slots: the whole epoch-0 plan")


if __name__ == "__main__":
  main()
