"""`textclf config`: every key of a preset with its default and one line of meaning.

The meanings are the comments where the keys are set in textclf_jax/configs/*.py
(read with `tokenize` and `ast`, nothing is executed), so the documentation
cannot drift from the code: a key without a comment is a test failure.
"""

from __future__ import annotations

import ast
import io
import json
import os
import tokenize

CONFIGS_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "configs")



def _assigned_key(target) -> str | None:
  """`c.a.b` -> "a.b" (the name of the config variable itself is dropped)."""
  parts = []
  while isinstance(target, ast.Attribute):
    parts.append(target.attr)
    target = target.value
  return ".".join(reversed(parts)) if parts and isinstance(target, ast.Name) else None


def config_comments(path: str) -> dict:
  """{KEY: (comment above, comment on the line)} for each `c.KEY = ...` in a config file.

  The comment above is the block of whole-line comments right above the line
  (section rules such as `# --- data ---` excluded); it also describes the
  assignments right below (no blank line between) that it names in backticks.
  """
  with open(path, encoding="utf-8") as f:
    source = f.read()
  own_line, trailing = {}, {}  # line number -> comment text
  for tok in tokenize.generate_tokens(io.StringIO(source).readline):
    if tok.type == tokenize.COMMENT:
      text = tok.string.lstrip("#").strip()
      row = tok.start[0]
      (trailing if tok.line[:tok.start[1]].strip() else own_line)[row] = text
  found, previous = {}, None  # previous: (last line, key, block) of the assignment above
  for node in ast.walk(ast.parse(source)):
    if not isinstance(node, ast.Assign):
      continue
    for target in node.targets:
      key = _assigned_key(target)
      if key is None:
        continue
      block, row = [], node.lineno - 1
      while row in own_line and not own_line[row].startswith("---"):
        block.insert(0, own_line[row])
        row -= 1
      after = " ".join(trailing[r] for r in range(node.lineno, node.end_lineno + 1)
                       if r in trailing)
      above = " ".join(block)
      if (not above and not after and previous and previous[0] == node.lineno - 1
          and f"`{key}`" in previous[2]):
        above = previous[2]  # a comment above the group that names this key too
      found.setdefault(key, (above, after))
      previous = (node.end_lineno, key, above)
  return found


def _config_chain(name_or_path: str) -> list:
  """The files that build a config: the preset (or file), then what it imports from
  textclf_jax.configs, depth first (cnn.py, base.py)."""
  first = (os.path.join(CONFIGS_DIR, f"{name_or_path}.py")
           if os.path.sep not in name_or_path and not name_or_path.endswith(".py")
           else name_or_path)
  chain, todo = [], [first]
  while todo:
    path = todo.pop(0)
    if path in chain or not os.path.isfile(path):
      continue
    chain.append(path)
    with open(path, encoding="utf-8") as f:
      tree = ast.parse(f.read())
    for node in ast.walk(tree):
      names = []
      if isinstance(node, ast.ImportFrom) and node.module == "textclf_jax.configs":
        names = [a.name for a in node.names]
      elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith(
          "textclf_jax.configs."):
        names = [node.module.rsplit(".", 1)[1]]
      elif isinstance(node, ast.Import):
        names = [a.name.rsplit(".", 1)[1] for a in node.names
                 if a.name.startswith("textclf_jax.configs.")]
      todo.extend(os.path.join(CONFIGS_DIR, f"{n}.py") for n in names)
  return chain


def _flat_items(config, prefix=""):
  for key, value in config.items():
    if hasattr(value, "items"):
      yield from _flat_items(value, f"{prefix}{key}.")
    else:
      yield prefix + key, value


def key_comments(name_or_path: str) -> dict:
  """{KEY: (defining file, its comment, file of the default, its comment)}.

  The defining file is the base of the chain that sets the key (base.py for the
  shared keys, the preset for its own); the file of the default is the first one
  (a preset's own value). A comment is "" when there is none.
  """
  from textclf_jax import config as config_lib
  chain = _config_chain(name_or_path)
  comments = {path: config_comments(path) for path in chain}
  found = {}
  for key, _ in _flat_items(config_lib.load_preset(name_or_path)):
    setters = [p for p in chain if key in comments[p]]
    if not setters:
      found[key] = ("", "", "", "")
      continue
    (defining, own) = setters[-1], setters[0]
    text = {p: " — ".join(m for m in reversed(comments[p][key]) if m) for p in (defining, own)}
    found[key] = (defining, text[defining], own, text[own])
  return found


def config_meanings(name_or_path: str) -> dict:
  """{KEY: one line of meaning} for every key of a preset.

  The meaning is the comment where the key is defined (see `key_comments`); a
  comment on the value that is the default (a preset's own) follows in brackets.
  """
  meanings = {}
  for key, (defining, meaning, own, note) in key_comments(name_or_path).items():
    if own != defining and note:
      meaning = f"{meaning} [{os.path.basename(own)[:-3]}: {note}]".strip()
    meanings[key] = meaning or "(no comment explains this key yet)"
  return meanings


def format_value(value) -> str:
  """A default as it would be written after --config.KEY=."""
  if isinstance(value, (tuple, list)):
    return ",".join(map(str, value)) if value else "()"
  if isinstance(value, str):
    return value if value and value.strip() == value and " " not in value else json.dumps(value)
  return str(value)


def describe(name_or_path: str) -> str:
  """The `textclf config` listing: a header, then `KEY=DEFAULT  meaning` per key."""
  from textclf_jax import config as config_lib
  values = dict(_flat_items(config_lib.load_preset(name_or_path)))
  meanings = config_meanings(name_or_path)
  lines = [f"# {name_or_path}: {len(values)} keys, as KEY=DEFAULT  meaning. Set any with "
           f"--config.KEY=VALUE, e.g.\n#   textclf train --config {name_or_path} "
           f"--config.num_epochs=5"]
  width = min(max(len(f"{k}={format_value(v)}") for k, v in values.items()), 40)
  for key in sorted(values):
    setting = f"{key}={format_value(values[key])}"
    lines.append(f"{setting:<{width}}  {meanings[key]}")
  return "\n".join(lines)
