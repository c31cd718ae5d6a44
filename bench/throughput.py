"""Training throughput of the models at sentence and document shapes.

    python bench/throughput.py                      # CNN, LSTM, hybrid x sst2/imdb shapes
    python bench/throughput.py --models cnn --shapes imdb --steps 50

Prints, per model and shape: compile time, training examples/s and tokens/s
(after compilation, timed over `--steps` steps with one host sync at the end),
parameters, and the process's peak RSS. Inputs are random token ids of the
given length (every row full), the real train step (loss, grads, optax update,
max-norm) on the default device mesh.
"""

from __future__ import annotations

import argparse
import resource
import time

import jax
import numpy as np

from textclf_jax import config as config_lib
from textclf_jax import parallel, train
from textclf_jax.steps import init_metrics

SHAPES = {"sst2": 20, "imdb": 400}  # tokens per example (MR/SST-2 sentences; IMDB cut at 400)


def bench_one(preset: str, length: int, batch: int, steps: int, vocab: int, embedding: str,
              embed_dim: int, compute_dtype: str = "float32") -> dict:
  config = config_lib.load_preset(preset)
  with config.unlocked():
    config.max_len, config.batch_size, config.embed_dim = length, batch, embed_dim
    config.embedding, config.compute_dtype = embedding, compute_dtype
    config.bucket_lengths = (length,)
    if preset in ("cnn", "kim"):
      config.optimizer, config.learning_rate = "adadelta", 1.0
  mesh = train.make_mesh(config)
  vectors = None
  if embedding != "rand":
    vectors = np.random.default_rng(0).normal(0, 0.3, (vocab, embed_dim)).astype(np.float32)
  step_fns, state = train.make_steps(config, vocab, 2, False, mesh, total_steps=10 ** 6,
                                     vectors=vectors)
  rng = np.random.default_rng(0)
  rows = -(-batch // parallel.data_size(mesh)) * parallel.data_size(mesh)
  mine = parallel.local_rows(mesh, rows)

  def random_batch():
    full = {"tokens": rng.integers(2, vocab, (rows, length)).astype(np.int32),
            "lengths": np.full(rows, length, np.int32),
            "labels": rng.integers(0, 2, rows).astype(np.int32),
            "weights": (np.arange(rows) < batch).astype(np.float32)}
    return parallel.put_batch({k: v[mine] for k, v in full.items()}, mesh, rows)

  batches = [random_batch() for _ in range(4)]
  metrics = init_metrics()
  start = time.perf_counter()
  state, metrics = step_fns.train_step(state, batches[0], metrics)
  jax.block_until_ready(metrics)
  compile_s = time.perf_counter() - start
  for b in batches[1:]:  # warm-up
    state, metrics = step_fns.train_step(state, b, metrics)
  jax.block_until_ready(metrics)
  start = time.perf_counter()
  for i in range(steps):
    state, metrics = step_fns.train_step(state, batches[i % len(batches)], metrics)
  jax.block_until_ready(metrics)
  seconds = time.perf_counter() - start
  params = sum(x.size for x in jax.tree.leaves(state["params"]))
  return {"model": preset, "length": length, "batch": batch, "embedding": embedding,
          "dtype": compute_dtype,
          "compile_s": compile_s, "examples_per_s": steps * batch / seconds,
          "tokens_per_s": steps * batch * length / seconds, "params": params}


def main():
  parser = argparse.ArgumentParser(description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--models", default="cnn,lstm,hybrid")
  parser.add_argument("--shapes", default="sst2,imdb")
  parser.add_argument("--embedding", default="non-static")
  parser.add_argument("--batch", type=int, default=50)
  parser.add_argument("--steps", type=int, default=0, help="timed steps (0: 200 short, 30 long)")
  parser.add_argument("--vocab", type=int, default=20000)
  parser.add_argument("--embed_dim", type=int, default=100)
  parser.add_argument("--compute_dtype", default="float32", help="float32 | bfloat16")
  args = parser.parse_args()
  print(f"# jax {jax.__version__}, {jax.device_count()} x {jax.devices()[0].device_kind}")
  print(f"# compute dtype {args.compute_dtype}")
  print("| model | shape | batch x length | embedding | params | compile s | examples/s "
        "| tokens/s |")
  print("|---|---|---|---|---|---|---|---|")
  for model in args.models.split(","):
    for shape in args.shapes.split(","):
      length = SHAPES[shape]
      steps = args.steps or (200 if length < 100 else 30)
      r = bench_one(model, length, args.batch, steps, args.vocab, args.embedding,
                    args.embed_dim, args.compute_dtype)
      print(f"| {model} | {shape} | {r['batch']} x {r['length']} | {r['embedding']} | "
            f"{r['params']:,} | {r['compile_s']:.2f} | {r['examples_per_s']:,.0f} | "
            f"{r['tokens_per_s']:,.0f} |", flush=True)
  peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
  print(f"# peak RSS {peak_mb:,.0f} MB")


if __name__ == "__main__":
  main()
