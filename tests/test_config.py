import json

import pytest

from textclf_jax import config as config_lib
from textclf_jax.run import compat


def test_presets_load_and_lock():
  for name in config_lib.PRESETS:
    config = config_lib.load_preset(name)
    assert config.model in ("cnn", "lstm", "hybrid", "tfidf", "fasttext", "transformer")
    with pytest.raises(AttributeError):
      config.not_a_key = 1


def test_overrides_parse_types():
  config = config_lib.apply_overrides(config_lib.load_preset("cnn"), [
      "learning_rate=0.5", "num_epochs=3", "lowercase=false", "filter_widths=(2,3)",
      "dataset=sst2"])
  assert config.learning_rate == 0.5 and config.num_epochs == 3
  assert config.lowercase is False and config.filter_widths == (2, 3)
  assert config.dataset == "sst2"


def test_unknown_key_is_named():
  with pytest.raises(config_lib.ConfigError, match="learnig_rate"):
    config_lib.apply_overrides(config_lib.load_preset("cnn"), ["learnig_rate=1"])


def test_bad_value_is_named():
  with pytest.raises(config_lib.ConfigError, match="num_epochs"):
    config_lib.apply_overrides(config_lib.load_preset("cnn"), ["num_epochs=many"])


def test_config_file_and_json_round_trip(tmp_path):
  path = tmp_path / "my.py"
  path.write_text("from textclf_jax.configs import cnn\n"
                  "def get_config():\n  c = cnn.get_config()\n  c.num_filters = 7\n  return c\n")
  config = config_lib.load_preset(str(path))
  assert config.num_filters == 7
  (tmp_path / "config.json").write_text(config_lib.to_json(config))
  again = config_lib.from_json(str(tmp_path / "config.json"))
  assert again == config


def test_missing_config_file():
  with pytest.raises(config_lib.ConfigError, match="nope.py"):
    config_lib.load_preset("nope.py")


def test_runs_made_before_conv_backward_and_embedding_update_read_as_dense(tmp_path):
  """A run's config.json from before `conv_backward` / `embedding_update` existed
  trained with autodiff's conv backward pass and the dense table update: it reads
  back with those, not with today's default `auto` (which can mean sparse, and
  would restore the wrong optimiser state or round differently). Other keys it
  lacks take the base config's defaults; keys it has are kept."""
  config = config_lib.load_preset("kim")
  assert (config.conv_backward, config.embedding_update) == ("auto", "auto")
  saved = json.loads(config_lib.to_json(config))
  for key in ("conv_backward", "embedding_update", "test_checkpoint"):
    del saved[key]
  path = tmp_path / "config.json"
  path.write_text(json.dumps(saved))
  old = compat.read_config(str(path))
  assert (old.conv_backward, old.embedding_update) == ("dense", "dense")
  assert old.test_checkpoint == "best"
  with old.unlocked():
    old.conv_backward = old.embedding_update = "auto"
  assert old == config
  # A run that names its choices keeps them.
  saved.update(conv_backward="sparse", embedding_update="auto")
  path.write_text(json.dumps(saved))
  named = compat.read_config(str(path))
  assert (named.conv_backward, named.embedding_update) == ("sparse", "auto")


def test_a_command_checks_its_config_once_and_config_py_loads_no_jax(topic_dir, tmp_path,
                                                                       monkeypatch, capsys):
  """`textclf train` validates the config it trains exactly once (it was four times:
  load_preset, apply_overrides, from_json, train_and_evaluate), and importing config.py
  brings no JAX or training code with it (it sits below them)."""
  import subprocess
  import sys
  from conftest import run_textclf
  code = ("import sys; import textclf_jax.config as c; c.problems(c.load_preset('cnn')); "
          "print(sorted(m for m in sys.modules if m == 'jax' or m.startswith("
          "('textclf_jax.training', 'textclf_jax.models', 'textclf_jax.data'))))")
  out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                       check=True).stdout
  assert out.strip() == "[]", out
  calls = []
  real = config_lib.problems
  monkeypatch.setattr(config_lib, "problems", lambda config: calls.append(1) or real(config))
  code, out, err = run_textclf(
      ["train", f"--config.dataset={topic_dir}", "--workdir", str(tmp_path / "run"),
       "--config.num_epochs=1", "--config.max_len=16", "--config.bucket_lengths=(16,)",
       "--config.embed_dim=8", "--config.num_filters=4", "--config.progress_bar=false",
       "--config.wandb=disabled"], capsys)
  assert code == 0, err
  assert len(calls) == 1

