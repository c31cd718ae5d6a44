"""A sweep killed with SIGKILL part-way resumes: finished cells are read back, not re-run."""

import json
import os
import signal
import subprocess
import sys
import textwrap
import time

from conftest import REPO, make_rows, write_jsonl
from textclf_jax.training import loop as train

SWEEP = textwrap.dedent("""
    import sys
    from experiments.runner import Experiment, run_experiment

    def experiment(data):
      return Experiment(
          name="toy", preset="cnn", seeds=(0, 1, 2),
          overrides=("max_len=24", "embed_dim=16", "num_filters=8", "batch_size=16",
                     "num_epochs=3", "bucket_lengths=(24,)", "wandb=disabled",
                     "log_every_steps=5", "checkpoint_every_steps=5"),
          variants={"w3": ["filter_widths=(3,)"]},
          datasets={"toy": [f"dataset={data}"]})

    if __name__ == "__main__":
      run_experiment(experiment(sys.argv[1]), sys.argv[2])
""")


def test_killed_sweep_resumes_without_rerunning_finished_cells(tmp_path, monkeypatch):
  data = tmp_path / "toy"
  data.mkdir()
  write_jsonl(data / "train.jsonl", make_rows(400, 1))
  write_jsonl(data / "test.jsonl", make_rows(60, 2))
  (tmp_path / "toy_sweep.py").write_text(SWEEP)
  root = tmp_path / "sweep"
  first = root / "toy" / "w3" / "seed_0" / "results.json"

  env = dict(os.environ, WANDB_MODE="disabled", JAX_PLATFORMS="cpu",
             PYTHONPATH=os.pathsep.join([REPO, str(tmp_path)]))
  proc = subprocess.Popen([sys.executable, str(tmp_path / "toy_sweep.py"), str(data), str(root)],
                          cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
  deadline = time.time() + 300
  while not first.exists() and proc.poll() is None and time.time() < deadline:
    time.sleep(0.05)
  assert first.exists(), proc.stdout.read().decode()[-2000:] if proc.poll() is not None else ""
  time.sleep(1.0)  # into the next cell
  proc.send_signal(signal.SIGKILL)
  proc.wait()
  finished_before = {s for s in range(3)
                     if (root / "toy" / "w3" / f"seed_{s}" / "results.json").exists()}
  assert 0 in finished_before and finished_before != {0, 1, 2}, "kill came too late"
  kept = {s: (root / "toy" / "w3" / f"seed_{s}" / "results.json").read_bytes()
          for s in finished_before}

  trained = []
  real = train.train_and_evaluate

  def counting(config, workdir, resume=False, **kwargs):
    trained.append((os.path.basename(workdir), resume))
    return real(config, workdir, resume=resume, **kwargs)

  monkeypatch.setattr(train, "train_and_evaluate", counting)
  sys.path.insert(0, str(tmp_path))
  try:
    import toy_sweep
    out = toy_sweep.run_experiment(toy_sweep.experiment(str(data)), str(root))
  finally:
    sys.path.remove(str(tmp_path))
    sys.modules.pop("toy_sweep", None)

  assert {name for name, _ in trained} == {f"seed_{s}" for s in range(3)} - {
      f"seed_{s}" for s in finished_before}
  # The cell that was running when the sweep died continues from its checkpoint.
  interrupted = min(set(range(3)) - finished_before)
  if (root / "toy" / "w3" / f"seed_{interrupted}" / "checkpoints").exists():
    assert (f"seed_{interrupted}", True) in trained
  for s, content in kept.items():  # finished results untouched
    assert (root / "toy" / "w3" / f"seed_{s}" / "results.json").read_bytes() == content
  assert sorted(row["unit"] for row in out["rows"]) == ["seed_0", "seed_1", "seed_2"]
  for s in range(3):
    results = json.loads((root / "toy" / "w3" / f"seed_{s}" / "results.json").read_text())
    assert results["test"]["num_examples"] == 60
