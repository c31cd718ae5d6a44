"""The accelerator check's six parts, as methods of `runner.Check` (this mixin): each
starts its child processes through `Check.run` with its share of the time budget and
returns its figures for summary.json."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import time

from accelerator import report
from accelerator.spec import (DETERMINISTIC_FLAG, ENCODER, FASTTEXT_IMDB, HERE, PEAKS,
                              RERUN_DETERMINISTIC, TEST_GROUPS, THROUGHPUT)


class Parts:
  """part_env, part_tests, part_throughput, part_encoder, part_many_models,
  part_time_to_accuracy."""

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
    table = report.throughput_table(jax_rows, torch_rows, self.peaks())
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

  # ---- 3b. the BERT encoder's fine-tuning step
  def part_encoder(self, limit: float) -> dict:
    spec = ENCODER[self.mode]
    # The dry run compiles unoptimised, as the tests do on the CPU (tests/conftest.py).
    env = self.child_env(XLA_FLAGS="--xla_backend_optimization_level=0"
                         if self.mode == "dry" else None)
    r = self.run(self.me("_encoder", "--spec", json.dumps(spec)), "throughput.log", limit,
                 env=env, title="encoder fine-tuning step, float32 and bfloat16 compute")
    rows = [json.loads(l[8:]) for l in r["output"].splitlines() if l.startswith("ENCODER ")]
    table = report.encoder_table(rows)
    with open(self.path("throughput.log"), "a", encoding="utf-8") as f:
      f.write("\n### encoder table\n" + table + "\n")
    done = [row for row in rows if "error" not in row]
    status = ("ok" if len(done) == len(spec["dtypes"]) and r["rc"] == 0 else
              "timeout" if r["timed_out"] else "failed")
    return {"status": status, "log": "throughput.log", "rows": rows, "table": table,
            "errors": [row["error"] for row in rows if "error" in row]}

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
    table = report.tta_table(runs)
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
