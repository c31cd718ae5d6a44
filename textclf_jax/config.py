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
from typing import Iterable

import ml_collections

PRESETS = ("cnn", "kim", "lstm", "hybrid")
# Runs made before embedding_update existed updated the table densely (and their
# checkpoints hold the dense optimiser state); those made before conv_backward
# existed took autodiff's backward pass (kept, so that they resume bit for bit).
OLD_RUN_DEFAULTS = {"embedding_update": "dense", "conv_backward": "dense"}


class ConfigError(ValueError):
  """A config key or value that is not what was expected."""


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
    except (ValueError, SyntaxError):
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


def from_json(path: str) -> ml_collections.ConfigDict:
  """Reads a run's `config.json`; lists become tuples as in the presets."""
  try:
    with open(path, encoding="utf-8") as f:
      raw = json.load(f)
  except FileNotFoundError:
    raise ConfigError(f"{path}: missing (is this a run directory?)") from None
  except json.JSONDecodeError as e:
    raise ConfigError(f"{path}: invalid JSON at line {e.lineno}: {e.msg}") from None

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
  config = ml_collections.ConfigDict(fix(raw))
  config.lock()
  return config
