"""Training throughput of the models at sentence and document shapes.

    python bench/throughput.py                      # CNN, LSTM, hybrid x sst2/imdb shapes
    python bench/throughput.py --models cnn --shapes imdb --steps 50
    python bench/throughput.py --torch              # + PyTorch (pip install ".[bench]")
    python bench/throughput.py --models cnn --shapes sst2 --embedding_update dense

Prints, per model and shape: compile time, training examples/s and tokens/s
(after compilation, timed over `--steps` steps with one host sync at the end),
CPU ms per step (user + system time of the process, all threads: robust to
other processes on a shared machine, unlike wall time), parameters, model
FLOPs per step (XLA's cost analysis of the compiled step), achieved FLOP/s as
a share of the fp32 matmul peak measured in the same run (per wall second and
per CPU second), the peak RSS of the row (each row runs in its own process)
and, with --torch, the same models in PyTorch (bench/torch_reference.py, also
one process per row) and the ratios. Inputs are random token ids of the given
length (every row full), the real train step (loss, grads, optax update,
max-norm) on the default device mesh; the CNN rows train with Adadelta, so
at the short shape their embedding table gets the row-sparse update (`auto`;
`--embedding_update dense|sparse` forces one), and at the long shape their
convolutions the sparse backward pass through the max-pooled windows
(models/conv_pool.py; `--conv_backward dense|sparse` forces one). With --datasets, the share of padded token slots in the
bucketed training batches of real datasets.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time

import jax
import numpy as np

from textclf_jax.runtime import bootstrap  # noqa: E402

from textclf_jax import config as config_lib
from textclf_jax.training import build
from textclf_jax.data.batching import Encoded
from textclf_jax.models.cnn import uses_sparse_backward
from textclf_jax.training.steps import init_metrics

SHAPES = {"sst2": 20, "imdb": 400}  # tokens per example (MR/SST-2 sentences; IMDB cut at 400)


def bench_one(preset: str, length: int, batch: int, steps: int, vocab: int, embedding: str,
              embed_dim: int, compute_dtype: str = "float32",
              embedding_update: str = "auto", conv_backward: str = "auto") -> dict:
  config = config_lib.load_preset(preset)
  with config.unlocked():
    config.max_len, config.batch_size, config.embed_dim = length, batch, embed_dim
    config.embedding, config.compute_dtype = embedding, compute_dtype
    config.embedding_update = embedding_update
    config.conv_backward = conv_backward
    config.bucket_lengths = (length,)
    if preset in ("cnn", "kim"):
      config.optimizer, config.learning_rate = "adadelta", 1.0
  mesh = build.make_mesh(config)
  vectors = None
  if embedding != "rand":
    vectors = np.random.default_rng(0).normal(0, 0.3, (vocab, embed_dim)).astype(np.float32)
  step_fns, state = build.make_steps(config, vocab, 2, False, mesh, total_steps=10 ** 6,
                                     vectors=vectors)
  rng = np.random.default_rng(0)
  n = 4 * batch  # four distinct batches, every row full length
  data = Encoded(rng.integers(2, vocab, (n, length)).astype(np.int32),
                 np.full(n, length, np.int32), rng.integers(0, 2, n).astype(np.int32))
  batcher = build.make_batcher(config, mesh)
  batches = [build.device_batch(batcher, data, np.arange(i, i + batch), mesh)
             for i in range(0, n, batch)]
  metrics = init_metrics()
  start = time.perf_counter()
  flops = step_flops(step_fns, state, batches[0])
  compile_s = time.perf_counter() - start
  sparse_conv = config.model == "cnn" and uses_sparse_backward(conv_backward, length)
  model_flops = dense_backward_flops(config, vocab, mesh, vectors, batches[0]) if sparse_conv \
      else flops
  for b in batches:  # warm-up
    state, metrics = step_fns.train_step(state, b, metrics)
  jax.block_until_ready(metrics)
  start, cpu = time.perf_counter(), time.process_time()
  for i in range(steps):
    state, metrics = step_fns.train_step(state, batches[i % len(batches)], metrics)
  jax.block_until_ready(metrics)
  seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
  params = sum(x.size for x in jax.tree.leaves(state["params"]))
  return {"model": preset, "length": length, "batch": batch, "embedding": embedding,
          "dtype": compute_dtype, "sparse": step_fns.table_update is not None,
          "sparse_conv": sparse_conv, "model_flops_per_step": model_flops,
          "model_flops_per_s": model_flops * steps / seconds,
          "compile_s": compile_s, "examples_per_s": steps * batch / seconds,
          "tokens_per_s": steps * batch * length / seconds, "params": params,
          "flops_per_step": flops, "flops_per_s": flops * steps / seconds,
          "cpu_ms_per_step": 1e3 * cpu / steps, "flops_per_cpu_s": flops * steps / cpu}


def step_flops(step_fns, state, batch) -> float:
  """XLA's FLOP count of the compiled train step (compiles it)."""
  cost = step_fns.train_step.lower(state, batch, init_metrics()).compile().cost_analysis()
  cost = cost[0] if isinstance(cost, (list, tuple)) else cost
  return float(cost.get("flops", 0.0))


def dense_backward_flops(config, vocab, mesh, vectors, batch) -> float:
  """XLA's FLOP count of the same step with autodiff's dense convolution backward
  pass: the model's FLOPs as PyTorch computes them."""
  config = config.copy_and_resolve_references()
  with config.unlocked():
    config.conv_backward = "dense"
  step_fns, state = build.make_steps(config, vocab, 2, False, mesh, total_steps=10 ** 6,
                                     vectors=vectors)
  return step_flops(step_fns, state, batch)


def matmul_peak(n: int = 2048, repeats: int = 10) -> dict:
  """Measured fp32 matmul FLOP/s of this machine: numpy (BLAS) and XLA, and
  XLA's FLOP per CPU second (`xla_per_cpu_s`, all threads' time)."""
  a = np.random.default_rng(0).standard_normal((n, n), dtype=np.float32)
  a @ a
  start = time.perf_counter()
  for _ in range(repeats):
    a @ a
  numpy_flops = 2 * n ** 3 * repeats / (time.perf_counter() - start)
  x = jax.device_put(a)
  f = jax.jit(lambda x: x @ x)
  f(x).block_until_ready()
  start, cpu = time.perf_counter(), time.process_time()
  for _ in range(repeats):
    y = f(x)
  y.block_until_ready()
  xla_flops = 2 * n ** 3 * repeats / (time.perf_counter() - start)
  return {"numpy": numpy_flops, "xla": xla_flops,
          "xla_per_cpu_s": 2 * n ** 3 * repeats / (time.process_time() - cpu)}


def peak_rss_mb() -> float:
  return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def padding_fractions(datasets: list, data_dir: str) -> list:
  """(dataset, padded share, tokens/example) of the CNN preset's bucketed
  training batches (default bucket lengths, max_len 64 as in the Kim preset)."""
  from textclf_jax.data.pipeline import prepare

  rows = []
  for name in datasets:
    config = config_lib.load_preset("kim")
    with config.unlocked():
      config.dataset, config.data_dir, config.embedding = name, data_dir, "rand"
    prepared = prepare(config, fold=0, load_vectors_file=False)
    data = prepared.splits["train"]
    batcher = build.make_batcher(config, build.make_mesh(config))
    plan = batcher.train_plan(data, config.seed, 0)
    rows.append((name, batcher.padding_fraction(data, plan), float(data.lengths.mean()),
                 tuple(int(b) for b in batcher.buckets)))
  return rows


def run_row(args, kind: str, model: str, shape: str) -> dict:
  """Times one row in a fresh process (so its peak RSS is its own)."""
  cmd = [sys.executable, os.path.abspath(__file__), "--_row", f"{kind}:{model}:{shape}",
         "--batch", str(args.batch), "--steps", str(args.steps), "--vocab", str(args.vocab),
         "--embed_dim", str(args.embed_dim), "--embedding", args.embedding,
         "--compute_dtype", args.compute_dtype, "--torch_threads", str(args.torch_threads),
         "--embedding_update", args.embedding_update, "--conv_backward", args.conv_backward]
  out = subprocess.run(cmd, capture_output=True, text=True, check=False)
  if out.returncode:
    raise RuntimeError(f"{kind} {model} {shape} failed:\n{out.stderr[-3000:]}")
  return json.loads(out.stdout.strip().splitlines()[-1])


def one_row(args):
  """Child process: prints one row's figures as JSON."""
  kind, model, shape = args._row.split(":")
  if kind != "torch":  # PyTorch runs with its default allocator settings
    bootstrap.start(cache=False)  # compile_s is a compilation, not a cache load
  length = SHAPES[shape]
  steps = args.steps or (200 if length < 100 else 100)
  if kind == "torch":
    import torch
    from torch_reference import bench_torch
    if args.torch_threads:
      torch.set_num_threads(args.torch_threads)
    r = bench_torch(model, length, args.batch, steps, args.vocab, args.embedding, args.embed_dim)
  else:
    r = bench_one(model, length, args.batch, steps, args.vocab, args.embedding, args.embed_dim,
                  args.compute_dtype, args.embedding_update, args.conv_backward)
  r["peak_rss_mb"] = peak_rss_mb()
  print(json.dumps(r))


def main():
  parser = argparse.ArgumentParser(description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--models", default="cnn,lstm,hybrid")
  parser.add_argument("--shapes", default="sst2,imdb")
  parser.add_argument("--embedding", default="non-static")
  parser.add_argument("--batch", type=int, default=50)
  parser.add_argument("--steps", type=int, default=0, help="timed steps (0: 200 short, 100 long)")
  parser.add_argument("--vocab", type=int, default=20000)
  parser.add_argument("--embed_dim", type=int, default=100)
  parser.add_argument("--compute_dtype", default="float32", help="float32 | bfloat16")
  parser.add_argument("--embedding_update", default="auto",
                      help="auto | dense | sparse: config.embedding_update (auto: sparse for "
                           "the CNN rows, which train with Adadelta, at batches of <= 8192 "
                           "token slots; dense for the others)")
  parser.add_argument("--conv_backward", default="auto",
                      help="auto | dense | sparse: config.conv_backward (auto: the CNN's "
                           "sparse backward pass through the chosen windows above 64 tokens)")
  parser.add_argument("--torch", action="store_true",
                      help="also time the PyTorch models (bench/torch_reference.py) and print "
                           "the ratio ours / PyTorch")
  parser.add_argument("--torch_threads", type=int, default=0,
                      help="PyTorch intra-op threads (0: its default). On a busy machine its "
                           "OpenMP threads spin-wait for each other and it slows down many "
                           "times over; 1 thread avoids that")
  parser.add_argument("--datasets", default="mr,sst2",
                      help="datasets whose padded-token share to report ('' for none)")
  parser.add_argument("--data_dir", default=os.environ.get("TEXTCLF_DATA_DIR",
                                                          "/work/shared/datasets"))
  parser.add_argument("--_row", default="", help=argparse.SUPPRESS)
  args = parser.parse_args()
  if args._row:
    return one_row(args)
  bootstrap.start(cache=False)  # before the first XLA computation; compile_s compiles
  peak = matmul_peak()
  best_peak = max(peak["numpy"], peak["xla"])
  print(f"# jax {jax.__version__}, {jax.device_count()} x {jax.devices()[0].device_kind}, "
        f"{os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f}; "
        f"compute dtype {args.compute_dtype}")
  print(f"# measured fp32 matmul peak (2048^3): numpy {peak['numpy'] / 1e9:,.0f} GFLOP/s, "
        f"XLA {peak['xla'] / 1e9:,.0f} GFLOP/s (wall), XLA "
        f"{peak['xla_per_cpu_s'] / 1e9:,.0f} GFLOP per CPU second; '% peak' is of the larger "
        "wall figure, '% peak/cpu' of the per-CPU-second one")
  print("# GFLOP/step: XLA's count for the compiled step; model GFLOP/step: the same step "
        "with autodiff's dense convolution backward pass (what PyTorch computes), which "
        "differs only for the CNN's sparse backward pass ('sparse bwd')")
  header = ("| model | shape | batch x length | params | compile s | examples/s | tokens/s "
            "| CPU ms/step | GFLOP/step | GFLOP/s | % peak | % peak/cpu | model GFLOP/step "
            "| model GFLOP/s | peak RSS MB |")
  if args.torch:
    import torch
    threads = args.torch_threads or torch.get_num_threads()
    print(f"# torch {torch.__version__}, {threads} threads; ratios are ours / "
          "PyTorch in examples/s (wall) and in CPU time per step")
    header += " torch examples/s | torch CPU ms/step | torch RSS MB | ratio | ratio (CPU) |"
  print(f"# embedding {args.embedding}, embedding_update {args.embedding_update}; every row in "
        "its own process")
  print(header)
  print("|---" * (header.count("|") - 1) + "|")
  for model in args.models.split(","):
    for shape in args.shapes.split(","):
      r = run_row(args, "jax", model, shape)
      variant = ", ".join(n for n, on in [("sparse table", r["sparse"]),
                                          ("sparse bwd", r["sparse_conv"])] if on)
      line = (f"| {model}{f' ({variant})' if variant else ''} | {shape} | {r['batch']} x "
              f"{r['length']} | {r['params']:,} | "
              f"{r['compile_s']:.2f} | {r['examples_per_s']:,.0f} | {r['tokens_per_s']:,.0f} | "
              f"{r['cpu_ms_per_step']:.1f} | {r['flops_per_step'] / 1e9:.2f} | "
              f"{r['flops_per_s'] / 1e9:.1f} | {100 * r['flops_per_s'] / best_peak:.0f}% | "
              f"{100 * r['flops_per_cpu_s'] / peak['xla_per_cpu_s']:.0f}% | "
              f"{r['model_flops_per_step'] / 1e9:.2f} | {r['model_flops_per_s'] / 1e9:.1f} | "
              f"{r['peak_rss_mb']:,.0f} |")
      if args.torch:
        t = run_row(args, "torch", model, shape)
        line += (f" {t['examples_per_s']:,.0f} | {t['cpu_ms_per_step']:.1f} | "
                 f"{t['peak_rss_mb']:,.0f} | {r['examples_per_s'] / t['examples_per_s']:.2f} | "
                 f"{t['cpu_ms_per_step'] / r['cpu_ms_per_step']:.2f} |")
      print(line, flush=True)
  if args.datasets:
    print("# padded token slots in bucketed training batches (kim preset, fold 0, epoch 0)")
    for name, fraction, mean_len, buckets in padding_fractions(args.datasets.split(","),
                                                              args.data_dir):
      print(f"#   {name}: {100 * fraction:.1f}% padding, {mean_len:.1f} tokens/example, "
            f"buckets {buckets}")


if __name__ == "__main__":
  main()
