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
             (0.0, 1.0, True, True): ("dropout",), (0.0, 1.0, False, True): ("layer_decay",),
             (0.0, 1.0, True, False): ("warmup_fraction",)}


def choices() -> dict:
  """key -> the values it may take (imported here: importing this module loads no JAX)."""
  from textclf_jax.data import vectors
  from textclf_jax.models import MODELS, chunked, cnn, embeddings, lstm
  from textclf_jax.models.encoders import classifier
  from textclf_jax.text import encoder
  from textclf_jax.training import encoder_cache, losses, optim, sparse_embed, steps
  return {
      "model": tuple(MODELS), "embedding": (*embeddings.KINDS, "contextual"),
      "loss": losses.LOSSES, "pooling": classifier.POOLINGS,
      "encoder": tuple(sorted({*encoder.ENCODERS, *encoder.BUILTIN})),
      "optimizer": optim.OPTIMIZERS, "schedule": optim.SCHEDULES,
      "weight_decay_mode": ("decoupled", "l2"), "embedding_update": sparse_embed.MODES,
      "conv_backward": cnn.CONV_BACKWARD, "compute_dtype": tuple(steps.COMPUTE_DTYPES),
      "vectors_format": vectors.FORMATS, "chunk_pool": chunked.POOLS, "lstm_pool": lstm.POOLS,
      "encoder_cache": encoder_cache.MODES,
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
  out += _encoder_problems(config)
  if config.get("embedding", "rand") not in ("rand", "contextual") and not config.get("vectors"):
    out.append(f"config.embedding={config.embedding!r} needs pretrained vectors: set "
               "config.vectors")
  ngrams = config.get("word_ngrams", 1)
  if isinstance(ngrams, int) and ngrams > 1 and config.get("embedding") == "static":
    out.append(f"config.word_ngrams={config.word_ngrams} needs a trainable table (the n-gram "
               "rows have no pretrained vectors): embedding rand, non-static or multichannel")
  out += _length_problems(config) + _distill_problems(config)
  if not out and config.get("embedding_update") == "sparse":
    from textclf_jax.training import sparse_embed
    reasons = sparse_embed.dense_only(config)
    if reasons:
      out.append("config.embedding_update='sparse' is exact only for Adadelta or plain SGD "
                 f"without clipping or weight decay on one model shard: {'; '.join(reasons)}")
  return out


def _encoder_problems(config) -> list:
  """A pretrained encoder's keys: the subword encoder and a model folder where a model
  reads the encoder, an encoder_layers spec, max_len within the model's positions."""
  import re
  from textclf_jax.errors import DataError
  from textclf_jax.text import subword
  out = []
  needs = config.get("model") == "transformer" or config.get("embedding") == "contextual"
  what = ("model='transformer'" if config.get("model") == "transformer"
          else "embedding='contextual'")
  if needs and config.get("encoder") != "subword":
    out.append(f"config.{what} reads a pretrained encoder: set config.encoder=subword "
               "(and config.encoder_path)")
  layers = config.get("encoder_layers", "last")
  if not re.fullmatch(r"last|mix|layer_\d+|mean_last_\d+", str(layers)):
    out.append(f"config.encoder_layers={layers!r}: expected last, mix, layer_N or mean_last_K")
  if config.get("encoder") != "subword":
    return out
  import importlib.util
  lacking = [m for m in ("tokenizers", "safetensors") if importlib.util.find_spec(m) is None]
  if lacking:
    return out + [f"config.encoder='subword' needs the `encoders` extra ({', '.join(lacking)} "
                  "not installed): pip install \"textclf_jax[encoders]\" (or "
                  "pip install -e \".[encoders]\" in a clone)"]
  if config.get("chunk_len", 0) and needs:
    out.append(f"config.chunk_len={config.chunk_len}: windows are not read through a "
               "pretrained encoder yet; set chunk_len 0")
  max_len = config.get("max_len", 0)
  if not isinstance(max_len, int) or max_len < 2:
    out.append(f"config.max_len={max_len!r}: the subword encoder needs max_len >= 2 (its "
               "special tokens included; 0, from the data, is for the word encoder)")
    return out
  from textclf_jax.models.encoders import classifier
  try:
    saved = classifier.saved_encoder_config(config)
    if saved:  # a run's: it is rebuilt from this, without the folder
      limit = classifier.encoder_config(config).max_tokens
    else:
      limit = subword.positions_in_config(subword.resolve_folder(config.get("encoder_path",
                                                                            "")))
  except (ConfigError, DataError) as e:
    return out + [str(e)]
  if max_len > limit:
    out.append(f"config.max_len={max_len}: the model at config.encoder_path has positions "
               f"for {limit} tokens; expected 2..{limit}")
  return out


def _distill_problems(config) -> list:
  """The distillation keys (configs/distill.py), where the config has them."""
  out = []
  for key in ("teacher", "distill_unlabelled"):
    if not isinstance(config.get(key, ""), str):
      out.append(f"config.{key}={config[key]!r}: expected a path (teacher: comma-separated "
                 "run directories) or ''")
  temperature, alpha = config.get("distill_temperature", 1.0), config.get("distill_alpha", 0.0)
  if isinstance(temperature, bool) or not isinstance(temperature, (int, float)) or \
      not temperature > 0:
    out.append(f"config.distill_temperature={temperature!r}: expected a number > 0")
  if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or not 0 <= alpha <= 1:
    out.append(f"config.distill_alpha={alpha!r}: expected a number in [0, 1]")
  if config.get("distill_unlabelled", "") and not config.get("teacher", ""):
    out.append(f"config.distill_unlabelled={config.distill_unlabelled!r}: unlabelled texts "
               "are trained on their teachers' probabilities; set config.teacher")
  return out


def group_problems(config) -> list:
  """What a vmapped seed group (training/group) cannot train, one message each."""
  out = []
  if config.get("teacher", ""):
    out.append(f"config.teacher={config.teacher!r}: a distilled run trains alone (its soft "
               "targets travel in its own batches); vmapped groups (train_many) do not take "
               "a teacher: train the runs one by one")
  if config.get("model") == "transformer" or (config.get("embedding") == "contextual"
                                              and config.get("encoder_trainable")):
    out.append("a fine-tuned pretrained encoder (model=transformer, or embedding=contextual "
               "with encoder_trainable) trains alone: K copies of its weights and optimiser "
               "state in one vmapped group are what groups exist to avoid; train the runs "
               "one by one")
  return out


# Lengths no batch can have: beyond these the int32 ids of one batch overflow their
# indexing (batch x length > 2**31) long before memory runs out elsewhere.
MAX_TOKENS_PER_BATCH = 2 ** 31 - 1
# A memory estimate above this is printed (stderr, one line) when a run starts.
WARN_BYTES = 2 * 2 ** 30


def _length_problems(config) -> list:
  """max_len and bucket lengths the model cannot read: beyond its positions (a model
  with position embeddings), or more tokens in one batch than int32 indexing holds."""
  from textclf_jax.models import model_class
  def whole(v):
    return isinstance(v, int) and not isinstance(v, bool) and v >= 0

  out = []
  buckets = config.get("bucket_lengths", ()) or ()
  lengths = [config.get("max_len", 0)] + (list(buckets) if isinstance(buckets, (list, tuple))
                                          else [])
  sizes = [config.get("batch_size", 1), config.get("eval_batch_size", 0) or 0]
  if not all(map(whole, lengths + sizes)) or config.get("model") not in choices()["model"]:
    return out  # bad types and unknown models have messages of their own
  bound = model_class(config.model).max_length(config)
  if bound is not None and config.get("max_len", 0) > bound:
    out.append(f"config.max_len={config.max_len}: model {config.model!r} has positions for "
               f"{bound} tokens; expected 1..{bound} (0: from the data)")
  batch = max(sizes)
  if batch * max(lengths) > MAX_TOKENS_PER_BATCH:
    out.append(f"config.max_len={config.get('max_len')}, batch_size={batch}: "
               f"{batch * max(lengths)} tokens in one batch; expected at most "
               f"{MAX_TOKENS_PER_BATCH}")
  return out


def feature_width(config) -> int:
  """Floats per token the model keeps for its backward pass, roughly: the embedding and
  the widest per-token feature map (convolutions, LSTM states, hashed n-gram rows)."""
  dim = config.get("embed_dim", 0) or DEFAULT_EMBED_DIM
  width = dim * (2 if config.get("embedding") == "multichannel" else 1)
  width *= config.get("word_ngrams", 1)  # the bag's n-gram blocks: one row per n per token
  width += config.get("num_filters", 0) * len(config.get("filter_widths", ()) or ())
  hidden = config.get("lstm_hidden", 0) * (2 if config.get("bidirectional") else 1)
  return width + 6 * hidden * config.get("lstm_layers", 1)  # gates, cell and output states


def memory_estimate(config, vocab_size: int = 0) -> dict:
  """Rough bytes a run needs, from its config (a guide, not a measurement):
  activations: a training batch of `batch_size` texts of `max_len` tokens, float32,
    batch x max_len x feature_width x 4 bytes x 2 (the forward's and their gradients);
  table: the embedding table (vocabulary + hashed n-gram rows) x embed_dim x 4 bytes x 3
    (the parameters and two optimizer moments)."""
  length = config.get("max_len", 0) or max(config.get("bucket_lengths", (0,)) or (0,))
  activations = config.batch_size * length * feature_width(config) * 4 * 2
  rows = (vocab_size or config.get("max_vocab", 0)) + config.get("ngram_buckets", 0)
  dim = config.get("embed_dim", 0) or DEFAULT_EMBED_DIM
  return {"activations": int(activations), "table": int(rows * dim * 4 * 3)}


def resource_notes(config, vocab_size: int = 0) -> list:
  """One line for each part of `memory_estimate` above WARN_BYTES (printed on stderr
  when a run starts; [] when everything is small)."""
  found = memory_estimate(config, vocab_size)
  gib = lambda n: f"{n / 2 ** 30:.1f} GiB"  # noqa: E731
  out = []
  if found["activations"] > WARN_BYTES:
    out.append(f"[textclf] memory: about {gib(found['activations'])} of activations for a "
               f"training batch of texts of max_len tokens (batch_size {config.batch_size} x "
               f"max_len {config.max_len} x {feature_width(config)} floats per token x 4 "
               "bytes x 2); lower max_len or batch_size if it does not fit")
  if found["table"] > WARN_BYTES:
    out.append(f"[textclf] memory: about {gib(found['table'])} for the embedding table and "
               f"its optimizer moments ({vocab_size or config.get('max_vocab', 0)} words + "
               f"{config.get('ngram_buckets', 0)} n-gram rows x embed_dim "
               f"{config.get('embed_dim', 0)}); lower max_vocab or ngram_buckets if it does "
               "not fit")
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
  or DEFAULT_EMBED_DIM without vectors; encoder_config the model folder's (a run with a
  pretrained encoder). A config with nothing to fill is returned as is."""
  from textclf_jax.models.encoders import classifier
  config = classifier.fill_encoder_config(config)
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
