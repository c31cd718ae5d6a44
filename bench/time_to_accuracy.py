"""Seconds from process start to a dev accuracy: Kim CNN, ours and PyTorch.

    python bench/time_to_accuracy.py                 # MR fold 0 and SST-2, ours
    python bench/time_to_accuracy.py --torch         # + the PyTorch CNN, same recipe
    python bench/time_to_accuracy.py --datasets sst2 --targets 0.84
    python bench/time_to_accuracy.py --datasets imdb  # presets vs fastText, to test accuracy

IMDB is a race of its own (bench/imdb_race.py): the fasttext presets, TF-IDF and the
CNN through `textclf train`, beside fastText's own trainer, each timed from its
process start to its final test score.

Recipe (the `kim` preset, non-static GloVe 100-d): filter widths 3/4/5 x 100,
dropout 0.5, Adadelta (lr 1, rho 0.95, eps 1e-6), batch 50, max-norm 3 on the
head, max_len 64, the project's bucketed batches. The dev set is scored every
`--eval_every` steps; a run stops when dev accuracy reaches the target (or after
`--max_epochs`). Each (dataset, framework) runs in its own process; the time is
measured from that process's start, so it includes imports, reading the data
and vectors, building the model and compiling. The PyTorch model
(bench/torch_reference.KimCNN) gets the same vocabulary, vectors, batches and
batch order from the project's data pipeline.

Ours runs twice per dataset, as the CLI would on a user's machine: first with an
empty compilation cache (every step compiled), then with the cache that run
filled (textclf_jax/compile_cache.py: compiled steps loaded from disk). The
cache is a temporary folder of this benchmark, not the user's.
"""

from __future__ import annotations

import time

START = time.perf_counter()  # before the heavy imports

import argparse  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402

from textclf_jax.runtime import bootstrap, compile_cache  # noqa: E402
import numpy as np  # noqa: E402

SHARED = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..",
                                      "shared"))
DATA_DIR = os.environ.get("TEXTCLF_DATA_DIR", os.path.join(SHARED, "datasets"))
VECTORS = os.path.join(SHARED, "embeddings", "glove.6B.100d.subset.txt.gz")


def recipe(dataset: str, data_dir: str, vectors: str):
  from textclf_jax import config as config_lib

  config = config_lib.load_preset("kim")
  with config.unlocked():
    config.dataset, config.data_dir = dataset, data_dir
    config.embedding, config.vectors, config.embed_dim = "non-static", vectors, 100
  return config


def run_jax(config, args) -> dict:
  bootstrap.start()  # as the CLI does (not for PyTorch); the parent points the cache at its folder
  import jax

  from textclf_jax.training import build, evaluate
  from textclf_jax.data.pipeline import prepare
  from textclf_jax.training.steps import init_metrics

  prepared = prepare(config, fold=0)
  data_s = time.perf_counter() - START
  train_data, dev = prepared.splits["train"], prepared.splits["dev"]
  mesh = build.make_mesh(config)
  steps_per_epoch = -(-len(train_data) // config.batch_size)
  step_fns, state = build.make_steps(config, prepared.encoder.vocab_size, len(prepared.label_names),
                                     False, mesh, steps_per_epoch * args.max_epochs,
                                     vectors=prepared.vectors)
  batcher = build.make_batcher(config, mesh)
  metrics, step, history = init_metrics(), 0, []
  for epoch in range(args.max_epochs):
    for index in batcher.train_plan(train_data, config.seed, epoch):
      batch = build.device_batch(batcher, train_data, index, mesh)
      state, metrics = step_fns.train_step(state, batch, metrics)
      step += 1
      if step % args.eval_every == 0:
        probs = evaluate.predict_probs(step_fns, state, dev, batcher)
        accuracy = float(np.mean(probs.argmax(-1) == dev.labels))
        history.append((step, round(time.perf_counter() - START, 2), round(accuracy, 4)))
        if accuracy >= args.target:
          return {"reached": True, "seconds": time.perf_counter() - START, "steps": step,
                  "accuracy": accuracy, "data_s": data_s, "history": history,
                  "device": str(jax.devices()[0])}
  return {"reached": False, "seconds": time.perf_counter() - START, "steps": step,
          "accuracy": history[-1][2] if history else 0.0, "data_s": data_s, "history": history}


def run_torch(config, args) -> dict:
  import torch
  from torch import nn

  from textclf_jax.training import build
  from textclf_jax.data.pipeline import prepare
  from torch_reference import KimCNN

  if args.torch_threads:
    torch.set_num_threads(args.torch_threads)
  prepared = prepare(config, fold=0)
  data_s = time.perf_counter() - START
  train_data, dev = prepared.splits["train"], prepared.splits["dev"]
  torch.manual_seed(config.seed)
  model = KimCNN(prepared.encoder.vocab_size, config.embed_dim, len(prepared.label_names),
                 tuple(config.filter_widths), config.num_filters, config.dropout)
  with torch.no_grad():
    model.embed.weight.copy_(torch.from_numpy(prepared.vectors))
    model.embed.weight[0].zero_()
  opt = torch.optim.Adadelta(model.parameters(), lr=config.learning_rate,
                             rho=config.adadelta_rho, eps=config.adadelta_eps)
  loss_fn = nn.CrossEntropyLoss()
  batcher = build.make_batcher(config, build.make_mesh(config))

  def tensors(batch):
    return (torch.from_numpy(batch["tokens"]).long(), torch.from_numpy(batch["lengths"]).long(),
            torch.from_numpy(batch["labels"]).long())

  def dev_accuracy():
    model.eval()
    correct = 0
    with torch.no_grad():
      for index in batcher.eval_plan(dev):
        tokens, lengths, labels = tensors(batcher.make_batch(dev, index))
        n = len(index)
        correct += int((model(tokens, lengths)[:n].argmax(-1) == labels[:n]).sum())
    model.train()
    return correct / len(dev)

  step, history = 0, []
  model.train()
  for epoch in range(args.max_epochs):
    for index in batcher.train_plan(train_data, config.seed, epoch):
      tokens, lengths, labels = tensors(batcher.make_batch(train_data, index))
      opt.zero_grad(set_to_none=True)
      loss_fn(model(tokens, lengths), labels).backward()
      opt.step()
      with torch.no_grad():  # max-norm on the head's rows (one per class)
        w = model.head.weight
        w.mul_(torch.clamp(config.max_norm / w.norm(dim=1, keepdim=True).clamp_min(1e-12),
                           max=1.0))
      step += 1
      if step % args.eval_every == 0:
        accuracy = dev_accuracy()
        history.append((step, round(time.perf_counter() - START, 2), round(accuracy, 4)))
        if accuracy >= args.target:
          return {"reached": True, "seconds": time.perf_counter() - START, "steps": step,
                  "accuracy": accuracy, "data_s": data_s, "history": history}
  return {"reached": False, "seconds": time.perf_counter() - START, "steps": step,
          "accuracy": history[-1][2] if history else 0.0, "data_s": data_s, "history": history}


def main():
  parser = argparse.ArgumentParser(description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--datasets", default="mr,sst2")
  parser.add_argument("--targets", default="0.77,0.80", help="dev accuracy, one per dataset")
  parser.add_argument("--torch", action="store_true", help="also the PyTorch CNN")
  parser.add_argument("--torch_threads", type=int, default=0,
                      help="PyTorch intra-op threads (0: its default; 1 is steadier on a "
                           "busy machine, see throughput.py)")
  parser.add_argument("--eval_every", type=int, default=50, help="steps between dev scores")
  parser.add_argument("--max_epochs", type=int, default=5)
  parser.add_argument("--data_dir", default=DATA_DIR)
  parser.add_argument("--vectors", default=VECTORS)
  parser.add_argument("--imdb_runs", default="fastText,fastText_paper,fasttext,fasttext_nb,"
                      "fasttext_nb3,tfidf,cnn", help="IMDB: runs of bench/imdb_race.RUNS")
  parser.add_argument("--_run", default="", help=argparse.SUPPRESS)  # framework:dataset
  parser.add_argument("--target", type=float, default=0.0, help=argparse.SUPPRESS)
  args = parser.parse_args()
  if args._run:
    framework, dataset = args._run.split(":")
    config = recipe(dataset, args.data_dir, args.vectors)
    result = (run_torch if framework == "torch" else run_jax)(config, args)
    print(json.dumps(result))
    return
  datasets, targets = args.datasets.split(","), [float(t) for t in args.targets.split(",")]
  if "imdb" in datasets:
    import imdb_race
    imdb_race.main(args.imdb_runs.split(","), args.data_dir, args.vectors)
    targets = [t for d, t in zip(datasets, targets + [0.0] * len(datasets)) if d != "imdb"]
    datasets = [d for d in datasets if d != "imdb"]
    if not datasets:
      return
  print(f"# Kim CNN non-static (kim preset), seconds from process start to dev accuracy; "
        f"dev scored every {args.eval_every} steps; load average {os.getloadavg()[0]:.1f}")
  print("| dataset | target | run | reached | seconds | data+vectors s | steps "
        "| dev accuracy |")
  print("|---|---|---|---|---|---|---|---|")
  runs = [("jax", "ours, empty compilation cache"), ("jax", "ours, cache filled by that run")]
  runs += [("torch", "PyTorch")] if args.torch else []
  for dataset, target in zip(datasets, targets):
    with tempfile.TemporaryDirectory() as cache:
      for framework, label in runs:
        cmd = [sys.executable, os.path.abspath(__file__), "--_run", f"{framework}:{dataset}",
               "--target", str(target), "--eval_every", str(args.eval_every), "--max_epochs",
               str(args.max_epochs), "--data_dir", args.data_dir, "--vectors", args.vectors,
               "--torch_threads", str(args.torch_threads)]
        env = {**os.environ, compile_cache.ENV: cache}
        out = subprocess.run(cmd, capture_output=True, text=True, check=False, env=env)
        if out.returncode:
          raise RuntimeError(f"{label} {dataset} failed:\n{out.stderr[-3000:]}")
        r = json.loads(out.stdout.strip().splitlines()[-1])
        print(f"| {dataset} | {target:.2f} | {label} | {'yes' if r['reached'] else 'no'} | "
              f"{r['seconds']:.1f} | {r['data_s']:.1f} | {r['steps']} | {r['accuracy']:.4f} |",
              flush=True)


if __name__ == "__main__":
  main()
