"""A BiLSTM for documents: whole texts read as windows of 100 tokens, each window's
final forward and backward states averaged over the text's windows (chunk-and-pool).

    textclf train --config bilstm_doc --config.dataset=imdb --config.embedding=non-static \
        --config.vectors=../shared/embeddings/glove.6B.100d.subset.txt.gz

IMDB (dev: 10% of train; settings chosen on dev among chunk 50/100, mean pooling of final
or max-pooled states, static embeddings): dev 0.9108, test 0.8907, best dev after epoch 2,
1,630 s wall on the 2-core CPU at load ~8 (docs/documents.md).
"""

from textclf_jax.configs import lstm


def get_config():
  c = lstm.get_config()
  c.max_len = 0  # the longest training text (IMDB: 2,770 tokens; nothing is cut)
  c.bucket_lengths = (64,)  # the ladder's first length
  c.bucket_growth = 1.25
  c.chunk_len = 100  # 100 sequential steps per window instead of the text's length
  c.chunk_pool = "mean"
  c.num_epochs = 4
  c.early_stopping_patience = 1
  return c
