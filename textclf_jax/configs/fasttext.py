"""fastText-style bag of n-grams: the mean of word and hashed bigram vectors, linear head.

    textclf train --config fasttext --config.dataset=imdb

Adagrad on a row-sparse table (only the rows a batch reads are touched; fastText's
per-example SGD needs batch 1, and plain SGD at batch 32 is limited by the head), the
learning rate decayed linearly to 0 as fastText does, 10-d vectors, 2 epochs, no
dropout. Bigrams of vocabulary ids are hashed into `ngram_buckets` rows
(models/bag.py). IMDB: 90.4% test (docs/documents.md). `fasttext_nb` adds NBSVM's
weighting as a prior (one epoch: 90.9%), `fasttext_nb3` word trigrams too (91.5%).
"""

from textclf_jax.configs import base, distill


def get_config():
  c = distill.add(base.get_config())
  c.model = "fasttext"  # the architecture: cnn | lstm | hybrid | fasttext
  c.word_ngrams = 2  # longest word n-gram read (1: words only; 2: + bigrams; 3: + trigrams)
  c.ngram_buckets = 1_000_000  # table rows the hashed n-grams share (fastText's -bucket)
  c.distinct_ngrams = False  # count each distinct word / n-gram once per text (binarised bag)
  # s > 0: each class's logit also gets s_c x the text's mean Naive Bayes log-count ratio
  # (NBSVM's weighting, from the training split; s_c trained from s). 0: off.
  c.nb_prior = 0.0
  c.dropout = 0.0  # dropout rate on the averaged vector
  c.embed_init_scale = 0.1  # rand: rows drawn from U[-s, s] (fastText: 1 / embed_dim)
  c.embed_dim = 10
  c.max_len = 1024  # IMDB: 98.9% of reviews whole (a bag's cost is per token)
  # (+ max_len) a bag costs per token slot: on IMDB its steps take ~25% less CPU than with
  # buckets (64, 256) (7 shapes to compile against 3; with a warm cache they are loaded)
  c.bucket_lengths = (64, 128, 256, 384, 512, 768)
  c.batch_size = 32
  c.num_epochs = 2
  c.optimizer = "adagrad"
  c.adagrad_initial = 0.0
  c.learning_rate = 0.5
  c.schedule = "linear"
  c.checkpoint_every_steps = 100_000  # a checkpoint at each epoch's end only
  return c
