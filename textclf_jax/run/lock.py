"""The run directory's lock: one process writes a run (or group) directory at a time.

Readers (`eval`, `predict`) never take it; `holder(run)` tells them whether the run
is being written.
"""

from __future__ import annotations

import contextlib
import os

from textclf_jax.run.layout import LOCK, LOCK_INFO, RunDirError, path, read_json, write_json


class RunLocked(RunDirError):
  """Another live process is writing this run directory."""


class RunLock:
  """The exclusive right to write one run (or group) directory.

  An OS file lock (`filelock`, flock on Linux) on RUN/.lock: the kernel releases
  it when its process ends, even by kill -9, so a lock left by a dead process is
  simply taken over (and said). RUN/.lock.json names the holder for the refusal
  message. Readers (`eval`, `predict`) never take it; `holder(run)` tells them
  whether the run is being written.
  """

  def __init__(self, workdir: str):
    import filelock
    self.workdir = workdir
    os.makedirs(workdir, exist_ok=True)
    self._lock = filelock.FileLock(path(workdir, LOCK), timeout=0)
    self.took_over = None  # the holder record of a dead process, if one was replaced

  def acquire(self):
    import filelock
    try:
      self._lock.acquire()
    except filelock.Timeout:
      info = holder(self.workdir) or {}
      raise RunLocked(
          f"{self.workdir}: in use by pid {info.get('pid', '?')} on {info.get('host', '?')} "
          f"(since {info.get('since', '?')}: {info.get('command', '?')}); wait for it to "
          f"finish or stop it (lock file {path(self.workdir, LOCK)})") from None
    previous = _read_info(self.workdir)
    if previous and previous.get("pid") != os.getpid():
      self.took_over = previous
    write_json(path(self.workdir, LOCK_INFO), _holder_info())
    return self

  def release(self):
    if self._lock.is_locked:
      try:
        os.remove(path(self.workdir, LOCK_INFO))
      except FileNotFoundError:
        pass
      self._lock.release()

  def __enter__(self):
    return self.acquire()

  def __exit__(self, *exc):
    self.release()


def _holder_info() -> dict:
  import socket
  import sys
  import time
  return {"host": socket.gethostname(), "pid": os.getpid(),
          "since": time.strftime("%Y-%m-%d %H:%M:%S"), "command": " ".join(sys.argv)[:300]}


def _read_info(workdir: str) -> dict | None:
  try:
    return read_json(path(workdir, LOCK_INFO))
  except (FileNotFoundError, ValueError):
    return None


def holder(workdir: str) -> dict | None:
  """Who is writing `workdir` now (host, pid, since, command), or None."""
  import filelock
  if not os.path.exists(path(workdir, LOCK)):
    return None
  probe = filelock.FileLock(path(workdir, LOCK), timeout=0)
  try:
    probe.acquire()
  except filelock.Timeout:
    return _read_info(workdir) or {}
  except OSError:  # a read-only run directory: nobody can be writing it
    return None
  probe.release()
  return None


@contextlib.contextmanager
def writing(workdir: str):
  """Holds the run directory's lock (`RunLock`) in process 0 while it writes; the other
  processes of a multi-host run write nothing there and take no lock."""
  from textclf_jax.runtime import parallel  # imports JAX; the lock itself does not
  if not parallel.is_main_process():
    yield
    return
  with RunLock(workdir) as lock:
    if lock.took_over:
      info = lock.took_over
      print(f"[textclf] {workdir}: took over the lock of pid {info.get('pid')} on "
            f"{info.get('host')} (since {info.get('since')}), which is no longer running",
            flush=True)
    yield
