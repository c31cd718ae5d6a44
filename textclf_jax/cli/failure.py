"""How a `textclf` command ends on an error: one line, and an exit status that says
whose move it is (see cli/main.py's docstring for the table)."""

from __future__ import annotations

import errno
import os
import re
import sys

from textclf_jax.errors import ConfigError, DataError, TrainingDiverged, UsageError


class Exit(SystemExit):
  """How main() ends on an error: `code` is the exit status, str() the message."""

  def __init__(self, code: int, message: str):
    super().__init__(code)
    self.message = message

  def __str__(self):
    return self.message


# What the running command reads or writes: named by an error from the operating
# system that does not name its file (a write that finds the disk full).
CONTEXT = {"path": ""}
# A SyntaxError from a file outside it is the user's (a Python config file).
PACKAGE_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _chain(error: BaseException):
  """error, then its causes and contexts (and an exception group's members)."""
  seen, todo = set(), [error]
  while todo:
    e = todo.pop(0)
    if e is None or id(e) in seen:
      continue
    seen.add(id(e))
    yield e
    todo.extend(getattr(e, "exceptions", ()) or ())
    todo.append(e.__cause__)
    if not e.__suppress_context__:
      todo.append(e.__context__)


HINTS = {
    errno.ENOSPC: "the disk is full",
    errno.EDQUOT: "the disk quota is used up",
    errno.EROFS: "the file system is read-only",
    errno.EACCES: "choose a path this user may write, or change its permissions",
    errno.ENOTDIR: "a part of the path is a file, not a directory",
}


def describe_os_error(error: OSError) -> str:
  """`PATH: what went wrong (hint)`; the running command's path when the error has none."""
  what = error.strerror or str(error)
  path = error.filename
  if path is not None and error.filename2 is not None:
    path = f"{path} -> {error.filename2}"
  hint = HINTS.get(error.errno, "")
  if path is None and CONTEXT["path"]:
    return f"{what} (while working on {CONTEXT['path']}{'; ' + hint if hint else ''})"
  return f"{path}: {what}{f' ({hint})' if hint else ''}" if path is not None else what


def classify(error: BaseException):
  """(exit status, message) for an error that ended a command."""
  if isinstance(error, TrainingDiverged):
    return 3, str(error)
  if isinstance(error, (UsageError, ConfigError, DataError)):
    return 2, str(error)
  if isinstance(error, SyntaxError) and error.filename and not os.path.abspath(
      error.filename).startswith(PACKAGE_DIR + os.sep):
    return 2, f"{error.filename}:{error.lineno}: {error.msg} (a Python config file?)"
  if isinstance(error, SystemExit):  # raise SystemExit("message") from somewhere
    return 2, re.sub(r"^textclf(:| \w+:)\s*", "", str(error.code))
  if isinstance(error, OSError):
    return 2, str(error) if error.errno is None else describe_os_error(error)
  os_error = next((e for e in _chain(error) if isinstance(e, OSError) and e.errno), None)
  if os_error is not None:
    return 2, describe_os_error(os_error)
  if isinstance(error, ValueError):  # the project's way to reject a value
    return 2, str(error)
  return 1, (f"{type(error).__name__}: {error} (run with --debug for the traceback)")


def fail(code: int, message: str):
  message = " ".join(message.split("\n")).strip() or "(no message)"
  sys.stdout.flush()
  print(f"textclf: error: {message}", file=sys.stderr, flush=True)
  raise Exit(code, message)
