"""textclf export: ONNX and StableHLO exports of CNN, LSTM and hybrid runs match the JAX
model, load without JAX, and a parity failure leaves nothing behind."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from conftest import REPO, make_rows, run_textclf, tiny_config, write_jsonl

pytest.importorskip("jax2onnx")
pytest.importorskip("onnxruntime")

TEXTS = ["the match goal was great", "stock price of the bank fell", "a new chip in the phone",
         "win", "the app and the data of the cloud software at the market of the league"]
# One run per family; the hybrid is multi-label (thresholds and sigmoid temperatures).
FAMILIES = {"cnn": {}, "lstm": {"bidirectional": True}, "hybrid": {"multi_label": True}}


def _dataset(root, multi_label):
  d = root / ("multi" if multi_label else "single")
  if not d.exists():
    d.mkdir()
    for split, n, seed in (("train", 60, 1), ("dev", 30, 2), ("test", 45, 3)):
      write_jsonl(d / f"{split}.jsonl", make_rows(n, seed, multi_label=multi_label))
  return str(d)


def _build_run(config, workdir, multi_label):
  """A run directory as training leaves one (config, vocabulary, labels, a checkpoint),
  holding the initial parameters (training would only spend the test's time), with a
  calibration.json (temperatures < 1 sharpen the near-uniform untrained outputs) and,
  multi-label, thresholds.json."""
  from textclf_jax.training import build
  from textclf_jax.run import layout as rundir
  from textclf_jax.run.checkpoint import Checkpoints
  from textclf_jax.data.pipeline import prepare
  prepared = prepare(config, -1)
  rundir.init(config, workdir, prepared)
  built = build.build(config, prepared, build.make_mesh(config))
  ckpt = Checkpoints(workdir)
  ckpt.save_latest(0, built.state, {"epoch": 0, "position": 0})
  ckpt.close()
  count = len(prepared.label_names)
  if multi_label:
    rundir.write_thresholds(workdir, "per_label", [0.4] * count)
    record = {"temperature": [0.25 + 0.1 * i for i in range(count)], "thresholds": 0.45}
  else:
    record = {"temperature": 0.25}
  rundir.write_json(rundir.path(workdir, "calibration.json"), {"method": "temperature",
                                                               **record})


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
  """{family: run directory} on the toy topics (see _build_run)."""
  root = tmp_path_factory.mktemp("export_runs")
  out = {}
  for family, extra in FAMILIES.items():
    extra = dict(extra)
    multi_label = extra.pop("multi_label", False)
    config = tiny_config(family, dataset=_dataset(root, multi_label), max_len=16,
                         bucket_lengths=(16,), **extra)
    out[family] = str(root / family)
    _build_run(config, out[family], multi_label)
  return out


@pytest.fixture(scope="module")
def onnx_exports(trained, tmp_path_factory):
  """{family: (export directory, manifest)} in ONNX (one process pays jax2onnx's import once)."""
  from textclf_jax.serve import export
  root = tmp_path_factory.mktemp("exports")
  return {family: (str(root / family), export.export_run(run, "onnx", str(root / family)))
          for family, run in trained.items()}


def test_onnx_exports_pass_parity_and_describe_themselves(trained, onnx_exports):
  for family, (out, manifest) in onnx_exports.items():
    assert sorted(os.listdir(out)) == ["manifest.json", "model.onnx", "textclf.json", "vocab.json"]
    assert json.load(open(os.path.join(out, "manifest.json"))) == manifest
    parity = manifest["parity"]
    assert parity["passed"] and parity["examples"] == 45 and parity["split"] == "test"
    assert parity["max_abs_difference"] <= 1e-5 and parity["predictions_differing"] == 0
    assert manifest["model"] == family and manifest["length"] is None  # dynamic length
    assert manifest["vocab_size"] == len(json.load(open(os.path.join(trained[family],
                                                                     "vocab.json")))["words"])
    calibration = json.load(open(os.path.join(trained[family], "calibration.json")))
    assert manifest["calibrated"] and manifest["temperature"] == calibration["temperature"]
    assert manifest["multi_label"] == (family == "hybrid")
    if family == "hybrid":
      assert manifest["thresholds"] == calibration["thresholds"]
    assert len(manifest["config_sha256"]) == 64 and manifest["versions"]["jax2onnx"]


def test_onnx_serving_without_jax_matches_textclf_predict(trained, onnx_exports, tmp_path,
                                                          capsys):
  script = (
      "import json, sys\n"
      "from textclf_jax.serve import serving\n"
      "rows = {f: serving.load(d).predict(json.loads(sys.argv[2])) for f, d in "
      "json.loads(sys.argv[1]).items()}\n"
      "print(json.dumps({'rows': rows, 'jax': sorted(m for m in sys.modules if m == 'jax' "
      "or m.startswith(('jax.', 'jaxlib', 'flax')))}))\n")
  dirs = {family: out for family, (out, _) in onnx_exports.items()}
  texts = [*TEXTS, "", "   "]  # blank texts: an error row, no label, as in predict
  done = subprocess.run([sys.executable, "-c", script, json.dumps(dirs), json.dumps(texts)],
                        cwd=str(tmp_path), capture_output=True, text=True, timeout=120,
                        env=dict(os.environ, PYTHONPATH=REPO))
  assert done.returncode == 0, done.stderr
  served = json.loads(done.stdout)
  assert served["jax"] == []  # neither jax nor flax was imported
  for family, run in trained.items():
    code, out, err = run_textclf(["predict", run, "--top_k", "3", "--", *texts], capsys)
    assert code == 0, err
    expected = [json.loads(line) for line in out.splitlines()]
    got = served["rows"][family]
    key = "labels" if family == "hybrid" else "label"
    assert got[-2:] == expected[-2:] == [{"text": t, "error": "blank line: nothing to classify"}
                                         for t in texts[-2:]], family
    got, expected = got[:-2], expected[:-2]
    assert [r[key] for r in got] == [r[key] for r in expected], family
    for g, e in zip(got, expected):
      assert g["probabilities"].keys() == e["probabilities"].keys()
      assert np.allclose(list(g["probabilities"].values()), list(e["probabilities"].values()),
                         atol=1e-5), (family, g, e)


def test_stablehlo_round_trip_without_the_model_code(trained, onnx_exports, tmp_path):
  import jax

  from textclf_jax.serve import export, serving
  for family in ("hybrid",):  # convolutions and a scan, multi-label
    out = str(tmp_path / family)
    manifest = export.export_run(trained[family], "stablehlo", out)
    assert manifest["parity"]["passed"] and manifest["format"] == "stablehlo"
    onnx = serving.load(onnx_exports[family][0])
    ids, lengths = onnx.encode(TEXTS)
    length = max(int(lengths.max()), manifest["min_length"])
    with open(os.path.join(out, "model.stablehlo"), "rb") as f:
      restored = jax.export.deserialize(bytearray(f.read()))  # no textclf code involved
    for batch in (1, len(TEXTS)):  # the batch and length axes are dynamic
      probs = np.asarray(restored.call(ids[:batch, :length], lengths[:batch]))
      np.testing.assert_allclose(probs, onnx.probabilities(TEXTS[:batch]), atol=1e-5)
    np.testing.assert_allclose(serving.load(out).probabilities(TEXTS),
                               onnx.probabilities(TEXTS), atol=1e-5)


def test_a_parity_failure_is_refused_and_leaves_nothing(trained, tmp_path, monkeypatch, capsys):
  from textclf_jax.serve.export import trace

  original = trace.export_model

  def corrupted(steps, state, dense=True):
    model = original(steps, state, dense)
    if dense:  # the exported model, not the JAX reference: its head's bias shifted
      bias = model.head.bias
      shift = np.linspace(0.0, 2.0, bias.shape[0], dtype=np.float32)
      bias.set_value(np.asarray(bias[...]) + shift)
    return model

  monkeypatch.setattr(trace, "export_model", corrupted)
  out = tmp_path / "exports" / "cnn"
  code, _, err = run_textclf(["export", trained["cnn"], "--format", "onnx", "--out", str(out)],
                             capsys)
  assert code == 2, err
  assert "refused: the exported onnx model differs from the JAX model" in err
  assert "nothing was written" in err
  assert os.listdir(tmp_path / "exports") == []  # neither the export nor its temporary


def test_an_existing_out_is_refused_before_any_work(trained, onnx_exports, capsys):
  out = onnx_exports["cnn"][0]
  before = open(os.path.join(out, "manifest.json")).read()
  code, _, err = run_textclf(["export", trained["cnn"], "--format", "onnx", "--out", out],
                             capsys)
  assert code == 2 and "already exists" in err and "--overwrite" in err
  assert open(os.path.join(out, "manifest.json")).read() == before


def test_a_chunked_run_is_exported_at_one_fixed_length(tmp_path):
  """chunk_len branches on the batch length, so the length axis cannot be symbolic:
  the export is traced at the longest windowed length and serving pads to it."""
  from textclf_jax.serve import export, serving
  config = tiny_config("lstm", dataset=_dataset(tmp_path, False), max_len=20,
                       bucket_lengths=(8, 20), chunk_len=8, chunk_stride=6)
  run, out = str(tmp_path / "run"), str(tmp_path / "export")
  _build_run(config, run, False)
  manifest = export.export_run(run, "onnx", out)
  assert manifest["length"] == 20 and "inconclusive" in manifest["length_note"]
  assert manifest["parity"]["passed"]
  loaded = serving.load(out)
  assert loaded.padded_length(3) == 20
  assert loaded.probabilities(TEXTS).shape == (len(TEXTS), 3)
