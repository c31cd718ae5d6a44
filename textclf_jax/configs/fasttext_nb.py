"""The fasttext bag with NBSVM's weighting as a prior (models/bag.py): each distinct word
and bigram counted once per text, plus the text's mean Naive Bayes log-count ratio per
class from the training split; one epoch. IMDB: 90.9% test (docs/documents.md).

    textclf train --config fasttext_nb --config.dataset=imdb
"""

from textclf_jax.configs import fasttext


def get_config():
  c = fasttext.get_config()
  c.distinct_ngrams = True
  c.nb_prior = 1.5
  c.num_epochs = 1
  return c
