"""JAX's persistent compilation cache: compiled steps are kept on disk between runs.

A run compiles a train and a predict step per bucket length (1-3 s each on a
CPU), which is most of a short run's time to accuracy. With the cache, every
run after the first with the same shapes loads them instead. A cached program
is the program XLA compiled, so results are the same to the bit.

The CLI and the sweep runner call `enable()`. Where the cache lives:

  TEXTCLF_COMPILATION_CACHE=DIR   this directory
  TEXTCLF_COMPILATION_CACHE=off   no cache
  (unset)                         $JAX_COMPILATION_CACHE_DIR if set, else
                                  $XDG_CACHE_HOME/textclf_jax/jax (~/.cache/…)

Programs that compile in under MIN_COMPILE_SECONDS are not stored, unless
$JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS says otherwise.
"""

from __future__ import annotations

import os

import jax

ENV = "TEXTCLF_COMPILATION_CACHE"
OFF = ("off", "0", "none", "false")
# Programs that compile faster than this are not worth a file (JAX's default: 1 s,
# which would skip most of this project's steps on a fast machine). Loading a cached
# train step takes ~0.02 s; at 0.2 s, programs that compiled a little faster on a quiet
# CPU (a bag model's predict steps, its `all_finite`: 0.1-0.2 s each) were compiled again
# by every later run.
MIN_COMPILE_SECONDS = 0.03


def default_dir() -> str:
  base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
  return os.path.join(base, "textclf_jax", "jax")


def cache_dir() -> str | None:
  """The directory `enable()` uses, or None when the cache is off."""
  value = os.environ.get(ENV, "").strip()
  if value.lower() in OFF:
    return None
  return value or os.environ.get("JAX_COMPILATION_CACHE_DIR") or default_dir()


def enable() -> str | None:
  """Turns the cache on (before the first compilation); returns its directory.

  A directory that cannot be created leaves the cache off: compiling is slower,
  never wrong.
  """
  path = cache_dir()
  if path is None:
    return None
  try:
    os.makedirs(path, exist_ok=True)
  except OSError:
    return None
  jax.config.update("jax_compilation_cache_dir", path)
  if "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS" not in os.environ:
    jax.config.update("jax_persistent_cache_min_compile_time_secs", MIN_COMPILE_SECONDS)
  return path
