"""Flax NNX text classifiers, found by name in the registry (models/base.py) and built
from the config."""

import functools

from textclf_jax.models import chunked
from textclf_jax.models.bag import BagOfNgrams
from textclf_jax.models.base import (MODELS, ParamGroups, TextClassifier, model_class,
                                     register_model)
from textclf_jax.models.chunked import ChunkPool
from textclf_jax.models.cnn import KimCNN
from textclf_jax.models.encoders.classifier import ContextualEmbeddings, TransformerClassifier
from textclf_jax.models.embeddings import Embeddings, FrozenEmbedding
from textclf_jax.models.hybrid import CNNLSTM
from textclf_jax.models.lstm import LSTMClassifier

__all__ = ["BagOfNgrams", "CNNLSTM", "ChunkPool", "Embeddings", "FrozenEmbedding", "KimCNN",
           "LSTMClassifier", "MODELS", "ParamGroups", "TextClassifier", "TransformerClassifier",
           "build_model", "uses_vectors",
           "extra_rows", "fit_length", "fit_to_data", "min_length", "model_class",
           "register_model"]

register_model("cnn", KimCNN)
register_model("lstm", LSTMClassifier)
register_model("hybrid", CNNLSTM)
register_model("fasttext", BagOfNgrams)
register_model("transformer", TransformerClassifier)


def uses_vectors(config) -> bool:
  """Whether config's embeddings are built from a pretrained vectors matrix."""
  return config.embedding in ("static", "non-static", "multichannel")


def make_embeddings(config, vocab_size: int, vectors, rngs):
  """The input layer config.embedding names: word Embeddings, or a pretrained encoder's
  token states (`contextual`)."""
  if config.embedding == "contextual":
    from textclf_jax.models.encoders import classifier
    return ContextualEmbeddings(classifier.encoder_config(config), config.encoder_layers,
                                config.encoder_trainable, classifier.compute_dtype(config), rngs=rngs)
  return Embeddings(vocab_size, config.embed_dim, config.embedding, vectors,
                    config.get("embed_init_scale", 0.25), rngs=rngs)


def build_model(config, vocab_size: int, num_classes: int, vectors=None, *, seed: int):
  """Returns the NNX module for `config.model`; `vectors` [V, D] or None."""
  from flax import nnx

  cls = model_class(config.model)
  rngs = nnx.Rngs(params=seed)
  embeddings = make_embeddings(config, vocab_size, vectors, rngs) if cls.word_embeddings \
      else None
  model = cls.from_config(config, embeddings, num_classes, rngs=rngs)
  if config.get("chunk_len", 0):  # after the model's own params, which stay as without it
    if not cls.reads_windows:
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
  return model_class(config.model).min_length(config)


def fit_to_data(config, state: dict, train, multi_label: bool) -> dict:
  """The initial train state with what `config.model` derives from the training split
  (`train`, an Encoded split) filled in: the fasttext model's NB ratios; others: as is."""
  return model_class(config.model).fit_to_data(config, state, train, multi_label)


def extra_rows(config) -> int:
  """Embedding-table rows `config.model` needs after the vocabulary's (hashed n-gram
  buckets; 0 for most models)."""
  return model_class(config.model).extra_rows(config)
