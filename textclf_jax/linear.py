"""The linear baseline as a model: TF-IDF word uni+bigrams + logistic regression.

    textclf train --config tfidf --config.dataset=DIR [--workdir RUN]
    textclf eval RUN            textclf predict RUN "some text"   (both: runs.py)
    results = train_tfidf(config, workdir, fold)   # a sweep's baseline cell (experiments/)

Same data as a network trained with the same config: the source, train/dev/test split
(or CV fold), `max_train_examples`, `imbalance_*` and the tokeniser (lower-casing,
stop words, stemming, `max_len`) come from the config through the library's own
functions. The inverse regularisation C is picked on dev from `tfidf_c_grid` (dev
accuracy; multi-label: one-vs-rest, micro-F1 at thresholds tuned on dev);
`class_weights` may be none or balanced. scikit-learn fits it (the `linear` extra).

The run directory is a neural run's, with the fitted model in `linear/` instead of
checkpoints/ (no metrics.jsonl: there are no training steps), and no pickle:

    RUN/config.json  labels.json  data.json  [thresholds.json]  results.json
        predictions/{dev,test}_{probs,labels}.npy   the scored probabilities (rundir)
        calibration.json  reliability.png   temperature scaling fitted on dev
        linear/model.json     what was fitted: kind, C chosen (and the grid), the
                              classifier's settings and classes, constant labels
               ngrams.json    the vectorizer's vocabulary: column i is ngrams[i]
               idf.npy        [F] float64, the vectorizer's idf
               coef.npy       [K, F] float64 (K = 1 binary, C multinomial,
               intercept.npy  [K]      L one-vs-rest multi-label: one row per label)

Loading executes no code: JSON, and `.npy` read with allow_pickle=False. The
vectorizer and the classifiers are scikit-learn's own objects rebuilt from these
arrays, so `eval` computes the probabilities exactly as the fit did (bit for bit).
"""

from __future__ import annotations

import os
import time

import numpy as np

from textclf_jax import calibration as calibration_lib
from textclf_jax import config as config_lib
from textclf_jax import metrics as metrics_lib
from textclf_jax import parallel, rundir
from textclf_jax.data import splits as splits_lib
from textclf_jax.data.batching import encode_labels
from textclf_jax.data.sources import load_source
from textclf_jax.data.tokenize import Tokenizer

LINEAR_MODELS = ("tfidf",)  # config.model values this module trains (see config._choices)
MODEL = "tfidf+lr"  # results.json's `model`: the name of the baseline rows in sweep tables
C_GRID = (0.25, 1.0, 4.0, 16.0)  # the default of config.tfidf_c_grid
CLASS_WEIGHTS = ("none", "", "balanced")
INSTALL = 'pip install "textclf_jax[linear]"'

MODEL_DIR = "linear"
MODEL_JSON, NGRAMS, IDF, COEF, INTERCEPT = (
    "model.json", "ngrams.json", "idf.npy", "coef.npy", "intercept.npy")
MODEL_FILES = (MODEL_JSON, NGRAMS, IDF, COEF, INTERCEPT)
FORMAT = 1  # of linear/model.json


# --- config -------------------------------------------------------------------------


def is_linear(config) -> bool:
  return config.get("model") in LINEAR_MODELS


def is_linear_run(run: str) -> bool:
  """Whether `run` is one run (not a CV parent) whose config.json names a linear model."""
  file = rundir.path(run, rundir.CONFIG)
  if not os.path.isfile(file) or rundir.is_cv_run(run):
    return False
  try:
    return rundir.read_json(file).get("model") in LINEAR_MODELS
  except (OSError, ValueError, AttributeError):
    return False  # the neural path reports what is wrong with it


def c_grid(config) -> tuple:
  """config.tfidf_c_grid, or C_GRID for a network's config (a sweep's baseline cell)."""
  return tuple(config.get("tfidf_c_grid", C_GRID))


def problems(config) -> list:
  """Every bad value of a linear model's config, the shared checks included."""
  out = config_lib.problems(config)
  grid = c_grid(config)
  if not grid or not all(isinstance(c, (int, float)) and not isinstance(c, bool)
                         and np.isfinite(c) and c > 0 for c in grid):
    out.append(f"config.tfidf_c_grid={grid!r}: expected a non-empty list of numbers > 0")
  if str(config.get("class_weights", "none")) not in CLASS_WEIGHTS:
    out.append(f"config.class_weights={config.class_weights!r}: the tfidf model takes "
               "none or balanced")
  return out


def _sklearn():
  """Raises one ConfigError (exit status 2) naming the extra when scikit-learn is missing."""
  try:
    import sklearn  # noqa: F401  pylint: disable=unused-import,import-outside-toplevel
  except ImportError:
    raise config_lib.ConfigError(
        "the tfidf model (TF-IDF + logistic regression) needs scikit-learn, which is not "
        f"installed: {INSTALL}") from None


def validate(config):
  """Raises ConfigError naming every bad key, or the missing scikit-learn, before any
  file is written."""
  found = problems(config)
  if found:
    raise config_lib.ConfigError("; ".join(found))
  _sklearn()


def recorded_config(config):
  """The config that config.json records: model `tfidf` and its C grid, also for a sweep
  cell made from a network's preset (so `textclf eval` knows what the run holds)."""
  if config.get("model") == "tfidf" and "tfidf_c_grid" in config:
    return config
  config = config.copy_and_resolve_references()
  with config.unlocked():
    config.model = "tfidf"
    config.tfidf_c_grid = c_grid(config)
  return config


# --- the vectorizer and the classifier -----------------------------------------------


def _ngrams(tokens):
  """Word unigrams and bigrams of a pre-tokenised text (the vectorizer's analyzer)."""
  return list(tokens) + [f"{a} {b}" for a, b in zip(tokens, tokens[1:])]


def _vectorizer(vocabulary=None):
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


def _classifier(c: float, multi_label: bool, balanced: bool, seed: int):
  logistic = _logistic(c, multi_label, balanced, seed)
  if multi_label:
    from sklearn.multiclass import OneVsRestClassifier
    return OneVsRestClassifier(logistic)
  return logistic


class _Fitted:
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


# --- training -----------------------------------------------------------------------


def train_and_evaluate(config, workdir: str, resume: bool = False, fold: int = -1,
                       raw=None) -> dict:
  """`textclf train` for a linear model (train.train_and_evaluate dispatches here):
  checks, refuses a used run directory, holds its lock, fits, writes the run."""
  from textclf_jax import train as train_lib  # its lock; train.py imports this module
  started = time.time()
  validate(config)
  rundir.check_can_start(workdir, resume)
  parallel.barrier("textclf:workdir-checked")  # before process 0 writes into it
  with train_lib.writing(workdir):
    if resume:
      finished = rundir.read_results(workdir)
      if finished is not None:
        if parallel.is_main_process():
          print(f"[textclf] {workdir}: fitted already; nothing left to train (its "
                "results.json is kept)", flush=True)
        return finished
      if parallel.is_main_process():
        print(f"[textclf] {workdir}: never finished; fitting it from the start (a linear "
              "model has no checkpoints)", flush=True)
    return _fit(config, workdir, fold, raw, started)


def train_tfidf(config, workdir: str, fold: int = -1) -> dict:
  """Fits the baseline into `workdir` (a sweep's baseline cell: a finished or half-written
  cell is fitted again, never refused); writes the run directory, returns results.json."""
  from textclf_jax import train as train_lib
  started = time.time()
  validate(config)
  with train_lib.writing(workdir):
    return _fit(config, workdir, fold, None, started)


def _fit(config, workdir, fold, raw, started) -> dict:
  config = recorded_config(config)
  is_main = parallel.is_main_process()
  if is_main:  # first: a run that crashes while fitting can be resumed (refitted)
    rundir.write_config(config, workdir)
  raw = raw if raw is not None else load_source(config)
  stats = {}
  split_data = splits_lib.make_splits(raw, config, fold, stats)
  label_names = splits_lib.build_label_map(raw, split_data)
  multi = raw.multi_label
  tokenizer = Tokenizer.from_config(config)
  tokens = {k: [tokenizer(t) for t in split.texts] for k, split in split_data.items()}
  labels = {k: encode_labels(split.labels, label_names, multi)
            for k, split in split_data.items()}
  if is_main:
    print(f"[textclf] {raw.name}: {len(split_data['train'])} train / "
          f"{len(split_data['dev'])} dev / {len(split_data['test'])} test, "
          f"{len(label_names)} labels{' (multi-label)' if multi else ''}; TF-IDF + logistic "
          f"regression, C from {list(c_grid(config))} on dev", flush=True)

  fit_started = time.time()
  vectorizer = _vectorizer()
  features = {"train": vectorizer.fit_transform(tokens["train"])}
  features.update({k: vectorizer.transform(tokens[k]) for k in ("dev", "test")})
  balanced = config.class_weights == "balanced"
  best = None
  for c in c_grid(config):
    model = _classifier(c, multi, balanced, config.seed).fit(features["train"], labels["train"])
    dev_probs = model.predict_proba(features["dev"])
    thresholds = None
    if multi:
      thresholds = metrics_lib.tune_thresholds(dev_probs, labels["dev"],
                                               config.multilabel_threshold,
                                               config.multilabel_at_least_one)
    dev = _score(dev_probs, labels["dev"], label_names, multi, config, thresholds)
    key = dev["micro_f1"] if multi else dev["accuracy"]
    if is_main:
      print(f"[textclf] C={c:g}: dev {'micro_f1' if multi else 'accuracy'} {key:.4f}",
            flush=True)
    if best is None or key > best[0]:
      best = (key, c, model, thresholds, dev, dev_probs)
  _, c, model, thresholds, dev, dev_probs = best
  train_seconds = time.time() - fit_started
  fitted = _Fitted.from_sklearn(model, multi, c, balanced, config.seed,
                                len(vectorizer.vocabulary_))

  test_probs = model.predict_proba(features["test"])
  test = _score(test_probs, labels["test"], label_names, multi, config, thresholds)
  by_mode = (metrics_lib.scores_by_threshold_mode(
      dev_probs, labels["dev"], test_probs, labels["test"], label_names,
      config.multilabel_at_least_one) if multi else None)
  num_params = fitted.coef.size - fitted.coef.shape[1] * len(fitted.constant) \
      + fitted.intercept.size - len(fitted.constant)  # a constant label has no coef_
  num_train = len(split_data["train"])
  stats.update({"dataset": raw.name, "multi_label": multi, "fold": fold,
                "num_labels": len(label_names), "num_features": len(vectorizer.vocabulary_),
                **{f"num_{k}": len(v) for k, v in split_data.items()},
                "mean_length_train": float(np.mean([len(t) for t in tokens["train"]]))})
  grid = list(c_grid(config))
  results = rundir.results_record(
      dataset=raw.name, model=MODEL, fold=fold, best_step=0, tested_checkpoint="last",
      final_step=0, stopped_early=False, dev=dev, test=test, train_seconds=train_seconds,
      # Examples fitted per second over the whole C grid (len(grid) fits).
      train_examples_per_second=num_train * len(grid) / max(train_seconds, 1e-9),
      wall_seconds=time.time() - started, num_devices=1, num_processes=1, platform="cpu",
      data=stats, num_params=int(num_params),
      baseline={"C": c, "C_grid": grid, "ngrams": [1, 2], "sublinear_tf": True})
  if multi:
    results["by_threshold_mode"] = by_mode
  predictions = {"dev": (dev_probs, labels["dev"]), "test": (test_probs, labels["test"])}
  calibration, results["calibration"] = calibration_lib.calibrate_run(
      predictions, multi, label_names, config.multilabel_threshold,
      config.multilabel_at_least_one)
  if is_main:
    _save_model(workdir, vectorizer, fitted, grid)
    rundir.write_json(rundir.path(workdir, rundir.LABELS),
                      {"labels": label_names, "multi_label": multi})
    rundir.write_json(rundir.path(workdir, rundir.DATA), stats)
    if multi:
      rundir.write_thresholds(workdir, config.multilabel_threshold, thresholds)
    rundir.write_predictions(workdir, predictions)
    calibration_lib.write(workdir, calibration, predictions, multi, raw.name)
    rundir.write_results(workdir, results)  # last: a run with results.json is complete
  return results


def _score(probs, labels, label_names, multi, config, thresholds):
  if multi:
    return metrics_lib.multi_label_metrics(probs, labels, label_names, thresholds,
                                           config.multilabel_at_least_one)
  return metrics_lib.single_label_metrics(probs, labels, label_names)


# --- the model files ----------------------------------------------------------------


def _save_array(file: str, array: np.ndarray):
  """np.save, atomically (a temporary file, then a rename)."""
  tmp = file + ".tmp"
  with open(tmp, "wb") as f:
    np.save(f, np.ascontiguousarray(array), allow_pickle=False)
  os.replace(tmp, file)


def _save_model(workdir: str, vectorizer, fitted: _Fitted, grid: list):
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
      "num_features": len(ngrams), "C_grid": grid,
      "classifier": "one-vs-rest liblinear (dual)" if fitted.multi_label else
                    "multinomial newton-cg" if fitted.coef.shape[0] > 1 else "binary newton-cg",
      **fitted.meta, "scikit_learn": sklearn.__version__})


# --- loading, eval, predict ------------------------------------------------------------


class LinearRun:
  """A fitted linear run read back: config, labels, thresholds, vectorizer, classifier."""

  def __init__(self, run: str):
    _sklearn()
    self.run = run
    self.config = config_lib.from_json(rundir.path(run, rundir.CONFIG))
    directory = rundir.path(run, MODEL_DIR)
    missing = [f"{MODEL_DIR}/{f}" for f in MODEL_FILES
               if not os.path.isfile(os.path.join(directory, f))]
    missing += [f for f in (rundir.LABELS, rundir.DATA) if not os.path.isfile(rundir.path(run, f))]
    if missing:
      writer = rundir.holder(run)
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
    self.vectorizer = _vectorizer({g: i for i, g in enumerate(ngrams)})
    self.vectorizer.idf_ = idf
    try:
      if meta["multi_label"] != self.multi_label or (
          not self.multi_label and len(meta["classes"]) != len(self.label_names)):
        raise ValueError("its labels are not labels.json's")
      self.classifier = _Fitted(meta, coef, intercept)
    except (KeyError, TypeError, ValueError) as e:
      raise rundir.RunDirError(f"{os.path.join(directory, MODEL_JSON)}: not a usable model "
                               f"description ({type(e).__name__}: {e})") from None
    self.tokenizer = Tokenizer.from_config(self.config)

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


def split_probs(run: str, split: str = "test", data_dir: str = "") -> tuple:
  """(the LinearRun, probabilities [N, C] float64, labels) of `split`, recomputed from the
  saved model: what `textclf eval` scores (runs.evaluate_run)."""
  loaded = LinearRun(run)
  config = loaded.config
  if data_dir:
    with config.unlocked():
      config.data_dir = data_dir
  raw = load_source(config)
  split_data = splits_lib.make_splits(raw, config, rundir.read_fold(run))
  data = split_data[split]
  labels = encode_labels(data.labels, loaded.label_names, loaded.multi_label)
  return loaded, loaded.predict_proba([loaded.tokenizer(t) for t in data.texts]), labels


def text_probs(loaded: LinearRun, texts: list) -> np.ndarray:
  """Raw texts -> probabilities [N, C] float64 (what `textclf predict` labels)."""
  return loaded.predict_proba([loaded.tokenizer(t) for t in texts])
