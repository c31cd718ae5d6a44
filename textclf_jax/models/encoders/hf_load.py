"""Reads a Hugging Face-format model folder (config.json + model.safetensors) into an
encoders.bert.Encoder, without torch and without pickle: safetensors.numpy only.

Weight names of both styles are read: `bert.…LayerNorm.gamma` / `.beta` (checkpoints
converted from TensorFlow) and `…LayerNorm.weight` / `.bias` (transformers,
sentence-transformers), with or without the `bert.` / `roberta.` / `distilbert.` prefix;
DistilBERT's own names (`transformer.layer.N.attention.q_lin`, …) too. Heads on top of
the encoder (pooler, MLM and classifier heads) and position-id buffers are ignored: the
encoder returns hidden states. Anything else unexpected, missing or of the wrong shape
is one DataError naming the file and the first such weight. Nothing is downloaded.
"""

from __future__ import annotations

import json
import os
import re

import jax.numpy as jnp
from flax import nnx

from textclf_jax.errors import DataError
from textclf_jax.models.encoders.bert import Encoder, EncoderConfig

CONFIG_FILE, WEIGHTS_FILE = "config.json", "model.safetensors"
PREFIXES = ("bert.", "roberta.", "distilbert.", "model.")
IGNORED = ("pooler.", "cls.", "lm_head.", "classifier.", "pre_classifier.", "qa_outputs.",
           "vocab_transform.", "vocab_layer_norm.", "vocab_projector.",
           "embeddings.position_ids", "embeddings.token_type_ids")
# DistilBERT's layer names -> BERT's.
DISTILBERT_NAMES = [(re.compile(r"^transformer\.layer\.(\d+)\." + a + r"\."),
                     r"encoder.layer.\1." + b + ".") for a, b in [
    ("attention.q_lin", "attention.self.query"), ("attention.k_lin", "attention.self.key"),
    ("attention.v_lin", "attention.self.value"), ("attention.out_lin", "attention.output.dense"),
    ("sa_layer_norm", "attention.output.LayerNorm"), ("ffn.lin1", "intermediate.dense"),
    ("ffn.lin2", "output.dense"), ("output_layer_norm", "output.LayerNorm")]]
ALIASES = {"xlm-roberta": "roberta", "camembert": "roberta"}  # RoBERTa's architecture
REQUIRED = {
    "bert": ("vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads",
             "intermediate_size", "max_position_embeddings"),
    "distilbert": ("vocab_size", "dim", "n_layers", "n_heads", "hidden_dim",
                   "max_position_embeddings"),
}
DISTILBERT_KEYS = {"dim": "hidden_size", "n_layers": "num_hidden_layers",
                   "n_heads": "num_attention_heads", "hidden_dim": "intermediate_size",
                   "activation": "hidden_act", "dropout": "hidden_dropout_prob",
                   "attention_dropout": "attention_probs_dropout_prob"}


def _file(folder, name) -> str:
  if not os.path.isdir(folder):
    raise DataError(f"{folder}: not a model folder (expected a directory holding {name})")
  path = os.path.join(folder, name)
  if not os.path.isfile(path):
    raise DataError(f"{path}: no such file (a Hugging Face model folder holds {CONFIG_FILE} "
                    f"and {WEIGHTS_FILE}; nothing is downloaded)")
  return path


def config_from_dict(d: dict, source: str = CONFIG_FILE) -> EncoderConfig:
  """An HF config.json's dict -> EncoderConfig; DataError naming `source` and the key."""
  if not isinstance(d, dict):
    raise DataError(f"{source}: expected a JSON object, got {type(d).__name__}")
  if "model_type" not in d:
    raise DataError(f"{source}: missing key 'model_type' (one of bert, roberta, distilbert)")
  model_type = ALIASES.get(d["model_type"], d["model_type"])
  if model_type not in ("bert", "roberta", "distilbert"):
    raise DataError(f"{source}: model_type={d['model_type']!r} is not supported (expected "
                    "bert, roberta, xlm-roberta or distilbert)")
  for key in REQUIRED["distilbert" if model_type == "distilbert" else "bert"]:
    if key not in d:
      raise DataError(f"{source}: missing key {key!r} (needed for model_type={model_type!r})")
    if not isinstance(d[key], int) or isinstance(d[key], bool) or d[key] <= 0:
      raise DataError(f"{source}: {key}={d[key]!r}, expected a positive integer")
  if d.get("position_embedding_type", "absolute") != "absolute":
    raise DataError(f"{source}: position_embedding_type={d['position_embedding_type']!r}; "
                    "only 'absolute' is supported")
  if model_type == "distilbert":
    d = {DISTILBERT_KEYS.get(k, k): v for k, v in d.items()}
    d["type_vocab_size"], d["layer_norm_eps"] = 0, 1e-12  # fixed in DistilBERT's code
  fields = {"type_vocab_size": (int, 2), "layer_norm_eps": (float, 1e-12),
            "hidden_act": (str, "gelu"), "pad_token_id": (int, 1 if model_type == "roberta" else 0),
            "hidden_dropout_prob": (float, 0.1), "attention_probs_dropout_prob": (float, 0.1)}
  kwargs = {k: d[k] for k in REQUIRED["bert"]}
  for key, (kind, default) in fields.items():
    value = d.get(key, default)
    value = default if value is None else value
    ok = isinstance(value, (int, float) if kind is float else kind) and not isinstance(value, bool)
    if not ok or (kind is not str and value < 0):
      raise DataError(f"{source}: {key}={value!r}, expected a non-negative {kind.__name__}")
    kwargs[key] = value
  try:
    return EncoderConfig(model_type=model_type, **kwargs)
  except ValueError as e:
    raise DataError(f"{source}: {e}") from None


def load_config(folder: str) -> EncoderConfig:
  """folder/config.json -> EncoderConfig (DataError naming the file, line or key)."""
  path = _file(folder, CONFIG_FILE)
  try:
    with open(path, encoding="utf-8") as f:
      d = json.load(f)
  except json.JSONDecodeError as e:
    raise DataError(f"{path}: line {e.lineno} column {e.colno}: not valid JSON ({e.msg})") from None
  except UnicodeDecodeError as e:
    raise DataError(f"{path}: not UTF-8 text ({e.reason})") from None
  return config_from_dict(d, path)


def canonical_name(name: str) -> str:
  """A checkpoint's weight name -> BERT's transformers name without the model prefix."""
  for prefix in PREFIXES:
    if name.startswith(prefix):
      name = name[len(prefix):]
      break
  parts = name.split(".")
  if len(parts) > 1 and parts[-1] in ("gamma", "beta") and "norm" in parts[-2].lower():
    parts[-1] = "weight" if parts[-1] == "gamma" else "bias"
  name = ".".join(parts)
  for pattern, repl in DISTILBERT_NAMES:
    name = pattern.sub(repl, name)
  return name


def expected_weights(cfg: EncoderConfig) -> dict:
  """Canonical HF name -> (the NNX param's path, whether the array is transposed)."""
  out = {}

  def add(hf, path, kind):
    if kind == "embed":
      out[f"{hf}.weight"] = (path + ("embedding",), False)
    elif kind == "dense":  # torch Linear weight [out, in] = NNX kernel [in, out] transposed
      out[f"{hf}.weight"], out[f"{hf}.bias"] = (path + ("kernel",), True), (path + ("bias",), False)
    else:
      out[f"{hf}.weight"], out[f"{hf}.bias"] = (path + ("scale",), False), (path + ("bias",), False)

  emb = ("embeddings",)
  add("embeddings.word_embeddings", emb + ("word_embeddings",), "embed")
  add("embeddings.position_embeddings", emb + ("position_embeddings",), "embed")
  if cfg.type_vocab_size:
    add("embeddings.token_type_embeddings", emb + ("token_type_embeddings",), "embed")
  add("embeddings.LayerNorm", emb + ("layer_norm",), "norm")
  for i in range(cfg.num_hidden_layers):
    hf, nx = f"encoder.layer.{i}.", ("layers", i)
    for part in ("query", "key", "value"):
      add(hf + "attention.self." + part, nx + ("attention", part), "dense")
    add(hf + "attention.output.dense", nx + ("attention_output",), "dense")
    add(hf + "attention.output.LayerNorm", nx + ("attention_norm",), "norm")
    add(hf + "intermediate.dense", nx + ("intermediate",), "dense")
    add(hf + "output.dense", nx + ("output",), "dense")
    add(hf + "output.LayerNorm", nx + ("output_norm",), "norm")
  return out


def read_weights(path: str) -> dict:
  """model.safetensors -> {name: array}; DataError naming the file if unreadable.
  safetensors.numpy; a file with bfloat16 tensors (numpy has no such dtype) through
  safetensors' flax reader, which gives jax arrays."""
  from safetensors import SafetensorError, safe_open
  from safetensors.numpy import load_file

  try:
    try:
      return load_file(path)
    except TypeError as e:
      if "bfloat16" not in str(e):
        raise
      with safe_open(path, framework="flax") as f:
        return {name: f.get_tensor(name) for name in f.keys()}
  except (SafetensorError, OSError, ValueError, TypeError) as e:
    raise DataError(f"{path}: not a readable safetensors file ({e})") from None


def _param(model, path):
  obj = model
  for p in path:
    obj = obj[p] if isinstance(p, int) else getattr(obj, p)
  return obj


def mapped_weights(cfg: EncoderConfig, weights: dict, source: str = WEIGHTS_FILE) -> dict:
  """{an Encoder param's path: (its checkpoint name, the array in the param's layout,
  whether that is the checkpoint's transposed)}
  from `weights` (checkpoint names; heads and buffers dropped); DataError naming `source`
  and the first unexpected, duplicated, non-float or missing weight."""
  expected = expected_weights(cfg)
  seen, out = {}, {}
  for name in sorted(weights):
    canon = canonical_name(name)
    if canon.startswith(IGNORED):
      continue
    if canon not in expected:
      raise DataError(f"{source}: unexpected weight {name!r} (not part of a "
                      f"{cfg.model_type} encoder with {cfg.num_hidden_layers} layers)")
    if canon in seen:
      raise DataError(f"{source}: weights {seen[canon]!r} and {name!r} are the same parameter")
    seen[canon] = name
    path, transpose = expected[canon]
    array = weights[name]
    if not jnp.issubdtype(array.dtype, jnp.floating):
      raise DataError(f"{source}: weight {name!r} has dtype {array.dtype}, expected floats")
    out[path] = (name, array.T if transpose else array, transpose)
  missing = [n for n in expected if n not in seen]
  if missing:
    raise DataError(f"{source}: missing weight {missing[0]!r}"
                    + (f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""))
  return out


def assign_weights(model: Encoder, weights: dict, source: str = WEIGHTS_FILE) -> Encoder:
  """Sets every param of `model` from `weights` (checkpoint names); DataError naming
  `source` and the first unexpected, duplicated, missing or mis-shaped weight."""
  for path, (name, array, transposed) in mapped_weights(model.cfg, weights, source).items():
    param = _param(model, path)
    if array.shape != tuple(param.shape):
      shape = tuple(reversed(param.shape)) if transposed else tuple(param.shape)
      raise DataError(f"{source}: weight {name!r} has shape {tuple(weights[name].shape)}, "
                      f"the config ({CONFIG_FILE}) gives {shape}")
    param.set_value(jnp.asarray(array, jnp.float32))
  return model


def load_encoder(folder: str, dtype=jnp.float32) -> Encoder:
  """folder (config.json + model.safetensors) -> Encoder with the checkpoint's weights,
  float32 params, `dtype` compute."""
  cfg = load_config(folder)
  path = _file(folder, WEIGHTS_FILE)
  weights = read_weights(path)
  model = nnx.eval_shape(lambda: Encoder(cfg, dtype, rngs=nnx.Rngs(0)))  # no random init
  return assign_weights(model, weights, path)
