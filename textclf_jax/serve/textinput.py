"""Texts from the command line: arguments, a file (one text per line) or stdin.

Used by `predict` and every command that labels or explains raw texts, so that they
all read a file the same way (UTF-8, an optional byte order mark, \\n or \\r\\n) and
name the line that cannot be read.
"""

from __future__ import annotations

import sys

from textclf_jax.errors import DataError
from textclf_jax.errors import UsageError

BLANK_LINE = "blank line: nothing to classify"


def rows_per_text(texts: list, work) -> list:
  """One row per text, in order: `work(the non-blank texts)` gives their rows (it is not
  called when every text is blank); a blank text gets {text, error: BLANK_LINE} and no
  label, so that output lines up with input and nothing is invented for an empty text."""
  texts = list(texts)
  rows = [{"text": text, "error": BLANK_LINE} for text in texts]
  index = [i for i, text in enumerate(texts) if text.strip()]
  if index:
    for i, row in zip(index, work([texts[i] for i in index])):
      rows[i] = row
  return rows


def read_lines(name: str, data: bytes) -> list:
  """One text per line (\\n or \\r\\n), blank lines included; errors name the line."""
  lines = data.split(b"\n")
  if lines and lines[-1] == b"":
    lines.pop()  # the final newline ends the last line; it does not start another
  texts = []
  for number, raw in enumerate(lines, start=1):
    if number == 1 and raw.startswith(b"\xef\xbb\xbf"):
      raw = raw[3:]  # a UTF-8 byte order mark
    try:
      texts.append(raw.decode("utf-8").removesuffix("\r"))
    except UnicodeDecodeError as e:
      raise DataError(f"{name}:{number}: text is not valid UTF-8 (byte 0x{raw[e.start]:02x} "
                      f"at column {e.start + 1}); re-encode it as UTF-8") from None
  return texts


def gather(command: str, texts, input_path: str) -> list:
  """The texts to work on: `texts` (arguments), else the lines of `input_path`, else
  the lines of stdin. Raises UsageError for both or none."""
  if texts and input_path:
    raise UsageError(f"{command}: texts as arguments or --input FILE, not both")
  if texts:
    out = list(texts)
  elif input_path:
    try:
      with open(input_path, "rb") as f:
        data = f.read()
    except OSError as e:
      raise UsageError(f"--input {input_path}: {e.strerror or e}") from None
    out = read_lines(input_path, data)
  else:
    stdin = getattr(sys.stdin, "buffer", None)
    out = (read_lines("<stdin>", stdin.read()) if stdin is not None
           else [line.removesuffix("\n").removesuffix("\r") for line in sys.stdin])
  if not out:
    raise UsageError(f"{command}: no texts given (arguments, --input FILE or stdin)")
  return out
