"""The search spaces `textclf tune --space NAME` knows: every model family's `Candidate`s
(registry.candidates(); the neural ones are in families/spaces.py). A space is a
function (optuna trial, base config) -> {config key: value}."""

from __future__ import annotations

from textclf_jax.errors import UsageError
from textclf_jax.families import registry


def names() -> list:
  """Every space's name, over the registered families."""
  return list(registry.candidates())


def get(name: str):
  """The space called `name`; an unknown name is a UsageError listing the spaces."""
  candidates = registry.candidates()
  if name not in candidates:
    raise UsageError(f"--space {name!r}: not a search space; expected one of "
                     f"{', '.join(candidates)} (textclf_jax/families/spaces.py)")
  return candidates[name].space


def suggest(name: str, trial, config) -> dict:
  """The config values of `trial` from space `name`; every key must be one of `config`'s
  (a space that tunes keys the preset lacks is named with them)."""
  values = get(name)(trial, config)
  missing = sorted(k for k in values if k not in config)
  if missing:
    raise UsageError(f"--space {name}: tunes {', '.join(missing)}, which the "
                     f"{config.get('model', '?')} config does not have; choose a space "
                     f"for it ({', '.join(names())})")
  return values
