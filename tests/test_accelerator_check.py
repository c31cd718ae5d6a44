"""The accelerator check (bench/accelerator_check.sh, issue 18) cannot rot: its dry run
runs here on the CPU with tiny sizes, every part, and its report is what the device
tool can bring back (at most 8 files with plain names)."""

import argparse
import json
import os
import re
import subprocess
import sys
import time

import pytest

from conftest import REPO

sys.path.insert(0, os.path.join(REPO, "bench"))
import accelerator_check  # noqa: E402  pylint: disable=wrong-import-position


@pytest.mark.slow
def test_dry_run_runs_every_part_and_reports_in_at_most_eight_files(tmp_path):
  out = tmp_path / "out"
  env = dict(os.environ, PYTHON=sys.executable)
  env.pop("OUT", None)
  started = time.time()
  proc = subprocess.run(["bash", os.path.join(REPO, "bench", "accelerator_check.sh"), str(out),
                         "--dry-run"], capture_output=True, text=True, env=env, cwd=str(tmp_path),
                        timeout=400, check=False)
  seconds = time.time() - started
  assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
  files = sorted(os.listdir(out))
  assert set(files) <= set(accelerator_check.OUT_FILES) and len(files) <= 8, files
  assert all(re.fullmatch(r"[A-Za-z0-9._-]+", f) for f in files)
  summary = json.loads((out / "summary.json").read_text())
  assert summary["mode"] == "dry"
  parts = summary["parts"]
  assert list(parts) == list(accelerator_check.PARTS)
  assert {name: p["status"] for name, p in parts.items()} == dict.fromkeys(parts, "ok"), \
      (out / "summary.md").read_text()
  assert parts["env"]["device_count"] >= 1 and parts["env"]["mesh"].startswith("[textclf]")
  assert all(g["status"] == "ok" and g["counts"].get("passed", 0) >= 1
             for g in parts["tests"]["groups"].values())
  rows = parts["throughput"]["rows"]
  assert rows and all(r["examples_per_s"] > 0 and r["model_flops_per_step"] > 0 for r in rows)
  assert {r["dtype"] for r in rows} == {"float32", "bfloat16"}
  encoder = parts["encoder"]["rows"]
  assert [r["dtype"] for r in encoder] == ["float32", "bfloat16"]
  assert all(r["examples_per_s"] > 0 and r["tokens_per_s"] > 0 for r in encoder)
  assert len(parts["many_models"]["seeds"]) == 2 and parts["many_models"]["speedup"] > 0
  runs = parts["time_to_accuracy"]["runs"]
  assert [(r["dataset"], r["cache"]) for r in runs] == [
      ("sst2", "cold"), ("sst2", "warm"), ("imdb", "cold"), ("imdb", "warm")]
  assert all(r["reached"] and 0 < r["data_s"] <= r["seconds"] for r in runs)
  assert [r["split"] for r in runs] == ["dev", "dev", "test", "test"]
  md = (out / "summary.md").read_text()
  assert "| throughput | ok |" in md and "19 s" in md
  print(f"dry run: {seconds:.1f} s")


def test_encoder_child_times_the_fine_tuning_step_in_both_dtypes():
  """The encoder part's child, in its dry-run size: one row per compute dtype, each a
  finite loss from a step that ran, and the report's table with bf16 against f32."""
  from accelerator import report
  env = dict(os.environ, PYTHONPATH=REPO, XLA_FLAGS="--xla_backend_optimization_level=0")
  proc = subprocess.run([sys.executable, os.path.join(REPO, "bench", "accelerator_check.py"),
                         "_encoder", "--spec", json.dumps(accelerator_check.ENCODER["dry"])],
                        capture_output=True, text=True, env=env, cwd=REPO, timeout=600,
                        check=False)
  assert proc.returncode == 0, proc.stderr[-3000:]
  rows = [json.loads(l[8:]) for l in proc.stdout.splitlines() if l.startswith("ENCODER ")]
  assert [r["dtype"] for r in rows] == ["float32", "bfloat16"], proc.stdout[-3000:]
  for r in rows:
    assert "error" not in r, r
    assert r["examples_per_s"] > 0 and r["step_ms"] > 0 and r["compile_s"] > 0
    assert 0 < r["loss"] < 10  # cross entropy of 2 classes after a few steps
  table = report.encoder_table(rows)
  assert table.count("\n") == 3 and "| bfloat16 | 1 x 16 | 4 x 8 |" in table
  assert "| 1.00x |" in table  # float32 against itself


def _check(tmp_path, budget=60.0):
  args = argparse.Namespace(out=str(tmp_path / "out"), dry_run=True, budget=budget, parts="",
                            python=sys.executable, data_dir="", vectors="", imdb_preset="cnn",
                            imdb_overrides=[])
  return accelerator_check.Check(args)


def test_a_part_that_fails_leaves_the_others_and_is_in_the_summary(tmp_path):
  check = _check(tmp_path)

  def broken(limit):
    raise RuntimeError("no GPU here")

  check.part_env = lambda limit: {"status": "ok", "device_kind": "fake", "device_count": 1}
  check.part_tests = broken
  check.part_throughput = lambda limit: {"status": "ok", "rows_done": 0, "rows_planned": 0}
  check.part_encoder = broken
  check.part_many_models = broken
  check.part_time_to_accuracy = lambda limit: {"status": "ok", "runs": []}
  assert check.main() == 1
  summary = json.loads((tmp_path / "out" / "summary.json").read_text())
  status = {name: p["status"] for name, p in summary["parts"].items()}
  assert status == {"env": "ok", "tests": "failed", "throughput": "ok", "encoder": "failed",
                    "many_models": "failed", "time_to_accuracy": "ok"}
  assert summary["parts"]["tests"]["error"] == "RuntimeError: no GPU here"
  assert "| tests | failed |" in (tmp_path / "out" / "summary.md").read_text()


def test_a_child_past_its_limit_is_ended_and_its_output_kept(tmp_path):
  check = _check(tmp_path)
  started = time.time()
  r = check.run([sys.executable, "-c", "import time; print('half', flush=True); time.sleep(60)"],
                "tests.log", timeout=2)
  assert r["timed_out"] and "half" in r["output"] and time.time() - started < 20


def test_the_parts_share_the_budget_and_pass_on_unused_time(tmp_path):
  check = _check(tmp_path, budget=100.0)
  budgets = accelerator_check.BUDGETS["dry"]
  first = check.clock.for_part("env")
  assert first == pytest.approx(100 * budgets["env"] / sum(budgets.values()), abs=1)
  assert check.clock.for_part("time_to_accuracy") == pytest.approx(100, abs=1)  # the last: all


def test_the_package_imports_without_wandb():
  """The device machine has no wandb: nothing imports it unless W&B is on."""
  script = ("import sys, importlib, pkgutil\n"
            "sys.modules['wandb'] = None  # import wandb raises ImportError\n"
            "import textclf_jax\n"
            "for m in pkgutil.walk_packages(textclf_jax.__path__, 'textclf_jax.'):\n"
            "  importlib.import_module(m.name)\n"
            "from textclf_jax.run import log as runlog\n"
            "print(runlog.wandb_mode('auto'))\n")
  env = dict(os.environ, WANDB_MODE="disabled")
  proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env,
                        cwd=REPO, timeout=120, check=False)
  assert proc.returncode == 0, proc.stderr[-3000:]
  assert proc.stdout.strip().endswith("disabled")
