"""experiments/encoders.py's bookkeeping, on run directories the test writes (no model is
trained): an ensemble row is the mean of its members' calibrated probabilities, as
`textclf eval RUN --ensemble RUN2` computes it, compared with its reference by the paired
bootstrap; a cell taught by several runs names each of them in `teacher`."""

import os

import numpy as np
import pytest

from experiments import encoders
from textclf_jax.run import layout
from textclf_jax.scoring import calibration


def write_run(root, name, probs, labels, temperature):
  """A run directory holding what the table reads: labels, calibration, results and the
  dev/test predictions (dev = test here)."""
  workdir = str(root / name)
  os.makedirs(workdir)
  layout.write_json(os.path.join(workdir, layout.LABELS), {"labels": ["neg", "pos"],
                                                           "multi_label": False})
  layout.write_calibration(workdir, {"temperature": temperature})
  accuracy = float(np.mean(probs.argmax(1) == labels))
  layout.write_results(workdir, {split: {"accuracy": accuracy} for split in ("dev", "test")})
  layout.write_predictions(workdir, {split: (probs, labels) for split in ("dev", "test")})
  return workdir


def test_an_ensemble_row_is_the_mean_of_calibrated_probabilities(tmp_path):
  rng = np.random.default_rng(0)
  labels = rng.integers(0, 2, 400)
  members = {}
  for name, temperature in (("a", 1.0), ("b", 2.0)):
    logits = rng.normal(0, 1, (400, 2)) + 1.2 * np.eye(2)[labels]
    probs = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    write_run(tmp_path, name, probs.astype(np.float32), labels, temperature)
    members[name] = calibration.apply_temperature(probs.astype(np.float32), temperature, False)
  reference = np.full((400, 2), 0.25)
  reference[np.arange(400), labels] = 0.75
  reference[:100] = reference[:100, ::-1]  # right on 300 of 400 examples
  write_run(tmp_path, "ref", reference.astype(np.float32), labels, 1.0)

  got = encoders.ensemble_predictions(str(tmp_path), ["a", "b"])
  expected = (members["a"] + members["b"]) / 2
  np.testing.assert_allclose(got["test"][0], expected, rtol=1e-5)
  assert got["test"][2] == ["neg", "pos"] and np.array_equal(got["dev"][1], labels)
  accuracy = float(np.mean(expected.argmax(1) == labels))
  assert encoders.accuracy(got["test"]) == pytest.approx(accuracy)
  bootstrap = encoders.against(got["test"], encoders.test_predictions(str(tmp_path / "ref")))
  assert bootstrap["delta"] == pytest.approx(accuracy - 0.75)
  assert bootstrap["low"] <= bootstrap["delta"] <= bootstrap["high"]
  text = encoders.delta_text(got["test"], str(tmp_path), "ref")
  assert text.startswith(f"{100 * (accuracy - 0.75):+.1f} [") and text.endswith("vs ref")
  assert encoders.delta_text(got["test"], str(tmp_path), "absent") == "reference"


def test_a_cell_taught_by_an_ensemble_names_every_teacher_run(tmp_path, monkeypatch):
  made = []
  monkeypatch.setattr(encoders, "transfer_set",
                      lambda runs, dataset, data_dir, copies, seed: made.append(
                          (dataset, copies, seed)) or f"{runs}/t{copies}.txt")
  overrides = encoders.overrides_of("sst2-cnn_distilled_ens8", "R", "D")
  assert "teacher=R/sst2-minilm,R/sst2-minilm_tuned-cnn" in overrides
  assert "distill_unlabelled=R/t8.txt" in overrides and made == [("sst2", 8, 1)]
  for name, (members, reference) in encoders.ENSEMBLES.items():
    assert set(members) <= set(encoders.CELLS) and reference in encoders.CELLS, name


def test_unknown_cells_are_refused_and_an_untrained_ensemble_is_left_out(tmp_path, monkeypatch,
                                                                          capsys):
  runs = str(tmp_path / "runs")
  monkeypatch.setattr("sys.argv", ["encoders", "--runs", runs, "--only", "sst2-minlm"])
  with pytest.raises(SystemExit) as stop:
    encoders.main()
  assert stop.value.code == 2 and "unknown cell sst2-minlm" in capsys.readouterr().err
  monkeypatch.setattr("sys.argv", ["encoders", "--runs", runs, "--only", "sst2-minilm_ensemble"])
  encoders.main()  # trains nothing: an ensemble's members are cells of their own
  out = capsys.readouterr().out
  assert "sst2-minilm_ensemble: left out, sst2-minilm, sst2-minilm_tuned-cnn not trained" in out
  assert os.listdir(runs) == ["table.md"]
