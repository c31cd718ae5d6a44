"""Knowledge distillation keys, added by every neural preset (cnn, lstm, fasttext and
the presets built on them); docs/distillation.md.

    textclf train --config cnn --config.dataset=sst2 --config.teacher=runs/bert,runs/tfidf

A config without these keys (a run made before them, or the tfidf preset) trains
without a teacher: the code reads them with `config.get(key, default)`.
"""


def add(c):
  """Adds the distillation keys to the preset config `c` (in place); returns it."""
  # Saved runs (any family; comma-separated: an ensemble, their probabilities averaged)
  # whose calibrated probabilities on the training texts are the soft targets. "": off.
  c.teacher = ""
  c.distill_temperature = 2.0  # T: teacher and student distributions softened by 1/T
  # Weight of the configured hard-label loss on labelled texts; the soft loss gets
  # 1 - alpha. 0.5: the gold labels still correct a teacher's mistakes on training texts.
  c.distill_alpha = 0.5
  # A text file (one text a line) or .jsonl (objects with text_key) of extra unlabelled
  # texts, trained on with the soft loss only. "": none.
  c.distill_unlabelled = ""
  return c
