"""What a text classifier provides to the rest of the package, and the registry it is
found in by name (as big_vision finds `models.<name>` from `config.model`).

A model class subclasses `TextClassifier` and is registered with `register_model`:
`build_model` builds it with `from_config`; the batcher pads to its `min_length`; the
embedding table gets its `extra_rows`; `fit_to_data` fills what it derives from the
training split; `param_groups` names the parameters training treats specially (the
head for max-norm, the embedding tables for model-axis sharding and the row-sparse
update), and `load_pretrained` initialises it from another run's or a file's arrays
(config.model_init). Every default here is what a plain model needs.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re

import ml_dtypes  # a JAX dependency: numpy's bfloat16
import numpy as np
from flax import nnx

from textclf_jax.errors import ConfigError, DataError


@dataclasses.dataclass(frozen=True)
class ParamGroups:
  """Parts of a model's parameters training treats specially, each a path of names
  from the model's root (its attributes, as in the train state's params)."""
  head: tuple = ("head",)  # the output Linear: max_norm rescales its kernel [in, C]'s columns
  embeddings: tuple = ("embed",)  # the Embeddings: its [rows, D] tables split over `model`
  table: tuple = ("embed", "trainable")  # the trainable table: the row-sparse update's


class TextClassifier(nnx.Module):
  """tokens [B, L], lengths [B] -> logits [B, num_classes]; the protocol's defaults."""

  param_groups = ParamGroups()
  # Whether `from_config` reads the word Embeddings build_model makes (a model with its
  # own input layer, a transformer's, says False and is given None).
  word_embeddings = True
  # Whether it reads long texts as windows (config.chunk_len): it then has `.chunks`
  # (None until build_model sets a chunked.ChunkPool) and a `.head` Linear.
  reads_windows = False
  # Whether `__call__` takes `states=`: a frozen encoder's cached token states
  # (embedding=contextual; training/encoder_cache.py) read instead of running it.
  reads_states = False

  @classmethod
  def from_config(cls, config, embeddings, num_classes: int, *, rngs: nnx.Rngs):
    """The model `config` describes, reading `embeddings` (a models.Embeddings)."""
    raise NotImplementedError(f"{cls.__name__} must define from_config")

  @staticmethod
  def min_length(config) -> int:
    """The shortest padded batch length the model accepts."""
    del config
    return 1

  @staticmethod
  def max_length(config) -> int | None:
    """The longest padded length the model can read (its positions), or None: no bound
    (the word models here; an encoder with position embeddings has one)."""
    del config
    return None

  @staticmethod
  def extra_rows(config) -> int:
    """Embedding-table rows the model needs after the vocabulary's."""
    del config
    return 0

  @staticmethod
  def fit_to_data(config, state: dict, train, multi_label: bool) -> dict:
    """The initial train state with what the model derives from the training split
    (`train`, an Encoded split) filled in; as is by default."""
    del config, train, multi_label
    return state

  def embed_tokens(self, tokens, trainable_vectors=None, states=None):
    """self.embed's [B, L, E]; `states`: a frozen encoder's precomputed token states
    (ContextualEmbeddings only; training/encoder_cache.py), read instead of the encoder."""
    if states is None:
      return self.embed(tokens, trainable_vectors)
    return self.embed(tokens, states=states)

  def table_ids(self, tokens, lengths):
    """The embedding-table rows a batch reads, [B, L'] (0: none): its tokens."""
    del lengths
    return tokens

  @classmethod
  def load_pretrained(cls, params: dict, path: str, dont_load=()) -> dict:
    """`params` (name -> array, e.g. "convs/0/kernel") with every leaf not matched by
    a `dont_load` pattern replaced by the array of that name in `path`: an orbax
    checkpoint of a train state (its params and frozen tables), or a .npz or
    .safetensors file of named arrays. Returns name -> array (numpy where loaded)."""
    return load_named(params, read_named_arrays(path), path, dont_load)


def split_params(model) -> tuple:
  """(graphdef, params, frozen) of a model: `params` are what the optimiser trains (every
  nnx.Param), `frozen` what it never sees: FrozenEmbedding tables and the params of any
  submodule that says `freeze_params = True` (a frozen pretrained encoder)."""
  from textclf_jax.models.embeddings import FrozenEmbedding
  frozen_at = [tuple(path) for path, node in nnx.iter_graph(model)
               if isinstance(node, nnx.Module) and getattr(node, "freeze_params", False)]

  def frozen(path, value):
    return isinstance(value, FrozenEmbedding) or (
        isinstance(value, nnx.Param) and any(tuple(path[:len(p)]) == p for p in frozen_at))
  graphdef, frozen_state, params = nnx.split(model, frozen, nnx.Param)
  return graphdef, params, frozen_state


MODELS: dict = {}  # config.model -> its TextClassifier subclass


def register_model(name: str, cls: type) -> type:
  """Makes `cls` the model of `config.model = name`; returns cls (usable as a decorator
  through functools.partial)."""
  if not (isinstance(cls, type) and issubclass(cls, TextClassifier)):
    raise TypeError(f"register_model({name!r}, {cls!r}): expected a TextClassifier subclass")
  if name in MODELS and MODELS[name] is not cls:
    raise ValueError(f"register_model({name!r}): already {MODELS[name].__name__}")
  MODELS[name] = cls
  return cls


def model_class(name: str) -> type:
  """The registered class of config.model `name`."""
  if name not in MODELS:
    raise ConfigError(f"config.model={name!r}: expected one of {', '.join(MODELS)}")
  return MODELS[name]


# --- named arrays -------------------------------------------------------------------


def flat_names(tree) -> dict:
  """name -> leaf of an nnx State or nested dict; names join the path with "/"
  ("convs/0/kernel"); a trailing "value" (how orbax saves an nnx Variable) is dropped."""
  out = {}

  def walk(node, prefix):
    if isinstance(node, nnx.Variable):
      out["/".join(prefix)] = node
    elif hasattr(node, "items"):
      for key, child in node.items():
        walk(child, prefix + (str(key),))
    else:
      out["/".join(prefix[:-1] if prefix[-1:] == ("value",) else prefix)] = node

  walk(tree, ())
  return out


SAFETENSORS_DTYPES = {"F64": np.float64, "F32": np.float32, "F16": np.float16,
                      "BF16": ml_dtypes.bfloat16, "I64": np.int64, "I32": np.int32,
                      "I16": np.int16, "I8": np.int8, "U8": np.uint8, "BOOL": np.bool_}


def read_safetensors(path: str) -> dict:
  """name -> numpy array (memory-mapped) of a .safetensors file: an 8-byte little-endian
  header size, a JSON header {name: {dtype, shape, data_offsets}}, then the bytes."""
  try:
    data = np.memmap(path, np.uint8, mode="r")
    size = int(np.frombuffer(data[:8], "<u8")[0])
    header = json.loads(bytes(data[8: 8 + size]))
    out = {}
    for name, info in header.items():
      if name == "__metadata__":
        continue
      start, end = info["data_offsets"]
      dtype = np.dtype(SAFETENSORS_DTYPES[info["dtype"]]).newbyteorder("<")
      array = data[8 + size + start: 8 + size + end].view(dtype)
      out[name] = array.reshape(info["shape"])
  except (IndexError, ValueError, KeyError, TypeError) as e:
    raise DataError(f"config.model_init={path!r}: not a safetensors file ({e})") from None
  return out


def read_named_arrays(path: str) -> dict:
  """name -> numpy array of a .npz (no pickle) or .safetensors file, or of an orbax
  train-state checkpoint (the directory its arrays are in: its params and frozen tables)."""
  if not os.path.exists(path):
    raise DataError(f"config.model_init={path!r}: no such file or directory")
  if path.endswith(".npz"):
    with np.load(path, allow_pickle=False) as npz:
      return {name: npz[name] for name in npz.files}
  if path.endswith(".safetensors"):
    return read_safetensors(path)
  if not os.path.isdir(path):
    raise DataError(f"config.model_init={path!r}: expected a run directory, an orbax "
                    "checkpoint directory, or a .npz or .safetensors file of named arrays")
  import orbax.checkpoint as ocp
  try:
    restored = ocp.StandardCheckpointer().restore(os.path.abspath(path))
  except Exception as e:  # noqa: BLE001 (orbax and tensorstore raise their own types)
    raise DataError(f"config.model_init={path!r}: not a readable orbax checkpoint "
                    f"({str(e).splitlines()[0] if str(e) else type(e).__name__})") from None
  if isinstance(restored, dict) and "params" in restored:  # a train state
    restored = {"params": restored["params"], "frozen": restored.get("frozen", {})}
    return {name: np.asarray(v) for part in restored.values()
            for name, v in flat_names(part).items()}
  return {name: np.asarray(v) for name, v in flat_names(restored).items()}


def skipped(name: str, patterns) -> bool:
  """Whether a pattern fully matches `name` or one of its "/"-prefixes ("head"
  matches "head/kernel")."""
  parts = name.split("/")
  return any(p.fullmatch("/".join(parts[:i])) for p in patterns for i in range(1, len(parts) + 1))


def load_named(params: dict, source: dict, path: str, dont_load=()) -> dict:
  """`params` (name -> array or Variable) with each leaf not skipped by `dont_load`
  (regular expressions over names) replaced by `source[name]` cast to its dtype.
  A missing name or another shape is an error naming `path` and the parameter."""
  patterns = [re.compile(p) for p in dont_load]
  for pattern in patterns:
    if not any(skipped(name, [pattern]) for name in params):
      raise ConfigError(f"config.model_init_dont_load: {pattern.pattern!r} matches no "
                        f"parameter of the model ({', '.join(params)})")
  out = dict(params)
  for name, leaf in params.items():
    if skipped(name, patterns):
      continue
    if name not in source:
      held = sorted(source)
      held = ", ".join(held[:12]) + (f" and {len(held) - 12} more" if len(held) > 12 else "")
      raise DataError(f"config.model_init={path!r}: has no parameter {name!r} (it holds "
                      f"{held or 'none'}); add it to config.model_init_dont_load to keep "
                      "it freshly initialised")
    value = np.asarray(source[name])
    if value.shape != tuple(leaf.shape):
      raise DataError(f"config.model_init={path!r}: parameter {name!r} is "
                      f"{list(value.shape)} there, {list(leaf.shape)} in this model; add it "
                      "to config.model_init_dont_load to keep it freshly initialised")
    out[name] = value.astype(leaf.dtype)
  return out
