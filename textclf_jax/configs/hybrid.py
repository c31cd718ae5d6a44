"""CNN -> LSTM: same-padded convolutions (widths concatenated) feed an LSTM.

    textclf train --config hybrid --config.dataset=sst2
"""

from textclf_jax.configs import base


def get_config():
  c = base.get_config()
  c.model = "hybrid"
  c.filter_widths = (3,)
  c.num_filters = 128
  c.lstm_hidden = 128
  c.lstm_layers = 1
  c.bidirectional = False
  c.dropout = 0.5
  c.max_len = 400
  c.num_epochs = 10
  c.optimizer = "adam"
  c.learning_rate = 2e-3
  c.clip_norm = 5.0
  return c
