"""A command's one check of its config: the keys every family shares (config.problems),
then the family's own (`Family.problems` of the family that config.model names).

    validate(config)   # raises one ConfigError naming every bad key; else returns config

Each command calls it once, on the config it ends with (preset, overrides, a resumed
run's saved values), before it writes anything; the library below takes it as valid.
"""

from __future__ import annotations

from textclf_jax import config as config_lib
from textclf_jax.errors import ConfigError
from textclf_jax.families import registry


def family_problems(config) -> list:
  """The bad values among the own keys of the family config.model names (or the one
  message that no family trains that model)."""
  try:
    family = registry.for_config(config)
  except ConfigError as e:  # no family trains config.model
    return [str(e)]
  return family.problems(config)


def problems(config) -> list:
  """Every bad value of `config`, one message each ([] when valid)."""
  return config_lib.problems(config) + family_problems(config)


def validate(config, where: str = ""):
  """Raises one ConfigError naming every bad key of `config` (prefixed by `where`, the
  file it came from); returns `config` when valid."""
  found = problems(config)
  if found:
    raise ConfigError((f"{where}: " if where else "") + "; ".join(found))
  return config
