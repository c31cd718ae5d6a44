"""Explaining a saved run's decisions: per-token attributions and, for CNN runs,
the n-grams that win max-over-time pooling (per text, or over a whole split)."""

from __future__ import annotations

import dataclasses

import numpy as np
from flax import nnx

from textclf_jax.serve import runs
from textclf_jax.data.batching import padded_lengths
from textclf_jax.errors import DataError
from textclf_jax.text.encoder import TextEncoder
from textclf_jax.errors import UsageError
from textclf_jax.serve.explain import through_encoder
from textclf_jax.serve.explain.integrated import Attributor, completeness
from textclf_jax.serve.explain.ngrams import FilterWinners, is_cnn
from textclf_jax.models import min_length
from textclf_jax.models.encoders import classifier


@dataclasses.dataclass
class Explainer:
  """A loaded run with its attributor and, for a CNN, its filter winners."""
  run: str
  loaded: object  # the run's Predictor (families/neural_run.NeuralRun)
  encoder: TextEncoder  # the run's, as `predict` encodes with
  attributor: Attributor
  winners: FilterWinners | None  # None unless the run is a CNN


def load(run: str, steps: int = 50, rule: str = "gausslegendre") -> Explainer:
  """Restores the checkpoint `run` was tested with (as `eval` and `predict` do)."""
  why = runs.unsupported(run, "explain")
  if why:
    raise DataError(f"{run}: {why}")
  loaded = runs.load(run)
  graphdef, params, frozen = (loaded.steps.graphdef, loaded.state["params"],
                              loaded.state["frozen"])
  model = nnx.merge(graphdef, params, frozen)
  through = classifier.encoder_of(model) is not None  # a pretrained encoder's pieces
  attributor = (through_encoder.EncoderAttributor if through else Attributor)(
      graphdef, params, frozen, steps, rule)
  # A chunked CNN (config.chunk_len) pools windows' features: no single winner per filter.
  winners = None
  if is_cnn(model) and not loaded.config.get("chunk_len", 0):
    winners = FilterWinners(graphdef, params, frozen, loaded.multi_label)
  return Explainer(run, loaded, loaded.encoder, attributor, winners)


def _width(config, length: int) -> int:
  """The padded length a text of `length` tokens is explained at (a batch bucket)."""
  shortest = min_length(config)
  buckets = padded_lengths(config.bucket_lengths, max(config.max_len, shortest), shortest)
  return int(next((b for b in buckets if b >= length), buckets[-1]))


def _at_width(ids: np.ndarray, width: int) -> np.ndarray:
  """ids [N, max_len] -> [N, width]: cut, or padded with 0 (width holds every text)."""
  out = np.zeros((len(ids), width), np.int32)
  out[:, :min(width, ids.shape[1])] = ids[:, :width]
  return out


def _targets(explainer: Explainer, row: dict, label: str | None) -> list:
  """(label index, predicted?) pairs to explain for one predicted row."""
  names = explainer.loaded.label_names
  if label is not None:
    chosen = row.get("labels", [row.get("label")])
    return [(names.index(label), label in chosen)]
  if "labels" in row:  # multi-label: each predicted label, else the likeliest one
    if row["labels"]:
      return [(names.index(n), True) for n in row["labels"]]
    return [(names.index(next(iter(row["probabilities"]))), False)]
  return [(names.index(row["label"]), True)]


def explain_texts(explainer: Explainer, texts: list, label: str | None = None,
                  top_filters: int = 5, tolerance: float = 0.01, top_k: int = 5) -> list:
  """Raw texts -> one dict per text: predict's row plus tokens and explanations.

  explanations: per explained label (the predicted one(s), or `label`), its logit,
  the baseline's, per-token attributions, the completeness check and, for a CNN,
  the `top_filters` filters contributing most with their winning n-grams.
  """
  loaded = explainer.loaded
  config = loaded.config
  names = loaded.label_names
  if label is not None and label not in names:
    raise UsageError(f"--label {label!r}: not a label of this run (labels: "
                     f"{', '.join(names[:20])}{' ...' if len(names) > 20 else ''})")
  encoder = explainer.encoder
  rows = runs.predict_loaded(loaded, texts, top_k)
  out = []
  for text, row in zip(texts, rows):
    tokens = encoder.pieces(text)
    seen = tokens[:config.max_len]
    length = max(len(seen), 1)  # an empty text is one padding token, as in predict
    ids = _at_width(encoder.encode([text], config.max_len)[0], _width(config, length))
    row = dict(row, tokens=seen)
    if len(tokens) > len(seen):
      row["truncated"] = len(tokens) - len(seen)
    unknown = [int(i) for i in np.flatnonzero(ids[0, :len(seen)] == encoder.unk_id)]
    if unknown:
      row["unknown"] = unknown
    targets = _targets(explainer, row, label)
    result = explainer.attributor.attribute(ids[0], length, [t for t, _ in targets])
    words = _words(explainer, text, seen, row)
    explanations = []
    for k, (target, predicted) in enumerate(targets):
      attributions = result["attributions"][k][:len(seen)]
      entry = {"label": names[target], "predicted": predicted,
               "logit": round(float(result["logits"][target]), 6),
               "baseline_logit": round(float(result["baseline_logits"][target]), 6),
               "attributions": [round(float(a), 6) for a in attributions],
               "completeness": _rounded(completeness(
                   result["attributions"][k], result["logits"][target],
                   result["baseline_logits"][target], tolerance))}
      if words is not None:  # per word (the pieces' sums), the pieces' kept beside
        entry["piece_attributions"] = entry["attributions"]
        entry["attributions"] = [round(a, 6) for a in through_encoder.merge_words(
            words, attributions)]
      if explainer.winners is not None:
        entry["filters"] = explainer.winners.top_filters(ids[0], length, seen, target,
                                                         top_filters)
      explanations.append(entry)
    row["explanations"] = explanations
    out.append(row)
  return out


def _words(explainer: Explainer, text: str, seen: list, row: dict) -> list | None:
  """For a run through a pretrained encoder: the starts of its words among the `seen`
  pieces, with `row` switched to words (tokens: the words, pieces: the pieces, unknown:
  the words holding an unknown piece, baseline); None for a word-level run."""
  if not isinstance(explainer.attributor, through_encoder.EncoderAttributor):
    return None
  encoder = explainer.encoder
  starts = encoder.word_starts(text)[:len(seen)]
  words = through_encoder.word_strings(seen, starts, encoder.spans(text)[:len(seen)], text)
  owner = np.cumsum(starts) - 1
  row["pieces"], row["tokens"] = seen, words
  if encoder.truncated(text):  # the tokenizer cut the text at max_len pieces
    row["truncated"] = encoder.truncated(text)
  if "unknown" in row:
    row["unknown_pieces"] = row["unknown"]
    row["unknown"] = sorted({int(owner[i]) for i in row["unknown"]})
  row["baseline"] = through_encoder.BASELINE
  return starts


def _rounded(check: dict) -> dict:
  return {k: round(v, 6) if isinstance(v, float) else v for k, v in check.items()}


def split_ngrams(explainer: Explainer, split: str, k: int, data_dir: str = "") -> list:
  """Top-k n-grams per filter width and label over a split of the run's dataset
  (found as `textclf eval` finds it): [{width, label, top: [...]}]."""
  if explainer.winners is None:
    raise UsageError(f"{explainer.run}: a {explainer.loaded.config.model} run; n-grams "
                     "per filter (--dataset_split) need a CNN run (--config cnn or kim) "
                     "without chunk_len")
  loaded = explainer.loaded
  data = loaded.encoded_split(split, data_dir)
  pieces = explainer.encoder.decode(np.arange(explainer.encoder.vocab_size))
  found = explainer.winners.top_ngrams(data.ids, data.lengths, pieces, k)
  return [dict(entry, label=loaded.label_names[entry["label"]]) for entry in found]


def ngrams_markdown(entries: list, split: str) -> str:
  """A markdown table: one row per (width, label), its n-grams with their total
  contribution and the number of texts where they win."""
  lines = [f"| width | label | top n-grams on {split} (total contribution, texts) |",
           "|---|---|---|"]
  for entry in entries:
    cells = "; ".join(f"{g['ngram'].replace('|', '&#124;')} ({g['contribution']:.1f}, "
                      f"{g['texts']})" for g in entry["top"])
    lines.append(f"| {entry['width']} | {entry['label']} | {cells} |")
  return "\n".join(lines)
