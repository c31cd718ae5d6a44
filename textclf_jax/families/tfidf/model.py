"""The fitted TF-IDF + logistic regression model (fit.py fits it): scikit-learn's
vectorizer and classifier, saved as JSON + .npy and read back; `LinearRun` is the
family's Predictor (eval's and predict's probabilities of a linear run).

The run directory is a neural run's, with the fitted model in `linear/` instead of
checkpoints/ (no metrics.jsonl: there are no training steps), and no pickle:

    RUN/config.json  labels.json  data.json  [thresholds.json]  results.json
        predictions/{dev,test}_{probs,labels}.npy   the scored probabilities (rundir)
        calibration.json  reliability.png   temperature scaling fitted on dev
        linear/model.json     what was fitted: kind, C chosen (the grid and every C
                              tried), the classifier's settings and classes, constant labels
               ngrams.json    the vectorizer's vocabulary: column i is ngrams[i]
               idf.npy        [F] float64, the vectorizer's idf
               coef.npy       [K, F] float64 (K = 1 binary, C multinomial,
               intercept.npy  [K]      L one-vs-rest multi-label: one row per label)

Loading executes no code: JSON, and `.npy` read with allow_pickle=False. The
vectorizer and the classifiers are scikit-learn's own objects rebuilt from these
arrays, so `eval` computes the probabilities exactly as the fit did (bit for bit).
"""

from __future__ import annotations

import importlib.util
import os

import numpy as np

from textclf_jax import config as config_lib
from textclf_jax.run import compat, layout as rundir, lock as runlock
from textclf_jax.data import splits as splits_lib
from textclf_jax.data.batching import encode_labels
from textclf_jax.data.sources import load_source
from textclf_jax.errors import DataError
from textclf_jax.text.encoder import encoder_for

MODEL = "tfidf+lr"  # results.json's `model`: the name of the baseline rows in sweep tables
INSTALL = 'pip install "textclf_jax[linear]"'

MODEL_DIR = "linear"
MODEL_JSON, NGRAMS, IDF, COEF, INTERCEPT = (
    "model.json", "ngrams.json", "idf.npy", "coef.npy", "intercept.npy")
MODEL_FILES = (MODEL_JSON, NGRAMS, IDF, COEF, INTERCEPT)
FORMAT = 1  # of linear/model.json


def require_sklearn():
  """Raises one ConfigError (exit status 2) naming the extra when scikit-learn is missing."""
  if importlib.util.find_spec("sklearn") is None:
    raise config_lib.ConfigError(
        "the tfidf model (TF-IDF + logistic regression) needs scikit-learn, which is not "
        f"installed: {INSTALL}")


# --- the vectorizer and the classifier -----------------------------------------------


def _ngrams(tokens):
  """Word unigrams and bigrams of a pre-tokenised text (the vectorizer's analyzer)."""
  return list(tokens) + [f"{a} {b}" for a, b in zip(tokens, tokens[1:])]


def make_vectorizer(vocabulary=None):
  from sklearn.feature_extraction.text import TfidfVectorizer
  return TfidfVectorizer(analyzer=_ngrams, sublinear_tf=True, vocabulary=vocabulary)


def _logistic(c: float, multi_label: bool, balanced: bool, seed: int):
  """One logistic regression: the multinomial (or binary) model, or one label's binary
  model of the one-vs-rest multi-label classifier."""
  from sklearn.linear_model import LogisticRegression
  weight = "balanced" if balanced else None
  if multi_label:
    # The dual problem: ~17x faster with far more n-grams than documents (Reuters).
    return LogisticRegression(C=c, solver="liblinear", dual=True, class_weight=weight,
                              random_state=seed)
  # newton-cg: exact and fast here; lbfgs takes 10x longer on 30k+ sparse features.
  return LogisticRegression(C=c, solver="newton-cg", max_iter=1000, class_weight=weight,
                            random_state=seed)


def make_classifier(c: float, multi_label: bool, balanced: bool, seed: int):
  logistic = _logistic(c, multi_label, balanced, seed)
  if multi_label:
    from sklearn.multiclass import OneVsRestClassifier
    return OneVsRestClassifier(logistic)
  return logistic


class Fitted:
  """A fitted classifier as arrays: coef [K, F], intercept [K], classes (single-label)
  and {label: 0/1} for one-vs-rest labels that were constant in training."""

  def __init__(self, meta: dict, coef: np.ndarray, intercept: np.ndarray):
    self.meta, self.coef, self.intercept = meta, coef, intercept
    self.multi_label = meta["multi_label"]
    balanced = meta["class_weight"] == "balanced"
    self.constant = {int(k): int(v) for k, v in meta.get("constant_labels", {}).items()}

    def rebuilt(rows, classes):
      model = _logistic(meta["C"], self.multi_label, balanced, meta["seed"])
      model.coef_, model.intercept_ = coef[rows], intercept[rows]
      model.classes_ = np.asarray(classes)
      model.n_features_in_ = coef.shape[1]
      return model

    if self.multi_label:
      self.models = [None if j in self.constant else rebuilt(slice(j, j + 1), [0, 1])
                     for j in range(coef.shape[0])]
    else:
      self.models = [rebuilt(slice(None), meta["classes"])]

  @classmethod
  def from_sklearn(cls, model, multi_label: bool, c: float, balanced: bool, seed: int,
                   num_features: int):
    meta = {"multi_label": multi_label, "C": float(c), "seed": int(seed),
            "class_weight": "balanced" if balanced else None}
    if not multi_label:
      meta["classes"] = [int(k) for k in model.classes_]
      return cls(meta, np.asarray(model.coef_, np.float64),
                 np.asarray(model.intercept_, np.float64))
    coef = np.zeros((len(model.estimators_), num_features), np.float64)
    intercept = np.zeros(len(model.estimators_), np.float64)
    constant = {}
    for j, e in enumerate(model.estimators_):
      if hasattr(e, "coef_"):
        coef[j], intercept[j] = e.coef_[0], e.intercept_[0]
      else:  # sklearn's _ConstantPredictor: the label was 0 (or 1) in every training row
        constant[str(j)] = int(np.ravel(e.y_)[0])
    meta["constant_labels"] = constant
    return cls(meta, coef, intercept)

  def predict_proba(self, features) -> np.ndarray:
    """[N, C] float64, computed as the fitted scikit-learn classifier computes it."""
    if not self.multi_label:
      return self.models[0].predict_proba(features)
    n = features.shape[0]
    # OneVsRestClassifier.predict_proba: each label's P(1), stacked as columns.
    return np.array([np.full(n, float(self.constant[j])) if m is None
                     else m.predict_proba(features)[:, 1]
                     for j, m in enumerate(self.models)]).T


# --- the model files ----------------------------------------------------------------


def _save_array(file: str, array: np.ndarray):
  """np.save, atomically (a temporary file, then a rename)."""
  tmp = file + ".tmp"
  with open(tmp, "wb") as f:
    np.save(f, np.ascontiguousarray(array), allow_pickle=False)
  os.replace(tmp, file)


def save_model(workdir: str, vectorizer, fitted: Fitted, grid: list, tried: list):
  import sklearn
  directory = rundir.path(workdir, MODEL_DIR)
  os.makedirs(directory, exist_ok=True)
  vocabulary = vectorizer.vocabulary_
  ngrams = [""] * len(vocabulary)
  for gram, column in vocabulary.items():
    ngrams[int(column)] = gram
  rundir.write_json(os.path.join(directory, NGRAMS), ngrams)
  _save_array(os.path.join(directory, IDF), np.asarray(vectorizer.idf_, np.float64))
  _save_array(os.path.join(directory, COEF), fitted.coef)
  _save_array(os.path.join(directory, INTERCEPT), fitted.intercept)
  rundir.write_json(os.path.join(directory, MODEL_JSON), {
      "format": FORMAT, "kind": MODEL, "ngrams": [1, 2], "sublinear_tf": True,
      "num_features": len(ngrams), "C_grid": grid, "C_tried": tried,
      "classifier": "one-vs-rest liblinear (dual)" if fitted.multi_label else
                    "multinomial newton-cg" if fitted.coef.shape[0] > 1 else "binary newton-cg",
      **fitted.meta, "scikit_learn": sklearn.__version__})


# --- loading, eval, predict ------------------------------------------------------------


class LinearRun:
  """A fitted linear run read back: config, labels, thresholds, vectorizer, classifier
  (the TF-IDF family's Predictor, families/base.py)."""

  def __init__(self, run: str):
    require_sklearn()
    self.run = run
    self.config = compat.read_config(rundir.path(run, rundir.CONFIG))
    directory = rundir.path(run, MODEL_DIR)
    missing = [f"{MODEL_DIR}/{f}" for f in MODEL_FILES
               if not os.path.isfile(os.path.join(directory, f))]
    missing += [f for f in (rundir.LABELS, rundir.DATA) if not os.path.isfile(rundir.path(run, f))]
    if missing:
      writer = runlock.holder(run)
      being = (f"; it is being fitted now (pid {writer.get('pid', '?')} on "
               f"{writer.get('host', '?')})" if writer is not None else "")
      raise rundir.RunDirError(f"{run}: a tfidf run without a fitted model (missing "
                               f"{', '.join(missing)}){being}")
    labels = rundir.read_labels(run)
    self.label_names, self.multi_label = labels["labels"], labels["multi_label"]
    self.thresholds = rundir.read_thresholds(run) if self.multi_label else None
    self.calibration = rundir.read_calibration(run)
    meta = self._json(os.path.join(directory, MODEL_JSON))
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
      raise rundir.RunDirError(f"{os.path.join(directory, MODEL_JSON)}: not a linear model "
                               f"of format {FORMAT}")
    ngrams = self._json(os.path.join(directory, NGRAMS))
    idf, coef, intercept = (self._array(os.path.join(directory, f))
                            for f in (IDF, COEF, INTERCEPT))
    width = len(ngrams) if isinstance(ngrams, list) else -1
    rows = len(self.label_names) if self.multi_label or len(self.label_names) > 2 else 1
    if not (width > 0 and all(isinstance(g, str) for g in ngrams)
            and len(set(ngrams)) == width and idf.shape == (width,)
            and coef.shape == (rows, width) and intercept.shape == (rows,)):
      raise rundir.RunDirError(
          f"{directory}: inconsistent model files ({width} n-grams, idf {idf.shape}, coef "
          f"{coef.shape}, intercept {intercept.shape}; expected {rows} row(s) for "
          f"{len(self.label_names)} labels)")
    if not (np.isfinite(idf).all() and np.isfinite(coef).all()
            and np.isfinite(intercept).all()):
      raise rundir.RunDirError(f"{directory}: the fitted model holds NaN/Inf values")
    self.vectorizer = make_vectorizer({g: i for i, g in enumerate(ngrams)})
    self.vectorizer.idf_ = idf
    try:
      if meta["multi_label"] != self.multi_label or (
          not self.multi_label and len(meta["classes"]) != len(self.label_names)):
        raise ValueError("its labels are not labels.json's")
      self.classifier = Fitted(meta, coef, intercept)
    except (KeyError, TypeError, ValueError) as e:
      raise rundir.RunDirError(f"{os.path.join(directory, MODEL_JSON)}: not a usable model "
                               f"description ({type(e).__name__}: {e})") from None
    self.encoder = encoder_for(self.config)

  @staticmethod
  def _json(file):
    try:
      return rundir.read_json(file)
    except ValueError as e:
      raise rundir.RunDirError(f"{file}: unreadable JSON ({e})") from None

  @staticmethod
  def _array(file):
    try:
      array = np.load(file, allow_pickle=False)
    except ValueError as e:  # a truncated file, or one that would need pickle
      raise rundir.RunDirError(f"{file}: not a readable .npy array ({e})") from None
    if not isinstance(array, np.ndarray) or array.dtype != np.float64:
      raise rundir.RunDirError(f"{file}: expected a float64 array, got {array.dtype}")
    return array

  def predict_proba(self, token_lists) -> np.ndarray:
    return self.classifier.predict_proba(self.vectorizer.transform(token_lists))

  def text_probs(self, texts: list) -> np.ndarray:
    """Raw texts -> probabilities [N, C] float64 (what `textclf predict` labels)."""
    return self.predict_proba([self.encoder.pieces(t, self.config.max_len) for t in texts])

  def split_probs(self, split: str = "test", data_dir: str = "") -> tuple:
    """(probabilities [N, C] float64, labels) of `split`, recomputed from the saved model:
    what `textclf eval` scores; `data_dir`: where the run's dataset lives now."""
    config = self.config
    if data_dir:
      with config.unlocked():
        config.data_dir = data_dir
    raw = load_source(config)
    split_data = splits_lib.make_splits(raw, config, rundir.read_fold(self.run))
    if split not in split_data:
      raise DataError(f"split {split!r}: {raw.name} has splits {', '.join(split_data)}")
    data = split_data[split]
    labels = encode_labels(data.labels, self.label_names, self.multi_label)
    tokens = [self.encoder.pieces(t, self.config.max_len) for t in data.texts]
    return self.predict_proba(tokens), labels
