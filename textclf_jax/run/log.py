"""Run logging: `metrics.jsonl` (one JSON line per logged step or evaluation)
and Weights & Biases, from process 0 only."""

from __future__ import annotations

import json
import os
import sys

import jax


def wandb_mode(setting: str) -> str:
  """auto -> online with an API key (WANDB_API_KEY), else offline."""
  if setting == "auto":
    return os.environ.get("WANDB_MODE") or ("online" if os.environ.get("WANDB_API_KEY")
                                            else "offline")
  return setting


class RunLogger:
  """Appends metrics to `workdir/metrics.jsonl` and mirrors them to W&B."""

  def __init__(self, workdir: str, config, resume_step: int | None = None):
    self.active = jax.process_index() == 0
    self.path = os.path.join(workdir, "metrics.jsonl")
    self.wandb = None
    if not self.active:
      return
    if resume_step is not None and os.path.exists(self.path):
      self._truncate_after(resume_step)
    mode = wandb_mode(config.wandb)
    if mode != "disabled":
      import wandb
      self.wandb = wandb.init(
          project=config.wandb_project, group=config.wandb_group or None, dir=workdir,
          mode=mode, config=config.to_dict(), name=os.path.basename(os.path.abspath(workdir)),
          resume="allow", id=_run_id(workdir), reinit="finish_previous")

  def _truncate_after(self, step: int):
    """Drops lines logged after the checkpoint being resumed (they will be redone)."""
    with open(self.path, encoding="utf-8") as f:
      kept = [l for l in f if l.strip() and json.loads(l).get("step", 0) <= step]
    with open(self.path + ".tmp", "w", encoding="utf-8") as f:
      f.writelines(kept)
    os.replace(self.path + ".tmp", self.path)

  def log(self, step: int, **values):
    if not self.active:
      return
    with open(self.path, "a", encoding="utf-8") as f:
      f.write(json.dumps({"step": int(step), **values}) + "\n")
    if self.wandb is not None:
      self.wandb.log(_flatten(values), step=int(step))

  def summary(self, results: dict):
    if self.wandb is not None:
      self.wandb.summary.update(_flatten(results))

  def close(self):
    if self.wandb is not None:
      self.wandb.finish()
      self.wandb = None


def mirror_to_wandb(workdir: str, config, results: dict):
  """Replays a finished run's metrics.jsonl into its own W&B run (group members train
  with W&B off, then are mirrored one at a time)."""
  if wandb_mode(config.wandb) == "disabled":
    return
  logger = RunLogger(workdir, config, resume_step=sys.maxsize)
  if logger.wandb is not None:
    with open(logger.path, encoding="utf-8") as f:
      for line in f:
        values = json.loads(line)
        step = values.pop("step")
        logger.wandb.log(_flatten(values), step=step)
  logger.summary(results)
  logger.close()


def _run_id(workdir: str) -> str:
  import hashlib
  return hashlib.sha1(os.path.abspath(workdir).encode()).hexdigest()[:12]


def _flatten(values: dict, prefix: str = "") -> dict:
  out = {}
  for k, v in values.items():
    if isinstance(v, dict):
      out.update(_flatten(v, f"{prefix}{k}/"))
    elif isinstance(v, (int, float, str, bool)):
      out[prefix + k] = v
  return out
