"""Flax NNX text classifiers, built by name from the config."""

from textclf_jax.models.cnn import KimCNN
from textclf_jax.models.embeddings import Embeddings, FrozenEmbedding
from textclf_jax.models.hybrid import CNNLSTM
from textclf_jax.models.lstm import LSTMClassifier

__all__ = ["CNNLSTM", "Embeddings", "FrozenEmbedding", "KimCNN", "LSTMClassifier", "build_model",
           "min_length"]

MODELS = {"cnn": KimCNN, "lstm": LSTMClassifier, "hybrid": CNNLSTM}


def build_model(config, vocab_size: int, num_classes: int, vectors=None, *, seed: int):
  """Returns the NNX module for `config.model`; `vectors` [V, D] or None."""
  from flax import nnx

  if config.model not in MODELS:
    raise ValueError(f"config.model={config.model!r}: expected one of {', '.join(MODELS)}")
  rngs = nnx.Rngs(params=seed)
  embeddings = Embeddings(vocab_size, config.embed_dim, config.embedding, vectors, rngs=rngs)
  return MODELS[config.model].from_config(config, embeddings, num_classes, rngs=rngs)


def min_length(config) -> int:
  """The shortest padded batch length `config.model` accepts (1 if it has no minimum)."""
  model = MODELS.get(config.model)
  return model.min_length(config) if hasattr(model, "min_length") else 1
