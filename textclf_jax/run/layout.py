"""The run directory: its layout, atomic JSON, creation, refusal, and the results record.

    RUN/textclf.json (the ownership marker, written first: run/compat.py)
    RUN/config.json  vocab.json  labels.json  data.json  [thresholds.json]
        metrics.jsonl   results.json   checkpoints/{latest,best}/N   [wandb/]
        predictions/{dev,test}_{probs,labels}.npy   (the scored probabilities)
        calibration.json  reliability.png   (temperature scaling fitted on dev)
    CV:    RUN/config.json  RUN/fold_K/<a run>  RUN/cv_results.json
    group: GROUP/group.json  GROUP/checkpoints/latest/N   (members are runs; the
           stacked checkpoint is deleted once the group is done)

Every JSON file is written atomically (a temporary file, then a rename), so a
reader sees the old contents or the new, never half of them. This module is the
only writer of these files (`runlock.py` holds RUN/.lock); `checkpoint.py` writes the orbax checkpoints and
`runlog.py` appends to metrics.jsonl.
"""

from __future__ import annotations

import json
import os
import sys

import numpy as np

from textclf_jax import config as config_lib
from textclf_jax.errors import DataError
from textclf_jax.run import compat
from textclf_jax.scoring import calibration as calibration_lib
from textclf_jax.text.encoder import VOCAB_FILE

CONFIG = "config.json"
VOCAB = VOCAB_FILE  # "vocab.json": every encoder's id -> piece list
LABELS = "labels.json"
DATA = "data.json"
THRESHOLDS = "thresholds.json"
CALIBRATION = "calibration.json"
RELIABILITY = "reliability.png"
RESULTS = "results.json"
CV_RESULTS = "cv_results.json"
GROUP = "group.json"
CHECKPOINTS = "checkpoints"
LOCK = ".lock"  # held (flock) by the one process that writes the run
LOCK_INFO = ".lock.json"  # who holds it: host, pid, since, command
RUN_FILES = (CONFIG, VOCAB, LABELS)  # what `eval` and `predict` need, besides a checkpoint

# The results record (results.json) of every run, neural or baseline, in this order.
RESULT_KEYS = ("dataset", "model", "fold", "best_step", "tested_checkpoint", "final_step",
               "stopped_early", "dev", "test", "train_seconds", "train_examples_per_second",
               "wall_seconds", "num_devices", "num_processes", "platform", "data")


class RunDirError(DataError):
  """A directory that is not the run the command expects."""


def path(workdir: str, name: str) -> str:
  return os.path.join(workdir, name)


def write_json(file: str, value):
  """Writes JSON atomically (temporary file + rename): never half-written."""
  tmp = file + ".tmp"
  with open(tmp, "w", encoding="utf-8") as f:
    json.dump(value, f, indent=2, ensure_ascii=False)
  os.replace(tmp, file)


def read_json(file: str):
  with open(file, encoding="utf-8") as f:
    return json.load(f)


# --- creating a run -----------------------------------------------------------------


def check_can_start(workdir: str, resume: bool, kind: str = "run"):
  """Refuses to start a new run (`kind`: run, cv or group) in a directory that holds
  one or that the project did not write, and to resume anything but a `kind` directory
  the project wrote (nothing is changed); a new run then claims `workdir`: its marker
  is the first file written there (run/compat.py)."""
  if resume:  # a run from before the marker gets one when it is written again
    compat.require(workdir, kind, "resume")
    return
  if compat.require_new_or(workdir, kind, "start a new run in") is not None:
    _check_unused(workdir)
  from textclf_jax.runtime import parallel
  if parallel.is_main_process():
    compat.write_marker(workdir, kind)


def _check_unused(workdir: str):
  if os.path.exists(path(workdir, RESULTS)):
    raise FileExistsError(f"{workdir}: already holds a finished run; choose another "
                          "--workdir (nothing was changed)")
  if os.path.exists(path(workdir, CONFIG)):
    raise FileExistsError(f"{workdir}: already holds a run; continue it with "
                          f"`textclf train --resume {workdir}` or choose another --workdir")


def write_config(config, workdir: str, kind: str = "run"):
  compat.write_marker(workdir, kind)  # first, when the directory is new
  write_json(path(workdir, CONFIG), json.loads(config_lib.to_json(config)))


def init(config, workdir: str, prepared):
  """Writes config, vocabulary, label map and data stats of a new run."""
  write_config(config, workdir)
  prepared.encoder.save(workdir)  # VOCAB (and whatever else its encoder keeps)
  write_json(path(workdir, LABELS),
             {"labels": prepared.label_names, "multi_label": prepared.multi_label})
  write_json(path(workdir, DATA), prepared.stats)


def is_initialised(workdir: str) -> bool:
  """Whether `init` completed here (a run that crashed sooner is initialised again)."""
  return all(os.path.exists(path(workdir, f)) for f in (CONFIG, VOCAB, LABELS, DATA))


def keep_saved_choices(config, workdir: str):
  """`config` with compat.KEPT_ON_RESUME's choices of the run already in `workdir`, if
  any (read as compat migrates it: a run made before a key existed keeps its old
  behaviour)."""
  return compat.keep_saved_choices(config, path(workdir, CONFIG))


# --- what a run ends with -------------------------------------------------------------


def write_thresholds(workdir: str, mode: str, thresholds, search: dict | None = None):
  """thresholds.json: {"mode", "thresholds", per_label: "min_f1", "min_f1_chosen_by",
  ["min_f1_cv"]}, those from `search` (metrics.search_thresholds' record). A run made
  before the floor was chosen on dev has only mode and thresholds: its floor was 0.5."""
  extra = {k: v for k, v in (search or {}).items() if k != "thresholds"}
  write_json(path(workdir, THRESHOLDS), {"mode": mode, "thresholds": thresholds, **extra})


def results_record(**fields) -> dict:
  """The results.json record: every RESULT_KEYS field, in that order, then extras."""
  missing = [k for k in RESULT_KEYS if k not in fields]
  if missing:
    raise ValueError(f"results record without {', '.join(missing)}")
  return {**{k: fields[k] for k in RESULT_KEYS},
          **{k: v for k, v in fields.items() if k not in RESULT_KEYS}}


# The probabilities a run's dev/test scores were computed from, with their labels (what
# a sweep's paired bootstrap resamples): plain .npy arrays, never a pickle.
PREDICTIONS = "predictions"
PREDICTION_SPLITS = ("dev", "test")
PREDICTION_FILES = tuple(f"{PREDICTIONS}/{split}_{kind}.npy" for split in PREDICTION_SPLITS
                         for kind in ("probs", "labels"))


def prediction_file(workdir: str, split: str, kind: str) -> str:
  """RUN/predictions/SPLIT_KIND.npy; kind: probs ([N, C]) or labels ([N], or [N, C] 0/1)."""
  return os.path.join(workdir, PREDICTIONS, f"{split}_{kind}.npy")


def write_array(file: str, array):
  """np.save with allow_pickle=False, atomically (a temporary file, then a rename)."""
  tmp = file + ".tmp"
  with open(tmp, "wb") as f:
    np.save(f, np.ascontiguousarray(array), allow_pickle=False)
  os.replace(tmp, file)


# A distilled run's soft targets: its teachers' mean calibrated probabilities [N, C] float32
# on its training texts, then its unlabelled texts (config.distill_unlabelled), computed
# once when it starts; `--resume` reads them, so it needs no teacher and trains on
# exactly the same targets.
TEACHER_PROBS = "teacher_probs.npy"


def read_teacher_probs(workdir: str):
  """RUN/teacher_probs.npy as float32 [N, C], or None when the run has none."""
  file = path(workdir, TEACHER_PROBS)
  return np.load(file, allow_pickle=False) if os.path.isfile(file) else None


def write_predictions(workdir: str, predictions: dict):
  """{split: (probs [N, C], labels)} -> RUN/predictions/SPLIT_{probs,labels}.npy."""
  os.makedirs(path(workdir, PREDICTIONS), exist_ok=True)
  for split, (probs, labels) in predictions.items():
    write_array(prediction_file(workdir, split, "probs"), np.asarray(probs))
    write_array(prediction_file(workdir, split, "labels"), np.asarray(labels))


def read_predictions(workdir: str, split: str = "test"):
  """(probs, labels) of a split as saved by `write_predictions`, or None (a run made
  before predictions were saved, or one without that split's files)."""
  files = [prediction_file(workdir, split, kind) for kind in ("probs", "labels")]
  if not all(os.path.isfile(f) for f in files):
    return None
  return tuple(np.load(f, allow_pickle=False) for f in files)


def write_results(workdir: str, results: dict):
  write_json(path(workdir, RESULTS), results)


def read_results(workdir: str) -> dict | None:
  """results.json of a finished run, or None."""
  file = path(workdir, RESULTS)
  return read_json(file) if os.path.exists(file) else None


# --- reading a run back ---------------------------------------------------------------


def is_cv_run(run: str) -> bool:
  return os.path.isdir(run) and any(d.startswith("fold_") for d in os.listdir(run))


def check_run_dir(run: str):
  """Raises RunDirError unless `run` holds one run that `eval`/`predict` can load."""
  if not os.path.isdir(run):
    raise RunDirError(f"{run}: not a directory")
  if is_cv_run(run):
    folds = sorted(d for d in os.listdir(run) if d.startswith("fold_"))
    raise RunDirError(f"{run}: a cross-validation run; give one fold's directory, e.g. "
                      f"{os.path.join(run, folds[0] if folds else 'fold_0')}")
  missing = [f for f in RUN_FILES if not os.path.exists(path(run, f))]
  if missing or not os.path.isdir(path(run, CHECKPOINTS)):
    raise RunDirError(f"{run}: not a run directory (missing "
                      f"{', '.join(missing or [CHECKPOINTS + '/'])})")


def load_config(run: str, allow_cv: bool = False):
  """The config of a run (or, with allow_cv, of a cross-validation parent directory)."""
  if not (allow_cv and is_cv_run(run)):
    check_run_dir(run)
  return compat.read_config(path(run, CONFIG))


def load_config_to_resume(run: str):
  """The config of a run to continue, which the project must have written (its marker,
  or a run from before the marker: its whole file set). With the marker, config.json is
  enough: a run that crashed before its first checkpoint restarts in place, from step 0."""
  compat.require(run, ("run", "cv"), "resume")
  if not os.path.exists(path(run, CONFIG)):
    raise RunDirError(f"{run}: not a run directory (missing {CONFIG}); nothing to resume")
  return compat.read_config(path(run, CONFIG))


def disk_usage(directory: str) -> int:
  """Bytes of every file below `directory`."""
  return sum(os.path.getsize(os.path.join(root, f)) for root, _, files in os.walk(directory)
             for f in files if not os.path.islink(os.path.join(root, f)))


def evaluation_report(run: str, split: str, metrics: dict) -> dict:
  """`eval`'s answer: the recomputed metrics, their summary, and whether they equal
  results.json's for that split exactly (None when there is nothing to compare)."""
  from textclf_jax.scoring import metrics as metrics_lib
  metrics = json.loads(json.dumps(metrics))  # the same float repr as results.json
  results = read_results(run)
  matches = results[split] == metrics if results is not None and split in ("dev", "test") \
      else None
  return {"metrics": metrics, "summary": metrics_lib.summary(metrics), "matches_results": matches}


def read_labels(run: str) -> dict:
  return read_json(path(run, LABELS))


def read_thresholds(run: str):
  return read_json(path(run, THRESHOLDS))["thresholds"]


def write_calibration(workdir: str, record: dict):
  write_json(path(workdir, CALIBRATION), record)


def read_calibration(run: str) -> dict | None:
  """RUN/calibration.json, validated, or None (a run made before calibration).

  {"temperature": T > 0 (single-label) or [T_label > 0, one per label] (multi-label),
   [multi-label: "thresholds": a float or one per label, tuned on calibrated dev
   probabilities], plus the fit's figures}. Calibrated probabilities are
  softmax(logits / T) or sigmoid(logits / T_label) (`calibration.apply_temperature`).
  """
  file = path(run, CALIBRATION)
  if not os.path.isfile(file):
    return None
  try:
    record = read_json(file)
  except (OSError, ValueError) as e:
    raise RunDirError(f"{file}: unreadable JSON ({e})") from None
  if not isinstance(record, dict) or "temperature" not in record:
    raise RunDirError(f"{file}: expected an object with key \"temperature\"")
  labels = read_labels(run) if os.path.isfile(path(run, LABELS)) else None

  def positive(x):
    return isinstance(x, (int, float)) and not isinstance(x, bool) and np.isfinite(x) and x > 0

  temperature = record["temperature"]
  if labels is not None and labels.get("multi_label"):
    count = len(labels["labels"])
    if not (isinstance(temperature, list) and len(temperature) == count
            and all(positive(t) for t in temperature)):
      raise RunDirError(f"{file}: key \"temperature\": expected a list of {count} numbers > 0 "
                        "(one per label of this multi-label run)")
    thresholds = record.get("thresholds")
    if not (isinstance(thresholds, (int, float)) and not isinstance(thresholds, bool)
            or isinstance(thresholds, list) and len(thresholds) == count
            and all(isinstance(t, (int, float)) for t in thresholds)):
      raise RunDirError(f"{file}: key \"thresholds\": expected a number or a list of {count} "
                        "numbers (this multi-label run's decision thresholds)")
  elif labels is not None and not positive(temperature):
    raise RunDirError(f"{file}: key \"temperature\": expected a number > 0 (single-label run)")
  elif labels is None and not (positive(temperature) or isinstance(temperature, list)
                               and temperature and all(positive(t) for t in temperature)):
    raise RunDirError(f"{file}: key \"temperature\": expected a number > 0 or a list of them")
  return record


def read_fold(run: str) -> int:
  return read_json(path(run, DATA)).get("fold", -1)


def write_calibration_files(workdir: str, record: dict, predictions: dict, multi_label: bool,
                            name: str = ""):
  """RUN/calibration.json, and RUN/reliability.png of the test probabilities (a note on
  stderr instead when matplotlib is not installed)."""
  write_calibration(workdir, record)
  probs, labels = predictions["test"]
  if not calibration_lib.reliability_diagram(path(workdir, RELIABILITY), probs, labels,
                                             multi_label, record["temperature"], f"{name} test"):
    print(f"[textclf] note: {workdir}: no {RELIABILITY} (matplotlib is not "
          "installed: pip install matplotlib)", file=sys.stderr, flush=True)
