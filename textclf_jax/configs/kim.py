"""Kim (2014)'s exact recipe: the CNN preset with Adadelta, 25 epochs.

Adadelta (rho 0.95, eps 1e-6, lr 1), batch 50, dropout 0.5, max-norm 3,
early stopping on a 10% dev split.
"""

from textclf_jax.configs import cnn


def get_config():
  c = cnn.get_config()
  c.max_len = 64
  c.optimizer = "adadelta"
  c.learning_rate = 1.0
  c.num_epochs = 25
  c.early_stopping_patience = 5
  return c
