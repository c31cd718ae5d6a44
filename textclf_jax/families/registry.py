"""The model families by name: which family trains a config, which one wrote a run.

    registry.register(MyFamily())            # a family of your own (docs/extending.md)
    family = registry.for_config(config)     # by config.model
    family = registry.for_run("runs/x")      # by what the run directory holds
    predictor = family.load("runs/x")

The built-in families (neural, tfidf) are registered on first use, then those that
installed packages declare under the `textclf_jax.families` entry-point group (each
entry point names a Family object or a function returning one). Nothing here imports
JAX: a family's module imports its training stack inside its methods.
"""

from __future__ import annotations

import importlib
import importlib.metadata

from textclf_jax.errors import ConfigError, DataError
from textclf_jax.families.base import Family

BUILTIN_MODULES = ("textclf_jax.families.neural", "textclf_jax.families.tfidf.family")
ENTRY_POINT_GROUP = "textclf_jax.families"

_FAMILIES: dict = {}  # name -> Family, in registration order
_loaded = False


def register(family: Family, replace: bool = False) -> Family:
  """Adds `family`; its names and models must be new (unless `replace`). Returns it."""
  if not isinstance(family, Family):
    raise TypeError(f"{family!r} is not a Family (see textclf_jax/families/base.py)")
  if not replace:
    if family.name in _FAMILIES:
      raise ValueError(f"a family named {family.name!r} is registered already")
    taken = {m: f.name for f in _FAMILIES.values() for m in f.models}
    clash = [m for m in family.models if m in taken]
    if clash:
      raise ValueError(f"family {family.name!r}: model(s) {', '.join(clash)} belong to "
                       f"family {taken[clash[0]]!r} already")
  _FAMILIES[family.name] = family
  return family


def unregister(name: str):
  """Removes the family `name` (a test's own family, when the test ends)."""
  _FAMILIES.pop(name, None)


def _load_builtins():
  global _loaded
  if _loaded:
    return
  _loaded = True
  for module in BUILTIN_MODULES:
    importlib.import_module(module)  # registers its family
  for entry in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
    obj = entry.load()
    family = obj() if callable(obj) and not isinstance(obj, Family) else obj
    if family.name not in _FAMILIES:
      register(family)


def families() -> list:
  """Every registered family, built-ins first."""
  _load_builtins()
  return list(_FAMILIES.values())


def get(name: str) -> Family:
  _load_builtins()
  if name not in _FAMILIES:
    raise ConfigError(f"no model family named {name!r} (registered: {', '.join(_FAMILIES)})")
  return _FAMILIES[name]


def model_names() -> tuple:
  """Every config.model value some family trains."""
  return tuple(m for f in families() for m in f.models)


def for_model(model: str) -> Family:
  for family in families():
    if model in family.models:
      return family
  raise ConfigError(f"config.model={model!r}: expected one of {', '.join(model_names())}")


def for_config(config) -> Family:
  """The family that trains `config` (by config.model)."""
  return for_model(config.get("model", ""))


def for_run(run_dir: str) -> Family:
  """The family that wrote the run `run_dir` (one run, not a CV parent). Families are
  asked in reverse registration order, so a later family can claim runs that a built-in
  one would also read; a directory nobody owns is a DataError."""
  for family in reversed(families()):
    if family.owns(run_dir):
      return family
  raise DataError(f"{run_dir}: not a run directory that any model family wrote "
                  f"(families: {', '.join(_FAMILIES)})")


def load(run_dir: str, batch_size: int = 0):
  """The run `run_dir` as a Predictor, loaded by the family that wrote it."""
  return for_run(run_dir).load(run_dir, batch_size)


def candidates() -> dict:
  """name -> Candidate over every family: the spaces `textclf tune --space` knows and the
  models experiments.versus_linear compares."""
  out = {}
  for family in families():
    for candidate in family.candidates():
      if candidate.name in out:
        raise ValueError(f"two families offer a candidate named {candidate.name!r}")
      out[candidate.name] = candidate
  return out
