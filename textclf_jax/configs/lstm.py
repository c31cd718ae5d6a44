"""LSTM scanned over time, length-masked; `bidirectional` and `lstm_layers`.

    textclf train --config lstm --config.dataset=sst2 --config.bidirectional=True
"""

from textclf_jax.configs import base, distill


def get_config():
  c = distill.add(base.get_config())
  c.model = "lstm"  # the architecture: cnn | lstm | hybrid
  c.lstm_hidden = 150  # LSTM units per direction
  c.lstm_layers = 1  # stacked LSTM layers
  c.bidirectional = True  # a second LSTM reads the text backwards; their states are concatenated
  # What feeds the head: final (the last states) or max (the max over the text's steps of
  # the last layer's states, BiLSTM-max as in Conneau et al. 2017).
  c.lstm_pool = "final"
  c.dropout = 0.5  # dropout rate (CNN: on the pooled features; LSTM: also on its inputs)
  c.max_len = 400
  c.num_epochs = 10
  c.optimizer = "adam"
  c.learning_rate = 2e-3
  c.clip_norm = 5.0
  return c
