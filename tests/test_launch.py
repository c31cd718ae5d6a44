"""launch/ scripts that can run here: N simulated CPU devices on one host."""

import json
import os
import subprocess
import sys

from conftest import REPO


def test_cpu_devices_script_trains_on_a_four_device_mesh(topic_dir, tmp_path):
  workdir = str(tmp_path / "run")
  env = dict(os.environ, WANDB_MODE="disabled", PYTHON=sys.executable)
  proc = subprocess.run(
      ["bash", os.path.join(REPO, "launch", "cpu_devices.sh"), "4", f"--config.dataset={topic_dir}",
       "--config.max_len=24", "--config.embed_dim=16", "--config.num_filters=8",
       "--config.batch_size=10", "--config.num_epochs=2", "--config.progress_bar=False",
       "--workdir", workdir], cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
  assert proc.returncode == 0, proc.stderr[-2000:]
  assert "mesh {'data': 4} over 4 cpu device(s)" in proc.stdout
  results = json.load(open(os.path.join(workdir, "results.json")))
  assert results["num_devices"] == 4 and results["test"]["num_examples"] == 90
