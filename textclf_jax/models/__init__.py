"""Flax NNX text classifiers, built by name from the config."""

import functools

from textclf_jax.models import chunked
from textclf_jax.models.bag import BagOfNgrams
from textclf_jax.models.chunked import ChunkPool
from textclf_jax.models.cnn import KimCNN
from textclf_jax.models.embeddings import Embeddings, FrozenEmbedding
from textclf_jax.models.hybrid import CNNLSTM
from textclf_jax.models.lstm import LSTMClassifier

__all__ = ["BagOfNgrams", "CNNLSTM", "ChunkPool", "Embeddings", "FrozenEmbedding", "KimCNN",
           "LSTMClassifier", "build_model", "extra_rows", "fit_length", "fit_to_data",
           "min_length"]

MODELS = {"cnn": KimCNN, "lstm": LSTMClassifier, "hybrid": CNNLSTM, "fasttext": BagOfNgrams}


def build_model(config, vocab_size: int, num_classes: int, vectors=None, *, seed: int):
  """Returns the NNX module for `config.model`; `vectors` [V, D] or None."""
  from flax import nnx

  rngs = nnx.Rngs(params=seed)
  embeddings = Embeddings(vocab_size, config.embed_dim, config.embedding, vectors,
                          config.get("embed_init_scale", 0.25), rngs=rngs)
  model = MODELS[config.model].from_config(config, embeddings, num_classes, rngs=rngs)
  if config.get("chunk_len", 0):  # after the model's own params, which stay as without it
    if not hasattr(model, "chunks"):
      raise ValueError(f"config.chunk_len={config.chunk_len}: model {config.model!r} does not "
                       "read windows; set chunk_len 0")
    model.chunks = nnx.data(ChunkPool.from_config(config, model.head.in_features, rngs=rngs))
  return model


def fit_length(config):
  """None, or length -> the padded length config's model reads without waste (at least
  `length`): with chunk_len, texts longer than a window are read as whole windows."""
  if not config.get("chunk_len", 0):
    return None
  return functools.partial(chunked.fit_length, chunk_len=config.chunk_len,
                           stride=config.chunk_stride or config.chunk_len)


def min_length(config) -> int:
  """The shortest padded batch length `config.model` accepts (1 if it has no minimum)."""
  model = MODELS.get(config.model)
  return model.min_length(config) if hasattr(model, "min_length") else 1


def fit_to_data(config, state: dict, train, multi_label: bool) -> dict:
  """The initial train state with what `config.model` derives from the training split
  (`train`, an Encoded split) filled in: the fasttext model's NB ratios; others: as is."""
  model = MODELS.get(config.model)
  if not hasattr(model, "fit_to_data"):
    return state
  return model.fit_to_data(config, state, train, multi_label)


def extra_rows(config) -> int:
  """Embedding-table rows `config.model` needs after the vocabulary's (hashed n-gram
  buckets; 0 for most models)."""
  model = MODELS.get(config.model)
  return model.extra_rows(config) if hasattr(model, "extra_rows") else 0
