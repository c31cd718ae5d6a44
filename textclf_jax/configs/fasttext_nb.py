"""The fasttext bag with NBSVM's weighting as a prior: words, bigrams and trigrams, each
distinct n-gram counted once per text, plus the text's mean Naive Bayes log-count ratio
per class (models/bag.py). Chosen on IMDB's dev split (docs/documents.md):

    textclf train --config fasttext_nb --config.dataset=imdb
"""

from textclf_jax.configs import fasttext


def get_config():
  c = fasttext.get_config()
  c.word_ngrams = 3
  c.ngram_buckets = 8_000_000
  c.distinct_ngrams = True
  c.nb_prior = 1.5
  c.embed_dim = 5
  c.learning_rate = 0.3
  return c
