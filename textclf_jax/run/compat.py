"""What the project's directories are, across versions: the ownership marker every run,
export and tune study directory holds, its format version, and how older ones are read.

    DIR/textclf.json   {"kind": "run", "format_version": 1, "created_by": "textclf_jax
                        0.1.0", "created": "2026-12-07T20:15:00Z"}

The marker is the first file the project writes into a directory it creates; a command
that deletes, overwrites or resumes something checks it first (`require`) and refuses
anything else in one line, changing nothing: the project never touches what it did not
write. Directories made before the marker (format 0) are recognised by the whole set
of files that format held (FORMAT_0), not by one file name, and read as they are.

Format history:
  0  no marker. Configs may lack keys added since: they take the base config's
     defaults, or OLD_RUN_DEFAULTS where the default changed what a run does.
  1  the marker.
"""

from __future__ import annotations

import datetime
import json
import os

from textclf_jax import config as config_lib
from textclf_jax.errors import DataError, UsageError

FORMAT_VERSION = 1
MARKER = "textclf.json"
KINDS = ("run", "cv", "group", "study", "export")

# --- configs of older runs ---------------------------------------------------------------

# Keys a config.json may lack, with the value that keeps such a run doing what it did:
# before embedding_update existed the table was updated densely (and checkpoints hold
# the dense optimiser state); before conv_backward, autodiff's backward pass (both kept
# so that such runs resume bit for bit); before multilabel_min_f1, a fixed per-label F1
# floor of 0.5 (kept so that re-tuning their thresholds, as an ensemble does, gives
# theirs; a fact of the past, not scoring.metrics.PER_LABEL_MIN_F1, which may change);
# before threshold_objective, thresholds for micro-F1; before encoder_cache, a frozen
# encoder run on every step. Other missing keys take the base config's defaults.
OLD_RUN_DEFAULTS = {"embedding_update": "dense", "conv_backward": "dense",
                    "multilabel_min_f1": 0.5, "threshold_objective": "micro",
                    "encoder_cache": "off"}

# Implementation choices a resumed run keeps from its saved config, whatever `auto`
# means now: the table update decides the optimiser state it restores; it, conv_backward
# and encoder_cache (cached states vs the encoder run inside each step) decide the float
# rounding of every later step.
KEPT_ON_RESUME = ("embedding_update", "conv_backward", "encoder_cache")

# Settings `train --resume` may change: how long a run trains and how it reports.
RESUME_OVERRIDES = ("num_epochs", "early_stopping_patience", "log_every_steps",
                    "checkpoint_every_steps", "progress_bar", "wandb", "keep_checkpoints")


def check_resume_options(preset: str, workdir: str, overrides) -> None:
  """Raises UsageError unless what `train --resume RUN` is also given is a change a
  resumed run may take (RESUME_OVERRIDES): RUN trains in its own directory, with its own
  config."""
  if preset:
    raise UsageError(f"--resume continues a run with its own config; --config {preset} "
                     "cannot be given with it")
  if workdir:
    raise UsageError(f"--resume continues the run in its own directory; --workdir {workdir} "
                     "cannot be given with it")
  refused = [key for key in (o.split("=", 1)[0] for o in overrides)
             if key not in RESUME_OVERRIDES]
  if refused:
    raise UsageError(f"--resume continues a run with its own config; --config.{refused[0]} "
                     f"cannot change (allowed: {', '.join(RESUME_OVERRIDES)})")


def read_config(path: str):
  """A saved config.json as a locked ConfigDict, keys it lacks migrated (see above).
  Not validated: the command validates the config it ends with."""
  from textclf_jax.configs import base  # the defaults of keys added after the run
  return config_lib.from_json(path, defaults={**base.get_config().to_dict(),
                                              **OLD_RUN_DEFAULTS})


def headline_calibrated(results: dict | None) -> bool:
  """Whether a run's multi-label results.json dev/test metrics are those of its
  calibrated probabilities at calibration.json's thresholds (what `predict` labels
  with; runs made since threshold_objective, "thresholds_on": "calibrated"), not of its
  raw ones at thresholds.json's (runs made before: `eval` scores them as they were)."""
  return (results or {}).get("thresholds_on") == "calibrated"


def keep_saved_choices(config, saved_path: str):
  """`config` with the KEPT_ON_RESUME choices of the saved config at `saved_path` (as
  is when there is none)."""
  if not os.path.exists(saved_path):
    return config
  saved = read_config(saved_path)
  changed = {k: saved[k] for k in KEPT_ON_RESUME if config.get(k) != saved[k]}
  if not changed:
    return config
  config = config.copy_and_resolve_references()
  with config.unlocked():
    config.update(changed)
  return config


# --- ownership ---------------------------------------------------------------------------


class NotOwnedError(DataError):
  """A directory the project did not write (or of another kind): left untouched."""


# Format 0: the files that identified each kind of directory (all of them must be there).
FORMAT_0 = {
    "run": (("config.json", "labels.json", "data.json", "vocab.json"),  # a network
            ("config.json", "labels.json", "data.json", "linear/model.json")),  # tfidf
    "group": (("group.json",),),
    "study": (("tune.json",),),
    "export": (("manifest.json", "vocab.json"),),
}


def marker_record(kind: str) -> dict:
  import textclf_jax
  return {"kind": kind, "format_version": FORMAT_VERSION,
          "created_by": f"textclf_jax {textclf_jax.__version__}",
          "created": datetime.datetime.now(datetime.timezone.utc).strftime(
              "%Y-%m-%dT%H:%M:%SZ")}


def write_marker(directory: str, kind: str):
  """Creates `directory` if needed and writes its marker, unless it has one already."""
  if kind not in KINDS:
    raise ValueError(f"kind {kind!r}: expected one of {', '.join(KINDS)}")
  os.makedirs(directory, exist_ok=True)
  file = os.path.join(directory, MARKER)
  if os.path.exists(file):
    return
  tmp = f"{file}.tmp-{os.getpid()}"
  with open(tmp, "w", encoding="utf-8") as f:
    json.dump(marker_record(kind), f, indent=2)
  os.replace(tmp, file)


def read_marker(directory: str) -> dict | None:
  """The marker of `directory`, or None when there is none (or it is not ours)."""
  try:
    with open(os.path.join(directory, MARKER), encoding="utf-8") as f:
      record = json.load(f)
  except (OSError, ValueError):
    return None
  if not (isinstance(record, dict) and record.get("kind") in KINDS
          and isinstance(record.get("format_version"), int)):
    return None
  return record


def _has_all(directory: str, files) -> bool:
  return all(os.path.isdir(os.path.join(directory, f[:-1])) if f.endswith("/")
             else os.path.isfile(os.path.join(directory, f)) for f in files)


def _folds(directory: str) -> list:
  return sorted(d for d in os.listdir(directory)
                if d.startswith("fold_") and os.path.isdir(os.path.join(directory, d)))


def _read_object(file: str) -> dict:
  try:
    with open(file, encoding="utf-8") as f:
      value = json.load(f)
  except (OSError, ValueError):
    return {}
  return value if isinstance(value, dict) else {}


def _format_0_content(directory: str, kind: str) -> bool:
  """Whether the files that identify a format-0 `kind` hold what that format wrote."""
  if kind == "run":
    return "model" in _read_object(os.path.join(directory, "config.json"))
  if kind == "export":
    manifest = _read_object(os.path.join(directory, "manifest.json"))
    model = manifest.get("model_file")
    return isinstance(model, str) and "format" in manifest and os.path.basename(model) == model \
        and os.path.isfile(os.path.join(directory, model))
  if kind == "study":
    return {"study", "space", "base_config"} <= set(_read_object(
        os.path.join(directory, "tune.json")))
  if kind == "group":
    return "workdirs" in _read_object(os.path.join(directory, "group.json"))
  return True


def kind_of(directory: str) -> str | None:
  """What the project wrote `directory` as: its marker's kind, else the kind whose whole
  format-0 file set it holds (a CV parent: config.json and a fold_K run), else None."""
  record = read_marker(directory)
  if record is not None:
    if record["format_version"] > FORMAT_VERSION:
      raise NotOwnedError(
          f"{directory}: written by a newer textclf (format {record['format_version']}, "
          f"this one reads up to {FORMAT_VERSION}); upgrade textclf_jax")
    return record["kind"]
  if not os.path.isdir(directory):
    return None
  for kind, sets in FORMAT_0.items():
    if any(_has_all(directory, files) for files in sets) and _format_0_content(directory, kind):
      return kind
  if _format_0_content(directory, "run") and any(  # a fold may have died half-written
      kind_of(os.path.join(directory, d)) == "run" for d in _folds(directory)):
    return "cv"
  return None


def _contents(directory: str) -> str:
  names = sorted(os.listdir(directory))
  shown = ", ".join(names[:3]) + (f" and {len(names) - 3} more" if len(names) > 3 else "")
  return shown or "nothing"


def require(directory: str, kinds, doing: str) -> str:
  """The kind of `directory` when it is one of `kinds` that the project wrote; else
  raises NotOwnedError (one line: what it holds, that nothing was changed)."""
  kinds = (kinds,) if isinstance(kinds, str) else tuple(kinds)
  if not os.path.isdir(directory):
    raise NotOwnedError(f"{directory}: not a directory; nothing to {doing}")
  kind = kind_of(directory)
  if kind not in kinds:
    what = f"a textclf {kind} directory" if kind else (
        f"not a directory textclf wrote (no {MARKER}; it holds {_contents(directory)})")
    raise NotOwnedError(f"{directory}: {what}; refusing to {doing} it (expected a textclf "
                        f"{' or '.join(kinds)} directory; nothing was changed)")
  return kind


def require_new_or(directory: str, kinds, doing: str) -> str | None:
  """None when `directory` is absent or empty (the command may create it); else as
  `require`: the kind, or NotOwnedError."""
  if not os.path.exists(directory) or (os.path.isdir(directory) and not os.listdir(directory)):
    return None
  return require(directory, kinds, doing)


def check_only_ours(directory: str, files, doing: str):
  """Raises NotOwnedError when `directory` holds anything but `files` (the names the
  project writes there): replacing it would delete what someone else put there."""
  foreign = sorted(set(os.listdir(directory)) - set(files) - {MARKER})
  if foreign:
    raise NotOwnedError(f"{directory}: holds {', '.join(foreign[:3])}"
                        f"{' and more' if len(foreign) > 3 else ''}, which textclf did not "
                        f"write; refusing to {doing} it (nothing was changed)")

