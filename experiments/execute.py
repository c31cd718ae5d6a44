"""Training a sweep's cells: one at a time (`run_cell`: a network through
textclf_jax.train, a TF-IDF baseline through experiments/tfidf.py), or the cells
that differ only in per-member values as one vmapped program (`run_groups`,
textclf_jax/many.py).

A finished cell (results.json) is read, not re-run; a half-finished one
(config.json) is resumed.
"""

from __future__ import annotations

import hashlib
import json
import os

from textclf_jax import parallel, train

from experiments.spec import Cell, Experiment, cell_config


def is_finished(cell: Cell, root: str) -> bool:
  return os.path.exists(os.path.join(cell.workdir(root), "results.json"))


def run_cell(exp: Experiment, cell: Cell, root: str, extra=()) -> dict:
  """The cell's results.json: read back when finished, else trained (or resumed)."""
  workdir = cell.workdir(root)
  if is_finished(cell, root):
    with open(os.path.join(workdir, "results.json")) as f:
      return json.load(f)
  config = cell_config(exp, cell, extra)
  if parallel.is_main_process():
    print(f"[{exp.name}] {cell.dataset} / {cell.variant} / {cell.unit}", flush=True)
  resume = os.path.exists(os.path.join(workdir, "config.json"))
  if cell.kind == "tfidf":
    from experiments import tfidf
    return tfidf.train_tfidf(config, workdir, cell.fold(config))
  return train.train_and_evaluate(config, workdir, resume=resume, fold=cell.fold(config))


# --- many models in one program (vmap) ---------------------------------------------


def grouping_key(config) -> str:
  """Configs with equal keys can train as one group: everything but what many.py
  varies per member (seed, fold, learning rate, dropout, class weights) and what
  it ignores. The one place that reads many.py's private flattening."""
  from textclf_jax import many
  flat = many._flat(config)  # pylint: disable=protected-access
  fixed = {k: v for k, v in flat.items() if k not in many.VMAPPABLE + many.IGNORED}
  return json.dumps(fixed, sort_keys=True, default=str)


def group_dir(root: str, cells: list) -> str:
  """ROOT/DATASET/VARIANT/group-HASH (one variant) or ROOT/DATASET/group-HASH (variants
  with one `grouping_key`): named by its members, so another set of units (a larger
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
  `grouping_key`, so a dropout or loss-weight grid is one program with its seeds or
  folds. In the order the groups' first cells come."""
  groups = {}
  for cell in cells:
    if cell.kind == "net":
      config = cell_config(exp, cell, extra)
      groups.setdefault((cell.dataset, grouping_key(config)), []).append((cell, config))
  return list(groups.values())


def run_groups(exp: Experiment, cells: list, root: str, extra=()):
  """Trains the unfinished network cells of each group (`plan_groups`) as one program.

  Cells holding a solo run (config.json, not a member of the group) are left to
  `run_cell`, which resumes them; finished cells are left alone.
  """
  from textclf_jax import many
  for group in plan_groups(exp, cells, extra):
    todo = [(c, config) for c, config in group if not is_finished(c, root)]
    if not todo:
      continue
    members = many.group_members(group_dir(root, [c for c, _ in todo]))
    todo = [(c, config) for c, config in todo if os.path.abspath(c.workdir(root)) in members
            or not os.path.exists(os.path.join(c.workdir(root), "config.json"))]
    if not todo:
      continue
    cells_todo, configs = [c for c, _ in todo], [config for _, config in todo]
    if parallel.is_main_process():
      variants = "+".join(dict.fromkeys(c.variant for c in cells_todo))
      print(f"[{exp.name}] {cells_todo[0].dataset} / {variants} / "
            f"{', '.join(c.unit for c in cells_todo)} as one program", flush=True)
    many.train_many(configs, [c.workdir(root) for c in cells_todo],
                    group_dir(root, cells_todo), [c.fold(config) for c, config in todo])
