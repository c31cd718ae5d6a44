"""CNN -> LSTM: same-padded convolutions (widths concatenated) feed an LSTM.

The LSTM preset's recipe (dropout, length, Adam, clipping), with convolutions
in front and a smaller, one-directional LSTM.

    textclf train --config hybrid --config.dataset=sst2
"""

from textclf_jax.configs import lstm


def get_config():
  c = lstm.get_config()
  c.model = "hybrid"
  c.filter_widths = (3,)  # convolution widths in tokens, one set of filters each
  c.num_filters = 128  # filters (feature maps) per width
  c.lstm_hidden = 128
  c.bidirectional = False
  return c
