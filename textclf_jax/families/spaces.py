"""The search spaces of the neural models, as `Candidate`s (NeuralFamily.candidates):
what `textclf tune --space NAME` and experiments.versus_linear search.

A space is a function (optuna trial, base config) -> {config key: value}: it asks the
trial for each parameter (define-by-run, so one parameter may depend on another) and
returns the config values the trial trains with. Parameter names are config keys where
they map one to one (`learning_rate`, `dropout`, ...), so `--enqueue` takes them as a
config would; `filter_widths` is asked as a string ("3,4,5") because optuna's choices
are plain values. Pretrained-embedding modes are searched only when the base config
names `vectors`.

    cnn     Kim's CNN: optimizer (adam | adamw | adadelta) and its learning rate, weight
            decay (adamw), dropout, filter widths, filters per width, batch size, embedding
    lstm    the LSTM: optimizer, learning rate, weight decay, dropout, hidden units,
            layers, bidirectional, batch size, embedding
    hybrid  CNN -> LSTM: optimizer, learning rate, weight decay, dropout, filter widths,
            filters, hidden units, batch size, embedding
    bag     the fasttext bag (models/bag.py, presets fasttext*): its optimiser's learning
            rate, epochs, word n-gram order, vector size, Naive Bayes prior, dropout, batch
            size (the optimiser stays the preset's: the row-sparse table needs adagrad,
            adadelta or sgd)
    lr      any network: the learning rate (for the preset's optimizer) and dropout
    transformer  a pretrained encoder fine-tuned (preset minilm): learning rate, layer-wise
            decay, epochs, pooling, warm-up; offered only with the `encoders` extra
            (safetensors, tokenizers) and the weights config.encoder_path names installed

Each candidate names its preset, and for whole documents (IMDB) the preset and overrides
that read them as windows (docs/documents.md). Nothing here imports optuna or JAX.
"""

from __future__ import annotations

from textclf_jax.families.base import Candidate

# Learning rates searched (log-uniform) per optimiser; adadelta's is a step multiplier.
LEARNING_RATES = {"adam": (1e-4, 1e-2), "adamw": (1e-4, 1e-2), "sgd": (1e-3, 0.3),
                  "adadelta": (0.1, 2.0), "adagrad": (0.03, 2.0)}
PRETRAINED = ("static", "non-static", "multichannel")
BATCH_SIZES = (16, 32, 50, 64, 128)


def _widths(text: str) -> tuple:
  return tuple(int(w) for w in text.split(","))


def _optimisation(trial, config) -> dict:
  """optimizer, its learning rate, and decoupled weight decay for adamw."""
  optimizer = trial.suggest_categorical("optimizer", ["adam", "adamw", "adadelta"])
  out = {"optimizer": optimizer, "learning_rate": _learning_rate(trial, optimizer),
         "weight_decay": 0.0}
  if optimizer == "adamw":
    out["weight_decay"] = trial.suggest_float("weight_decay", 1e-5, 1e-1, log=True)
  return out


def _learning_rate(trial, optimizer: str) -> float:
  low, high = LEARNING_RATES[optimizer]
  # One parameter per range: TPE models each optimiser's learning rates on their own.
  name = "learning_rate" if optimizer in ("adam", "adamw") else f"{optimizer}_learning_rate"
  return trial.suggest_float(name, low, high, log=True)


def _embedding(trial, config) -> dict:
  if not config.get("vectors"):
    return {}  # rand: nothing pretrained to choose between
  return {"embedding": trial.suggest_categorical("embedding", ["rand", *PRETRAINED])}


def cnn(trial, config) -> dict:
  return {**_optimisation(trial, config),
          "dropout": trial.suggest_float("dropout", 0.0, 0.7),
          "filter_widths": _widths(trial.suggest_categorical(
              "filter_widths", ["1,2,3", "2,3,4", "3,4,5", "4,5,6", "3,5,7", "2,3,4,5"])),
          "num_filters": trial.suggest_categorical("num_filters", [50, 100, 200, 400]),
          "batch_size": trial.suggest_categorical("batch_size", list(BATCH_SIZES)),
          **_embedding(trial, config)}


def lstm(trial, config) -> dict:
  return {**_optimisation(trial, config),
          "dropout": trial.suggest_float("dropout", 0.0, 0.7),
          "lstm_hidden": trial.suggest_categorical("lstm_hidden", [64, 128, 256]),
          "lstm_layers": trial.suggest_int("lstm_layers", 1, 2),
          "bidirectional": trial.suggest_categorical("bidirectional", [True, False]),
          "batch_size": trial.suggest_categorical("batch_size", list(BATCH_SIZES)),
          **_embedding(trial, config)}


def hybrid(trial, config) -> dict:
  return {**_optimisation(trial, config),
          "dropout": trial.suggest_float("dropout", 0.0, 0.7),
          "filter_widths": _widths(trial.suggest_categorical(
              "filter_widths", ["3", "5", "2,3", "3,5"])),
          "num_filters": trial.suggest_categorical("num_filters", [64, 128, 256]),
          "lstm_hidden": trial.suggest_categorical("lstm_hidden", [64, 128, 256]),
          "batch_size": trial.suggest_categorical("batch_size", list(BATCH_SIZES)),
          **_embedding(trial, config)}


def bag(trial, config) -> dict:
  return {"learning_rate": _learning_rate(trial, config.optimizer),
          "num_epochs": trial.suggest_int("num_epochs", 1, 5),
          "word_ngrams": trial.suggest_int("word_ngrams", 1, 3),
          "embed_dim": trial.suggest_categorical("embed_dim", [5, 10, 20, 50]),
          "nb_prior": trial.suggest_categorical("nb_prior", [0.0, 0.5, 1.0, 1.5, 3.0]),
          "dropout": trial.suggest_float("dropout", 0.0, 0.5),
          "batch_size": trial.suggest_categorical("batch_size", [16, 32, 64, 128])}


def lr(trial, config) -> dict:
  return {"learning_rate": _learning_rate(trial, config.optimizer),
          "dropout": trial.suggest_float("dropout", 0.0, 0.7)}


def transformer(trial, config) -> dict:
  return {"learning_rate": trial.suggest_float("learning_rate", 1e-5, 1e-4, log=True),
          "layer_decay": trial.suggest_categorical("layer_decay", [1.0, 0.9, 0.8]),
          "num_epochs": trial.suggest_categorical("num_epochs", [2, 3, 4]),
          "pooling": trial.suggest_categorical("pooling", ["mean", "cls"]),
          "warmup_fraction": trial.suggest_categorical("warmup_fraction", [0.0, 0.06, 0.1])}


ENCODER_PACKAGES = ("safetensors", "tokenizers")  # the `encoders` extra


def encoder_unavailable(config=None) -> str | None:
  """Why a pretrained encoder cannot be trained from `config` (its encoder_path; None:
  the minilm preset's default weights): the `encoders` extra or the weights missing."""
  import importlib.util

  from textclf_jax.errors import ConfigError, DataError
  from textclf_jax.text import subword
  missing = [p for p in ENCODER_PACKAGES if importlib.util.find_spec(p) is None]
  if missing:
    return (f"the transformer needs {' and '.join(missing)}: pip install "
            "'textclf_jax[encoders]'")
  path = "minilm" if config is None else config.get("encoder_path", "") or "minilm"
  try:
    subword.resolve_folder(path)
  except (ConfigError, DataError) as e:
    return f"the transformer's weights are not installed: {e}"
  return None


CANDIDATES = (
    Candidate("cnn", "cnn", cnn, document_preset=("cnn_doc", ()),
              description="Kim's CNN"),
    Candidate("lstm", "lstm", lstm, document_preset=("bilstm_doc", ()),
              description="the LSTM"),
    Candidate("hybrid", "hybrid", hybrid, document_preset=(
        "hybrid", ("max_len=0", "bucket_lengths=64", "bucket_growth=1.25", "chunk_len=100",
                   "chunk_pool=mean", "num_epochs=4", "early_stopping_patience=1")),
              description="CNN -> LSTM"),
    # The bag learns its own table: --vectors (vectors, embedding) does not apply. On
    # IMDB + trigrams: its best bag on dev.
    Candidate("bag", "fasttext_nb", bag, takes_vectors=False,
              document_preset=("fasttext_nb3", ()),
              description="fastText's bag of word n-grams with NBSVM's Naive Bayes prior"),
    Candidate("lr", "cnn", lr, description="any network: learning rate and dropout",
              compared=False),
    # Opt-in (compared=False): it needs the encoders extra and weights, and is slow on CPU.
    Candidate("transformer", "minilm", transformer, takes_vectors=False,
              description="a pretrained transformer encoder, fine-tuned", compared=False,
              unavailable=encoder_unavailable),
)
