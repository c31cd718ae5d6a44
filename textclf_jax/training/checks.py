"""The neural families' config: the checks of their own keys, and the values filled in
from files.

    found = checks.problems(config)   # ["config.loss='x': expected one of ...", ...]
    checks.validate(config)            # the shared keys too; one ConfigError naming all

The keys every family shares are checked by `config.problems`; a command runs both once,
through `families.validate.validate`, before it writes anything. The choices come from
the modules that implement them (so a new loss or pool is valid where it is defined).
"""

from __future__ import annotations

from textclf_jax import config as config_lib
from textclf_jax.errors import ConfigError

DEFAULT_EMBED_DIM = 128
# The numeric keys the model presets add to configs/base.py (whose keys config.py checks).
POSITIVE_INTS = ("num_filters", "lstm_hidden", "lstm_layers", "word_ngrams", "ngram_buckets")
INTERVALS = {(0.0, float("inf"), True, False): ("embed_init_scale", "nb_prior"),
             (0.0, 1.0, True, True): ("dropout",)}


def choices() -> dict:
  """key -> the values it may take (imported here: importing this module loads no JAX)."""
  from textclf_jax.data import vectors
  from textclf_jax.models import MODELS, chunked, cnn, embeddings, lstm
  from textclf_jax.training import losses, optim, sparse_embed, steps
  return {
      "model": tuple(MODELS), "embedding": embeddings.KINDS, "loss": losses.LOSSES,
      "optimizer": optim.OPTIMIZERS, "schedule": optim.SCHEDULES,
      "weight_decay_mode": ("decoupled", "l2"), "embedding_update": sparse_embed.MODES,
      "conv_backward": cnn.CONV_BACKWARD, "compute_dtype": tuple(steps.COMPUTE_DTYPES),
      "vectors_format": vectors.FORMATS, "chunk_pool": chunked.POOLS, "lstm_pool": lstm.POOLS,
  }


def problems(config) -> list:
  """Every bad value among the neural models' own keys, one message each ([] when valid)."""
  out = config_lib.range_problems(config, POSITIVE_INTS, (), INTERVALS)
  widths = config.get("filter_widths")
  if "filter_widths" in config and (not isinstance(widths, (tuple, list)) or not widths or not all(
      isinstance(w, int) and not isinstance(w, bool) and w >= 1 for w in widths)):
    out.append(f"config.filter_widths={widths!r}: expected a non-empty list of integers >= 1")
  for key, allowed in choices().items():
    if key in config and config[key] not in allowed:
      out.append(f"config.{key}={config[key]!r}: expected one of {', '.join(map(str, allowed))}")
  if config.get("embedding", "rand") != "rand" and not config.get("vectors"):
    out.append(f"config.embedding={config.embedding!r} needs pretrained vectors: set "
               "config.vectors")
  ngrams = config.get("word_ngrams", 1)
  if isinstance(ngrams, int) and ngrams > 1 and config.get("embedding") == "static":
    out.append(f"config.word_ngrams={config.word_ngrams} needs a trainable table (the n-gram "
               "rows have no pretrained vectors): embedding rand, non-static or multichannel")
  if not out and config.get("embedding_update") == "sparse":
    from textclf_jax.training import sparse_embed
    reasons = sparse_embed.dense_only(config)
    if reasons:
      out.append("config.embedding_update='sparse' is exact only for Adadelta or plain SGD "
                 f"without clipping or weight decay on one model shard: {'; '.join(reasons)}")
  return out


def validate(config, where: str = ""):
  """Raises one ConfigError naming every bad key of a neural config (shared and own):
  for the library's neural entry points (`train_many`); commands use families.validate."""
  found = config_lib.problems(config) + problems(config)
  if found:
    raise ConfigError((f"{where}: " if where else "") + "; ".join(found))


def resolve(config):
  """`config` with the values that depend on files filled in (so the run directory
  records what was trained): embed_dim 0 becomes the vectors file's dimension,
  or DEFAULT_EMBED_DIM without vectors. A config with nothing to fill is returned as is."""
  if config.get("embed_dim", 1) != 0:
    return config
  dim = DEFAULT_EMBED_DIM
  if config.vectors:
    from textclf_jax.data.vectors import vectors_dim
    dim = vectors_dim(config.vectors, config.vectors_format)
  config = config.copy_and_resolve_references()
  with config.unlocked():
    config.embed_dim = dim
  return config


def resolve_max_len(config, max_len: int):
  """`config` with max_len 0 ("from the training texts") replaced by the `max_len`
  prepare chose (so the run directory records what was trained); otherwise as is."""
  if config.max_len != 0:
    return config
  config = config.copy_and_resolve_references()
  with config.unlocked():
    config.max_len = int(max_len)
  return config
