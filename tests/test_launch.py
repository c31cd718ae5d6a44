"""launch/ scripts that can run here: N simulated CPU devices on one host, and N
processes over 127.0.0.1 (the multi-host code path)."""

import json
import os
import subprocess
import sys

from conftest import REPO, XLA_TEST_FLAGS


def test_cpu_devices_script_trains_on_a_four_device_mesh(topic_dir, tmp_path):
  workdir = str(tmp_path / "run")
  env = dict(os.environ, WANDB_MODE="disabled", PYTHON=sys.executable)
  proc = subprocess.run(
      ["bash", os.path.join(REPO, "launch", "cpu_devices.sh"), "4", f"--config.dataset={topic_dir}",
       "--config.max_len=24", "--config.embed_dim=16", "--config.num_filters=8",
       "--config.batch_size=10", "--config.num_epochs=2", "--config.progress_bar=False",
       "--workdir", workdir], cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
  assert proc.returncode == 0, proc.stderr[-2000:]
  assert "mesh {'data': 4, 'model': 1} over 4 cpu device(s) in 1 process(es)" in proc.stdout
  results = json.load(open(os.path.join(workdir, "results.json")))
  assert results["num_devices"] == 4 and results["test"]["num_examples"] == 90


def _train_args(topic_dir, workdir, *extra):
  return [f"--config.dataset={topic_dir}", "--config.max_len=24", "--config.embed_dim=16",
          "--config.num_filters=8", "--config.batch_size=50", "--config.num_epochs=2",
          "--config.log_every_steps=1", "--config.progress_bar=False",
          "--config.learning_rate=5e-3", "--workdir", workdir, *extra]


def _launch(script, *args, timeout=600):
  env = dict(os.environ, WANDB_MODE="disabled", PYTHON=sys.executable)
  proc = subprocess.run(["bash", os.path.join(REPO, "launch", script), *args], cwd=REPO,
                        env=env, capture_output=True, text=True, timeout=timeout)
  assert proc.returncode == 0, (proc.stdout[-2000:], proc.stderr[-4000:])
  return proc


def _train_losses(workdir):
  rows = [json.loads(line) for line in open(os.path.join(workdir, "metrics.jsonl"))]
  return {r["step"]: r["train"]["loss"] for r in rows if "train" in r}


def test_two_processes_match_one_and_resume_in_one(topic_dir, tmp_path):
  """2 processes x 4 CPU devices over 127.0.0.1 train exactly like 1 process x 8
  devices (a batch of 50 padded to 56 rows); the 2-process run's checkpoint then
  resumes in a single process and continues exactly like the 1-process run."""
  two, one = str(tmp_path / "two"), str(tmp_path / "one")
  proc = _launch("local_processes.sh", "2", "4", *_train_args(
      topic_dir, two, "--config.num_epochs=1", "--config.keep_checkpoints=both"))
  assert "mesh {'data': 8, 'model': 1} over 8 cpu device(s) in 2 process(es)" in proc.stdout
  assert proc.stdout.count("[textclf] test:") == 1  # only process 0 reports
  _launch("cpu_devices.sh", "8", *_train_args(topic_dir, one))

  first, reference = _train_losses(two), _train_losses(one)
  assert sorted(first) == list(range(1, 7))  # 300 examples / 50 = 6 steps per epoch
  for step, loss in first.items():
    assert abs(loss - reference[step]) < 1e-6, (step, loss, reference[step])
  results = json.load(open(os.path.join(two, "results.json")))
  assert results["num_processes"] == 2 and results["num_devices"] == 8
  assert results["test"]["num_examples"] == 90 and results["dev"]["num_examples"] == 60

  # The 2-process checkpoint continues in one process, for a second epoch.
  _launch("cpu_devices.sh", "8", "--resume", two, "--config.num_epochs=2")
  resumed = _train_losses(two)
  assert sorted(resumed) == list(range(1, 13))
  for step in range(7, 13):
    assert abs(resumed[step] - reference[step]) < 1e-6, (step, resumed[step], reference[step])
  final, expected = (json.load(open(os.path.join(d, "results.json"))) for d in (two, one))
  assert final["num_processes"] == 1 and final["final_step"] == expected["final_step"] == 12
  assert abs(final["test"]["accuracy"] - expected["test"]["accuracy"]) < 1e-9
  assert json.load(open(os.path.join(two, "config.json")))["num_epochs"] == 2


def test_resume_refuses_to_change_the_model(tmp_path):
  from textclf_jax.cli import main as cli
  import pytest
  with pytest.raises(SystemExit, match="num_filters cannot change"):
    cli.main(["train", "--resume", str(tmp_path), "--config.num_filters=4"])


FAKE_SRUN = """#!/usr/bin/env bash
# Stands in for SLURM's srun on one machine: SLURM_NTASKS copies of the command, each
# with its SLURM_PROCID / SLURM_LOCALID, as srun would start them.
while [[ "$1" == --* ]]; do shift; done
for ((i = 0; i < SLURM_NTASKS; i++)); do SLURM_PROCID=$i SLURM_LOCALID=$i "$@" & done
status=0
for ((i = 0; i < SLURM_NTASKS; i++)); do wait -n || status=1; done
exit $status
"""


def test_slurm_script_lets_jax_detect_the_job(tmp_path):
  """launch/slurm.sbatch under a stand-in srun: JAX's own SLURM detection (no address,
  count or id passed) joins the 2 tasks into one 4-device job."""
  import random
  bin_dir = tmp_path / "bin"
  bin_dir.mkdir()
  (bin_dir / "srun").write_text(FAKE_SRUN)
  (bin_dir / "srun").chmod(0o755)
  env = dict(os.environ, PATH=f"{bin_dir}:{os.environ['PATH']}", PYTHON=sys.executable,
             SLURM_JOB_ID=str(random.randrange(10 ** 6)), SLURM_STEP_NODELIST="localhost",
             SLURM_NTASKS="2", SLURM_NNODES="1", TEXTCLF_COMMAND="mesh", JAX_PLATFORMS="cpu",
             XLA_FLAGS=f"--xla_force_host_platform_device_count=2 {XLA_TEST_FLAGS}")
  proc = subprocess.run(["bash", os.path.join(REPO, "launch", "slurm.sbatch"), "--mesh_model",
                         "2"], cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
  assert proc.returncode == 0, proc.stderr[-3000:]
  for i in (0, 1):
    assert (f"process {i} of 2: 2 local of 4 devices (cpu); mesh {{'data': 2, 'model': 2}} "
            f"over 4 cpu device(s) in 2 process(es); this process builds rows {i}:{i + 1}"
            in proc.stdout), proc.stdout


def test_tpu_script_runs_the_same_command_on_every_worker(tmp_path):
  """launch/tpu_vm.sh with a stand-in gcloud that records what it was asked to run."""
  bin_dir = tmp_path / "bin"
  bin_dir.mkdir()
  log = tmp_path / "gcloud.log"
  (bin_dir / "gcloud").write_text(f'#!/usr/bin/env bash\nprintf "%s\\n" "$@" > {log}\n')
  (bin_dir / "gcloud").chmod(0o755)
  env = dict(os.environ, PATH=f"{bin_dir}:{os.environ['PATH']}", TPU_NAME="v4-32", ZONE="z1")
  proc = subprocess.run(["bash", os.path.join(REPO, "launch", "tpu_vm.sh"), "train", "--config",
                         "cnn", "--config.dataset=my data", "--workdir", "/mnt/runs/a"],
                        cwd=REPO, env=env, capture_output=True, text=True, timeout=60)
  assert proc.returncode == 0, proc.stderr
  args = log.read_text().splitlines()
  assert args[:6] == ["compute", "tpus", "tpu-vm", "ssh", "v4-32", "--zone"]
  assert "--worker=all" in args
  command = args[args.index("--command") + 1]
  assert command == ("cd textclf_jax && python -m textclf_jax train --distributed --config cnn "
                     "--config.dataset=my\\ data --workdir /mnt/runs/a ")


TOY_EXPERIMENT = """
import sys
sys.path.insert(0, {tests!r})
from conftest import make_rows, write_jsonl
from experiments.runner import Experiment, run_experiment

data = {data!r}
write_jsonl(data + "/train.jsonl", make_rows(120, 1))
write_jsonl(data + "/test.jsonl", make_rows(40, 2))
exp = Experiment(name="toy", preset="cnn",
                 overrides=("max_len=24", "embed_dim=16", "num_filters=8", "batch_size=20",
                            "num_epochs=1", "bucket_lengths=(8,16,24)", "wandb=disabled"),
                 variants={{"w2": ["filter_widths=(2,)"], "w3": ["filter_widths=(3,)"]}},
                 datasets={{"toy": [f"dataset={{data}}"]}}, seeds=(0, 1))
run_experiment(exp, {root!r})
"""


def test_an_experiment_script_runs_unchanged_on_two_processes(tmp_path):
  """`launch/local_processes.sh 2 2 -m MODULE`: the sweep runner trains every cell on
  the 2-process job; process 0 alone writes the table."""
  data, root = tmp_path / "data", tmp_path / "sweep"
  data.mkdir()
  (tmp_path / "toy_sweep.py").write_text(TOY_EXPERIMENT.format(
      tests=os.path.join(REPO, "tests"), data=str(data), root=str(root)))
  env = dict(os.environ, WANDB_MODE="disabled", PYTHON=sys.executable,
             PYTHONPATH=os.pathsep.join([REPO, str(tmp_path)]))
  proc = subprocess.run(["bash", os.path.join(REPO, "launch", "local_processes.sh"), "2", "2",
                         "-m", "toy_sweep"], cwd=tmp_path, env=env, capture_output=True,
                        text=True, timeout=600)
  assert proc.returncode == 0, (proc.stdout[-2000:], proc.stderr[-4000:])
  assert proc.stdout.count("| toy | toy |") == 1  # the table, printed by process 0 only
  with open(root / "results.csv") as f:
    assert len(f.readlines()) == 1 + 4
  for variant in ("w2", "w3"):
    for seed in (0, 1):
      results = json.load(open(root / "toy" / variant / f"seed_{seed}" / "results.json"))
      assert results["num_processes"] == 2 and results["num_devices"] == 4
