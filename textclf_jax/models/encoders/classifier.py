"""A pretrained encoder inside the package's classifiers, two ways:

- `TransformerClassifier` (config.model = "transformer"): the encoder fine-tuned with a
  pooled ([CLS] or mean) vector -> dropout -> linear head, as HF's run_classification.
- `ContextualEmbeddings` (config.embedding = "contextual"): the encoder's token states
  (one layer, the mean of the last k, or a learned scalar mix) are the input the CNN,
  LSTM and hybrid read instead of word vectors; frozen unless config.encoder_trainable.

Both read subword ids from text/subword.SubwordEncoder (padding 0, [CLS] first) and take
their weights from the model folder through `load_pretrained` (build.load_pretrained
calls it when the train state is made): config.encoder_path's model.safetensors, read
by hf_load.py. The encoder's shape comes from config.encoder_config, which
`encoder_config` fills from the folder's config.json when a run starts, so a saved run
is rebuilt without the folder.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from textclf_jax.errors import ConfigError
from textclf_jax.models import base
from textclf_jax.models.dropout import Dropout
from textclf_jax.models.encoders import hf_load
from textclf_jax.models.encoders.bert import Encoder, EncoderConfig
from textclf_jax.models.encoders.pooling import ScalarMix, pool
from textclf_jax.text import subword

POOLINGS = ("mean", "cls")
ENCODER = "encoder"  # the encoder's attribute name in both modules (param paths, freezing)


def saved_encoder_config(config) -> dict | None:
  """config.encoder_config as a dict (a JSON object in a string; runs made before it was
  a string hold the object itself), or None when it is not filled yet."""
  saved = config.get("encoder_config", "")
  if not saved:
    return None
  if isinstance(saved, str):
    try:
      saved = json.loads(saved)
    except json.JSONDecodeError as e:
      raise ConfigError(f"config.encoder_config: not a JSON object ({e.msg})") from None
  if not hasattr(saved, "items"):
    raise ConfigError(f"config.encoder_config: expected a JSON object of config.json fields, "
                      f"got {type(saved).__name__}")
  return dict(saved)


def encoder_config(config) -> EncoderConfig:
  """The run's EncoderConfig: config.encoder_config (a saved run's) or the model folder's
  config.json (a new run's; `fill_encoder_config` records it)."""
  saved = saved_encoder_config(config)
  if saved:
    try:
      return EncoderConfig(**saved)
    except (TypeError, ValueError) as e:
      raise ConfigError(f"config.encoder_config: not an encoder's config.json fields ({e})") \
          from None
  return hf_load.load_config(subword.resolve_folder(config.encoder_path))


def fill_encoder_config(config):
  """`config` with encoder_config filled from the model folder (a run records the shape
  of what it trained, and its positions); as is when it is filled or the run's encoder
  is not a model's (config.encoder "words")."""
  if config.get("encoder_config", "") or config.get("encoder") != "subword":
    return config
  cfg = hf_load.load_config(subword.resolve_folder(config.encoder_path))
  config = config.copy_and_resolve_references()
  with config.unlocked():
    config.encoder_config = json.dumps(dataclasses.asdict(cfg), sort_keys=True)
  return config


def uses_encoder(config) -> bool:
  return config.get("model") == "transformer" or config.get("embedding") == "contextual"


def to_model_ids(tokens, pad_token_id: int):
  """The run's ids (padding 0) -> the model's (its own padding id): exchanges 0 and
  pad_token_id, as SubwordEncoder did the other way."""
  if pad_token_id == 0:
    return tokens
  return jnp.where(tokens == pad_token_id, 0, jnp.where(tokens == 0, pad_token_id, tokens))


def layer_selector(spec: str, num_states: int):
  """config.encoder_layers -> (states [L + 1, B, T, H] -> [B, T, H], or "mix")."""
  if spec == "last":
    return lambda states: states[-1]
  if spec == "mix":
    return "mix"
  found = re.fullmatch(r"layer_(\d+)|mean_last_(\d+)", spec or "")
  if found and found.group(1) is not None and int(found.group(1)) < num_states:
    n = int(found.group(1))
    return lambda states: states[n]
  if found and found.group(2) is not None and 1 <= int(found.group(2)) <= num_states:
    k = int(found.group(2))
    return lambda states: jnp.mean(states[-k:].astype(jnp.float32), axis=0).astype(states.dtype)
  raise ConfigError(f"config.encoder_layers={spec!r}: expected last, mix, layer_N (N in "
                    f"0..{num_states - 1}) or mean_last_K (K in 1..{num_states})")


def compute_dtype(config):
  return jnp.bfloat16 if config.get("compute_dtype") == "bfloat16" else jnp.float32


class ContextualEmbeddings(nnx.Module):
  """tokens [B, L] (subword ids, 0 = padding) -> the encoder's states [B, L, H], zero
  on padding. Deterministic (no dropout inside the encoder: the classifier's own dropout
  regularises), so a frozen encoder gives each text the same states every epoch."""

  def __init__(self, cfg: EncoderConfig, layers: str, trainable: bool, dtype=jnp.float32,
               *, rngs: nnx.Rngs):
    self.encoder = Encoder(cfg, dtype, rngs=rngs)
    self.encoder.freeze_params = not trainable  # models.base.split_params
    self.pad_token_id = cfg.pad_token_id
    self.select = layer_selector(layers, cfg.num_hidden_layers + 1)
    self.mix = ScalarMix(cfg.num_hidden_layers + 1) if self.select == "mix" else None
    self.out_features = cfg.hidden_size

  def __call__(self, tokens, trainable_vectors=None, states=None, word_vectors=None):
    """states: `cached(tokens)` computed earlier (a frozen encoder's cache,
    training/encoder_cache.py), read instead of running the encoder; zero-padded.
    word_vectors [B, L, H]: in place of the encoder's word embeddings (explanations)."""
    del trainable_vectors  # no word table
    mask = tokens != 0
    if states is not None:
      x = self.mix(jnp.moveaxis(states, 2, 0)) if self.mix is not None else states
      return jnp.where(mask[..., None], x, 0.0)
    states = self.encoder(to_model_ids(tokens, self.pad_token_id), mask.astype(jnp.int32),
                          word_vectors=word_vectors)
    x = self.mix(states) if self.mix is not None else self.select(states)
    return jnp.where(mask[..., None], x, 0.0)

  def cached(self, tokens):
    """tokens [B, L] -> what a frozen encoder's cache keeps per token: the selected
    states [B, L, H] (last, layer_N, mean_last_K), or every hidden state [B, L, L + 1, H]
    for mix (the ScalarMix stays trainable and is applied in `__call__`)."""
    mask = tokens != 0
    states = self.encoder(to_model_ids(tokens, self.pad_token_id), mask.astype(jnp.int32))
    return jnp.moveaxis(states, 0, 2) if self.mix is not None else self.select(states)


class TransformerClassifier(base.TextClassifier):
  """tokens [B, L] (subword ids, 0 = padding, [CLS] first), lengths [B] -> logits [B, C]:
  the encoder's last states pooled (config.pooling), dropout, a linear head."""

  param_groups = base.ParamGroups(head=("head",), embeddings=(ENCODER, "embeddings"),
                                  table=(ENCODER, "embeddings", "word_embeddings", "embedding"))
  word_embeddings = False

  def __init__(self, cfg: EncoderConfig, num_classes: int, pooling: str = "mean",
               dropout: float = 0.1, dtype=jnp.float32, *, rngs: nnx.Rngs):
    if pooling not in POOLINGS:
      raise ConfigError(f"config.pooling={pooling!r}: expected one of {', '.join(POOLINGS)}")
    self.encoder = Encoder(cfg, dtype, rngs=rngs)
    self.pad_token_id, self.pooling = cfg.pad_token_id, pooling
    self.dropout = Dropout(dropout)
    self.head = nnx.Linear(cfg.hidden_size, num_classes, rngs=rngs)

  @classmethod
  def from_config(cls, config, embeddings, num_classes, *, rngs):
    del embeddings  # the encoder has its own
    return cls(encoder_config(config), num_classes, config.pooling, config.dropout,
               compute_dtype(config), rngs=rngs)

  @staticmethod
  def max_length(config) -> int | None:
    saved = saved_encoder_config(config)
    return EncoderConfig(**saved).max_tokens if saved else None

  def __call__(self, tokens, lengths, key=None, trainable_vectors=None, dropout_keep=None,
               word_vectors=None):
    """word_vectors [B, L, H]: in place of the encoder's word embeddings (explanations)."""
    del trainable_vectors
    mask = (jnp.arange(tokens.shape[1])[None, :] < lengths[:, None]).astype(jnp.int32)
    enc_key, drop_key = (None, None) if key is None else jax.random.split(key)
    states = self.encoder(to_model_ids(tokens, self.pad_token_id), mask, rngs=enc_key,
                          word_vectors=word_vectors)
    pooled = pool(states[-1], mask, self.pooling)
    pooled = self.dropout(pooled, deterministic=key is None, rngs=drop_key,
                          keep_prob=dropout_keep)
    return self.head(pooled)


def encoder_of(model):
  """The Encoder inside a TransformerClassifier or a model reading ContextualEmbeddings
  (as `embed`), or None."""
  if isinstance(model, TransformerClassifier):
    return model.encoder
  embed = getattr(model, "embed", None)
  return embed.encoder if isinstance(embed, ContextualEmbeddings) else None


def logits_from_word_vectors(model, word_vectors, tokens, lengths):
  """The eval-mode logits [B, C] of `model` (an `encoder_of` model) with word_vectors
  [B, L, H] in place of its encoder's word embeddings of tokens [B, L]."""
  if isinstance(model, TransformerClassifier):
    return model(tokens, lengths, word_vectors=word_vectors)
  return model.classify(model.embed(tokens, word_vectors=word_vectors), lengths)


# --- weights ------------------------------------------------------------------------


def is_model_folder(path: str) -> bool:
  return os.path.isfile(os.path.join(path, hf_load.WEIGHTS_FILE)) and os.path.isfile(
      os.path.join(path, hf_load.CONFIG_FILE))


def folder_arrays(folder: str, prefix: tuple) -> dict:
  """name -> float32 array of a model folder's weights under the package's param names
  (prefix + the Encoder's path, "/"-joined; kernels transposed from torch's [out, in])."""
  path = os.path.join(folder, hf_load.WEIGHTS_FILE)
  mapped = hf_load.mapped_weights(hf_load.load_config(folder), hf_load.read_weights(path), path)
  return {"/".join(map(str, prefix + names)): np.asarray(array, np.float32)
          for names, (_, array, _) in mapped.items()}


def load_encoder_weights(params: dict, path: str, dont_load=()) -> dict:
  """`params` with the encoder's weights from a model folder `path` (every other parameter
  kept: the head, a CNN, a scalar mix start fresh; `dont_load` as load_named's)."""
  # The pretrained encoder's path: an `encoder` holding `embeddings` (an LSTM classifier
  # calls its own recurrent layers `encoder` too: "encoder/forward_layers/...").
  encoder = next(("/".join(parts[:i + 1]) for parts in (n.split("/") for n in params)
                  for i in range(len(parts) - 1)
                  if parts[i] == ENCODER and parts[i + 1] == "embeddings"), None)
  if encoder is None:
    raise ConfigError(f"{path}: a transformer model folder, but this model has no encoder")
  source = folder_arrays(path, tuple(encoder.split("/")))
  own = [n for n in params if not n.startswith(encoder + "/")]
  keep = tuple(re.escape(n) for n in own) + tuple(dont_load)
  return base.load_named(params, source, path, keep)


def layer_depth(names: tuple, num_layers: int) -> int:
  """A parameter's depth for layer-wise learning-rate decay: 0 the encoder's embeddings,
  i + 1 its layer i, num_layers + 1 everything above it (head, CNN, mix)."""
  if ENCODER in names:
    rest = names[names.index(ENCODER) + 1:]
    if rest[:1] == ("embeddings",):
      return 0
    if rest[:1] == ("layers",) and len(rest) > 1:
      return int(rest[1]) + 1
  return num_layers + 1
