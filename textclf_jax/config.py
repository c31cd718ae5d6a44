"""Configs as code: presets by name or Python file, `--config.KEY=VALUE` overrides.

A config is an `ml_collections.ConfigDict`, locked after loading so that a
misspelt key is an error that names it. Runs store their config as JSON and
reload it with `from_json` (no code is executed to load a run).
"""

from __future__ import annotations

import ast
import importlib
import importlib.util
import json
import os
import re
from typing import Iterable

import ml_collections

from textclf_jax.errors import ConfigError

PRESETS = ("cnn", "kim", "lstm", "hybrid", "tfidf", "fasttext", "fasttext_nb",
           "fasttext_nb3", "cnn_doc", "bilstm_doc")
# Runs made before embedding_update existed updated the table densely (and their
# checkpoints hold the dense optimiser state); those made before conv_backward
# existed took autodiff's backward pass (kept, so that they resume bit for bit).
# Those made before multilabel_min_f1 existed used a fixed per-label floor of 0.5
# (kept, so that re-tuning their thresholds, as an ensemble does, gives theirs).
# Used only where a saved run is read (`from_json`).
OLD_RUN_DEFAULTS = {"embedding_update": "dense", "conv_backward": "dense",
                    "multilabel_min_f1": 0.5}


def load_preset(name_or_path: str) -> ml_collections.ConfigDict:
  """Returns `get_config()` of a preset name (`cnn`) or a Python config file."""
  if name_or_path in PRESETS:
    module = importlib.import_module(f"textclf_jax.configs.{name_or_path}")
  else:
    if not os.path.isfile(name_or_path):
      raise ConfigError(
          f"--config {name_or_path!r}: not a preset ({', '.join(PRESETS)}) "
          "and not a Python config file")
    spec = importlib.util.spec_from_file_location("_textclf_config", name_or_path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    if not hasattr(module, "get_config"):
      raise ConfigError(f"{name_or_path}: defines no get_config()")
  config = module.get_config()
  config.lock()
  validate(config, where=name_or_path)
  return config


def _parse_value(key: str, text: str, current):
  """Parses `text` into the type of the field's current value."""
  if isinstance(current, bool):
    low = text.lower()
    if low in ("true", "1", "yes"):
      return True
    if low in ("false", "0", "no"):
      return False
    raise ConfigError(f"--config.{key}: expected true/false, got {text!r}")
  if isinstance(current, int):
    try:
      return int(text)
    except ValueError:
      raise ConfigError(f"--config.{key}: expected an integer, got {text!r}") from None
  if isinstance(current, float):
    try:
      return float(text)
    except ValueError:
      raise ConfigError(f"--config.{key}: expected a number, got {text!r}") from None
  if isinstance(current, (tuple, list)):
    try:
      value = ast.literal_eval(text if text.strip() else "()")
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
      value = tuple(x.strip() for x in text.split(",") if x.strip())
    if not isinstance(value, (tuple, list)):
      value = (value,)
    return tuple(value)
  return text


def apply_overrides(config: ml_collections.ConfigDict,
                    overrides: Iterable[str]) -> ml_collections.ConfigDict:
  """Applies `KEY=VALUE` strings (dotted keys allowed); unknown keys are errors."""
  for item in overrides:
    if "=" not in item:
      raise ConfigError(f"--config.{item}: expected --config.KEY=VALUE")
    key, text = item.split("=", 1)
    parent = config
    *path, leaf = key.split(".")
    for part in path:
      if part not in parent:
        raise ConfigError(f"--config.{key}: unknown key {part!r}")
      parent = parent[part]
      if not isinstance(parent, ml_collections.ConfigDict):
        raise ConfigError(f"--config.{key}: {part!r} is a value, not a group of keys")
    if leaf not in parent:
      close = [k for k in parent.keys() if k[:3] == leaf[:3]]
      hint = f" (did you mean {', '.join(close)}?)" if close else ""
      raise ConfigError(f"--config.{key}: unknown key {leaf!r}{hint}")
    try:
      with parent.unlocked():
        parent[leaf] = _parse_value(key, text, parent[leaf])
    except TypeError as e:
      raise ConfigError(f"--config.{key}: {e}") from None
  validate(config)
  return config


def to_json(config: ml_collections.ConfigDict) -> str:
  return config.to_json(indent=2, sort_keys=True)


def from_json(path: str) -> ml_collections.ConfigDict:
  """Reads a run's `config.json`; lists become tuples as in the presets."""
  try:
    with open(path, encoding="utf-8") as f:
      raw = json.load(f)
  except FileNotFoundError:
    raise ConfigError(f"{path}: missing (is this a run directory?)") from None
  except json.JSONDecodeError as e:
    raise ConfigError(f"{path}: invalid JSON at line {e.lineno}: {e.msg}") from None
  except UnicodeDecodeError:
    raise ConfigError(f"{path}: not UTF-8 text") from None
  except (ValueError, RecursionError) as e:  # a huge integer, nesting too deep
    raise ConfigError(f"{path}: unreadable JSON ({type(e).__name__}: {str(e)[:100]})") from None
  except OSError as e:
    raise ConfigError(f"{path}: cannot be read ({e.strerror or e})") from None
  if not isinstance(raw, dict):
    raise ConfigError(f"{path}: expected a JSON object of config keys, got "
                      f"{type(raw).__name__}")

  def fix(value):
    if isinstance(value, list):
      return tuple(value)
    if isinstance(value, dict):
      return {k: fix(v) for k, v in value.items()}
    return value

  from textclf_jax.configs import base
  # Keys added to the base config after the run was made take their defaults, or
  # the value that keeps such a run training (and restoring) as it did.
  defaults = {**base.get_config().to_dict(), **OLD_RUN_DEFAULTS}
  raw = {**{k: v for k, v in defaults.items() if k not in raw}, **raw}
  try:
    config = ml_collections.ConfigDict(fix(raw))
  except (ValueError, TypeError, KeyError) as e:  # e.g. a key with a dot
    raise ConfigError(f"{path}: not a config ({e})") from None
  config.lock()
  validate(config, where=path)
  return config


# --- validation -------------------------------------------------------------------------

# Every check of a config value lives here; the modules that use a value take it as valid.
_POSITIVE_INTS = ("batch_size", "num_epochs", "log_every_steps",
                  "checkpoint_every_steps", "mesh_model", "vocab_multiple", "min_count",
                  "decay_steps", "plateau_patience", "num_filters", "lstm_hidden",
                  "lstm_layers", "word_ngrams", "ngram_buckets")
_NON_NEGATIVE_INTS = ("seed", "embed_dim", "eval_every_steps", "early_stopping_patience",
                      "max_vocab", "max_train_examples", "warmup_steps", "eval_batch_size",
                      "max_len", "chunk_len", "chunk_stride")
_INF = float("inf")
# Real-valued keys by their interval: (low, high, low inclusive, high inclusive) -> keys.
_INTERVALS = {
    (0.0, _INF, True, False): ("learning_rate", "focal_gamma", "weight_decay", "clip_norm",
                               "max_norm", "unk_init_scale", "embed_init_scale",
                               "adagrad_initial", "nb_prior"),
    (0.0, _INF, False, False): ("adadelta_eps", "decay_rate"),
    (0.0, 1.0, True, True): ("dropout", "momentum"),
    (0.0, 1.0, True, False): ("label_smoothing",),
    (0.0, 1.0, False, False): ("dev_fraction", "test_fraction", "adadelta_rho"),
    (0.0, 1.0, False, True): ("imbalance_fraction", "plateau_factor"),
    (0.0, 100.0, False, True): ("max_len_percentile",),
}
_RANGES = {key: interval for interval, keys in _INTERVALS.items() for key in keys}
WANDB_MODES = ("auto", "online", "offline", "disabled")
KEEP_CHECKPOINTS = ("tested", "both")
TEST_CHECKPOINTS = ("best", "last")


def _choices() -> dict:
  """key -> the values it may take (imported here: config.py loads without JAX)."""
  from textclf_jax.training import losses, optim, sparse_embed, steps
  from textclf_jax.scoring import metrics
  from textclf_jax.data import vectors
  from textclf_jax.families import registry
  from textclf_jax.models import chunked, cnn, embeddings, lstm
  return {
      "model": registry.model_names(), "embedding": embeddings.KINDS,
      "loss": losses.LOSSES, "optimizer": optim.OPTIMIZERS, "schedule": optim.SCHEDULES,
      "weight_decay_mode": ("decoupled", "l2"), "embedding_update": sparse_embed.MODES,
      "conv_backward": cnn.CONV_BACKWARD, "compute_dtype": tuple(steps.COMPUTE_DTYPES),
      "test_checkpoint": TEST_CHECKPOINTS, "multilabel_threshold": metrics.THRESHOLD_MODES,
      "wandb": WANDB_MODES, "vectors_format": vectors.FORMATS, "chunk_pool": chunked.POOLS,
      "lstm_pool": lstm.POOLS,
  }


def problems(config) -> list:
  """Every bad value of `config`, one message each ([] for a valid config)."""
  out = []

  def bad(key, expected):
    out.append(f"config.{key}={config[key]!r}: expected {expected}")

  for key, allowed in _choices().items():
    if key in config and config[key] not in allowed:
      bad(key, f"one of {', '.join(map(str, allowed))}")
  for key in _POSITIVE_INTS + _NON_NEGATIVE_INTS:
    if key not in config:
      continue
    low = 1 if key in _POSITIVE_INTS else 0
    value = config[key]
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
      bad(key, f"an integer >= {low}")
  for key, (low, high, low_in, high_in) in _RANGES.items():
    if key not in config:
      continue
    value = config[key]
    ok = (isinstance(value, (int, float)) and not isinstance(value, bool)
          and (value >= low if low_in else value > low)
          and (value <= high if high_in else value < high))
    if not ok:
      bad(key, f"a number in {'[' if low_in else '('}{low:g}, {high:g}{']' if high_in else ')'}")
  if "fold" in config and (not isinstance(config.fold, int) or config.fold < -1):
    bad("fold", "-1 (every fold) or a fold index >= 0")
  if "folds" in config and (not isinstance(config.folds, (tuple, list)) or not all(
      isinstance(k, int) and not isinstance(k, bool) and k >= 0 for k in config.folds)):
    bad("folds", "a list of fold indices >= 0 (empty: config.fold decides)")
  if "keep_checkpoints" in config and config.keep_checkpoints not in KEEP_CHECKPOINTS:
    bad("keep_checkpoints", f"one of {', '.join(KEEP_CHECKPOINTS)}")
  floor = config.get("multilabel_min_f1", -1.0)
  if isinstance(floor, bool) or not isinstance(floor, (int, float)) or not (
      floor == -1 or 0 <= floor <= 1):
    bad("multilabel_min_f1", "-1 (chosen on dev by cross-validation) or a number in [0, 1]")
  if "num_folds" in config and (not isinstance(config.num_folds, int) or config.num_folds < 2):
    bad("num_folds", "an integer >= 2")
  for key in ("filter_widths", "bucket_lengths"):
    value = config.get(key)
    if key in config and (not isinstance(value, (tuple, list)) or not value or not all(
        isinstance(w, int) and not isinstance(w, bool) and w >= 1 for w in value)):
      bad(key, "a non-empty list of integers >= 1")
  growth = config.get("bucket_growth", 0.0)
  if isinstance(growth, bool) or not isinstance(growth, (int, float)) or not (
      growth == 0 or growth > 1):
    bad("bucket_growth", "0 (off) or a factor > 1")
  if not isinstance(config.get("model_init", ""), str):
    bad("model_init", "a path (a run directory, an orbax checkpoint or a .npz file) or ''")
  if "model_init_dont_load" in config:
    value = config.model_init_dont_load
    if not isinstance(value, (tuple, list)) or not all(isinstance(p, str) for p in value):
      bad("model_init_dont_load", "a list of parameter-name patterns (regular expressions)")
    else:
      for pattern in value:
        try:
          re.compile(pattern)
        except re.error as e:
          bad("model_init_dont_load", f"regular expressions ({pattern!r}: {e})")
  stride = config.get("chunk_stride", 0)
  if isinstance(stride, int) and isinstance(config.get("chunk_len"), int) \
      and stride > config.chunk_len:
    bad("chunk_stride", f"at most chunk_len={config.chunk_len} (0: chunk_len)")
  if "class_weights" in config:
    spec = str(config.class_weights)
    if spec not in ("", "none", "balanced", "balanced_sqrt"):
      try:
        if any(float(x) < 0 for x in spec.split(",")):
          raise ValueError
      except ValueError:
        bad("class_weights", "none, balanced, balanced_sqrt or comma-separated numbers >= 0")
  if config.get("embedding", "rand") != "rand" and not config.get("vectors"):
    out.append(f"config.embedding={config.embedding!r} needs pretrained vectors: set "
               "config.vectors")
  ngrams = config.get("word_ngrams", 1)
  if isinstance(ngrams, int) and ngrams > 1 and config.get("embedding") == "static":
    out.append(f"config.word_ngrams={config.word_ngrams} needs a trainable table (the n-gram "
               "rows have no pretrained vectors): embedding rand, non-static or multichannel")
  if not out and config.get("embedding_update") == "sparse":
    from textclf_jax.training import sparse_embed
    reasons = sparse_embed.dense_only(config)
    if reasons:
      out.append("config.embedding_update='sparse' is exact only for Adadelta or plain SGD "
                 f"without clipping or weight decay on one model shard: {'; '.join(reasons)}")
  return out


DEFAULT_EMBED_DIM = 128


def resolve(config):
  """`config` with the values that depend on files filled in (so the run directory
  records what was trained): embed_dim 0 becomes the vectors file's dimension,
  or DEFAULT_EMBED_DIM without vectors. A config with nothing to fill is returned as is."""
  if config.get("embed_dim", 1) != 0:
    return config
  dim = DEFAULT_EMBED_DIM
  if config.vectors:
    from textclf_jax.data.vectors import vectors_dim
    dim = vectors_dim(config.vectors, config.vectors_format)
  config = config.copy_and_resolve_references()
  with config.unlocked():
    config.embed_dim = dim
  return config


def resolve_max_len(config, max_len: int):
  """`config` with max_len 0 ("from the training texts") replaced by the `max_len`
  prepare chose (so the run directory records what was trained); otherwise as is."""
  if config.max_len != 0:
    return config
  config = config.copy_and_resolve_references()
  with config.unlocked():
    config.max_len = int(max_len)
  return config


def validate(config, where: str = ""):
  """Raises ConfigError naming every bad key of `config` at once (types, ranges,
  choices, combinations that cannot work). Run whenever a config is made,
  overridden or read back, so nothing is written for a config that cannot train."""
  found = problems(config)
  if found:
    prefix = f"{where}: " if where else ""
    raise ConfigError(prefix + "; ".join(found))
