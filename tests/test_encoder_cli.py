"""The CLI beyond train / eval / predict for runs through a pretrained encoder
(model=transformer, and a CNN on embedding=contextual), on a tiny random BERT
(tests/tiny_hf.py): explain (integrated gradients over the encoder's word embeddings,
summed per word), export to ONNX with its parity gate and serving of the exported
directory on raw text, tune's transformer space, experiments.versus_linear's entry, and
the multi-label path (sigmoid head, thresholds) trained and re-evaluated."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from conftest import REPO, make_rows, run_textclf, write_jsonl

pytest.importorskip("tokenizers")
pytest.importorskip("safetensors")
sys.path.insert(0, os.path.dirname(__file__))
from tiny_hf import numpy_model  # noqa: E402

TEXT = "the cat sat on unbelievable mat"  # "unbelievable": un ##believ ##able
WORDS = ["[CLS]", "the", "cat", "sat", "on", "unbelievable", "mat", "[SEP]"]
TEXTS = [TEXT, "Café au lait ✓", "hello, world!", "win"]
# A transformer preset shrunk for the CPU: 16 pieces, small batches, one epoch.
SMALL = ["max_len=16", "bucket_lengths=16", "batch_size=8", "num_epochs=1",
         "learning_rate=1e-3", "log_every_steps=5", "checkpoint_every_steps=1000",
         "wandb=disabled", "progress_bar=false"]


def _dataset(directory, multi_label):
  directory.mkdir()
  for split, n, seed in (("train", 24, 1), ("dev", 9, 2), ("test", 9, 3)):
    write_jsonl(directory / f"{split}.jsonl", make_rows(n, seed, multi_label=multi_label))
  return str(directory)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
  """The tiny BERT folder, a single- and a multi-label dataset, a multi-label transformer
  run trained for one epoch (shared by every test) and a contextual CNN run holding its
  initial parameters (built as training starts one, not trained: its tests read only
  the model's function), with a calibration temperature."""
  from textclf_jax import config as config_lib
  from textclf_jax.cli import main as cli
  from textclf_jax.data.pipeline import prepare
  from textclf_jax.run import layout as rundir
  from textclf_jax.run.checkpoint import Checkpoints
  from textclf_jax.training import build, checks
  root = tmp_path_factory.mktemp("encoder_cli")
  model = str(root / "tinybert")
  numpy_model(model, "bert")
  single, multi = _dataset(root / "single", False), _dataset(root / "multi", True)
  transformer = str(root / "transformer")
  cli.main(["train", "--config", "minilm", "--workdir", transformer,
            *(f"--config.{o}" for o in [f"encoder_path={model}", f"dataset={multi}", *SMALL])])
  cnn = str(root / "contextual_cnn")
  config = config_lib.apply_overrides(config_lib.load_preset("cnn"), [
      "embedding=contextual", "encoder=subword", f"encoder_path={model}", f"dataset={single}",
      "filter_widths=2,3", "num_filters=4", *SMALL])
  config = checks.resolve(config)
  prepared = prepare(config, -1)
  rundir.init(config, cnn, prepared)
  built = build.build(config, prepared, build.make_mesh(config))
  ckpt = Checkpoints(cnn)
  ckpt.save_latest(0, built.state, {"epoch": 0, "position": 0})
  ckpt.close()
  rundir.write_json(rundir.path(cnn, "calibration.json"),
                    {"method": "temperature", "temperature": 0.5})
  return {"root": root, "model": model, "single": single, "multi": multi,
          "transformer": transformer, "cnn": cnn}


def test_multi_label_transformer_trains_and_eval_matches(tiny, capsys):
  run = tiny["transformer"]
  results = json.load(open(os.path.join(run, "results.json")))
  assert results["test"]["num_examples"] == 9 and "micro_f1" in results["test"]
  thresholds = json.load(open(os.path.join(run, "thresholds.json")))["thresholds"]
  assert np.shape(thresholds) in ((), (3,))  # one per label, or one for all
  code, out, err = run_textclf(["eval", run], capsys)
  assert code == 0, err
  assert "matches results.json test metrics exactly: yes" in err
  assert json.loads(out)["micro_f1"] == results["test"]["micro_f1"]
  code, out, err = run_textclf(["predict", run, "--", TEXT], capsys)
  assert code == 0, err
  assert "labels" in json.loads(out)  # a set of labels, through the thresholds


def test_explain_gives_one_attribution_per_word(tiny):
  from textclf_jax.serve import explain
  from textclf_jax.serve.explain import render
  for name in ("transformer", "cnn"):
    explainer = explain.load(tiny[name], steps=32)
    (row,) = explain.explain_texts(explainer, [TEXT])
    assert row["tokens"] == WORDS, name  # words; [CLS] and [SEP] kept as words
    assert row["pieces"] == ["[CLS]", "the", "cat", "sat", "on", "un", "##believ", "##able",
                             "mat", "[SEP]"]
    assert row["explanations"], name
    for entry in row["explanations"]:
      words, pieces = entry["attributions"], entry["piece_attributions"]
      assert len(words) == len(WORDS) and len(pieces) == len(row["pieces"])
      # Each word is the sum of its pieces: unbelievable = un + ##believ + ##able.
      np.testing.assert_allclose(words[5], sum(pieces[5:8]), atol=2e-6)
      np.testing.assert_allclose(words[:5] + words[6:], pieces[:5] + pieces[8:], atol=0)
      check = entry["completeness"]
      assert abs(sum(words) - check["delta"]) < 0.05 * max(1.0, abs(check["delta"])), name
      if name == "transformer":  # smooth: 32 Gauss-Legendre points are plenty
        assert check["ok"], check
    if name == "cnn":
      assert all(f["ngram"] for f in row["explanations"][0].get("filters", []))
  cnn = explain.load(tiny["cnn"], steps=8)
  row, long = explain.explain_texts(cnn, ["Café au lait ✓", "the cat sat on " * 5 + "x"])
  assert long["truncated"] == 7 and len(long["pieces"]) == 16  # 14 of the 21 pieces seen
  assert "truncated" not in row
  assert row["tokens"] == ["[CLS]", "Café", "au", "lait", "✓", "[SEP]"]
  assert row["unknown"] == [4] and row["pieces"][4] == "[UNK]"  # ✓: not in the vocabulary
  html = render.page([row], tiny["cnn"], 8, "gausslegendre")
  assert "Café" in html and "zero word embeddings" in html


def test_pieces_sum_into_words_spelled_as_the_text():
  from textclf_jax.serve.explain import through_encoder
  assert through_encoder.merge_words([True, True, False, True], [1.0, 2.0, 3.0, 4.0]) == \
      [1.0, 5.0, 4.0]
  text = "Unbelievable!! ok"
  pieces = ["[CLS]", "un", "##believ", "##able", "!", "!", "ok", "[SEP]"]
  starts = [True, True, False, False, True, True, True, True]
  spans = [(0, 0), (0, 2), (2, 8), (8, 12), (12, 13), (13, 14), (15, 17), (0, 0)]
  assert through_encoder.word_strings(pieces, starts, spans, text) == [
      "[CLS]", "Unbelievable", "!", "!", "ok", "[SEP]"]


def test_export_parity_and_serving_raw_text(tiny, capsys):
  pytest.importorskip("jax2onnx")
  pytest.importorskip("onnxruntime")
  from textclf_jax.serve import export, runs, serving
  for name in ("transformer", "cnn"):
    out = str(tiny["root"] / f"export_{name}")
    manifest = export.export_run(tiny[name], "onnx", out, max_examples=9)
    assert manifest["parity"]["passed"] and manifest["parity"]["examples"] == 9
    assert manifest["encoder"] == "subword"
    assert {"tokenizer.json", "subword.json", "vocab.json", "model.onnx"} <= set(os.listdir(out))
    served = serving.load(out)
    expected = runs.predict_texts(tiny[name], TEXTS)
    got = served.predict(TEXTS)
    for a, b in zip(got, expected):
      assert a.get("label") == b.get("label") and a.get("labels") == b.get("labels")
      for label, p in b["probabilities"].items():
        assert abs(a["probabilities"][label] - p) <= 1e-5
  # Served in a fresh process: the exported tokenizer and ONNX model, no JAX.
  script = ("import json, sys\nfrom textclf_jax.serve import serving\n"
            "rows = serving.load(sys.argv[1]).predict(json.loads(sys.argv[2]))\n"
            "print(json.dumps({'rows': rows, 'jax': sorted(m for m in sys.modules if m == 'jax' "
            "or m.startswith(('jax.', 'jaxlib', 'flax')))}))\n")
  done = subprocess.run([sys.executable, "-c", script, out, json.dumps(TEXTS)],
                        capture_output=True, text=True, timeout=120,
                        env=dict(os.environ, PYTHONPATH=REPO))
  assert done.returncode == 0, done.stderr
  assert json.loads(done.stdout) == {"rows": got, "jax": []}
  # An export of a subword run is replaced by --overwrite (its tokenizer files are ours).
  code, _, err = run_textclf(["export", tiny["cnn"], "--format", "onnx", "--out", out,
                              "--overwrite", "--max_examples", "2"], capsys)
  assert code == 0, err


def test_what_onnx_cannot_express_is_refused_with_one_message(tiny, tmp_path, monkeypatch):
  jax2onnx = pytest.importorskip("jax2onnx")
  pytest.importorskip("onnxruntime")

  from textclf_jax.errors import UsageError
  from textclf_jax.serve import export

  def lacking(*args, **kwargs):
    raise NotImplementedError("No ONNX handler registered for primitive 'erf_inv'")
  monkeypatch.setattr(jax2onnx, "to_onnx", lacking)
  out = str(tmp_path / "export")
  with pytest.raises(UsageError, match=r"--format onnx: jax2onnx \S+ cannot express this "
                     r"model \(NotImplementedError: No ONNX handler .*'erf_inv'\); nothing "
                     "was written"):
    export.export_run(tiny["cnn"], "onnx", out, max_examples=2)
  assert not os.path.exists(out) and os.listdir(tmp_path) == []


def test_tune_searches_the_transformer_space(tiny, tmp_path, capsys):
  pytest.importorskip("optuna")
  directory = str(tmp_path / "tune")
  enqueue = [json.dumps({"num_epochs": 2, "pooling": p, "layer_decay": d})
             for p, d in (("mean", 0.9), ("cls", 1.0))]
  code, out, err = run_textclf(
      ["tune", "--config", "minilm", "--space", "transformer", "--trials", "2",
       "--workdir", directory, *(a for e in enqueue for a in ("--enqueue", e)),
       f"--config.encoder_path={tiny['model']}", f"--config.dataset={tiny['single']}",
       *(f"--config.{o}" for o in SMALL if not o.startswith("num_epochs"))], capsys)
  assert code == 0, err
  best = json.load(open(os.path.join(directory, "best.json")))
  assert best["finished"] == 2 and best["space"] == "transformer"
  params = best["best"]["params"]
  assert set(params) == {"learning_rate", "layer_decay", "num_epochs", "pooling",
                         "warmup_fraction"}
  assert 1e-5 <= params["learning_rate"] <= 1e-4 and params["num_epochs"] == 2


def test_the_transformer_space_says_what_is_missing(tiny, monkeypatch):
  import importlib.util

  from textclf_jax import config as config_lib
  from textclf_jax.errors import UsageError
  from textclf_jax.tune import spaces as tune_spaces
  config = config_lib.load_preset("minilm")
  with config.unlocked():
    config.encoder_path = tiny["model"]
  assert tune_spaces.get("transformer", config) is not None
  with config.unlocked():
    config.encoder_path = str(tiny["root"] / "no-such-model")
  with pytest.raises(UsageError, match="--space transformer: not available here: the "
                     "transformer's weights are not installed: .*no-such-model"):
    tune_spaces.get("transformer", config)
  real = importlib.util.find_spec
  monkeypatch.setattr(importlib.util, "find_spec",
                      lambda name, *a: None if name == "tokenizers" else real(name, *a))
  assert "transformer" not in tune_spaces.names() and "cnn" in tune_spaces.names()
  with pytest.raises(UsageError, match=r"needs tokenizers: pip install 'textclf_jax\[encoders\]'"):
    tune_spaces.get("transformer")


def test_versus_linear_takes_the_transformer(tiny):
  pytest.importorskip("optuna")
  from experiments import versus_linear
  args = ["--dataset", tiny["single"], "--data_dir", "", "--models", "cnn,transformer",
          "--trials", "1", "--seeds", "2", "--quick", "--root", str(tiny["root"] / "vl"),
          "--set", "max_len=16", f"encoder_path={tiny['model']}"]
  plan = versus_linear.make_plan(versus_linear.parser().parse_args(args))
  assert plan.models == ("cnn", "transformer")
  assert "transformer" not in versus_linear.default_models()  # only when named
  preset, base = versus_linear.network_base(plan, "transformer")
  assert preset == "minilm" and base.model == "transformer" and base.max_len == 16
  assert base.encoder_path == tiny["model"] and base.num_epochs == 2  # --quick
  # The preset's own settings are the study's first trial (they are in the space).
  assert versus_linear.preset_params("transformer", base) == [
      {"learning_rate": 3e-5, "layer_decay": 1.0, "num_epochs": 2, "pooling": "mean",
       "warmup_fraction": 0.06}]
  assert versus_linear.config_summary(base.to_dict()) == (
      "adamw 3e-05 (wd 0.01), dropout 0.10, tinybert encoder, mean pooling, layer decay 1, "
      "warm-up 0.06, 2 epoch(s), batch 32")
  bad = args[:-1] + [f"encoder_path={tiny['root'] / 'no-such-model'}"]
  with pytest.raises(SystemExit, match="--models transformer: not available here"):
    versus_linear.make_plan(versus_linear.parser().parse_args(bad))


def test_a_contextual_lstm_loads_the_pretrained_encoder(tiny):
  """The LSTM calls its recurrent layers `encoder` too: the pretrained weights go to
  embed/encoder (the one holding `embeddings`), the LSTM's stay as initialised."""
  from safetensors.numpy import load_file

  from textclf_jax import config as config_lib, models
  from textclf_jax.models import base
  from textclf_jax.models.encoders import classifier
  from textclf_jax.training import checks
  config = checks.resolve(config_lib.apply_overrides(config_lib.load_preset("lstm"), [
      "embedding=contextual", "encoder=subword", f"encoder_path={tiny['model']}",
      "lstm_hidden=4", "max_len=16"]))
  model = models.build_model(config, 100, 2, seed=0)
  _, trained, frozen = base.split_params(model)  # the LSTM's first, as build orders them
  params = {**base.flat_names(trained), **base.flat_names(frozen)}
  assert next(iter(params)).startswith("encoder/")  # the LSTM's, not the pretrained one
  loaded = classifier.load_encoder_weights(params, tiny["model"])
  weights = load_file(os.path.join(tiny["model"], "model.safetensors"))
  np.testing.assert_array_equal(loaded["embed/encoder/embeddings/word_embeddings/embedding"],
                                weights["bert.embeddings.word_embeddings.weight"])
  for name, value in params.items():
    if name.startswith("encoder/"):
      np.testing.assert_array_equal(np.asarray(loaded[name]), np.asarray(value[...]))
