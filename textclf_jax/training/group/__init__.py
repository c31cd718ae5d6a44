"""Many models in one program: `train_many(configs, workdirs, group_dir)`.

Runs whose configs differ only in `VMAPPABLE` keys (seeds, CV folds, a grid of
learning rates, dropout rates or loss weights) train together as one jitted
step, `jax.jit(jax.vmap(step))` over a leading member axis of size K:

  members.py  which configs may share a program (`check_group`, `grouping_key`)
              and each member's own values (`steps.MemberValues`)
  stack.py    member states, batches and shardings on the member axis
  compiled.py the vmapped train and predict steps
  loop.py     the group's epochs, one `progress.RunProgress` per member

Every member ends as a normal run directory, stopped, selected and scored by
the same `RunProgress` as a run alone. Exactness and its limits are in
docs/experiments.md ("Many models in one program").
"""

from textclf_jax.training.group.loop import group_members, train_many
from textclf_jax.training.group.members import (IGNORED, VMAPPABLE, check_group, flat_config, grouping_key)

__all__ = ["IGNORED", "VMAPPABLE", "check_group", "flat_config", "group_members",
           "grouping_key", "train_many"]
