"""The TF-IDF family: TF-IDF word uni+bigrams + logistic regression (fit.py fits a run,
model.py reads it back). Registered on import; scikit-learn is imported only when a
run is fitted or loaded, and fit.py (which imports the JAX runtime for multi-process
runs) only when one is checked, fitted or loaded."""

from __future__ import annotations

from textclf_jax.families import registry
from textclf_jax.families.base import saved_model

# Why a command does not take a TF-IDF run or config (cli/ and the callers prefix the run).
UNSUPPORTED = {
    "explain": "a TF-IDF run; `explain` needs a neural run (a linear run's weight per "
               "n-gram is in RUN/linear/)",
    "export": "a TF-IDF run; export takes neural runs (cnn, lstm, hybrid), the TF-IDF model "
              "is already plain JSON and .npy in RUN/linear/",
    "tune": "tune searches a network's settings; the tfidf model chooses C on dev itself "
            "(--config.tfidf_c_grid)",
    "vmap": "the tfidf model is fitted once, not trained in steps: there is nothing to "
            "vmap; fit its runs one at a time",
}


class TfidfFamily:
  """TF-IDF + logistic regression, C chosen on dev (no training loop, no checkpoints)."""
  name = "tfidf"
  models = ("tfidf",)  # fit.LINEAR_MODELS

  def problems(self, config) -> list:
    from textclf_jax.errors import ConfigError
    from textclf_jax.families.tfidf import fit, model as model_lib
    out = fit.problems(config)
    try:
      model_lib.require_sklearn()
    except ConfigError as e:
      out.append(str(e))
    return out

  def train(self, config, workdir: str, *, resume: bool = False, fold: int = -1, raw=None,
            on_dev=None) -> dict:
    del on_dev  # C is chosen on dev inside the fit: nothing to prune
    from textclf_jax.families.tfidf import fit
    return fit.train_and_evaluate(config, workdir, resume, fold, raw, checked=True)

  def refit(self, config, workdir: str, fold: int = -1) -> dict:
    """A sweep's baseline cell: a finished or half-written cell is fitted again, never
    refused (fit.train_tfidf)."""
    from textclf_jax.families.tfidf import fit
    return fit.train_tfidf(config, workdir, fold)

  def owns(self, run_dir: str) -> bool:
    return saved_model(run_dir) in self.models

  def load(self, run_dir: str, batch_size: int = 0):
    del batch_size  # one sparse matrix product per call
    from textclf_jax.families.tfidf import model as model_lib
    return model_lib.LinearRun(run_dir)

  def candidates(self) -> list:
    return []  # C is searched by the fit itself (tfidf_c_grid)

  def unsupported(self, command: str) -> str | None:
    return UNSUPPORTED.get(command)


FAMILY = registry.register(TfidfFamily())
