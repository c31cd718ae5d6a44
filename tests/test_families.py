"""Model families (textclf_jax/families): a family defined here, in the test, trains,
evaluates and joins an ensemble through the unchanged command line; registry.for_run
tells the neural, TF-IDF and test families' runs apart; the test family's own search
space runs through `textclf tune` and experiments.versus_linear beside the CNN; the
neural predictor restores only the parameters; one split is encoded as prepare()
encodes it."""

import collections
import json
import math
import os
import sys

import numpy as np
import pytest

from conftest import tiny_config
from textclf_jax.cli import main as cli
from textclf_jax.families import registry
from textclf_jax.families.base import Candidate, Family, Predictor, saved_model

TOY_MODEL = "toy_nb"
TOY_FILE = "toy_nb.json"


# --- a family of the test's own: multinomial Naive Bayes over word counts, numpy only ---


def _split_data(config, fold=-1):
  from textclf_jax.data import splits as splits_lib
  from textclf_jax.data.sources import load_source
  raw = load_source(config)
  return raw, splits_lib.make_splits(raw, config, fold)


class ToyRun:
  """A fitted toy run read back (the family's Predictor)."""

  def __init__(self, run):
    from textclf_jax import config as config_lib
    from textclf_jax.run import layout as rundir
    from textclf_jax.text.tokenize import Tokenizer
    self.run = run
    self.config = config_lib.from_json(rundir.path(run, rundir.CONFIG))
    with open(os.path.join(run, TOY_FILE)) as f:
      saved = json.load(f)
    self.label_names, self.multi_label = saved["labels"], False
    self.thresholds = None
    self.calibration = rundir.read_calibration(run)
    self.log_prior = np.asarray(saved["log_prior"])
    self.log_word = {w: np.asarray(v) for w, v in saved["log_word"].items()}
    self.log_unknown = np.asarray(saved["log_unknown"])
    self.tokenizer = Tokenizer.from_config(self.config)

  def text_probs(self, texts):
    scores = np.array([self.log_prior + sum(self.log_word.get(w, self.log_unknown)
                                            for w in self.tokenizer(t)) for t in texts])
    scores = np.exp(scores - scores.max(axis=1, keepdims=True))
    return scores / scores.sum(axis=1, keepdims=True)

  def split_probs(self, split, data_dir=""):
    from textclf_jax.data.batching import encode_labels
    if data_dir:
      with self.config.unlocked():
        self.config.data_dir = data_dir
    _, splits = _split_data(self.config)
    data = splits[split]
    return self.text_probs(data.texts), encode_labels(data.labels, self.label_names, False)


class ToyFamily:
  """preset: the config its Candidate starts from (a Python config file), so that a
  search and experiments.versus_linear can start one."""
  name = "toy"
  models = (TOY_MODEL,)

  def __init__(self, preset=""):
    self.preset = preset

  def problems(self, config):
    alpha = config.get("toy_alpha", 1.0)
    return [] if isinstance(alpha, float) and alpha > 0 else [
        f"config.toy_alpha={alpha!r}: expected a number > 0"]

  def train(self, config, workdir, *, resume=False, fold=-1, raw=None, on_dev=None):
    from textclf_jax.data import splits as splits_lib
    from textclf_jax.data.batching import encode_labels
    from textclf_jax.run import finish, layout as rundir
    from textclf_jax.text.tokenize import Tokenizer
    raw_, splits = _split_data(config, fold)
    names = splits_lib.build_label_map(raw_, splits)
    tokenizer = Tokenizer.from_config(config)
    counts = collections.defaultdict(lambda: np.zeros(len(names)))
    prior = np.zeros(len(names))
    for text, label in zip(splits["train"].texts, splits["train"].labels):
      prior[names.index(label)] += 1
      for w in tokenizer(text):
        counts[w][names.index(label)] += 1
    alpha = config.get("toy_alpha", 1.0)
    total = sum(counts.values()) + alpha * (len(counts) + 1)
    os.makedirs(workdir, exist_ok=True)
    rundir.write_config(config, workdir)
    # labels.json: what every run holds (ensembles check their members' labels with it).
    rundir.write_json(rundir.path(workdir, rundir.LABELS), {"labels": names,
                                                            "multi_label": False})
    with open(os.path.join(workdir, TOY_FILE), "w") as f:
      json.dump({"labels": names, "log_prior": np.log(prior / prior.sum()).tolist(),
                 "log_word": {w: np.log((c + alpha) / total).tolist() for w, c in counts.items()},
                 "log_unknown": np.log(alpha / total).tolist()}, f)
    run = ToyRun(workdir)
    probs = {k: (run.text_probs(splits[k].texts), encode_labels(splits[k].labels, names, False))
             for k in ("dev", "test")}
    scores = finish.score(config, names, False, probs["dev"], probs["test"])
    results = finish.results(scores, dict(
        dataset=raw_.name, model=TOY_MODEL, fold=fold, best_step=0, tested_checkpoint="last",
        final_step=0, stopped_early=False, train_seconds=0.0, train_examples_per_second=0.0,
        wall_seconds=0.0, num_devices=1, num_processes=1, platform="cpu",
        data={"num_train": len(splits["train"])}))
    finish.write(workdir, config, raw_.name, False, scores, results)
    return results

  def owns(self, run_dir):
    return saved_model(run_dir) == TOY_MODEL and os.path.isfile(os.path.join(run_dir, TOY_FILE))

  def load(self, run_dir, batch_size=0):
    return ToyRun(run_dir)

  def candidates(self):
    # Its own search space: the smoothing alpha.
    return [Candidate(TOY_MODEL, self.preset, lambda trial, config: {
        "toy_alpha": trial.suggest_float("toy_alpha", 0.1, 2.0)}, takes_vectors=False)]

  def unsupported(self, command):
    if command == "vmap":
      return "the toy family counts words once: nothing to vmap"
    return f"the toy family has no `{command}`" if command in ("explain", "export") else None


@pytest.fixture
def toy_family():
  family = registry.register(ToyFamily())
  yield family
  registry.unregister(family.name)


def _write_config(tmp_path, dataset, **keys):
  lines = ["from textclf_jax.configs import base", "", "def get_config():",
           "  c = base.get_config()"]
  lines += [f"  c.{k} = {v!r}" for k, v in dict(keys, dataset=dataset).items()]
  lines += ["  return c", ""]
  path = tmp_path / "toy_config.py"
  path.write_text("\n".join(lines))
  return str(path)


def test_a_family_of_the_tests_own_trains_evaluates_and_joins_an_ensemble(
    toy_family, topic_dir, tmp_path, capsys):
  from textclf_jax.training import loop
  assert isinstance(toy_family, Family) and TOY_MODEL in registry.model_names()
  toy, cnn = str(tmp_path / "toy"), str(tmp_path / "cnn")
  config = _write_config(tmp_path, topic_dir, model=TOY_MODEL, toy_alpha=0.5,
                         wandb="disabled")
  cli.main(["train", "--config", config, "--workdir", toy])
  out = capsys.readouterr().out
  assert "[textclf] test: accuracy" in out and "calibration: temperature" in out
  with open(os.path.join(toy, "results.json")) as f:
    results = json.load(f)
  assert results["model"] == TOY_MODEL and results["test"]["accuracy"] > 0.9
  assert list(results)[-1] == "calibration"
  for name in ("calibration.json", "predictions/dev_probs.npy", "predictions/test_probs.npy"):
    assert os.path.isfile(os.path.join(toy, name)), name

  cli.main(["eval", toy, "--split", "dev"])
  out = capsys.readouterr().err
  assert "matches results.json dev metrics exactly: yes" in out

  loop.train_and_evaluate(tiny_config(dataset=topic_dir, num_epochs=3), cnn)
  capsys.readouterr()
  cli.main(["predict", toy, "--ensemble", cnn, "--top_k", "1", "the goal of the match",
            "stock market bank"])
  rows = [json.loads(line) for line in capsys.readouterr().out.strip().splitlines()]
  assert [r["label"] for r in rows] == ["sport", "money"]

  # What the family says it cannot do is what the command says.
  with pytest.raises(SystemExit) as exit_info:
    cli.main(["explain", toy, "a goal"])
  assert exit_info.value.code == 2 and "the toy family has no `explain`" in \
      capsys.readouterr().err
  # Its config keys are its own to check.
  with pytest.raises(SystemExit) as exit_info:
    cli.main(["train", "--config", config, "--workdir", str(tmp_path / "bad"),
              "--config.toy_alpha=-1.0"])
  assert exit_info.value.code == 2 and "config.toy_alpha=-1.0" in capsys.readouterr().err


def test_for_run_tells_the_families_runs_apart(toy_family, topic_dir, tmp_path):
  from textclf_jax.families import cv
  from textclf_jax.training import loop
  from textclf_jax import config as config_lib
  runs = {name: str(tmp_path / name) for name in ("neural", "tfidf", "toy")}
  loop.train_and_evaluate(tiny_config(dataset=topic_dir, num_epochs=1), runs["neural"])
  tfidf = config_lib.load_preset("tfidf")
  with tfidf.unlocked():
    tfidf.dataset, tfidf.tfidf_c_grid, tfidf.tfidf_c_extend = topic_dir, (1.0,), 0
  cv.train_all_folds(tfidf, runs["tfidf"])
  toy = config_lib.load_preset("cnn")
  with toy.unlocked():
    toy.dataset, toy.model = topic_dir, TOY_MODEL
  cv.train_all_folds(toy, runs["toy"])
  for name, run in runs.items():
    assert registry.for_run(run).name == name
    loaded = registry.load(run)
    assert isinstance(loaded, Predictor) and loaded.label_names
  with pytest.raises(registry.DataError, match="not a run directory that any model family"):
    registry.for_run(str(tmp_path))


@pytest.fixture
def toy_with_preset(tmp_path):
  """The toy family, its Candidate starting from a config file of the test's own."""
  config = tmp_path / "preset"
  config.mkdir()
  family = registry.register(ToyFamily(_write_config(config, "unset", model=TOY_MODEL,
                                                     toy_alpha=1.0, wandb="disabled")))
  yield family
  registry.unregister(family.name)


def test_a_family_of_the_tests_own_is_tuned_by_its_own_space(toy_with_preset, topic_dir,
                                                              tmp_path, capsys):
  pytest.importorskip("optuna")
  from textclf_jax.tune import spaces
  assert TOY_MODEL in spaces.names()
  directory = str(tmp_path / "tune")
  cli.main(["tune", "--config", toy_with_preset.preset, f"--config.dataset={topic_dir}",
            "--space", TOY_MODEL, "--trials", "2", "--workdir", directory])
  out = capsys.readouterr().out
  assert "best of 2 finished trials" in out
  with open(os.path.join(directory, "best.json")) as f:
    best = json.load(f)
  assert best["states"] == {"COMPLETE": 2} and best["space"] == TOY_MODEL
  alphas = [t["params"]["toy_alpha"] for t in best["trials"]]
  assert len(set(alphas)) == 2 and all(0.1 <= a <= 2.0 for a in alphas)
  for trial in best["trials"]:  # each trial is a run of the toy family, at its alpha
    run = os.path.join(directory, trial["workdir"])
    assert registry.for_run(run).name == "toy"
    assert registry.load(run).config.toy_alpha == trial["params"]["toy_alpha"]
  from textclf_jax import config as config_lib
  assert config_lib.load_preset(best["best"]["config_file"]).toy_alpha == \
      best["best"]["params"]["toy_alpha"]


def test_versus_linear_compares_a_family_of_the_tests_own(toy_with_preset, tmp_path,
                                                          capsys):
  pytest.importorskip("optuna")
  pytest.importorskip("sklearn")
  from conftest import make_rows, write_jsonl
  from experiments import versus_linear
  data = tmp_path / "data"
  data.mkdir()
  for split, n, seed in (("train", 300, 1), ("dev", 60, 2), ("test", 90, 3)):
    write_jsonl(data / f"{split}.jsonl", make_rows(n, seed))
  assert TOY_MODEL in versus_linear.default_models()  # compared without naming it
  root = tmp_path / "runs"
  record = versus_linear.main(
      ["--dataset", str(data), "--data_dir", "", "--models", f"{TOY_MODEL},cnn", "--trials",
       "1", "--seeds", "2", "--quick", "--root", str(root), "--set", "max_len=16",
       "bucket_lengths=16", "embed_dim=16", "num_filters=8", "log_every_steps=5"])
  out = capsys.readouterr().out
  assert "one run at a time: the toy family counts words once" in out
  toy = record["models"][TOY_MODEL]
  assert toy["trials"]["finished"] == 1 and len(toy["runs"]) == 2
  assert all(registry.for_run(run).name == "toy" for run in toy["runs"])
  assert toy["config_summary"].startswith("toy_alpha=")
  # The preset's alpha is the first (here: the only) trial.
  assert toy["params"] == {"toy_alpha": 1.0}
  assert toy["single"]["n"] == 2 and toy["single"]["test"] > 0.5
  assert record["all_ensemble"]["members"] == [TOY_MODEL, "cnn"]
  row = (root / "data" / "row.md").read_text().splitlines()
  assert f"| {TOY_MODEL} test |" in row[0]
  cells = row[2].split(" | ")
  assert cells[5] == f"{100 * toy['single']['test']:.1f} ± " \
      f"{100 * toy['single']['test_std']:.1f} (ens. {100 * toy['ensemble']['test']:.1f})"


def test_neural_predictor_restores_no_optimiser_state(topic_dir, tmp_path):
  from textclf_jax.families.neural_run import NeuralRun
  from textclf_jax.serve import runs
  run = str(tmp_path / "run")
  from textclf_jax.training import loop
  loop.train_and_evaluate(tiny_config(dataset=topic_dir, num_epochs=2), run)
  loaded = runs.load(run)
  assert isinstance(loaded, NeuralRun) and set(loaded.state) == {"step", "params", "frozen"}
  assert loaded.steps.tx is None
  probs, labels = loaded.split_probs("test")
  saved = np.load(os.path.join(run, "predictions", "test_probs.npy"))
  assert np.array_equal(probs, saved)  # bit for bit what the run was scored with
  assert np.array_equal(labels, np.load(os.path.join(run, "predictions", "test_labels.npy")))
  with pytest.raises(registry.DataError, match="split 'validation'"):
    loaded.split_probs("validation")


@pytest.mark.parametrize("max_len", [24, 0])
def test_encode_split_gives_the_ids_prepare_gives(topic_dir, max_len):
  from textclf_jax.data.pipeline import encode_split, prepare
  config = tiny_config(dataset=topic_dir, max_len=max_len, min_count=2)
  prepared = prepare(config)
  for split in ("train", "dev", "test"):
    alone = encode_split(config, split, prepared.encoder, prepared.label_names)
    expected = prepared.splits[split]
    assert np.array_equal(alone.ids, expected.ids) and alone.ids.dtype == expected.ids.dtype
    assert np.array_equal(alone.lengths, expected.lengths)
    assert np.array_equal(alone.labels, expected.labels)


def test_listing_families_imports_no_jax():
  import subprocess
  code = ("import sys; from textclf_jax.families import registry; registry.families(); "
          "registry.candidates(); assert 'jax' not in sys.modules, 'jax imported'")
  env = dict(os.environ, PYTHONPATH=os.path.dirname(os.path.dirname(os.path.abspath(
      __file__))))
  subprocess.run([sys.executable, "-c", code], check=True, env=env)


def test_tune_spaces_are_the_families_candidates():
  from textclf_jax.tune import spaces
  candidates = registry.candidates()
  # The transformer is offered only where its packages and default weights are installed.
  offered = [] if candidates["transformer"].why_unavailable() else ["transformer"]
  assert spaces.names() == ["cnn", "lstm", "hybrid", "bag", "lr", *offered]
  assert candidates["bag"].preset == "fasttext_nb" and not candidates["bag"].takes_vectors
  assert candidates["cnn"].document_preset == ("cnn_doc", ())
  assert math.isclose(len(candidates["hybrid"].document_preset[1]), 7)
  assert registry.get("tfidf").unsupported("tune").startswith("tune searches")
  assert registry.get("neural").unsupported("export") is None
