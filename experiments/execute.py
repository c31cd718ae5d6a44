"""Training a sweep's cells: one at a time (`run_cell`: through the family that trains
the cell's config, a TF-IDF baseline cell refitted by the tfidf family), or the cells
that differ only in per-member values as one vmapped program (`run_groups`,
textclf_jax/group/).

A finished cell (results.json) is read, not re-run; a half-finished one
(config.json) is resumed.
"""

from __future__ import annotations

import hashlib
import os

from textclf_jax.training import group as group_lib
from textclf_jax.runtime import parallel
from textclf_jax.run import layout as rundir
from textclf_jax.families import registry

from experiments.spec import Cell, Experiment, cell_config


def is_finished(cell: Cell, root: str) -> bool:
  return os.path.exists(rundir.path(cell.workdir(root), rundir.RESULTS))


def run_cell(exp: Experiment, cell: Cell, root: str, extra=()) -> dict:
  """The cell's results.json: read back when finished, else trained (or resumed)."""
  workdir = cell.workdir(root)
  finished = rundir.read_results(workdir)
  if finished is not None:
    return finished
  config = cell_config(exp, cell, extra)
  if parallel.is_main_process():
    print(f"[{exp.name}] {cell.dataset} / {cell.variant} / {cell.unit}", flush=True)
  resume = os.path.exists(rundir.path(workdir, rundir.CONFIG))
  if cell.kind == "tfidf":  # a baseline cell: a half-written one is refitted, never refused
    return registry.get("tfidf").refit(config, workdir, cell.fold(config))
  return registry.for_config(config).train(config, workdir, resume=resume,
                                           fold=cell.fold(config))


# --- many models in one program (vmap) ---------------------------------------------


def group_dir(root: str, cells: list) -> str:
  """ROOT/DATASET/VARIANT/group-HASH (one variant) or ROOT/DATASET/group-HASH (variants
  with one grouping key): named by its members, so another set of units (a larger
  --units) is another group."""
  variants = sorted({c.variant for c in cells})
  names = [c.unit for c in cells] if len(variants) == 1 else \
      [f"{c.variant}/{c.unit}" for c in cells]
  digest = hashlib.sha1(",".join(sorted(names)).encode()).hexdigest()[:8]
  parent = os.path.join(root, cells[0].dataset)
  if len(variants) == 1:
    parent = os.path.join(parent, variants[0])
  return os.path.join(parent, f"group-{digest}")


def plan_groups(exp: Experiment, cells: list, extra=()) -> list:
  """The network cells as [[(cell, config), ...], ...]: one list per dataset and
  `textclf_jax.training.group.grouping_key`, so a dropout or loss-weight grid is one program
  with its seeds or folds. In the order the groups' first cells come."""
  groups = {}
  for cell in cells:
    if cell.kind == "net":
      config = cell_config(exp, cell, extra)
      if registry.for_config(config).unsupported("vmap"):
        continue  # trained alone by run_cell
      groups.setdefault((cell.dataset, group_lib.grouping_key(config)), []).append(
          (cell, config))
  return list(groups.values())


def run_groups(exp: Experiment, cells: list, root: str, extra=()):
  """Trains the unfinished network cells of each group (`plan_groups`) as one program.

  Cells holding a solo run (config.json, not a member of the group) are left to
  `run_cell`, which resumes them; finished cells are left alone.
  """
  for group in plan_groups(exp, cells, extra):
    todo = [(c, config) for c, config in group if not is_finished(c, root)]
    if not todo:
      continue
    members = group_lib.group_members(group_dir(root, [c for c, _ in todo]))
    todo = [(c, config) for c, config in todo if os.path.abspath(c.workdir(root)) in members
            or not os.path.exists(rundir.path(c.workdir(root), rundir.CONFIG))]
    if not todo:
      continue
    cells_todo, configs = [c for c, _ in todo], [config for _, config in todo]
    if parallel.is_main_process():
      variants = "+".join(dict.fromkeys(c.variant for c in cells_todo))
      print(f"[{exp.name}] {cells_todo[0].dataset} / {variants} / "
            f"{', '.join(c.unit for c in cells_todo)} as one program", flush=True)
    group_lib.train_many(configs, [c.workdir(root) for c in cells_todo],
                         group_dir(root, cells_todo), [c.fold(config) for c, config in todo])
