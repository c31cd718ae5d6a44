"""IMDB time to accuracy: the project's presets against fastText's own trainer.

    python bench/time_to_accuracy.py --datasets imdb            # every run below
    python bench/time_to_accuracy.py --datasets imdb --imdb_runs fasttext,fastText
    pip install ".[bench]"                                       # fasttext (and torch)

Each run is one process, timed from its start (spawned here) to its exit: Python
and JAX imports, reading and tokenising the data, compiling, training, scoring dev
and test, writing the run directory. Ours are `textclf train` exactly as a user runs
it (`RUNS`; the test accuracy is that of the run's dev-selected checkpoint, from its
results.json). The fasttext presets run twice: with an empty compilation cache, then
with the cache that run filled. fastText (`pip install fasttext`, the Python binding
of the same C++ trainer as its CLI) reads files written here before any timing: the
same train/test split as our runs (train minus our 10% dev split: 22,500 reviews;
test: 25,000), tokenised by the project's tokeniser (every token, no max_len), as
`__label__L tok tok ...` lines, the training lines shuffled (seed 0; IMDB's train
file is sorted by label and fastText reads in file order); it trains with
-wordNgrams 2 and -thread = the CPU count. CPU seconds are the child's user + sys.
"""

from __future__ import annotations

import json
import os
import random
import resource
import subprocess
import sys
import tempfile
import time

# name -> (label, kind, arguments). Add a preset (e.g. a chunk-and-pool one) as a row.
RUNS = {
    "fasttext": ("fasttext preset", "textclf", ["--config", "fasttext"]),
    "fasttext_nb": ("fasttext_nb preset", "textclf", ["--config", "fasttext_nb"]),
    "fasttext_nb3": ("fasttext_nb3 preset", "textclf", ["--config", "fasttext_nb3"]),
    "tfidf": ("tfidf preset (TF-IDF uni+bigrams, logistic regression)", "textclf",
              ["--config", "tfidf"]),
    "cnn": ("cnn preset, issue 19's command (max_len 400, non-static GloVe)", "textclf",
            ["--config", "cnn", "--config.max_len=400", "--config.embed_dim=100",
             "--config.embedding=non-static", "--config.vectors={vectors}"]),
    "cnn_doc": ("cnn_doc preset (chunk-and-pool, whole texts, non-static GloVe)", "textclf",
                ["--config", "cnn_doc", "--config.embedding=non-static",
                 "--config.vectors={vectors}"]),
    "fastText": ("fastText -wordNgrams 2 -lr 1.0 (dim 100, epoch 5)", "fasttext",
                 {"wordNgrams": 2, "lr": 1.0, "dim": 100, "epoch": 5}),
    "fastText_paper": ("fastText as its paper's sentiment runs (-wordNgrams 2 -dim 10 "
                       "-lr 0.1 -bucket 10M, epoch 5)", "fasttext",
                       {"wordNgrams": 2, "lr": 0.1, "dim": 10, "epoch": 5,
                        "bucket": 10_000_000}),
}
CACHED = ("fasttext", "fasttext_nb", "fasttext_nb3")  # run with an empty, then a filled compilation cache
REFERENCE = "fastText"  # the ratios' denominator
TARGET = 0.90

FASTTEXT_SCRIPT = """
import json, sys, fasttext
model = fasttext.train_supervised(input=sys.argv[1], verbose=0, **json.loads(sys.argv[3]))
n, precision, _ = model.test(sys.argv[2])
print(json.dumps({"test_accuracy": precision, "examples": n}))
"""


def write_fasttext_files(data_dir: str, folder: str) -> tuple:
  """IMDB's train (minus our dev split) and test as fastText input files."""
  from textclf_jax import config as config_lib
  from textclf_jax.data import splits as splits_lib
  from textclf_jax.data.sources import load_source
  from textclf_jax.text.tokenize import Tokenizer

  config = config_lib.apply_overrides(config_lib.load_preset("fasttext"),
                                      ["dataset=imdb", f"data_dir={data_dir}"])
  splits = splits_lib.make_splits(load_source(config), config)
  tokenizer = Tokenizer(config.lowercase, config.remove_stopwords, config.keep_negations)
  paths = []
  for name in ("train", "test"):
    split = splits[name]
    lines = [f"__label__{label} {' '.join(tokenizer(text))}\n"
             for text, label in zip(split.texts, split.labels)]
    if name == "train":
      random.Random(0).shuffle(lines)
    paths.append(os.path.join(folder, f"{name}.txt"))
    with open(paths[-1], "w", encoding="utf-8") as f:
      f.writelines(lines)
  return tuple(paths)


def timed(cmd: list, env: dict) -> tuple:
  """(wall seconds, CPU seconds, stdout) of `cmd` run to its end."""
  before = resource.getrusage(resource.RUSAGE_CHILDREN)
  start = time.perf_counter()
  out = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
  wall = time.perf_counter() - start
  after = resource.getrusage(resource.RUSAGE_CHILDREN)
  if out.returncode:
    raise RuntimeError(f"{' '.join(cmd[:6])} ... failed:\n{out.stderr[-3000:]}")
  cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
  return wall, cpu, out.stdout


def run_textclf(args: list, data_dir: str, vectors: str, cache: str, workdir: str) -> dict:
  cmd = [sys.executable, "-m", "textclf_jax", "train",
         *[a.format(vectors=vectors) for a in args], "--config.dataset=imdb",
         f"--config.data_dir={data_dir}", "--config.wandb=disabled",
         "--config.progress_bar=false", "--workdir", workdir]
  wall, cpu, _ = timed(cmd, {**os.environ, "TEXTCLF_COMPILATION_CACHE": cache})
  with open(os.path.join(workdir, "results.json"), encoding="utf-8") as f:
    results = json.load(f)
  dev = results.get("dev", {}).get("accuracy")
  return {"wall": wall, "cpu": cpu, "test": results["test"]["accuracy"], "dev": dev}


def run_fasttext(params: dict, files: tuple) -> dict:
  params = {"thread": os.cpu_count() or 1, **params}
  cmd = [sys.executable, "-c", FASTTEXT_SCRIPT, *files, json.dumps(params)]
  wall, cpu, out = timed(cmd, dict(os.environ))
  return {"wall": wall, "cpu": cpu, "test": json.loads(out.strip().splitlines()[-1])[
      "test_accuracy"], "dev": None}


def main(names: list, data_dir: str, vectors: str):
  """Runs `names` (keys of RUNS) one after another; prints a markdown table."""
  unknown = [n for n in names if n not in RUNS]
  if unknown:
    raise SystemExit(f"--imdb_runs: unknown {', '.join(unknown)}; expected {', '.join(RUNS)}")
  rows = []
  with tempfile.TemporaryDirectory() as tmp:
    start, cpu = time.perf_counter(), time.process_time()
    files = write_fasttext_files(data_dir, tmp) if any(
        RUNS[n][1] == "fasttext" for n in names) else None
    print(f"# IMDB (25,000 test reviews), one process per run, seconds from its start; "
          f"{os.cpu_count()} CPUs; load average before: {os.getloadavg()[0]:.1f}", flush=True)
    if files:
      print(f"# reading, tokenising and writing fastText's input (not in its rows): "
            f"{time.perf_counter() - start:.1f} s, {time.process_time() - cpu:.1f} CPU s")
    for name in names:
      label, kind, spec = RUNS[name]
      if kind == "fasttext":
        rows.append((name, label, run_fasttext(spec, files), os.getloadavg()[0]))
        continue
      cache = os.path.join(tmp, f"cache-{name}")
      tries = (["empty compilation cache", "cache filled by that run"] if name in CACHED
               else [""])
      for i, how in enumerate(tries):
        result = run_textclf(spec, data_dir, vectors, cache, os.path.join(tmp, f"{name}-{i}"))
        rows.append((name, f"{label}, {how}" if how else label, result, os.getloadavg()[0]))
      print(f"[imdb] {name} done", file=sys.stderr, flush=True)
  reference = next((r for n, _, r, _ in rows if n == REFERENCE), None)
  print(f"| run | test accuracy | ≥ {TARGET:.2f} | seconds from process start | CPU s "
        f"| × {REFERENCE}'s seconds | dev accuracy | load after |")
  print("|---|---|---|---|---|---|---|---|")
  for name, label, r, load in rows:
    ratio = f"{r['wall'] / reference['wall']:.2f}" if reference else "–"
    dev = f"{r['dev']:.4f}" if r["dev"] is not None else "–"
    print(f"| {label} | {r['test']:.4f} | {'yes' if r['test'] >= TARGET else 'no'} "
          f"| {r['wall']:.1f} | {r['cpu']:.1f} | {ratio} | {dev} | {load:.1f} |", flush=True)
  return rows
