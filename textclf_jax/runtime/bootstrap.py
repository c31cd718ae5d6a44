"""One process's set-up before its first JAX computation: the host heap and the
compilation cache.

Every entry point that trains or times models (the `textclf` CLI, the sweep runner,
the benchmarks and their child processes) starts with `start()`, so that they all
run under the same conditions as the CLI:

  program  glibc's malloc keeps XLA:CPU's large per-step buffers mapped between
           steps (runtime/hostmem.py: without it every CNN step page-faults its
           ~100 MB working set again). Process-wide, so only for a process that is a
           program of its own, not for a library call inside someone else's process;
           it must come before the first XLA computation (worker threads pick their
           malloc arena when they first allocate).
  cache    JAX's persistent compilation cache (runtime/compile_cache.py): compiled
           steps are loaded from disk after the first run, with the same results to
           the bit. True: where TEXTCLF_COMPILATION_CACHE / JAX_COMPILATION_CACHE_DIR
           say; a path: that directory (also set in TEXTCLF_COMPILATION_CACHE, so child
           processes share it); False: not turned on, for benchmarks that time the
           compilation itself.
"""

from __future__ import annotations

import os

from textclf_jax.runtime import compile_cache, hostmem


def start(program: bool = True, cache: bool | str = True) -> str | None:
  """Sets up this process (see the module docstring); returns the compilation cache's
  directory, or None when it is off."""
  if program:
    hostmem.keep_heap_mapped()  # before the first XLA computation
  if cache is False:
    return None
  if isinstance(cache, str):
    os.environ[compile_cache.ENV] = cache
  return compile_cache.enable()
