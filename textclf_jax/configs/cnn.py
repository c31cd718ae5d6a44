"""Kim (2014) CNN: widths 3/4/5 x 100 maps, ReLU, max-over-time, dropout 0.5.

    textclf train --config cnn                       # bbc_news, CNN-rand
    textclf train --config cnn --config.dataset=sst2 \
        --config.embedding=non-static \
        --config.vectors=../shared/embeddings/glove.6B.100d.subset.txt.gz
"""

from textclf_jax.configs import base, distill


def get_config():
  c = distill.add(base.get_config())
  c.model = "cnn"  # the architecture: cnn | lstm | hybrid
  c.filter_widths = (3, 4, 5)  # convolution widths in tokens, one set of filters each
  c.num_filters = 100  # filters (feature maps) per width
  c.dropout = 0.5  # dropout rate (CNN: on the pooled features; LSTM: also on its inputs)
  c.max_len = 512  # bbc_news articles: ~390 words on average, 1 in 5 longer
  c.num_epochs = 12
  c.optimizer = "adam"
  c.learning_rate = 3e-3
  c.max_norm = 3.0
  return c
