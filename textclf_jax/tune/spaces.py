"""The search spaces `textclf tune --space NAME` knows: every model family's `Candidate`s
(registry.candidates(); the neural ones are in families/spaces.py). A space is a
function (optuna trial, base config) -> {config key: value}."""

from __future__ import annotations

from textclf_jax.errors import UsageError
from textclf_jax.families import registry


def names() -> list:
  """The spaces offered: every family's candidates that can be used here (a candidate
  whose packages or weights are missing is left out; naming it says why)."""
  return [name for name, c in registry.candidates().items() if not c.why_unavailable()]


def get(name: str, config=None):
  """The space called `name`; an unknown name is a UsageError listing the spaces, as is
  one that cannot be used with `config` (None: its preset's defaults), saying why."""
  candidates = registry.candidates()
  if name not in candidates:
    raise UsageError(f"--space {name!r}: not a search space; expected one of "
                     f"{', '.join(names())} (textclf_jax/families/spaces.py)")
  why = candidates[name].why_unavailable(config)
  if why:
    raise UsageError(f"--space {name}: not available here: {why}")
  return candidates[name].space


def suggest(name: str, trial, config) -> dict:
  """The config values of `trial` from space `name`; every key must be one of `config`'s
  (a space that tunes keys the preset lacks is named with them)."""
  values = get(name, config)(trial, config)
  missing = sorted(k for k in values if k not in config)
  if missing:
    raise UsageError(f"--space {name}: tunes {', '.join(missing)}, which the "
                     f"{config.get('model', '?')} config does not have; choose a space "
                     f"for it ({', '.join(names())})")
  return values
