"""The linear baseline as a model: TF-IDF word uni+bigrams + logistic regression.

    textclf train --config tfidf --config.dataset=DIR [--workdir RUN]
    textclf eval RUN            textclf predict RUN "some text"   (both: runs.py)
    results = train_tfidf(config, workdir, fold)   # a sweep's baseline cell (experiments/)

Same data as a network trained with the same config: the source, train/dev/test split
(or CV fold), `max_train_examples`, `imbalance_*` and the tokeniser (lower-casing,
stop words, stemming, `max_len`) come from the config through the library's own
functions. The inverse regularisation C is picked on dev (dev accuracy; multi-label:
one-vs-rest, micro-F1 at thresholds tuned on dev) from `tfidf_c_grid`, extended by
the grid's own ratio while the best C is at its edge (`tfidf_c_extend` more steps at
most each way), so the choice is not starved by the grid; `class_weights` may be none
or balanced. scikit-learn fits it (the `linear` extra). The fitted model, its files
(JSON + .npy, no pickle) and loading it back: linear_model.py.
"""

from __future__ import annotations

import time

import numpy as np

from textclf_jax import config as config_lib
from textclf_jax.scoring import metrics as metrics_lib
from textclf_jax.scoring import objective as objective_lib
from textclf_jax.runtime import parallel
from textclf_jax.run import finish as finish_lib, layout as rundir, lock as runlock
from textclf_jax.data import splits as splits_lib
from textclf_jax.data.batching import encode_labels
from textclf_jax.data.sources import load_source
from textclf_jax.text.encoder import encoder_for
from textclf_jax.families.tfidf.model import (MODEL, Fitted, make_classifier, make_vectorizer,
                                              require_sklearn, save_model)

LINEAR_MODELS = ("tfidf",)  # config.model values this module trains (TfidfFamily.models)
C_GRID = (0.25, 1.0, 4.0, 16.0, 64.0, 256.0)  # the default of config.tfidf_c_grid
C_EXTEND = 3  # the default of config.tfidf_c_extend
CLASS_WEIGHTS = ("none", "", "balanced")


# --- config -------------------------------------------------------------------------


def c_grid(config) -> tuple:
  """config.tfidf_c_grid, or C_GRID for a network's config (a sweep's baseline cell)."""
  return tuple(config.get("tfidf_c_grid", C_GRID))


def c_extend(config) -> int:
  """config.tfidf_c_extend, or C_EXTEND for a network's config."""
  return config.get("tfidf_c_extend", C_EXTEND)


def search_c(grid, extend: int, score) -> tuple:
  """The C whose score(C) -> (value, payload) has the highest value: the grid in
  ascending order, then, while the best is the largest (smallest) C tried, the next one
  out by the grid's ratio at that end (x4 for a one-value grid), `extend` more at most
  each way. Ties keep the C tried first. Returns (best C, its payload, [(C, value), ...]
  in the order tried)."""
  grid = sorted(set(float(c) for c in grid))
  tried, best = [], None

  def attempt(c):
    nonlocal best
    value, payload = score(c)
    tried.append((c, value))
    if best is None or value > best[1]:
      best = (c, value, payload)

  for c in grid:
    attempt(c)
  up = grid[-1] / grid[-2] if len(grid) > 1 else 4.0
  down = grid[1] / grid[0] if len(grid) > 1 else 4.0
  for step, edge in ((up, max), (1 / down, min)):
    for _ in range(extend):
      end = edge(c for c, _ in tried)
      if best[0] != end:
        break
      attempt(end * step)
  return best[0], best[2], tried


def problems(config) -> list:
  """Every bad value among a linear model's own keys (the shared ones: config.problems)."""
  out = []
  grid = c_grid(config)
  if not grid or not all(isinstance(c, (int, float)) and not isinstance(c, bool)
                         and np.isfinite(c) and c > 0 for c in grid):
    out.append(f"config.tfidf_c_grid={grid!r}: expected a non-empty list of numbers > 0")
  extend = c_extend(config)
  if isinstance(extend, bool) or not isinstance(extend, int) or extend < 0:
    out.append(f"config.tfidf_c_extend={extend!r}: expected an integer >= 0")
  if str(config.get("class_weights", "none")) not in CLASS_WEIGHTS:
    out.append(f"config.class_weights={config.class_weights!r}: the tfidf model takes "
               "none or balanced")
  return out


def validate(config, checked: bool = False):
  """Raises ConfigError naming every bad key (shared and own; not when the command has
  `checked` them already), or the missing scikit-learn, before any file is written."""
  found = [] if checked else config_lib.problems(config) + problems(config)
  if found:
    raise config_lib.ConfigError("; ".join(found))
  require_sklearn()


def recorded_config(config):
  """The config that config.json records: model `tfidf` and its C grid, also for a sweep
  cell made from a network's preset (so `textclf eval` knows what the run holds)."""
  if config.get("model") == "tfidf" and "tfidf_c_grid" in config \
      and "tfidf_c_extend" in config:
    return config
  config = config.copy_and_resolve_references()
  with config.unlocked():
    config.model = "tfidf"
    config.tfidf_c_grid = c_grid(config)
    config.tfidf_c_extend = c_extend(config)
  return config


# --- training -----------------------------------------------------------------------


def train_and_evaluate(config, workdir: str, resume: bool = False, fold: int = -1,
                       raw=None, checked: bool = False) -> dict:
  """`textclf train` for a linear model (TfidfFamily.train): checks (the config unless
  `checked`), refuses a used run directory, holds its lock, fits, writes the run."""
  started = time.time()
  validate(config, checked)
  if not resume:  # the data's labels checked before the run directory exists
    raw = raw if raw is not None else load_source(config)
    splits_lib.check_label_map(raw, config, fold)
  rundir.check_can_start(workdir, resume)
  parallel.barrier("textclf:workdir-checked")  # before process 0 writes into it
  with runlock.writing(workdir):
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
  started = time.time()
  validate(config)
  with runlock.writing(workdir):
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
  encoder = encoder_for(config)  # its tokens (pieces), cut at max_len as a network's are
  tokens = {k: [encoder.pieces(t, config.max_len) for t in split.texts]
            for k, split in split_data.items()}
  labels = {k: encode_labels(split.labels, label_names, multi)
            for k, split in split_data.items()}
  if is_main:
    print(f"[textclf] {raw.name}: {len(split_data['train'])} train / "
          f"{len(split_data['dev'])} dev / {len(split_data['test'])} test, "
          f"{len(label_names)} labels{' (multi-label)' if multi else ''}; TF-IDF + logistic "
          f"regression, C from {list(c_grid(config))} on dev (extended up to "
          f"{c_extend(config)} steps each way while the best is at an edge)", flush=True)

  fit_started = time.time()
  vectorizer = make_vectorizer()
  features = {"train": vectorizer.fit_transform(tokens["train"])}
  features.update({k: vectorizer.transform(tokens[k]) for k in ("dev", "test")})
  balanced = config.class_weights == "balanced"

  def dev_score(c):
    model = make_classifier(c, multi, balanced, config.seed).fit(features["train"],
                                                                  labels["train"])
    dev_probs = model.predict_proba(features["dev"])
    thresholds = search = None
    if multi:
      search = metrics_lib.search_thresholds(dev_probs, labels["dev"],
                                             config.multilabel_threshold,
                                             config.multilabel_at_least_one,
                                             config.multilabel_min_f1,
                                             objective_lib.resolve(config, True))
      thresholds = search["thresholds"]
    dev = metrics_lib.score(dev_probs, labels["dev"], label_names, multi, thresholds,
                            config.multilabel_at_least_one)
    key = dev["micro_f1"] if multi else dev["accuracy"]
    if is_main:
      print(f"[textclf] C={c:g}: dev {'micro_f1' if multi else 'accuracy'} {key:.4f}",
            flush=True)
    return key, (model, search, dev, dev_probs)

  c, (model, search, _, dev_probs), tried = search_c(c_grid(config), c_extend(config),
                                                           dev_score)
  train_seconds = time.time() - fit_started
  fitted = Fitted.from_sklearn(model, multi, c, balanced, config.seed,
                               len(vectorizer.vocabulary_))

  test_probs = model.predict_proba(features["test"])
  scores = finish_lib.score(config, label_names, multi, (dev_probs, labels["dev"]),
                            (test_probs, labels["test"]), search)
  num_params = fitted.coef.size - fitted.coef.shape[1] * len(fitted.constant) \
      + fitted.intercept.size - len(fitted.constant)  # a constant label has no coef_
  num_train = len(split_data["train"])
  stats.update({"dataset": raw.name, "multi_label": multi, "fold": fold,
                "num_labels": len(label_names), "num_features": len(vectorizer.vocabulary_),
                **{f"num_{k}": len(v) for k, v in split_data.items()},
                "mean_length_train": float(np.mean([len(t) for t in tokens["train"]]))})
  grid = list(c_grid(config))
  results = finish_lib.results(scores, dict(
      dataset=raw.name, model=MODEL, fold=fold, best_step=0, tested_checkpoint="last",
      final_step=0, stopped_early=False, train_seconds=train_seconds,
      # Examples fitted per second over every C tried (len(tried) fits).
      train_examples_per_second=num_train * len(tried) / max(train_seconds, 1e-9),
      wall_seconds=time.time() - started, num_devices=1, num_processes=1, platform="cpu",
      data=stats, num_params=int(num_params),
      baseline={"C": c, "C_grid": grid, "C_tried": [[c_, v] for c_, v in tried],
                "ngrams": [1, 2], "sublinear_tf": True}))
  if is_main:
    save_model(workdir, vectorizer, fitted, grid, [c_ for c_, _ in tried])
    rundir.write_json(rundir.path(workdir, rundir.LABELS),
                      {"labels": label_names, "multi_label": multi})
    rundir.write_json(rundir.path(workdir, rundir.DATA), stats)
  finish_lib.write(workdir, config, raw.name, multi, scores, results)
  return results
