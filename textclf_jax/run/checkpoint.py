"""Orbax checkpoints of a run: `checkpoints/latest` (every N steps and each epoch
end) and `checkpoints/best` (the best dev evaluation so far).

Each checkpoint holds the train state (parameters, frozen embeddings, optimiser
state, RNG, step) through `StandardSave` and the loop's position (epoch, batch
within epoch, early-stopping state) as JSON. Orbax writes to a temporary
directory and renames it, so a kill mid-save leaves the previous one intact. A
save that cannot fit on the disk is refused before it starts (or, if the disk
fills during it, its temporary directory is removed): either way the previous
checkpoints stay restorable and the error says so in one line.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import shutil
import sys
import tempfile
import time

import jax
import orbax.checkpoint as ocp

TMP_MARK = ".orbax-checkpoint-tmp"
# Room kept free beyond a checkpoint's array bytes (metadata, JSON, the filesystem).
SPARE_BYTES = 4 * 2 ** 20
FAILED_SAVE_DRAIN_SECONDS = 2.0
# The `textclf` program sets this (not a library caller): after orbax fails, native
# stderr stays muted for the rest of the process (see _quiet_orbax).
MUTE_AFTER_FAILURE = False
_MUTED = []


def state_bytes(state) -> int:
  return sum(int(x.size) * x.dtype.itemsize for x in jax.tree.leaves(state)
             if hasattr(x, "dtype"))


def _disk_full(error: BaseException) -> bool:
  text = str(error)
  return (isinstance(error, OSError) and error.errno == errno.ENOSPC) or \
      "No space left" in text or "os_error_code='28'" in text


@contextlib.contextmanager
def _quiet_orbax():
  """Holds back what a save or restore prints (orbax logs a failed save's error from
  each of its threads, and its I/O callbacks print tracebacks natively once its event
  loop is closed): replayed if it succeeds, dropped if it fails (the error or the
  warning we print says it once)."""
  logger = logging.getLogger("absl")
  level = logger.level
  logger.setLevel(logging.CRITICAL)
  sys.stderr.flush()
  saved = os.dup(2)
  with tempfile.TemporaryFile() as held:
    os.dup2(held.fileno(), 2)
    failed = False
    try:
      yield
    except BaseException:
      failed = True
      time.sleep(FAILED_SAVE_DRAIN_SECONDS)  # its writes still in flight fail here, quietly
      raise
    finally:
      sys.stderr.flush()
      if failed and MUTE_AFTER_FAILURE and not _MUTED:
        # Orbax's I/O still in flight prints from threads and native callbacks for
        # seconds after a failure, whatever the command does next (stop with one
        # error line, or go on from an older checkpoint). Python's own stderr keeps
        # the real one; file descriptor 2 and orbax's loggers stay quiet from now on.
        _MUTED.append(True)
        sys.stderr = os.fdopen(saved, "w", buffering=1, closefd=False)
        for name in ("asyncio", "absl"):
          logging.getLogger(name).setLevel(logging.CRITICAL + 1)
        os.dup2(os.open(os.devnull, os.O_WRONLY), 2)
      else:
        os.dup2(saved, 2)
        os.close(saved)
        logger.setLevel(level)
      if not failed:
        held.seek(0)
        text = held.read()
        if text:
          os.write(2, text)


@contextlib.contextmanager
def _absl_errors_only():
  logger = logging.getLogger("absl")
  level = logger.level
  logger.setLevel(logging.ERROR)
  try:
    yield
  finally:
    logger.setLevel(level)


class Checkpoints:
  """The latest and best checkpoint managers of one run directory."""

  def __init__(self, workdir: str, keep_latest: int = 2, read_only: bool = False):
    """read_only: for `eval` and `predict`, which may read a run another process is
    writing; they see only committed checkpoints and change nothing."""
    root = os.path.join(os.path.abspath(workdir), "checkpoints")
    options = dict(enable_async_checkpointing=False, create=not read_only, read_only=read_only)
    with _absl_errors_only() if read_only else contextlib.nullcontext():
      # (read-only managers warn that they will not save: that is the point)
      self.latest = ocp.CheckpointManager(
          os.path.join(root, "latest"),
          options=ocp.CheckpointManagerOptions(max_to_keep=keep_latest, **options))
      self.best = ocp.CheckpointManager(
          os.path.join(root, "best"),
          options=ocp.CheckpointManagerOptions(max_to_keep=1, **options))

  @staticmethod
  def _save(manager, step: int, state, meta: dict):
    directory = str(manager.directory)
    kept = [s for s in manager.all_steps() if s != step]
    needed = state_bytes(state) + SPARE_BYTES
    free = shutil.disk_usage(directory).free
    if free < needed:
      raise _no_space(directory, step, kept, f"it needs ~{needed / 2 ** 20:.0f} MB, "
                      f"{free / 2 ** 20:.0f} MB are free")
    if step in manager.all_steps():
      manager.delete(step)  # redone after a resume: same step, same contents
    try:
      with _quiet_orbax():
        manager.save(step, args=ocp.args.Composite(state=ocp.args.StandardSave(state),
                                                   meta=ocp.args.JsonSave(meta)))
        manager.wait_until_finished()
    except Exception as e:  # noqa: BLE001 (orbax wraps OS errors in its own types)
      if not _disk_full(e):
        raise
      for name in os.listdir(directory):
        if TMP_MARK in name:
          shutil.rmtree(os.path.join(directory, name), ignore_errors=True)
      raise _no_space(directory, step, kept, "the disk filled up while writing") from None

  def save_latest(self, step: int, state, meta: dict):
    self._save(self.latest, step, state, meta)

  def save_best(self, step: int, state, meta: dict):
    self._save(self.best, step, state, meta)

  @staticmethod
  def _restore(manager, abstract_state, step=None, partial: bool = False):
    """(state, meta) of checkpoint `step`, or of the newest one that can be read; None
    when there is none.

    A checkpoint that cannot be read (a truncated or corrupted file) is passed over for
    the next older one, with a one-line warning naming it; when none can be read,
    DataError names the newest bad checkpoint directory and why it failed.
    """
    steps = sorted(manager.all_steps(), reverse=True) if step is None else [step]
    if not steps:
      return None
    bad = []  # (step, why) of each checkpoint that could not be read, newest first
    for s in steps:
      try:
        with _quiet_orbax():  # a failed read's callbacks print tracebacks natively too
          restored = manager.restore(s, args=ocp.args.Composite(
              state=_restore_args(abstract_state, partial), meta=ocp.args.JsonRestore()))
      except Exception as e:  # noqa: BLE001 (orbax, tensorstore and json each raise their own)
        bad.append((s, _first_line(e)))
        continue
      if jax.process_index() == 0:
        for b, why in bad:
          print(f"[textclf] warning: checkpoint {_step_dir(manager, b)} cannot be read "
                f"({why}); using the previous one, step {s}", file=sys.stderr, flush=True)
      return restored["state"], restored["meta"]
    from textclf_jax.errors import DataError
    b, why = bad[0]
    others = (f"; the older checkpoint{'s' if len(bad) > 2 else ''} (step "
              f"{', '.join(str(o) for o, _ in bad[1:])}) cannot be read either"
              if len(bad) > 1 else "")
    raise DataError(f"checkpoint {_step_dir(manager, b)} cannot be read ({why}): a file in "
                    f"it is truncated or corrupted{others}")

  def restore_latest(self, abstract_state, partial: bool = False):
    """(state, meta) of the newest latest-checkpoint that can be read, or None.
    partial: `abstract_state` names a part of the saved state (e.g. step, params and
    frozen, what predicting needs); only that part is read (no optimiser moments)."""
    return self._restore(self.latest, abstract_state, partial=partial)

  def restore_best(self, abstract_state, partial: bool = False):
    return self._restore(self.best, abstract_state, partial=partial)

  @staticmethod
  def has_latest(workdir: str) -> bool:
    """Whether `workdir` holds a latest checkpoint (without opening a manager)."""
    root = os.path.join(workdir, "checkpoints", "latest")
    return os.path.isdir(root) and any(d.isdigit() for d in os.listdir(root))

  def drop(self, which: str):
    """Deletes every `latest` or `best` checkpoint (what a finished run no longer needs)."""
    manager = self.latest if which == "latest" else self.best
    for step in manager.all_steps():
      manager.delete(step)

  def close(self):
    self.latest.close()
    self.best.close()


def _restore_args(abstract_state, partial: bool):
  """The state's restore arguments: the whole saved tree, or (partial) only the subtree
  `abstract_state` names, its leaves placed by their shardings."""
  if not partial:
    return ocp.args.StandardRestore(abstract_state)
  return ocp.args.PyTreeRestore(
      item=abstract_state, partial_restore=True,
      restore_args=ocp.checkpoint_utils.construct_restore_args(abstract_state))


def _step_dir(manager, step: int) -> str:
  return os.path.join(str(manager.directory), str(step))


def _first_line(error: BaseException, limit: int = 200) -> str:
  """`Type: message`, its first line only (tensorstore's run to dozens), cut to `limit`."""
  text = str(error).strip().splitlines()[0] if str(error).strip() else ""
  text = f"{type(error).__name__}: {text}" if text else type(error).__name__
  return text if len(text) <= limit else text[:limit - 3] + "..."


def _no_space(directory: str, step: int, kept: list, why: str) -> OSError:
  kept_text = (f"the previous checkpoint{'s' if len(kept) > 1 else ''} "
               f"(step {', '.join(map(str, kept))}) {'are' if len(kept) > 1 else 'is'} kept"
               if kept else "no earlier checkpoint of this kind exists")
  run = os.path.dirname(os.path.dirname(directory))
  return OSError(errno.ENOSPC, f"no space left on the disk for checkpoint step {step} in "
                 f"{directory} ({why}); {kept_text}. Free some space, then continue with "
                 f"`textclf train --resume {run}`")
