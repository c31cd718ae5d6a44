"""config.model_init: a new run's parameters from another run's checkpoint or a .npz
file (all but config.model_init_dont_load), and the model registry's protocol."""

import json

import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from conftest import make_rows, tiny_config, write_jsonl
from textclf_jax import config as config_lib
from textclf_jax.data.pipeline import prepare
from textclf_jax.errors import ConfigError, DataError
from textclf_jax.models import MODELS, ParamGroups, TextClassifier, register_model
from textclf_jax.models import base as models_base
from textclf_jax.run import layout as rundir
from textclf_jax.training import build as build_lib
from textclf_jax.training import checks, loop as train


@pytest.fixture(scope="module")
def source_run(tmp_path_factory):
  """A finished 3-topic CNN run, and a 2-label task over the same texts."""
  root = tmp_path_factory.mktemp("pretrained")
  topics, binary = root / "topics", root / "binary"
  for d in (topics, binary):
    d.mkdir()
  for split, n, seed in (("train", 300, 1), ("dev", 60, 2), ("test", 90, 3)):
    rows = make_rows(n, seed)
    write_jsonl(topics / f"{split}.jsonl", rows)
    write_jsonl(binary / f"{split}.jsonl", [
        {"text": r["text"], "label": "sport" if r["label"] == "sport" else "other"}
        for r in rows])
  workdir = str(root / "source")
  results = train.train_and_evaluate(tiny_config(dataset=str(topics), num_epochs=2), workdir)
  return workdir, results, str(topics), str(binary)


def _built(config):
  """The initial train state `build.build` gives `config` (on a one-device mesh)."""
  config = checks.resolve(config)
  prepared = prepare(config)
  config = checks.resolve_max_len(config, prepared.max_len)
  return build_lib.build(config, prepared, build_lib.make_mesh(config))


def _named(state) -> dict:
  return {name: np.asarray(v.get_value()) for part in ("params", "frozen")
          for name, v in models_base.flat_names(state[part]).items()}


def test_a_run_loads_into_a_model_for_another_label_set(source_run):
  workdir, _, _, binary = source_run
  source = models_base.read_named_arrays(build_lib.pretrained_source(workdir))
  fresh = _named(_built(tiny_config(dataset=binary, seed=1)).state)
  loaded = _named(_built(tiny_config(dataset=binary, seed=1, model_init=workdir,
                                     model_init_dont_load=("head",))).state)
  assert set(loaded) == set(fresh) and {"head/kernel", "head/bias"} < set(loaded)
  for name, value in loaded.items():
    if name.startswith("head/"):  # kept fresh: this run's 2 labels, its own seed
      assert value.shape[-1] == 2 and source[name].shape[-1] == 3
      np.testing.assert_array_equal(value, fresh[name])
    else:
      np.testing.assert_array_equal(value, source[name], err_msg=name)
      assert not np.array_equal(value, fresh[name]), name


def test_a_mismatched_shape_or_name_is_an_error_naming_the_path(source_run, tmp_path):
  workdir, _, _, binary = source_run
  with pytest.raises(DataError, match=r"model_init=.*source.*'head/bias' is \[3\] there, "
                     r"\[2\] in this model"):
    _built(tiny_config(dataset=binary, model_init=workdir))
  with pytest.raises(ConfigError, match="'classifier' matches no parameter"):
    _built(tiny_config(dataset=binary, model_init=workdir,
                       model_init_dont_load=("classifier",)))
  source = models_base.read_named_arrays(build_lib.pretrained_source(workdir))
  partial = str(tmp_path / "partial.npz")
  np.savez(partial, **{k: v for k, v in source.items() if not k.startswith("convs/1/")})
  with pytest.raises(DataError, match=r"partial.npz.*has no parameter 'convs/1/bias'"):
    _built(tiny_config(dataset=binary, model_init=partial, model_init_dont_load=("head",)))
  with pytest.raises(DataError, match="no such file"):
    _built(tiny_config(dataset=binary, model_init=str(tmp_path / "nowhere")))


def test_a_run_with_other_words_loads_only_without_its_embeddings(source_run, tmp_path):
  """Embedding row i is the source vocabulary's word i: another vocabulary is refused
  unless the embeddings are kept fresh."""
  workdir, _, _, _ = source_run
  other = tmp_path / "other"
  other.mkdir()
  for split, n, seed in (("train", 200, 7), ("dev", 30, 8), ("test", 30, 9)):
    rows = make_rows(n, seed)
    write_jsonl(other / f"{split}.jsonl", [dict(r, text=r["text"] + " extra") for r in rows])
  with pytest.raises(DataError, match=r"its vocabulary \(\d+ words\) is not this run's"):
    _built(tiny_config(dataset=str(other), model_init=workdir))
  source = models_base.read_named_arrays(build_lib.pretrained_source(workdir))
  state = _named(_built(tiny_config(dataset=str(other), model_init=workdir,
                                    model_init_dont_load=("embed",))).state)
  np.testing.assert_array_equal(state["head/kernel"], source["head/kernel"])
  assert state["embed/trainable"].shape != source["embed/trainable"].shape


def test_a_npz_of_named_arrays_loads_as_the_checkpoint_does(source_run, tmp_path):
  workdir, _, topics, _ = source_run
  source = models_base.read_named_arrays(build_lib.pretrained_source(workdir))
  npz = str(tmp_path / "weights.npz")
  np.savez(npz, **source)
  from_npz = _named(_built(tiny_config(dataset=topics, seed=3, model_init=npz)).state)
  assert set(from_npz) == set(source)
  for name, value in from_npz.items():
    np.testing.assert_array_equal(value, source[name], err_msg=name)


def _write_safetensors(path, arrays):
  """The safetensors layout (the `safetensors` package writes the same): header size
  (u64, little-endian), a JSON header padded with spaces to 8 bytes, the raw bytes."""
  codes = {"float32": "F32", "float16": "F16", "int32": "I32"}
  header, blobs, offset = {"__metadata__": {"format": "np"}}, [], 0
  for name, array in arrays.items():
    data = np.ascontiguousarray(array).astype(array.dtype.newbyteorder("<")).tobytes()
    header[name] = {"dtype": codes[array.dtype.name], "shape": list(array.shape),
                    "data_offsets": [offset, offset + len(data)]}
    blobs.append(data)
    offset += len(data)
  text = json.dumps(header).encode()
  text += b" " * (-len(text) % 8)
  with open(path, "wb") as f:
    f.write(len(text).to_bytes(8, "little") + text + b"".join(blobs))


def test_a_safetensors_file_loads_and_a_truncated_one_is_named(source_run, tmp_path):
  workdir, _, topics, _ = source_run
  source = models_base.read_named_arrays(build_lib.pretrained_source(workdir))
  file = str(tmp_path / "weights.safetensors")
  _write_safetensors(file, {**source, "extra/f16": np.arange(6, dtype=np.float16)})
  read = models_base.read_named_arrays(file)
  np.testing.assert_array_equal(read["extra/f16"], np.arange(6, dtype=np.float16))
  loaded = _named(_built(tiny_config(dataset=topics, seed=3, model_init=file)).state)
  for name, value in loaded.items():
    np.testing.assert_array_equal(value, source[name], err_msg=name)
  with open(file, "rb") as f:
    head = f.read(40)
  with open(file, "wb") as f:
    f.write(head)
  with pytest.raises(DataError, match=r"weights.safetensors.*not a safetensors file"):
    models_base.read_named_arrays(file)


def test_a_run_from_model_init_starts_from_those_weights(source_run, tmp_path):
  """Learning rate 0: the new run's every evaluation is the source's best state's,
  so its dev metrics equal the source run's exactly."""
  workdir, results, topics, _ = source_run
  new = str(tmp_path / "continued")
  out = train.train_and_evaluate(tiny_config(dataset=topics, num_epochs=1, seed=5,
                                             learning_rate=0.0, model_init=workdir), new)
  for key in ("accuracy", "macro_f1"):
    assert out["dev"][key] == results["dev"][key]
    assert out["test"][key] == results["test"][key]
  assert rundir.read_json(rundir.path(new, rundir.CONFIG))["model_init"] == workdir


def test_config_checks_model_init_keys():
  config = tiny_config(model_init_dont_load=("head", "embed/(",))
  assert any("model_init_dont_load" in p for p in config_lib.problems(config))
  assert not config_lib.problems(tiny_config(model_init="runs/a", model_init_dont_load=("head",)))


class MeanBag(TextClassifier):
  """The docs/extending.md example: the mean of a text's word vectors -> a Linear
  named `out` (param_groups says so: max_norm rescales it)."""

  param_groups = ParamGroups(head=("out",))

  def __init__(self, embeddings, num_classes, *, rngs):
    self.embed = embeddings
    self.out = nnx.Linear(embeddings.out_features, num_classes, rngs=rngs)

  @classmethod
  def from_config(cls, config, embeddings, num_classes, *, rngs):
    return cls(embeddings, num_classes, rngs=rngs)

  def __call__(self, tokens, lengths, key=None, trainable_vectors=None, dropout_keep=None):
    x = self.embed(tokens, trainable_vectors)  # [B, L, D], zero past each length
    mean = jnp.sum(x, axis=1) / jnp.maximum(lengths, 1)[:, None].astype(x.dtype)
    return self.out(mean)


def test_a_registered_model_trains_and_its_head_gets_max_norm(source_run, tmp_path):
  _, _, topics, _ = source_run
  register_model("mean_bag", MeanBag)
  try:
    with pytest.raises(ValueError, match="already"):
      register_model("mean_bag", TextClassifier)
    with pytest.raises(TypeError):
      register_model("nothing", dict)
    config = tiny_config(model="mean_bag", dataset=topics, num_epochs=3, max_norm=0.5,
                         learning_rate=0.05)
    results = train.train_and_evaluate(config, str(tmp_path / "mean_bag"))
    assert results["test"]["accuracy"] >= 0.8
    params = _named(_built(config.copy_and_resolve_references()).state)
    assert "out/kernel" in params and "head/kernel" not in params
    state = models_base.read_named_arrays(
        build_lib.pretrained_source(str(tmp_path / "mean_bag")))
    norms = np.sqrt(np.sum(state["out/kernel"] ** 2, axis=0))
    assert np.all(norms <= 0.5 + 1e-6) and np.any(norms > 0.49)
  finally:
    MODELS.pop("mean_bag")


def test_holds_tables_places_only_embedding_leaves_like_the_table():
  from textclf_jax.training.steps import holds_tables
  check = holds_tables(ParamGroups())
  assert check(("params", "embed", "trainable", "value"))
  assert check(("opt_state", "1", "e_g", "embed", "trainable", "value"))
  assert check(("embed_opt", "e_g"))
  assert not check(("params", "head", "kernel", "value"))
  assert not check(("frozen", "nb", "value"))
  assert holds_tables(ParamGroups(embeddings=("encoder", "tok")))(
      ("params", "encoder", "tok", "value"))
