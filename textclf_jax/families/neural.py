"""The neural family: the networks of models/ (cnn, lstm, hybrid, fasttext), trained by
training/loop.py and loaded to predict by families/neural_run.py.

Registered on import. Nothing here imports JAX: the training stack is imported inside
the methods, so listing the families (`registry.families()`) stays light.
"""

from __future__ import annotations

from textclf_jax.families import registry
from textclf_jax.families.base import saved_model
from textclf_jax.run import layout as rundir

MODELS = ("cnn", "lstm", "hybrid", "fasttext", "transformer")  # models.MODELS, without importing Flax


class NeuralFamily:
  """Flax networks trained step by step: checkpoints, early stopping, resume."""
  name = "neural"
  models = MODELS

  def problems(self, config) -> list:
    from textclf_jax.training import checks
    return checks.problems(config)

  def train(self, config, workdir: str, *, resume: bool = False, fold: int = -1, raw=None,
            on_dev=None) -> dict:
    from textclf_jax.training import loop
    teacher = None
    if config.get("teacher", ""):  # loaded here: the training layer cannot load runs
      from textclf_jax.families.distill import Teacher
      teacher = Teacher(config.teacher)
    return loop.train_and_evaluate(config, workdir, resume=resume, fold=fold, raw=raw,
                                   on_dev=on_dev, checked=True, teacher=teacher)

  def owns(self, run_dir: str) -> bool:
    """A run whose config.json names one of MODELS and that holds every file a neural
    run has (a directory missing some is nobody's: rundir.check_run_dir says which)."""
    if saved_model(run_dir) not in self.models:
      return False
    try:
      rundir.check_run_dir(run_dir)
    except rundir.RunDirError:
      return False
    return True

  def load(self, run_dir: str, batch_size: int = 0):
    from textclf_jax.families.neural_run import NeuralRun
    return NeuralRun(run_dir, batch_size)

  def candidates(self) -> list:
    from textclf_jax.families.spaces import CANDIDATES
    return list(CANDIDATES)

  def unsupported(self, command: str) -> str | None:
    del command  # explain, export, tune and vmap all take neural runs
    return None


FAMILY = registry.register(NeuralFamily())
