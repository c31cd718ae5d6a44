"""The accelerator check (issue 18): one command that measures the project on a GPU.

Run it through bench/accelerator_check.sh, which installs the carried wheels, finds
the carried data and calls this file:

    bash bench/accelerator_check.sh [OUT]             # on the GPU: about 8 minutes
    bash bench/accelerator_check.sh [OUT] --dry-run   # on a CPU: tiny sizes, ~1 minute

Five parts, each in its own processes with its own time limit, so that a part that
fails or runs out of time leaves the others' figures standing:

  1. env               jax.devices(), versions, measured matmul peaks, the trainer's mesh
                       (`python -m textclf_jax mesh`), nvidia-smi
  2. tests             the GPU-meaningful test subset, `pytest -x -q`, in four groups
                       (models, steps, checkpoint/resume, many models); a failing
                       checkpoint/resume or many-models group on a GPU is run again with
                       XLA's deterministic ops, to tell rounding from a bug
  3. throughput        bench/throughput.py's `bench_one` for cnn, lstm and hybrid at the
                       SST-2 (20) and IMDB (400) shapes, float32 and bfloat16, batch 50 and
                       512; model FLOP/s against the H200's peaks (PEAKS below) and the peaks
                       measured in part 1; bench/torch_reference.py on the same device
                       when torch imports
  4. many_models       bench/many_models.py: 10 seeds as one vmapped program vs 10 solo runs
  5. time_to_accuracy  seconds from process start to 0.80 dev on SST-2 (Kim CNN, as
                       bench/time_to_accuracy.py) and to 0.90 test on IMDB (issue 19's
                       CNN command), each with an empty and then a filled compilation cache

Everything lands in OUT as at most 8 files (what the device tool brings back):
summary.json, summary.md, check.log and one log per part (OUT_FILES). The part
budgets (BUDGETS) add up to the whole budget (--budget, default 465 s); time a
part leaves unused passes to the next ones.
"""

from __future__ import annotations

import time

SPAWNED = time.time()  # as early as possible: a child's "from process start" figures

import argparse  # noqa: E402
import gzip  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import random  # noqa: E402
import re  # noqa: E402
import shlex  # noqa: E402
import shutil  # noqa: E402
import signal  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)

# Peak dense matrix throughput of one H200 (SXM), FLOP/s. bf16: what a 8192^3 bf16
# product reached on this workplace's H200s (769-798 TFLOP/s; NVIDIA's figure is 989).
# TF32: half the bf16 rate, as on every Hopper (NVIDIA: 494 of 989); XLA's DEFAULT
# precision lets float32 dots and convolutions run as TF32 on the GPU. fp32: the
# CUDA cores without tensor cores (NVIDIA: 67 TFLOP/s).
PEAKS = {"bf16": 790e12, "tf32": 395e12, "fp32": 67e12}
FASTTEXT_IMDB = ("fastText: 89.9% test on IMDB in 19 s of training on the project's 2-core "
                 "CPU (issue 19)")

OUT_FILES = ("summary.json", "summary.md", "check.log", "environment.txt", "tests.log",
             "throughput.log", "many_models.log", "time_to_accuracy.log")
PARTS = ("env", "tests", "throughput", "many_models", "time_to_accuracy")
DEFAULT_BUDGET = {"real": 465, "dry": 200}  # seconds for the whole check
BUDGETS = {  # seconds per part, real run and dry run (shares of the whole)
    "real": {"env": 35, "tests": 140, "throughput": 130, "many_models": 60,
             "time_to_accuracy": 100},
    "dry": {"env": 20, "tests": 25, "throughput": 35, "many_models": 30,
            "time_to_accuracy": 40},
}

# The test subset that means something on a GPU: groups run one after another,
# each `pytest -x -q`, so that a failure in one does not hide the others.
TEST_GROUPS = {
    "real": [
        ("models", ["tests/test_models.py", "tests/test_losses.py", "tests/test_optim.py",
                    "tests/test_conv_pool.py"]),
        ("steps", ["tests/test_train_step.py", "tests/test_sparse_embed.py",
                   "-k", "not simulated"]),
        ("checkpoint_resume", ["tests/test_end_to_end.py", "-k",
                               "kill_and_resume or train_eval_predict"]),
        ("many_models", ["tests/test_many.py", "tests/test_group_paths.py", "-k",
                         "bit_for_bit or seeds_match_solo"]),
    ],
    "dry": [
        ("models", ["tests/test_losses.py", "-k", "softmax_cross_entropy_by_hand"]),
        ("steps", ["tests/test_optim.py", "-k", "schedules_values"]),
    ],
}
RERUN_DETERMINISTIC = ("checkpoint_resume", "many_models")
DETERMINISTIC_FLAG = "--xla_gpu_deterministic_ops=true"

THROUGHPUT = {  # shapes are tokens per example; steps are timed steps per shape
    "real": {"models": ["cnn", "lstm", "hybrid"], "shapes": {"imdb": 400, "sst2": 20},
             "batches": [512, 50], "dtypes": ["bfloat16", "float32"],
             "steps": {"imdb": 20, "sst2": 50}, "vocab": 20000, "embed_dim": 100},
    "dry": {"rows": [("cnn", "sst2", 4, "float32"), ("hybrid", "sst2", 4, "bfloat16")],
            "shapes": {"sst2": 8}, "steps": {"sst2": 2}, "vocab": 300, "embed_dim": 16},
}


# --------------------------------------------------------------------------- children

def child_env(args):
  """Versions, devices and measured matmul peaks, as one JSON line."""
  import importlib.metadata as md

  import jax
  import jax.numpy as jnp
  import numpy as np

  versions = {}
  for name in ("jax", "jaxlib", "jax-cuda13-plugin", "jax-cuda13-pjrt", "jax-cuda12-plugin",
               "flax", "optax", "orbax-checkpoint", "numpy", "ml_collections",
               "snowballstemmer", "filelock", "tqdm", "torch", "scikit-learn", "pytest",
               "hypothesis", "wandb"):
    try:
      versions[name] = md.version(name)
    except md.PackageNotFoundError:
      pass
  devices = jax.devices()
  out = {"python": sys.version.split()[0], "versions": versions,
         "backend": jax.default_backend(), "devices": [str(d) for d in devices],
         "device_kind": devices[0].device_kind, "device_count": len(devices),
         "default_matmul_precision": str(getattr(jax.config, "jax_default_matmul_precision",
                                                 "?")),
         "XLA_FLAGS": os.environ.get("XLA_FLAGS", "")}
  try:
    stats = devices[0].memory_stats() or {}
    out["memory_bytes_limit"] = stats.get("bytes_limit")
  except Exception:  # noqa: BLE001  (CPU devices have none)
    pass
  n = args.matmul_n if jax.default_backend() != "cpu" else min(args.matmul_n, 1024)
  peaks = {}
  for label, dtype, precision in (("bf16", jnp.bfloat16, None), ("fp32_default", jnp.float32, None),
                                  ("fp32_highest", jnp.float32, "highest")):
    a = jnp.asarray(np.random.default_rng(0).standard_normal((n, n)), dtype)
    f = jax.jit(lambda x, p=precision: jnp.matmul(x, x, precision=p))
    f(a).block_until_ready()
    start = time.perf_counter()
    for _ in range(args.matmul_repeats):
      y = f(a)
    y.block_until_ready()
    peaks[label] = 2 * n ** 3 * args.matmul_repeats / (time.perf_counter() - start)
  out["matmul_n"] = n
  out["measured_peaks"] = peaks
  try:
    import torch
    out["torch"] = {"version": torch.__version__, "cuda": torch.cuda.is_available(),
                    "device": torch.cuda.get_device_name(0) if torch.cuda.is_available()
                    else "cpu"}
  except Exception as e:  # noqa: BLE001
    out["torch"] = {"error": f"{type(e).__name__}: {e}"}
  print("ENV " + json.dumps(out), flush=True)


def child_throughput(args):
  """bench/throughput.py's bench_one for each row of the spec: one `ROW {json}` line
  per row, as soon as it is timed (a time limit keeps the rows before it)."""
  spec = json.loads(args.spec)
  sys.path.insert(0, HERE)
  from textclf_jax.runtime import compile_cache, hostmem
  hostmem.keep_heap_mapped()
  # The row's step is compiled twice (XLA's cost analysis, then the call): the cache
  # makes the second a load. compile_s is the first compilation, from an empty cache.
  compile_cache.enable()
  import jax
  import throughput
  for row in spec["rows"]:
    model, shape, batch, dtype = row
    length = spec["shapes"][shape]
    try:
      r = throughput.bench_one(model, length, batch, spec["steps"][shape], spec["vocab"],
                               "non-static", spec["embed_dim"], dtype)
      r["shape"] = shape
      r["device_kind"] = jax.devices()[0].device_kind
    except Exception as e:  # noqa: BLE001  (one row's failure is that row's figure)
      r = {"model": model, "shape": shape, "length": length, "batch": batch, "dtype": dtype,
           "error": f"{type(e).__name__}: {str(e)[:400]}"}
    print("ROW " + json.dumps(r), flush=True)


def child_torch(args):
  """bench/torch_reference.py's bench_torch for each row, on the GPU when there is one."""
  spec = json.loads(args.spec)
  sys.path.insert(0, HERE)
  import torch
  from torch_reference import bench_torch
  device = "cuda" if torch.cuda.is_available() else "cpu"
  # As XLA's DEFAULT precision: float32 matrix products may run as TF32.
  torch.backends.cuda.matmul.allow_tf32 = True
  torch.backends.cudnn.allow_tf32 = True
  if device == "cpu":
    torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))
  for row in spec["rows"]:
    model, shape, batch, dtype = row
    length = spec["shapes"][shape]
    try:
      r = bench_torch(model, length, batch, spec["steps"][shape], spec["vocab"], "non-static",
                      spec["embed_dim"], device=device, compute_dtype=dtype)
      r.update(model=model, shape=shape, length=length, batch=batch)
    except Exception as e:  # noqa: BLE001
      r = {"model": model, "shape": shape, "length": length, "batch": batch, "dtype": dtype,
           "error": f"{type(e).__name__}: {str(e)[:400]}"}
    print("ROW " + json.dumps(r), flush=True)


def child_tta(args):
  """One training run that stops at a target accuracy on `--split`; one `TTA {json}`
  line. Seconds are counted from `--spawned` (the parent's clock just before it
  started this process): interpreter start, imports, data, compilation, training."""
  spawned = args.spawned or SPAWNED
  from textclf_jax.runtime import compile_cache, hostmem
  hostmem.keep_heap_mapped()
  cache = compile_cache.enable()
  import jax
  import numpy as np

  from textclf_jax import config as config_lib
  from textclf_jax.data.pipeline import prepare
  from textclf_jax.training.steps import init_metrics
  from textclf_jax.training import build
  from textclf_jax.training.evaluate import predict_probs

  config = config_lib.apply_overrides(config_lib.load_preset(args.preset),
                                      [f"dataset={args.dataset}", f"data_dir={args.data_dir}",
                                       "wandb=disabled", "progress_bar=False",
                                       *json.loads(args.overrides)])
  prepared = prepare(config, fold=0)
  data_s = time.time() - spawned
  print("PROGRESS " + json.dumps({"data_s": data_s}), flush=True)
  train_data, scored = prepared.splits["train"], prepared.splits[args.split]
  mesh = build.make_mesh(config)
  steps_per_epoch = -(-len(train_data) // config.batch_size)
  step_fns, state = build.make_steps(config, prepared.encoder.vocab_size, len(prepared.label_names),
                                     prepared.multi_label, mesh,
                                     steps_per_epoch * args.max_epochs, vectors=prepared.vectors)
  batcher = build.make_batcher(config, mesh)
  eval_config = config.copy_and_resolve_references()
  with eval_config.unlocked():
    eval_config.batch_size = args.eval_batch_size or config.batch_size
  scorer = build.make_batcher(eval_config, mesh)
  metrics, step, history, first_step_s = init_metrics(), 0, [], None
  best = (0.0, 0, 0.0)  # accuracy, step, seconds
  result = None
  for epoch in range(args.max_epochs):
    for index in batcher.train_plan(train_data, config.seed, epoch):
      state, metrics = step_fns.train_step(state, build.device_batch(batcher, train_data, index,
                                                                     mesh), metrics)
      step += 1
      if first_step_s is None:
        jax.block_until_ready(metrics)
        first_step_s = time.time() - spawned
      if step % args.eval_every == 0:
        probs = predict_probs(step_fns, state, scored, scorer)
        accuracy = float(np.mean(probs.argmax(-1) == scored.labels))
        seconds = time.time() - spawned
        history.append((step, round(seconds, 2), round(accuracy, 4)))
        print("PROGRESS " + json.dumps({"history": history[-1:],
                                        "first_step_s": first_step_s}), flush=True)
        if accuracy > best[0]:
          best = (accuracy, step, seconds)
        if accuracy >= args.target:
          result = {"reached": True, "seconds": seconds, "steps": step, "accuracy": accuracy}
          break
    if result:
      break
  if result is None:
    result = {"reached": False, "seconds": time.time() - spawned, "steps": step,
              "accuracy": history[-1][2] if history else 0.0}
  result.update(dataset=args.dataset_name or args.dataset, split=args.split,
                target=args.target, preset=args.preset, data_s=data_s,
                first_step_s=first_step_s, best_accuracy=best[0], best_step=best[1],
                best_seconds=best[2], history=history, train_examples=len(train_data),
                scored_examples=len(scored), compilation_cache=bool(cache),
                device=str(jax.devices()[0]))
  print("TTA " + json.dumps(result), flush=True)


# --------------------------------------------------------------------------- the driver

class Clock:
  """The whole check's deadline, shared out between the parts."""

  def __init__(self, budget: float, budgets: dict, parts=PARTS):
    self.end = time.time() + budget
    self.budgets = budgets
    self.parts = [p for p in PARTS if p in parts]

  def remaining(self) -> float:
    return self.end - time.time()

  def for_part(self, part: str) -> float:
    """This part's limit: its budget's share of what is left, against the budgets of
    the parts not run yet (time an earlier part left unused is shared out)."""
    later = self.parts[self.parts.index(part):]
    return self.remaining() * self.budgets[part] / sum(self.budgets[p] for p in later)


class Check:
  def __init__(self, args):
    self.args = args
    self.mode = "dry" if args.dry_run else "real"
    self.out = os.path.abspath(args.out)
    os.makedirs(self.out, exist_ok=True)
    for name in OUT_FILES:  # a fresh report, even in a folder used before
      path = os.path.join(self.out, name)
      if os.path.exists(path) and name != "check.log":
        os.remove(path)
    self.work = tempfile.mkdtemp(prefix="accelerator_check_")
    self.python = args.python or sys.executable
    self.wanted = [p for p in args.parts.split(",") if p] if args.parts else list(PARTS)
    unknown = set(self.wanted) - set(PARTS)
    if unknown:
      raise SystemExit(f"accelerator_check: unknown parts {sorted(unknown)} (parts: {PARTS})")
    budget = args.budget or DEFAULT_BUDGET[self.mode]
    self.clock = Clock(budget, BUDGETS[self.mode], self.wanted)
    self.summary = {"mode": self.mode, "started": time.strftime("%Y-%m-%d %H:%M:%S"),
                    "budget_s": budget,
                    "peaks_assumed": PEAKS, "parts": {}}
    self.env = {}
    self.data_dir = args.data_dir
    self.vectors = args.vectors

  # ---- helpers
  def log(self, text: str):
    print(text, flush=True)

  def path(self, name: str) -> str:
    return os.path.join(self.out, name)

  def child_env(self, **extra) -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        [REPO] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p])
    env.setdefault("WANDB_MODE", "disabled")
    env.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")
    env.setdefault("PYTHONUNBUFFERED", "1")
    env.setdefault("TEXTCLF_COMPILATION_CACHE", "off")
    env.update({k: v for k, v in extra.items() if v is not None})
    return env

  def run(self, cmd: list, log_name: str, timeout: float, env: dict | None = None,
          title: str = "") -> dict:
    """Runs `cmd` in its own process group, appending its output to OUT/log_name;
    on timeout the whole group is ended. Returns rc, timed_out, seconds, output."""
    path = self.path(log_name)
    with open(path, "a", encoding="utf-8") as log:
      log.write(f"\n### {title or ' '.join(cmd[:3])}\n$ {shlex.join(cmd)}\n"
                f"# limit {timeout:.0f} s\n")
      log.flush()
      offset = log.tell()
      started = time.time()
      if timeout < 1:
        log.write("# not started: no time left\n")
        return {"rc": None, "timed_out": True, "seconds": 0.0, "output": "", "spawned": started}
      proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, cwd=REPO,
                              env=env or self.child_env(), start_new_session=True)
      timed_out = False
      try:
        rc = proc.wait(timeout=timeout)
      except subprocess.TimeoutExpired:
        timed_out = True
        for sig, wait in ((signal.SIGTERM, 5), (signal.SIGKILL, 5)):
          try:
            os.killpg(proc.pid, sig)
          except ProcessLookupError:
            break
          try:
            proc.wait(timeout=wait)
            break
          except subprocess.TimeoutExpired:
            continue
        rc = proc.returncode
      seconds = time.time() - started
    with open(path, "a", encoding="utf-8") as log:
      log.write(f"\n# exit {rc}{' (time limit)' if timed_out else ''} after {seconds:.1f} s\n")
    with open(path, encoding="utf-8", errors="replace") as log:
      log.seek(offset)
      output = log.read()
    return {"rc": rc, "timed_out": timed_out, "seconds": seconds, "output": output,
            "spawned": started}

  def me(self, *argv) -> list:
    return [self.python, os.path.abspath(__file__), *argv]

  def part(self, name: str, fn):
    limit = self.clock.for_part(name)
    self.log(f"\n=== {name}: limit {limit:.0f} s ({self.clock.remaining():.0f} s left in all)")
    started = time.time()
    record = {"status": "skipped", "seconds": 0.0}
    if limit < 5:
      record["note"] = "no time left"
    else:
      try:
        record = fn(limit) or {}
      except Exception as e:  # noqa: BLE001  (a bug in one part leaves the others)
        import traceback
        record = {"status": "failed", "error": f"{type(e).__name__}: {e}",
                  "traceback": traceback.format_exc()[-2000:]}
      record["seconds"] = round(time.time() - started, 1)
    self.summary["parts"][name] = record
    self.log(f"=== {name}: {record.get('status')} in {record['seconds']} s"
             + (f" ({record['note']})" if record.get("note") else "")
             + (f" ({record['error']})" if record.get("error") else ""))
    self.write_summary()

  # ---- 1. environment
  def part_env(self, limit: float) -> dict:
    n, repeats = (8192, 10) if self.mode == "real" else (256, 3)
    end = time.time() + limit
    r = self.run(self.me("_env", "--matmul_n", str(n), "--matmul_repeats", str(repeats)),
                 "environment.txt", min(limit * 0.6, end - time.time()), title="devices, versions, matmul peaks")
    env = {}
    for line in r["output"].splitlines():
      if line.startswith("ENV "):
        env = json.loads(line[4:])
    self.env = env
    mesh = self.run([self.python, "-m", "textclf_jax", "mesh"], "environment.txt",
                    min(30, end - time.time()), title="textclf mesh")
    mesh_line = next((l for l in mesh["output"].splitlines() if l.startswith("[textclf]")), "")
    if shutil.which("nvidia-smi"):
      self.run(["nvidia-smi", "--query-gpu=name,memory.total,driver_version,clocks.max.sm,"
                "power.limit", "--format=csv"], "environment.txt",
               min(15, end - time.time()), title="nvidia-smi")
    with open(self.path("environment.txt"), "a", encoding="utf-8") as f:
      f.write("\n### environment variables\n")
      for k in sorted(os.environ):
        if k.startswith(("XLA_", "JAX_", "CUDA_", "TEXTCLF_", "WANDB_", "PYTHONPATH")):
          f.write(f"{k}={os.environ[k]}\n")
    ok = bool(env) and r["rc"] == 0 and mesh["rc"] == 0
    figures = {k: env.get(k) for k in ("python", "backend", "device_kind", "device_count",
                                       "devices", "versions", "default_matmul_precision",
                                       "measured_peaks", "memory_bytes_limit", "torch")}
    figures["mesh"] = mesh_line
    return {"status": "ok" if ok else ("timeout" if r["timed_out"] else "failed"),
            "log": "environment.txt", **figures}

  @property
  def on_gpu(self) -> bool:
    return self.env.get("backend") == "gpu" or "cuda" in str(self.env.get("devices", "")).lower()

  # ---- 2. tests
  def part_tests(self, limit: float) -> dict:
    end = time.time() + limit
    groups = TEST_GROUPS[self.mode]
    results, status = {}, "ok"
    for i, (group, selection) in enumerate(groups):
      # Each group may use what is left, less a fair share kept for the groups after it.
      left = end - time.time()
      share = left * (1.0 if i == len(groups) - 1 else 1.0 / (len(groups) - i) * 1.5)
      res = self.pytest(group, selection, min(left, share))
      if res["status"] == "failed" and self.on_gpu and group in RERUN_DETERMINISTIC:
        left = end - time.time()
        if left > 20:
          flags = f"{os.environ.get('XLA_FLAGS', '')} {DETERMINISTIC_FLAG}".strip()
          res["deterministic_rerun"] = self.pytest(group, selection, left * 0.5,
                                                   XLA_FLAGS=flags)
      results[group] = res
      if res["status"] != "ok" and status == "ok":
        status = res["status"]
    return {"status": status, "log": "tests.log", "groups": results}

  def pytest(self, group: str, selection: list, timeout: float, **env) -> dict:
    cmd = [self.python, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", "-rfE",
           "--durations=5", *selection]
    # At XLA's default optimisation level: tests/conftest.py compiles at level 0 to save
    # CPU time in CI, which on an accelerator would measure unoptimised kernels.
    r = self.run(cmd, "tests.log", timeout,
                 env=self.child_env(**{"TEXTCLF_TEST_XLA_DEFAULT": "1", **env}),
                 title=f"tests: {group}" + (f" ({' '.join(env.values())})" if env else ""))
    counts = {k: int(v) for v, k in re.findall(
        r"(\d+) (passed|failed|errors?|skipped|deselected|xfailed|xpassed)", r["output"])}
    if r["timed_out"]:
      # -q prints one character per test: count the finished ones
      progress = "".join(m.group(1) for m in re.finditer(
          r"^([.FEsxX]+)\s*(?:\[\s*\d+%\])?$", r["output"], re.M))
      counts = {"passed": progress.count("."), "failed": progress.count("F")}
    failed = re.findall(r"^(?:FAILED|ERROR) (\S+)", r["output"], re.M)
    if r["timed_out"]:
      status = "timeout"
    elif r["rc"] == 0:
      status = "ok"
    elif r["rc"] == 5:
      status = "no tests"
    else:
      status = "failed"
    return {"status": status, "rc": r["rc"], "seconds": round(r["seconds"], 1),
            "counts": counts, "failed": failed[:10], "selection": " ".join(selection)}

  # ---- 3. throughput
  def part_throughput(self, limit: float) -> dict:
    cfg = THROUGHPUT[self.mode]
    rows = cfg.get("rows") or [(m, s, b, d) for b in cfg["batches"] for s in cfg["shapes"]
                               for d in cfg["dtypes"] for m in cfg["models"]]
    spec = {"rows": rows, "shapes": cfg["shapes"], "steps": cfg["steps"], "vocab": cfg["vocab"],
            "embed_dim": cfg["embed_dim"]}
    torch_ok = "version" in (self.env.get("torch") or {}) or (
        not self.env and self.importable("torch"))
    end = time.time() + limit
    cache = os.path.join(self.work, "throughput_cache")
    r = self.run(self.me("_throughput", "--spec", json.dumps(spec)), "throughput.log",
                 (end - time.time()) * (0.72 if torch_ok else 1.0),
                 env=self.child_env(TEXTCLF_COMPILATION_CACHE=cache), title="jax rows")
    jax_rows = [json.loads(l[4:]) for l in r["output"].splitlines() if l.startswith("ROW ")]
    torch_rows, torch_note = [], "torch does not import"
    if torch_ok:
      t = self.run(self.me("_torch", "--spec", json.dumps(spec)), "throughput.log",
                   end - time.time(), title="torch rows")
      torch_rows = [json.loads(l[4:]) for l in t["output"].splitlines() if l.startswith("ROW ")]
      torch_note = ("time limit" if t["timed_out"] else
                    f"exit {t['rc']}" if t["rc"] else "")
    table = self.throughput_table(jax_rows, torch_rows)
    with open(self.path("throughput.log"), "a", encoding="utf-8") as f:
      f.write("\n### table\n" + table + "\n")
    errors = [r_ for r_ in jax_rows if "error" in r_]
    done = len(jax_rows) - len(errors)
    status = ("ok" if done == len(rows) and not r["timed_out"] and r["rc"] == 0 else
              "timeout" if r["timed_out"] else "failed")
    return {"status": status, "log": "throughput.log", "rows_planned": len(rows),
            "rows_done": done, "row_errors": [e["error"] for e in errors][:5],
            "torch": torch_note or "ok", "rows": jax_rows, "torch_rows": torch_rows,
            "peaks_used": self.peaks(), "table": table}

  def importable(self, module: str) -> bool:
    r = subprocess.run([self.python, "-c", f"import {module}"], capture_output=True,
                       env=self.child_env(), check=False)
    return r.returncode == 0

  def peaks(self) -> dict:
    """The peaks a row is compared against: the H200's (PEAKS) on an H200, and the
    ones measured in part 1 everywhere."""
    kind = str(self.env.get("device_kind", ""))
    measured = self.env.get("measured_peaks") or {}
    return {"nominal": PEAKS if "H200" in kind.upper() else None,
            "measured": {"bf16": measured.get("bf16"), "fp32": measured.get("fp32_default"),
                         "fp32_highest": measured.get("fp32_highest")}}

  def throughput_table(self, rows: list, torch_rows: list) -> str:
    peaks = self.peaks()
    nominal, measured = peaks["nominal"], peaks["measured"]
    torch_by = {(t["model"], t["shape"], t["batch"], t["dtype"]): t for t in torch_rows}
    head = ("| model | shape | batch x length | dtype | compile s | examples/s | tokens/s "
            "| model GFLOP/step | model TFLOP/s | % nominal peak | % measured peak "
            "| torch examples/s | ours / torch |")
    lines = [head, "|---" * (head.count("|") - 1) + "|"]
    for r in rows:
      if "error" in r:
        lines.append(f"| {r['model']} | {r['shape']} | {r['batch']} x {r['length']} | "
                     f"{r['dtype']} | error: {r['error'][:80]} |" + " |" * 8)
        continue
      bf16 = r["dtype"] == "bfloat16"
      flops = r["model_flops_per_s"]
      if nominal:
        pct = (f"{100 * flops / nominal['bf16']:.2f}% of bf16" if bf16 else
               f"{100 * flops / nominal['tf32']:.2f}% of TF32, "
               f"{100 * flops / nominal['fp32']:.1f}% of fp32")
      else:
        pct = "-"
      m = measured.get("bf16" if bf16 else "fp32")
      mpct = f"{100 * flops / m:.2f}%" if m else "-"
      t = torch_by.get((r["model"], r["shape"], r["batch"], r["dtype"]))
      t_eps = f"{t['examples_per_s']:,.0f}" if t and "error" not in t else (
          "error" if t else "-")
      ratio = (f"{r['examples_per_s'] / t['examples_per_s']:.2f}"
               if t and "error" not in t else "-")
      variant = ", ".join(n for n, on in [("sparse table", r.get("sparse")),
                                          ("sparse bwd", r.get("sparse_conv"))] if on)
      lines.append(
          f"| {r['model']}{f' ({variant})' if variant else ''} | {r['shape']} | "
          f"{r['batch']} x {r['length']} | {r['dtype']} | {r['compile_s']:.2f} | "
          f"{r['examples_per_s']:,.0f} | {r['tokens_per_s']:,.0f} | "
          f"{r['model_flops_per_step'] / 1e9:.2f} | {flops / 1e12:.3f} | {pct} | {mpct} | "
          f"{t_eps} | {ratio} |")
    return "\n".join(lines)

  # ---- 4. many models
  def part_many_models(self, limit: float) -> dict:
    if self.mode == "real":
      if not self.has_dataset("sst2"):
        return {"status": "skipped", "note": f"no sst2 under {self.data_dir}"}
      args = ["--k", "10", "--quick", "--dataset", "sst2", "--data_dir", self.data_dir]
    else:
      args = ["--k", "2", "--quick", "--dataset", self.synthetic("sst2_like", dev=True),
              "--config.embed_dim=16", "--config.num_filters=8", "--config.max_len=16",
              "--config.bucket_lengths=(16,)", "--config.num_epochs=1"]
    r = self.run([self.python, os.path.join(HERE, "many_models.py"), *args], "many_models.log",
                 limit, title="many_models")
    out = r["output"]

    def number(pattern):
      m = re.search(pattern, out)
      return float(m.group(1)) if m else None

    seeds = [{"seed": int(a), "vmapped": float(b), "solo": float(c), "diff": float(d)}
             for a, b, c, d in re.findall(
                 r"^\s*(\d+)\s+([\d.]+)\s+([\d.]+)\s+([+-][\d.]+)\s*$", out, re.M)]
    figures = {"args": " ".join(args), "vmapped_s": number(r"vmapped \(one program\):\s+([\d.]+)"),
               "sequential_s": number(r"sequential \(\d+ runs\):\s+([\d.]+)"),
               "speedup": number(r"speed-up: ([\d.]+)x"), "seeds": seeds,
               "identical_seeds": sum(s["diff"] == 0 for s in seeds),
               "bar": (re.search(r"^bar .*$", out, re.M) or [""])[0]}
    status = ("timeout" if r["timed_out"] else "ok" if r["rc"] == 0 and seeds else "failed")
    return {"status": status, "log": "many_models.log", **figures}

  # ---- 5. time to accuracy
  def part_time_to_accuracy(self, limit: float) -> dict:
    end = time.time() + limit
    if self.mode == "real":
      vectors = ["embedding=non-static", f"vectors={self.vectors}", "embed_dim=100"]
      recipes = [
          {"name": "sst2", "dataset": "sst2", "preset": "kim", "split": "dev", "target": 0.80,
           "eval_every": 50, "max_epochs": 5, "overrides": vectors, "share": 0.35},
          {"name": "imdb", "dataset": "imdb", "preset": self.args.imdb_preset, "split": "test",
           "target": 0.90, "eval_every": 100, "max_epochs": 3, "eval_batch_size": 500,
           "overrides": [*vectors, "max_len=400", *self.args.imdb_overrides], "share": 1.0},
      ]
      missing = [r_["dataset"] for r_ in recipes if not self.has_dataset(r_["dataset"])]
      if not os.path.exists(self.vectors):
        missing.append(self.vectors)
      recipes = [r_ for r_ in recipes if r_["dataset"] not in missing]
    else:
      vectors = ["embedding=non-static", f"vectors={self.synthetic_vectors()}", "embed_dim=8",
                 "num_filters=8", "max_len=16", "bucket_lengths=(16,)"]
      recipes = [
          {"name": "sst2", "dataset": self.synthetic("sst2_like", dev=True), "preset": "kim",
           "split": "dev", "target": 0.6, "eval_every": 5, "max_epochs": 2,
           "overrides": vectors, "share": 0.5},
          {"name": "imdb", "dataset": self.synthetic("imdb_like", dev=False), "preset": "cnn",
           "split": "test", "target": 0.6, "eval_every": 5, "max_epochs": 2,
           "eval_batch_size": 64, "overrides": vectors, "share": 1.0},
      ]
      missing = []
    runs = []
    for recipe in recipes:
      cache = os.path.join(self.work, f"tta_cache_{recipe['name']}")
      os.makedirs(cache, exist_ok=True)
      # this recipe's share of what is left: 60% for the cold run, the rest for the warm
      recipe_end = time.time() + (end - time.time()) * recipe["share"]
      for label in ("cold", "warm"):
        left = recipe_end - time.time()
        timeout = left * 0.6 if label == "cold" else left
        cmd = self.me("_tta", "--preset", recipe["preset"], "--dataset", recipe["dataset"],
                      "--dataset_name", recipe["name"], "--data_dir", self.data_dir or "",
                      "--split", recipe["split"], "--target", str(recipe["target"]),
                      "--eval_every", str(recipe["eval_every"]),
                      "--max_epochs", str(recipe["max_epochs"]),
                      "--eval_batch_size", str(recipe.get("eval_batch_size", 0)),
                      "--overrides", json.dumps(recipe["overrides"]))
        cmd += ["--spawned", "SPAWNED"]
        env = self.child_env(TEXTCLF_COMPILATION_CACHE=cache)
        r = self.run_spawned(cmd, env, timeout, f"time to accuracy: {recipe['name']}, {label} "
                             "compilation cache")
        result = next((json.loads(l[4:]) for l in r["output"].splitlines()
                       if l.startswith("TTA ")), None) or self.partial_tta(r["output"])
        runs.append({"dataset": recipe["name"], "cache": label, "preset": recipe["preset"],
                     "split": recipe["split"], "target": recipe["target"],
                     "status": "timeout" if r["timed_out"] else
                     ("ok" if r["rc"] == 0 and result and not result.get("partial")
                      else "failed"),
                     "wall_s": round(r["seconds"], 1), **(result or {})})
    table = self.tta_table(runs)
    with open(self.path("time_to_accuracy.log"), "a", encoding="utf-8") as f:
      f.write("\n### table\n" + table + "\n" + FASTTEXT_IMDB + "\n")
    bad = [r_ for r_ in runs if r_["status"] != "ok"]
    status = "ok" if runs and not bad else (bad[0]["status"] if bad else "skipped")
    note = f"missing: {', '.join(missing)}" if missing else ""
    return {"status": status, "log": "time_to_accuracy.log", "runs": runs, "table": table,
            "reference": FASTTEXT_IMDB, **({"note": note} if note else {})}

  @staticmethod
  def partial_tta(output: str) -> dict | None:
    """What a run that did not finish had reported: its data time and evaluations."""
    progress = [json.loads(l[9:]) for l in output.splitlines() if l.startswith("PROGRESS ")]
    if not progress:
      return None
    history = [h for p in progress for h in p.get("history", [])]
    best = max(history, key=lambda h: h[2], default=(0, 0.0, 0.0))
    return {"reached": False, "partial": True, "data_s": progress[0].get("data_s"),
            "first_step_s": next((p["first_step_s"] for p in progress
                                  if p.get("first_step_s")), None),
            "history": history, "steps": history[-1][0] if history else 0,
            "accuracy": history[-1][2] if history else 0.0, "best_accuracy": best[2],
            "best_step": best[0], "best_seconds": best[1]}

  def run_spawned(self, cmd, env, timeout, title):
    """`run`, with the child's clock starting just before it is started."""
    i = cmd.index("SPAWNED")
    cmd[i] = repr(time.time())
    return self.run(cmd, "time_to_accuracy.log", timeout, env=env, title=title)

  @staticmethod
  def tta_table(runs: list) -> str:
    lines = ["| dataset | preset | target | cache | reached | seconds from process start | "
             "data s | first step s | steps | accuracy | best accuracy (at s) |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in runs:
      if "seconds" not in r:
        best = (f"{r['best_accuracy']:.4f} ({r['best_seconds']:.1f})"
                if r.get("best_seconds") else "")
        data_s = f"{r['data_s']:.1f}" if r.get("data_s") else ""
        first = f"{r['first_step_s']:.1f}" if r.get("first_step_s") else ""
        lines.append(f"| {r['dataset']} | {r['preset']} | {r['split']} {r['target']:.2f} | "
                     f"{r['cache']} | {r['status']} after {r['wall_s']} s | | {data_s} | "
                     f"{first} | {r.get('steps', '')} | {r.get('accuracy', '')} | {best} |")
        continue
      lines.append(
          f"| {r['dataset']} | {r['preset']} | {r['split']} {r['target']:.2f} | {r['cache']} | "
          f"{'yes' if r['reached'] else 'no'} | {r['seconds']:.1f} | {r['data_s']:.1f} | "
          f"{(r.get('first_step_s') or 0):.1f} | {r['steps']} | {r['accuracy']:.4f} | "
          f"{r['best_accuracy']:.4f} ({r['best_seconds']:.1f}) |")
    return "\n".join(lines)

  # ---- data
  def has_dataset(self, name: str) -> bool:
    return bool(self.data_dir) and os.path.isdir(os.path.join(self.data_dir, name))

  def synthetic(self, name: str, dev: bool) -> str:
    """A small two-class task written here (the dry run needs no ../shared)."""
    folder = os.path.join(self.work, name)
    if os.path.isdir(folder):
      return folder
    os.makedirs(folder)
    words = {"pos": "good great fine superb lovely".split(),
             "neg": "bad awful poor boring dull".split()}
    filler = "the a of and to in is it movie film this that".split()

    def rows(n, seed):
      rng = random.Random(seed)
      for i in range(n):
        label = ("pos", "neg")[i % 2]
        text = [rng.choice(filler) for _ in range(rng.randint(3, 10))]
        for _ in range(rng.randint(1, 3)):
          text.insert(rng.randrange(len(text) + 1), rng.choice(words[label]))
        yield {"text": " ".join(text), "label": label}

    splits = {"train": 400, "test": 100, **({"dev": 80} if dev else {})}
    for split, n in splits.items():
      with gzip.open(os.path.join(folder, f"{split}.jsonl.gz"), "wt", encoding="utf-8") as f:
        for row in rows(n, seed={"train": 1, "dev": 2, "test": 3}[split]):
          f.write(json.dumps(row) + "\n")
    return folder

  def synthetic_vectors(self) -> str:
    path = os.path.join(self.work, "vectors8.txt")
    if not os.path.exists(path):
      rng = random.Random(0)
      with open(path, "w", encoding="utf-8") as f:
        for word in "good great bad awful the movie film".split():
          f.write(word + " " + " ".join(f"{rng.uniform(-1, 1):.4f}" for _ in range(8)) + "\n")
    return path

  # ---- the report
  def write_summary(self):
    self.summary["elapsed_s"] = round(time.time() - SPAWNED, 1)
    with open(self.path("summary.json"), "w", encoding="utf-8") as f:
      json.dump(self.summary, f, indent=1, default=str)
    with open(self.path("summary.md"), "w", encoding="utf-8") as f:
      f.write(self.markdown())

  def markdown(self) -> str:
    s, parts = self.summary, self.summary["parts"]
    env = parts.get("env", {})
    lines = [f"# Accelerator check ({s['mode']} run), {s['started']}", "",
             f"{s.get('elapsed_s', 0)} s of a {s['budget_s']} s budget. "
             f"Device: {env.get('device_kind') or '?'} x {env.get('device_count') or '?'} "
             f"({env.get('backend') or '?'}); jax {(env.get('versions') or {}).get('jax', '?')}"
             f", python {env.get('python') or '?'}.", "",
             "| part | status | seconds | figures |", "|---|---|---|---|"]
    for name in PARTS:
      p = parts.get(name)
      if p is None:
        lines.append(f"| {name} | not run | | |")
        continue
      lines.append(f"| {name} | {p.get('status')} | {p.get('seconds')} | "
                   f"{self.figures_line(name, p)} |")
    if env.get("device_kind"):
      mp = env.get("measured_peaks") or {}
      lines += ["", "## Environment", "", f"- mesh: `{env.get('mesh', '')}`",
                f"- versions: {env.get('versions')}",
                f"- torch: {env.get('torch')}",
                f"- default matmul precision: {env.get('default_matmul_precision')}",
                "- measured matmul peaks (TFLOP/s, n = matmul size): " + ", ".join(
                    f"{k} {v / 1e12:.2f}" for k, v in mp.items())]
    tests = parts.get("tests")
    if tests and tests.get("groups"):
      lines += ["", "## Tests (`pytest -x -q`)", "", "| group | status | counts | seconds | "
                "failed | deterministic rerun |", "|---|---|---|---|---|---|"]
      for g, r in tests["groups"].items():
        rerun = r.get("deterministic_rerun")
        lines.append(f"| {g} | {r['status']} | {r['counts']} | {r['seconds']} | "
                     f"{', '.join(r['failed']) or '-'} | "
                     f"{(rerun['status'] + ' ' + str(rerun['counts'])) if rerun else '-'} |")
    tp = parts.get("throughput")
    if tp and tp.get("table"):
      nominal = PEAKS
      lines += ["", "## Throughput", "",
                f"Nominal H200 peaks: bf16 {nominal['bf16'] / 1e12:.0f}, TF32 "
                f"{nominal['tf32'] / 1e12:.0f}, fp32 {nominal['fp32'] / 1e12:.0f} TFLOP/s "
                "(bf16 rows against bf16; float32 rows against TF32, which XLA's default "
                "precision uses, and plain fp32). Model FLOPs: XLA's cost analysis of the step "
                "with the dense convolution backward pass.", "", tp["table"]]
    mm = parts.get("many_models")
    if mm and mm.get("seeds"):
      lines += ["", "## Many models", "", f"`bench/many_models.py {mm['args']}`: vmapped "
                f"{mm['vmapped_s']} s, sequential {mm['sequential_s']} s, speed-up "
                f"{mm['speedup']}x; {mm['identical_seeds']} of {len(mm['seeds'])} seeds with "
                f"the same test accuracy. {mm['bar']}"]
    tta = parts.get("time_to_accuracy")
    if tta and tta.get("table"):
      lines += ["", "## Time to accuracy", "", tta["table"], "", tta["reference"]]
    return "\n".join(lines) + "\n"

  @staticmethod
  def figures_line(name: str, p: dict) -> str:
    if p.get("error"):
      return f"error: {p['error'][:120]}"
    if name == "env":
      if not p.get("device_kind"):
        return p.get("note", "")
      mp = p.get("measured_peaks") or {}
      return (f"{p.get('device_kind')} x {p.get('device_count')}; bf16 matmul "
              f"{(mp.get('bf16') or 0) / 1e12:.1f} TFLOP/s; {p.get('mesh', '')[:80]}")
    if name == "tests":
      return "; ".join(f"{g}: {r['status']} {r['counts']}" for g, r in p.get("groups", {}).items())
    if name == "throughput" and "rows_planned" in p:
      return f"{p.get('rows_done')} of {p.get('rows_planned')} rows; torch: {p.get('torch')}"
    if name == "many_models" and p.get("seeds"):
      return (f"speed-up {p.get('speedup')}x, {p.get('identical_seeds')} of "
              f"{len(p.get('seeds') or [])} seeds identical")
    if name == "time_to_accuracy":
      return "; ".join(
          f"{r['dataset']} {r['cache']}: "
          + (f"{r['seconds']:.1f} s, {'reached' if r.get('reached') else 'not reached'}"
             f" ({r.get('accuracy', 0):.3f})" if "seconds" in r else
             f"{r['status']} (best {r.get('best_accuracy', 0):.3f})")
          for r in p.get("runs", [])) + (f" ({p['note']})" if p.get("note") else "")
    return p.get("note", "")

  def main(self) -> int:
    self.log(f"accelerator check ({self.mode}): out {self.out}, work {self.work}, "
             f"python {self.python}, data {self.data_dir}, vectors {self.vectors}")
    for name in PARTS:
      if name in self.wanted:
        self.part(name, getattr(self, f"part_{name}"))
      else:
        self.summary["parts"][name] = {"status": "skipped", "seconds": 0.0,
                                       "note": "not asked for (--parts)"}
    self.write_summary()
    shutil.rmtree(self.work, ignore_errors=True)
    self.log("\n" + self.markdown())
    return 0 if all(p.get("status") in ("ok", "skipped")
                    for p in self.summary["parts"].values()) else 1


def main():
  parser = argparse.ArgumentParser(description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("child", nargs="?", default="",
                      help=argparse.SUPPRESS)  # _env | _throughput | _torch | _tta
  parser.add_argument("--out", default=os.environ.get("OUT") or "accelerator_out")
  parser.add_argument("--dry-run", dest="dry_run", action="store_true",
                      help="tiny sizes on whatever device there is (the CPU in CI)")
  parser.add_argument("--budget", type=float, default=0,
                      help="seconds for the whole check (default 465; dry run 200)")
  parser.add_argument("--parts", default="", help="comma-separated subset of " + ",".join(PARTS))
  parser.add_argument("--python", default="", help="the Python for the children")
  shared = os.path.join(os.path.dirname(REPO), "shared")
  parser.add_argument("--data_dir", default=os.environ.get(
      "TEXTCLF_DATA_DIR", os.path.join(shared, "datasets")))
  parser.add_argument("--vectors", default=os.path.join(
      shared, "embeddings", "glove.6B.100d.subset.txt.gz"))
  parser.add_argument("--imdb_preset", default="cnn",
                      help="the preset timed to 0.90 test on IMDB (issue 19's command: cnn)")
  parser.add_argument("--imdb_override", dest="imdb_overrides", action="append", default=[],
                      help="KEY=VALUE: an override of that preset (repeatable)")
  # children's arguments
  parser.add_argument("--spec", default="{}", help=argparse.SUPPRESS)
  parser.add_argument("--matmul_n", type=int, default=4096, help=argparse.SUPPRESS)
  parser.add_argument("--matmul_repeats", type=int, default=10, help=argparse.SUPPRESS)
  for name, kind, default in (("preset", str, "kim"), ("dataset", str, ""),
                              ("dataset_name", str, ""), ("split", str, "dev"),
                              ("target", float, 0.8), ("eval_every", int, 50),
                              ("max_epochs", int, 5), ("eval_batch_size", int, 0),
                              ("overrides", str, "[]"), ("spawned", float, 0.0)):
    parser.add_argument(f"--{name}", type=kind, default=default, help=argparse.SUPPRESS)
  args = parser.parse_args()
  children = {"_env": child_env, "_throughput": child_throughput, "_torch": child_torch,
              "_tta": child_tta}
  if args.child:
    if args.child not in children:
      parser.error(f"unknown child {args.child!r}")
    return children[args.child](args)
  return Check(args).main()


if __name__ == "__main__":
  sys.exit(main())
