"""LSTM scanned over time, length-masked; `bidirectional` and `lstm_layers`.

    textclf train --config lstm --config.dataset=sst2 --config.bidirectional=True
"""

from textclf_jax.configs import base


def get_config():
  c = base.get_config()
  c.model = "lstm"
  c.lstm_hidden = 150
  c.lstm_layers = 1
  c.bidirectional = True
  c.dropout = 0.5
  c.max_len = 400
  c.num_epochs = 10
  c.optimizer = "adam"
  c.learning_rate = 2e-3
  c.clip_norm = 5.0
  return c
