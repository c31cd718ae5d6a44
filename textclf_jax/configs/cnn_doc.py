"""Kim's CNN for documents: whole texts, a geometric bucket ladder, and windows of 100
tokens whose max-over-time features are pooled by attention (chunk-and-pool).

    textclf train --config cnn_doc --config.dataset=imdb --config.embedding=non-static \
        --config.vectors=../shared/embeddings/glove.6B.100d.subset.txt.gz

IMDB (dev: 10% of train; settings chosen on dev among full-length plain, chunk 50/100
mean, chunk 100 attention, lr 1e-3/3e-3): dev 0.9004, test 0.8852 (plain CNN at
max_len 400: 0.877), best dev after epoch 1, 281 s wall on the 2-core CPU at load ~7
(docs/documents.md).
"""

from textclf_jax.configs import cnn


def get_config():
  c = cnn.get_config()
  c.max_len = 0  # the longest training text (IMDB: 2,770 tokens; nothing is cut)
  c.bucket_lengths = (64,)  # the ladder's first length
  c.bucket_growth = 1.25  # IMDB at full length: 17% of slots padded (doubling: 37%)
  c.chunk_len = 100
  c.chunk_pool = "attention"
  c.num_epochs = 4
  c.early_stopping_patience = 2
  return c
