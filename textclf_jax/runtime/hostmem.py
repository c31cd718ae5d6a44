"""Keeps XLA:CPU's large per-step buffers in the heap instead of fresh mmaps.

XLA:CPU allocates each execution's temporaries (~100 MB for the CNN at the
IMDB shape) on its own worker threads. glibc serves allocations over 32 MB,
and any that do not fit a thread arena's 64 MB heap, with a fresh mmap that is
unmapped on free, so every step page-faults its whole working set again
(~26,000 faults and ~40 ms of kernel time per CNN step at 50 x 400). One
arena, no mmap and no trimming keep the pages mapped between steps. Call
before the first JAX computation (worker threads pick their arena when they
first allocate); the equivalent environment setting for any process is

  GLIBC_TUNABLES=glibc.malloc.arena_max=1:glibc.malloc.mmap_max=0:glibc.malloc.trim_threshold=68719476736
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os

M_TRIM_THRESHOLD, M_MMAP_MAX, M_ARENA_MAX = -1, -4, -8


def keep_heap_mapped() -> bool:
  """Sets glibc's malloc options; False where libc has no mallopt (not glibc) or
  where TEXTCLF_MALLOC_TUNING=0 turns it off. The CLI and the sweep runner call it."""
  if os.environ.get("TEXTCLF_MALLOC_TUNING", "1") == "0":
    return False
  try:
    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    mallopt = libc.mallopt
  except (OSError, AttributeError):
    return False
  mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
  ok = mallopt(M_ARENA_MAX, 1) and mallopt(M_MMAP_MAX, 0)
  ok = ok and mallopt(M_TRIM_THRESHOLD, 2 ** 31 - 1)  # an int; 2 GB of free heap kept
  return bool(ok)
