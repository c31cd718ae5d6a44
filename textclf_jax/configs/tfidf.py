"""The linear baseline: TF-IDF word uni+bigrams + logistic regression (scikit-learn).

    pip install "textclf_jax[linear]"
    textclf train --config tfidf --config.dataset=DIR --workdir runs/tfidf
    textclf eval runs/tfidf          textclf predict runs/tfidf "some text"

C is chosen on dev from `tfidf_c_grid` (extended while the best is at its edge); the
fitted model is saved as JSON and .npy (RUN/linear/, see textclf_jax/linear_model.py).
Of the shared keys it reads the data and text keys, seed, class_weights (none |
balanced) and the multilabel_* keys; the network keys (embeddings, loss, optimisation,
devices) do not apply. On bbc_news (the default dataset) it reaches 0.975 test accuracy
in ~20 s on one CPU.
"""

from textclf_jax.configs import base


def get_config():
  c = base.get_config()
  c.model = "tfidf"  # TF-IDF word uni+bigrams + logistic regression (no network)
  # The inverse L2 regularisation strengths tried; the best dev accuracy (multi-label:
  # dev micro-F1 at tuned thresholds) wins. A sweep cell made from a network preset uses
  # the same grid.
  c.tfidf_c_grid = (0.25, 1.0, 4.0, 16.0, 64.0, 256.0)
  # While the best C is the largest (smallest) tried, try the next one out by the grid's
  # ratio at that end, at most this many more each way (0: the grid only).
  c.tfidf_c_extend = 3
  c.max_len = 100_000  # the whole text: a linear model has no length limit
  c.wandb = "disabled"  # no training steps to log; results.json holds the scores
  return c
