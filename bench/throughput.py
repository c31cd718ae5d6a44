"""Training throughput of the models at sentence and document shapes.

    python bench/throughput.py                      # CNN, LSTM, hybrid x sst2/imdb shapes
    python bench/throughput.py --models cnn --shapes imdb --steps 50
    python bench/throughput.py --torch              # + PyTorch (pip install ".[bench]")

Prints, per model and shape: compile time, training examples/s and tokens/s
(after compilation, timed over `--steps` steps with one host sync at the end),
parameters, model FLOPs per step (XLA's cost analysis of the compiled step),
achieved FLOP/s as a share of the fp32 matmul peak measured in the same run,
the process's peak RSS and, with --torch, the same models in PyTorch
(bench/torch_reference.py) and the ratio. Inputs are random token ids of the
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
from textclf_jax import train
from textclf_jax.data.batching import Encoded
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
  n = 4 * batch  # four distinct batches, every row full length
  data = Encoded(rng.integers(2, vocab, (n, length)).astype(np.int32),
                 np.full(n, length, np.int32), rng.integers(0, 2, n).astype(np.int32))
  batcher = train.make_batcher(config, mesh)
  batches = [train.device_batch(batcher, data, np.arange(i, i + batch), mesh)
             for i in range(0, n, batch)]
  metrics = init_metrics()
  start = time.perf_counter()
  compiled = step_fns.train_step.lower(state, batches[0], metrics).compile()
  compile_s = time.perf_counter() - start
  cost = compiled.cost_analysis()
  cost = cost[0] if isinstance(cost, (list, tuple)) else cost
  flops = float(cost.get("flops", 0.0))
  for b in batches:  # warm-up
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
          "tokens_per_s": steps * batch * length / seconds, "params": params,
          "flops_per_step": flops, "flops_per_s": flops * steps / seconds}


def matmul_peak(n: int = 2048, repeats: int = 10) -> dict:
  """Measured fp32 matmul FLOP/s of this machine: numpy (BLAS) and XLA."""
  a = np.random.default_rng(0).standard_normal((n, n), dtype=np.float32)
  a @ a
  start = time.perf_counter()
  for _ in range(repeats):
    a @ a
  numpy_flops = 2 * n ** 3 * repeats / (time.perf_counter() - start)
  x = jax.device_put(a)
  f = jax.jit(lambda x: x @ x)
  f(x).block_until_ready()
  start = time.perf_counter()
  for _ in range(repeats):
    y = f(x)
  y.block_until_ready()
  xla_flops = 2 * n ** 3 * repeats / (time.perf_counter() - start)
  return {"numpy": numpy_flops, "xla": xla_flops}


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
  parser.add_argument("--torch", action="store_true",
                      help="also time the PyTorch models (bench/torch_reference.py) and print "
                           "the ratio ours / PyTorch")
  args = parser.parse_args()
  peak = matmul_peak()
  best_peak = max(peak.values())
  print(f"# jax {jax.__version__}, {jax.device_count()} x {jax.devices()[0].device_kind}; "
        f"compute dtype {args.compute_dtype}")
  print(f"# measured fp32 matmul peak (2048^3): numpy {peak['numpy'] / 1e9:,.0f} GFLOP/s, "
        f"XLA {peak['xla'] / 1e9:,.0f} GFLOP/s; % peak below is of the larger")
  header = ("| model | shape | batch x length | embedding | params | compile s | examples/s "
            "| tokens/s | GFLOP/step | GFLOP/s | % peak |")
  if args.torch:
    import torch
    from torch_reference import bench_torch  # bench/ is on sys.path when run as a script
    print(f"# torch {torch.__version__}, {torch.get_num_threads()} threads")
    header += " torch examples/s | ours / torch |"
  print(header)
  print("|---" * (header.count("|") - 1) + "|")
  for model in args.models.split(","):
    for shape in args.shapes.split(","):
      length = SHAPES[shape]
      steps = args.steps or (200 if length < 100 else 30)
      r = bench_one(model, length, args.batch, steps, args.vocab, args.embedding,
                    args.embed_dim, args.compute_dtype)
      line = (f"| {model} | {shape} | {r['batch']} x {r['length']} | {r['embedding']} | "
              f"{r['params']:,} | {r['compile_s']:.2f} | {r['examples_per_s']:,.0f} | "
              f"{r['tokens_per_s']:,.0f} | {r['flops_per_step'] / 1e9:.2f} | "
              f"{r['flops_per_s'] / 1e9:.1f} | {100 * r['flops_per_s'] / best_peak:.0f}% |")
      if args.torch:
        t = bench_torch(model, length, args.batch, steps, args.vocab, args.embedding,
                        args.embed_dim)
        line += f" {t['examples_per_s']:,.0f} | {r['examples_per_s'] / t['examples_per_s']:.2f} |"
      print(line, flush=True)
  peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
  print(f"# peak RSS {peak_mb:,.0f} MB")


if __name__ == "__main__":
  main()
