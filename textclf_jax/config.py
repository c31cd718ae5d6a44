"""Configs as code: presets by name or Python file, `--config.KEY=VALUE` overrides.

A config is an `ml_collections.ConfigDict`, locked after loading so that a
misspelt key is an error that names it. Runs store their config as JSON and
reload it with `from_json` (no code is executed to load a run).

Nothing here imports JAX or the training stack: this module checks the keys every
model family shares (`problems`); a family checks its own keys, and
`families.validate.validate` runs both, once per command, before anything is written.
A saved run's config is read back, old keys migrated, by `run.compat.read_config`.
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

PRESETS = ("cnn", "kim", "lstm", "hybrid", "tfidf", "fasttext", "fasttext_nb", "minilm",
           "fasttext_nb3", "cnn_doc", "bilstm_doc")


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
  return config


def to_json(config: ml_collections.ConfigDict) -> str:
  return config.to_json(indent=2, sort_keys=True)


def from_json(path: str, defaults: dict | None = None) -> ml_collections.ConfigDict:
  """Reads a `config.json` as it is (lists become tuples as in the presets), keys
  it lacks taken from `defaults`. Not validated: the command validates the config it
  ends with (a run's, migrated: `run.compat.read_config`)."""
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

  raw = {**{k: v for k, v in (defaults or {}).items() if k not in raw}, **raw}
  try:
    config = ml_collections.ConfigDict(fix(raw))
  except (ValueError, TypeError, KeyError) as e:  # e.g. a key with a dot
    raise ConfigError(f"{path}: not a config ({e})") from None
  config.lock()
  return config


# --- validation -------------------------------------------------------------------------

# The checks of the keys every family shares live here, each family's own in its module
# (training/checks.py, families/tfidf/fit.py); the modules that use a value take it as valid.
# The keys of configs/base.py; those a model preset adds: its family's checks.
_POSITIVE_INTS = ("batch_size", "num_epochs", "log_every_steps",
                  "checkpoint_every_steps", "mesh_model", "vocab_multiple", "min_count",
                  "decay_steps", "plateau_patience")
_NON_NEGATIVE_INTS = ("seed", "embed_dim", "eval_every_steps", "early_stopping_patience",
                      "max_vocab", "max_train_examples", "warmup_steps", "eval_batch_size",
                      "max_len", "chunk_len", "chunk_stride")
_INF = float("inf")
# Real-valued keys by their interval: (low, high, low inclusive, high inclusive) -> keys.
_INTERVALS = {
    (0.0, _INF, True, False): ("learning_rate", "focal_gamma", "weight_decay", "clip_norm",
                               "max_norm", "unk_init_scale", "adagrad_initial"),
    (0.0, _INF, False, False): ("adadelta_eps", "decay_rate"),
    (0.0, 1.0, True, True): ("momentum",),
    (0.0, 1.0, True, False): ("label_smoothing",),
    (0.0, 1.0, False, False): ("dev_fraction", "test_fraction", "adadelta_rho"),
    (0.0, 1.0, False, True): ("imbalance_fraction", "plateau_factor"),
    (0.0, 100.0, False, True): ("max_len_percentile",),
}
WANDB_MODES = ("auto", "online", "offline", "disabled")
KEEP_CHECKPOINTS = ("tested", "both")
TEST_CHECKPOINTS = ("best", "last")
THRESHOLD_MODES = ("global", "per_label")  # config.multilabel_threshold (scoring.metrics)
THRESHOLD_OBJECTIVES = ("auto", "micro", "macro", "per_label")  # scoring/objective.py


# key -> the values it may take (the keys every family shares).
CHOICES = {"test_checkpoint": TEST_CHECKPOINTS, "wandb": WANDB_MODES,
           "keep_checkpoints": KEEP_CHECKPOINTS, "multilabel_threshold": THRESHOLD_MODES,
           "threshold_objective": THRESHOLD_OBJECTIVES}


def range_problems(config, positive=(), non_negative=(), intervals=None) -> list:
  """One message for each key of `config` among `positive` / `non_negative` that is not
  an integer >= 1 / >= 0, and each real-valued key outside its interval (`intervals`:
  (low, high, low inclusive, high inclusive) -> keys). Keys it lacks are skipped."""
  out = []
  for key in (*positive, *non_negative):
    if key not in config:
      continue
    low = 1 if key in positive else 0
    value = config[key]
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
      out.append(f"config.{key}={value!r}: expected an integer >= {low}")
  for (low, high, low_in, high_in), keys in (intervals or {}).items():
    for key in keys:
      if key not in config:
        continue
      value = config[key]
      ok = (isinstance(value, (int, float)) and not isinstance(value, bool)
            and (value >= low if low_in else value > low)
            and (value <= high if high_in else value < high))
      if not ok:
        out.append(f"config.{key}={value!r}: expected a number in "
                   f"{'[' if low_in else '('}{low:g}, {high:g}{']' if high_in else ')'}")
  return out


def problems(config) -> list:
  """Every bad value among the keys every family shares, one message each ([] when
  valid). A family's own keys: `Family.problems`; both: `families.validate`."""
  out = []

  def bad(key, expected):
    out.append(f"config.{key}={config[key]!r}: expected {expected}")

  for key, allowed in CHOICES.items():
    if key in config and config[key] not in allowed:
      bad(key, f"one of {', '.join(map(str, allowed))}")
  out += range_problems(config, _POSITIVE_INTS, _NON_NEGATIVE_INTS, _INTERVALS)
  if "fold" in config and (not isinstance(config.fold, int) or config.fold < -1):
    bad("fold", "-1 (every fold) or a fold index >= 0")
  if "folds" in config and (not isinstance(config.folds, (tuple, list)) or not all(
      isinstance(k, int) and not isinstance(k, bool) and k >= 0 for k in config.folds)):
    bad("folds", "a list of fold indices >= 0 (empty: config.fold decides)")
  floor = config.get("multilabel_min_f1", -1.0)
  if isinstance(floor, bool) or not isinstance(floor, (int, float)) or not (
      floor == -1 or 0 <= floor <= 1):
    bad("multilabel_min_f1", "-1 (chosen on dev by cross-validation) or a number in [0, 1]")
  if "num_folds" in config and (not isinstance(config.num_folds, int) or config.num_folds < 2):
    bad("num_folds", "an integer >= 2")
  for key in ("bucket_lengths",):
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
  return out

