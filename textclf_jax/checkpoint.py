"""Orbax checkpoints of a run: `checkpoints/latest` (every N steps and each epoch
end) and `checkpoints/best` (the best dev evaluation so far).

Each checkpoint holds the train state (parameters, frozen embeddings, optimiser
state, RNG, step) through `StandardSave` and the loop's position (epoch, batch
within epoch, early-stopping state) as JSON. Orbax writes to a temporary
directory and renames it, so a kill mid-save leaves the previous one intact.
"""

from __future__ import annotations

import os

import orbax.checkpoint as ocp


class Checkpoints:
  """The latest and best checkpoint managers of one run directory."""

  def __init__(self, workdir: str, keep_latest: int = 2):
    root = os.path.join(os.path.abspath(workdir), "checkpoints")
    options = dict(enable_async_checkpointing=False, create=True)
    self.latest = ocp.CheckpointManager(
        os.path.join(root, "latest"),
        options=ocp.CheckpointManagerOptions(max_to_keep=keep_latest, **options))
    self.best = ocp.CheckpointManager(
        os.path.join(root, "best"), options=ocp.CheckpointManagerOptions(max_to_keep=1, **options))

  @staticmethod
  def _save(manager, step: int, state, meta: dict):
    if step in manager.all_steps():
      manager.delete(step)  # redone after a resume: same step, same contents
    manager.save(step, args=ocp.args.Composite(state=ocp.args.StandardSave(state),
                                               meta=ocp.args.JsonSave(meta)))
    manager.wait_until_finished()

  def save_latest(self, step: int, state, meta: dict):
    self._save(self.latest, step, state, meta)

  def save_best(self, step: int, state, meta: dict):
    self._save(self.best, step, state, meta)

  @staticmethod
  def _restore(manager, abstract_state, step=None):
    step = manager.latest_step() if step is None else step
    if step is None:
      return None
    restored = manager.restore(step, args=ocp.args.Composite(
        state=ocp.args.StandardRestore(abstract_state), meta=ocp.args.JsonRestore()))
    return restored["state"], restored["meta"]

  def restore_latest(self, abstract_state):
    """(state, meta) of the newest latest-checkpoint, or None."""
    return self._restore(self.latest, abstract_state)

  def restore_best(self, abstract_state):
    return self._restore(self.best, abstract_state)

  def close(self):
    self.latest.close()
    self.best.close()
