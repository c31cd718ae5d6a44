"""The accelerator check's time budget: one deadline for the whole check, shared out
between its parts."""

from __future__ import annotations

import time

from accelerator.spec import PARTS


class Clock:
  """The whole check's deadline, shared out between the parts."""

  def __init__(self, budget: float, budgets: dict, parts=PARTS):
    self.end = time.time() + budget
    self.budgets = budgets
    self.parts = [p for p in PARTS if p in parts]

  def remaining(self) -> float:
    return self.end - time.time()

  def for_part(self, part: str) -> float:
    """This part's limit: its budget's share of what is left, against the budgets of
    the parts not run yet (time an earlier part left unused is shared out)."""
    later = self.parts[self.parts.index(part):]
    return self.remaining() * self.budgets[part] / sum(self.budgets[p] for p in later)
