"""runtime/bootstrap.py: the one set-up every entry point runs before its first JAX
computation. Checked in processes of their own: what it sets is process-wide."""

import json
import os
import subprocess
import sys

from conftest import REPO

CODE = """
import json, os, sys
import jax
from textclf_jax.runtime import bootstrap, compile_cache
off = bootstrap.start(program=False, cache=False)
before = jax.config.jax_compilation_cache_dir
on = bootstrap.start(program=True, cache=sys.argv[1])
print(json.dumps([off, before, on, jax.config.jax_compilation_cache_dir,
                  os.environ.get(compile_cache.ENV)]))
"""


def _run(*argv, **env):
  environ = dict(os.environ, PYTHONPATH=REPO, **env)
  environ.pop("TEXTCLF_COMPILATION_CACHE", None)
  environ.pop("JAX_COMPILATION_CACHE_DIR", None)
  out = subprocess.run([sys.executable, "-c", CODE, *argv], capture_output=True, text=True,
                       env=environ, cwd=REPO, timeout=120, check=False)
  assert out.returncode == 0, out.stderr[-3000:]
  return json.loads(out.stdout.strip().splitlines()[-1])


def test_start_leaves_the_cache_off_or_points_it_and_the_children_at_a_folder(tmp_path):
  cache = str(tmp_path / "cache")
  off, before, on, configured, env = _run(cache)
  assert off is None and before != cache  # cache=False: the compilation cache untouched
  assert on == configured == env == cache and os.path.isdir(cache)


def test_start_with_malloc_tuning_turned_off_still_sets_up_the_cache(tmp_path):
  cache = str(tmp_path / "cache")
  assert _run(cache, TEXTCLF_MALLOC_TUNING="0")[2] == cache
