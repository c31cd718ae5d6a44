"""The accelerator check's driver: `Check` runs each part in its own processes with
its own time limit (`run`: a process group ended at its limit, its output kept), so a
part that fails or runs out of time leaves the others' figures standing, and rewrites
summary.json and summary.md after every part."""

from __future__ import annotations

import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time

from accelerator import report, synthetic
from accelerator.budget import Clock
from accelerator.parts import Parts
from accelerator.spec import BUDGETS, DEFAULT_BUDGET, OUT_FILES, PARTS, PEAKS, REPO, SCRIPT


class Check(Parts):
  """The whole check: its output folder, work folder, clock and summary; `main` runs
  the parts asked for and writes the report."""

  def __init__(self, args, spawned: float = 0.0):
    self.args = args
    self.spawned = spawned or time.time()  # the check's process start
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
    return [self.python, SCRIPT, *argv]

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

  # ---- data
  def has_dataset(self, name: str) -> bool:
    return bool(self.data_dir) and os.path.isdir(os.path.join(self.data_dir, name))

  def synthetic(self, name: str, dev: bool) -> str:
    """A small two-class task written here (the dry run needs no ../shared)."""
    return synthetic.dataset(self.work, name, dev)

  def synthetic_vectors(self) -> str:
    return synthetic.vectors(self.work)

  # ---- the report
  def write_summary(self):
    self.summary["elapsed_s"] = round(time.time() - self.spawned, 1)
    with open(self.path("summary.json"), "w", encoding="utf-8") as f:
      json.dump(self.summary, f, indent=1, default=str)
    with open(self.path("summary.md"), "w", encoding="utf-8") as f:
      f.write(self.markdown())

  def markdown(self) -> str:
    return report.markdown(self.summary)

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
