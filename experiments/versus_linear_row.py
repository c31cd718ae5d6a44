"""experiments.versus_linear's row: the markdown row and its header (a column per
compared model: every Candidate that comparisons take, then any other model of the
row), each entry's record, the dev-chosen configs in a few words, and the CPU ledger
over invocations (cpu.json)."""

from __future__ import annotations

import datetime
import json
import math
import os
import resource
import time

from textclf_jax.families import registry

from experiments.versus_linear_entries import Entry, compare
from experiments.versus_linear_plan import default_models

LABELS = {"cnn": "CNN", "lstm": "LSTM"}  # a column's label where it is not the model's name


def config_summary(config: dict, params: dict | None = None) -> str:
  """The dev-chosen config in a few words: a network's optimiser, rate, dropout, shape,
  batch and embedding; another family's model: the tuned parameters (`params`)."""
  from textclf_jax.tune import search as tune
  if config["model"] not in registry.get("neural").models:
    return tune.describe(params or {}) or "the preset's settings"
  parts = [f"{config['optimizer']} {config['learning_rate']:.2g}"
           + (f" (wd {config['weight_decay']:.1g})" if config.get("weight_decay") else "")]
  parts.append(f"dropout {config.get('dropout', 0):.2f}")
  if config["model"] == "fasttext":
    parts.append(f"{config['word_ngrams']}-grams, {config['embed_dim']}-d, NB prior "
                 f"{config['nb_prior']:g}, {config['num_epochs']} epoch(s)")
  if config["model"] in ("cnn", "hybrid"):
    parts.append(f"widths {','.join(map(str, config['filter_widths']))} x "
                 f"{config['num_filters']}")
  if config["model"] in ("lstm", "hybrid"):
    layers = config.get("lstm_layers", 1)
    parts.append(("bi" if config.get("bidirectional") else "")
                 + f"LSTM {config['lstm_hidden']}" + (f" x {layers}" if layers > 1 else ""))
  if config["model"] == "transformer":
    parts.append(f"{os.path.basename(os.path.normpath(config['encoder_path']))} encoder, "
                 f"{config['pooling']} pooling, layer decay {config['layer_decay']:g}, "
                 f"warm-up {config['warmup_fraction']:g}, {config['num_epochs']} epoch(s)")
  parts.append(f"batch {config['batch_size']}")
  if config["model"] not in ("fasttext", "transformer"):
    parts.append(config.get("embedding", "rand"))
  return ", ".join(parts)


def header(models) -> str:
  """The table's header, a test column per model of `models`."""
  cells = "".join(f"{LABELS.get(m, m)} test | " for m in models)
  return (f"| dataset | {cells}all-model ens. test | TF-IDF test | best on dev "
          "| Δ vs TF-IDF [95% CI] | p: t-test · bootstrap | trials | CPU h |\n"
          + "|---" * (len(models) + 8) + "|")


# The built-in models' header (the row of docs/versus_linear.md).
HEADER = header(("cnn", "lstm", "hybrid", "bag"))


def columns(record: dict) -> tuple:
  """The row's model columns: the compared candidates, then the row's other models."""
  compared = default_models()
  return compared + tuple(m for m in record["models"] if m not in compared)
def _pct(x: float) -> str:
  return f"{100 * x:.1f}"


def _plain(value):
  """NaN (a test that could not be made) as None, so that row.json is strict JSON."""
  if isinstance(value, float) and math.isnan(value):
    return None
  if isinstance(value, dict):
    return {k: _plain(v) for k, v in value.items()}
  if isinstance(value, list):
    return [_plain(v) for v in value]
  return value


def _hours(h: float) -> str:
  return f"{h:.2f}" if h >= 0.1 else f"{h:.3f}"


def _p(p) -> str:
  if p is None or math.isnan(p):
    return "–"
  return "<0.001" if p < 0.001 else f"{p:.3f}"


def markdown_row(record: dict) -> str:
  cells = [record["dataset"]]
  for model in columns(record):
    m = record["models"].get(model)
    if m is None:
      cells.append("–")
      continue
    text = f"{_pct(m['single']['test'])} ± {_pct(m['single']['test_std'])}"
    if m.get("ensemble"):
      text += f" (ens. {_pct(m['ensemble']['test'])})"
    cells.append(text)
  everything = record.get("all_ensemble")
  cells.append("–" if not everything else _pct(everything["test"])
               + (f" ± {_pct(everything['test_std'])}" if everything["n"] > 1 else ""))
  t = record["tfidf"]
  cells.append(_pct(t["test"]) + (f" ± {_pct(t['test_std'])}" if len(t["runs"]) > 1 else ""))
  best = record["best"]
  c = best["vs_tfidf"]
  boot = c["bootstrap"]
  cells.append(f"{best['entry']} (dev {_pct(best['dev'])})")
  cells.append(f"{boot['delta']:+.1f} [{boot['low']:+.1f}, {boot['high']:+.1f}]")
  cells.append(f"{_p(c['t_p'])} · {_p(boot['p'])}")
  cells.append(", ".join(f"{k} {v['trials']['finished']}" for k, v in record["models"].items()))
  cells.append(_hours(record["cpu"]["hours"]))
  return "| " + " | ".join(cells) + " |"


def markdown(record: dict) -> str:
  units_text = ("folds " + ",".join(map(str, record["folds"])) + f" x {len(record['seeds'])} "
                "seeds" if record["folds"] is not None else f"{len(record['seeds'])} seeds")
  lines = [header(columns(record)), markdown_row(record), "",
           f"{record['dataset']}: test accuracy % over {units_text} (mean ± population std; "
           "CV: over folds of each fold's seed mean); ens.: the seeds' ensemble; all-model "
           "ens.: every model's seeds as one ensemble, each run one equal member. Best on dev: "
           "the entry with the highest dev accuracy; Δ: its pooled test accuracy minus "
           "TF-IDF's, paired bootstrap 95% CI; t-test over matched "
           + ("folds" if record["folds"] is not None else "seeds")
           + " (– for one unit). Dev-chosen configs:"]
  for model, m in record["models"].items():
    lines.append(f"- {model}: trial {m['trial']} of {m['trials']['finished']} (dev "
                 f"{_pct(m['trial_dev'])}): {m['config_summary']}")
  lines.append(f"\nCommand: `{record['command']}` ({record['date']}; CPU "
               f"{_hours(record['cpu']['hours'])} h over {record['cpu']['invocations']} "
               f"invocation(s), load average {record['cpu']['load']}).")
  return "\n".join(lines) + "\n"


def entry_record(entry: Entry, tfidf: dict) -> dict:
  return {"dev": entry.dev, "test": entry.test, "test_std": entry.test_std,
          "n": len(entry.per_unit), "per_unit": [{"dev": d, "test": t} for d, t in entry.per_unit],
          "vs_tfidf": compare(entry, tfidf)}


# --- CPU time over invocations -------------------------------------------------------


class Ledger:
  """ROOT/DATASET/cpu.json: this invocation's CPU seconds (process and children), wall
  seconds and load averages, rewritten at every `save` (a killed invocation keeps what
  it had saved), beside earlier invocations'."""

  def __init__(self, file: str, command: str):
    self.file, self.started = file, time.time()
    self.cpu0 = self._cpu()
    previous = {"invocations": []}
    if os.path.exists(file):
      with open(file, encoding="utf-8") as f:
        previous = json.load(f)
    self.previous = previous["invocations"]
    self.entry = {"command": command, "date": datetime.datetime.now().isoformat(timespec="seconds"),
                  "load_start": [round(x, 2) for x in os.getloadavg()]}

  @staticmethod
  def _cpu() -> float:
    total = 0.0
    for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN):
      usage = resource.getrusage(who)
      total += usage.ru_utime + usage.ru_stime
    return total

  def save(self) -> dict:
    self.entry.update(cpu_seconds=round(self._cpu() - self.cpu0, 1),
                      wall_seconds=round(time.time() - self.started, 1),
                      load_end=[round(x, 2) for x in os.getloadavg()])
    invocations = [*self.previous, self.entry]
    os.makedirs(os.path.dirname(self.file), exist_ok=True)
    tmp = self.file + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
      json.dump({"invocations": invocations}, f, indent=2)
    os.replace(tmp, self.file)
    seconds = sum(i["cpu_seconds"] for i in invocations)
    return {"seconds": seconds, "hours": seconds / 3600,
            "wall_seconds": sum(i["wall_seconds"] for i in invocations),
            "invocations": len(invocations),
            "load": (f"{self.entry['load_start'][0]:.1f} at start, "
                     f"{self.entry['load_end'][0]:.1f} at end of the last")}

