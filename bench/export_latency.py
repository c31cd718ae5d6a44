"""Exported-model latency and throughput: onnxruntime against the JAX predict path.

    python bench/export_latency.py RUN [--examples 512] [--threads 0]

Exports RUN to ONNX and StableHLO (in a temporary directory; each export runs its
parity check), prints the model files' sizes, then times on up to --examples
examples of the run's test split, already tokenised (the ids `textclf predict`
would feed): onnxruntime through `textclf_jax.serve.serving` and the run's jitted predict
step through `evaluate.predict_probs` (as `textclf predict`, its length buckets),
each at batch 1 (median and p90 per example over the examples one by one) and at
batch 64 (examples per second over all of them, sorted by length into batches).
Both are warmed up first (the JAX steps compiled for every bucket). Tokenising
(pure Python, the same for both) is timed on its own. Wall and CPU seconds are
printed with the load average at the start and the end: the machine may be shared.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time

import numpy as np


def timed(fn):
  """(result, wall seconds, CPU seconds of this process)."""
  wall, cpu = time.perf_counter(), time.process_time()
  out = fn()
  return out, time.perf_counter() - wall, time.process_time() - cpu


def per_example(run_one, count: int):
  """Median and p90 wall ms of run_one(i) over i < count, and total CPU seconds."""
  times, cpu = [], time.process_time()
  for i in range(count):
    start = time.perf_counter()
    run_one(i)
    times.append(time.perf_counter() - start)
  return np.median(times) * 1e3, np.percentile(times, 90) * 1e3, time.process_time() - cpu


def main():
  parser = argparse.ArgumentParser(description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("run")
  parser.add_argument("--examples", type=int, default=512)
  parser.add_argument("--threads", type=int, default=0, help="onnxruntime intra-op threads")
  args = parser.parse_args()
  print(f"load average at start: {os.getloadavg()[0]:.2f} ({os.cpu_count()} CPUs)")

  from textclf_jax.training import evaluate
  from textclf_jax.serve import export, runs, serving
  from textclf_jax.data.batching import Encoded
  from textclf_jax.serve.export import exporter

  tmp = tempfile.mkdtemp(prefix="textclf-export-bench-")
  for fmt in ("onnx", "stablehlo"):
    manifest, wall, cpu = timed(lambda fmt=fmt: export.export_run(
        args.run, fmt, os.path.join(tmp, fmt), max_examples=args.examples))
    print(f"{fmt}: {manifest['model_file']} {manifest['size_bytes'] / 2 ** 20:.2f} MiB, "
          f"export + parity {wall:.1f} s wall / {cpu:.1f} s CPU, parity max |dp| "
          f"{manifest['parity']['max_abs_difference']:.2g} on {manifest['parity']['examples']}")

  loaded = runs.load(args.run, batch_size=1)
  data = exporter._parity_sample(loaded, args.run, "test", "", args.examples)
  n = len(data)
  onnx = serving.load(os.path.join(tmp, "onnx"), threads=args.threads)
  print(f"{n} test examples, {data.lengths.mean():.0f} tokens on average "
        f"(max_len {loaded.config.max_len}); model {loaded.config.model}")

  single = [Encoded(data.ids[i:i + 1], data.lengths[i:i + 1], data.labels[i:i + 1])
            for i in range(n)]
  jax_batch64 = runs.load(args.run, batch_size=64)
  # Warm-up: every bucket's step compiled, onnxruntime's first runs done.
  evaluate.predict_probs(loaded.steps, loaded.state, data, loaded.batcher)
  evaluate.predict_probs(jax_batch64.steps, jax_batch64.state, data, jax_batch64.batcher)
  for i in range(min(n, 32)):
    evaluate.predict_probs(loaded.steps, loaded.state, single[i], loaded.batcher)
    onnx.probabilities_of_ids(data.ids[i:i + 1], data.lengths[i:i + 1])

  rows = []
  med, p90, cpu = per_example(lambda i: onnx.probabilities_of_ids(
      data.ids[i:i + 1], data.lengths[i:i + 1]), n)
  rows.append(("onnxruntime", 1, med, p90, None, cpu))
  med, p90, cpu = per_example(lambda i: evaluate.predict_probs(
      loaded.steps, loaded.state, single[i], loaded.batcher), n)
  rows.append(("JAX predict step", 1, med, p90, None, cpu))
  _, wall, cpu = timed(lambda: onnx.probabilities_of_ids(data.ids, data.lengths, 64))
  rows.append(("onnxruntime", 64, wall / n * 1e3, None, n / wall, cpu))
  _, wall, cpu = timed(lambda: evaluate.predict_probs(jax_batch64.steps, jax_batch64.state,
                                                      data, jax_batch64.batcher))
  rows.append(("JAX predict step", 64, wall / n * 1e3, None, n / wall, cpu))

  print("| path | batch | ms per example (median) | p90 ms | examples/s | CPU s |")
  print("|---|---|---|---|---|---|")
  for name, batch, med, p90, rate, cpu in rows:
    if batch == 1:
      rate = 1e3 / med
    print(f"| {name} | {batch} | {med:.2f} | {'' if p90 is None else f'{p90:.2f}'} | "
          f"{rate:.0f} | {cpu:.1f} |")
  texts = [" ".join(loaded.encoder.decode(row[:k])) for row, k in
           zip(data.ids, data.lengths)]
  _, wall, _ = timed(lambda: onnx.encode(texts))
  print(f"tokenising + encoding (serving.encode, pure Python): {wall / n * 1e3:.3f} ms per "
        "example")
  print(f"load average at end: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
  sys.exit(main())
