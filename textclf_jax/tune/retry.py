"""Trials that stopped without finishing, queued again: one left RUNNING by a killed
process (`fail_dead_trials`, at the next start on its host), and one stopped by Ctrl-C
(`Interrupted`: failed, queued again, then the command stops with one error line).
A queued trial keeps its parameters; optuna's RetryHeartbeatStaleTrialCallback records
which trial it retries (system attribute `failed_trial`), at most RETRIES times."""

from __future__ import annotations

import contextlib
import os
import socket

RETRIES = 2  # times a stopped trial's parameters are queued again


def requeue(study, trial):
  """Queues a failed trial's parameters again (optuna's heartbeat retry)."""
  import optuna
  optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry=RETRIES)(study, trial)


def _alive(pid: int) -> bool:
  try:
    os.kill(pid, 0)
  except ProcessLookupError:
    return False
  except PermissionError:
    return True
  try:  # a zombie (killed, not yet reaped) is gone too
    with open(f"/proc/{pid}/stat", encoding="utf-8") as f:
      return f.read().rsplit(")", 1)[1].split()[0] != "Z"
  except (OSError, IndexError):
    return True


def fail_dead_trials(study, storage) -> list:
  """RUNNING trials started on this host by a process that is gone: failed, and their
  parameters queued again (as optuna's heartbeat does for other hosts). Their numbers."""
  import optuna
  from optuna.trial import TrialState
  failed = []
  for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
    pid = trial.user_attrs.get("pid")
    if trial.user_attrs.get("host") != socket.gethostname() or not isinstance(pid, int) \
        or pid == os.getpid() or _alive(pid):
      continue
    trial_id = storage.get_trial_id_from_study_id_trial_number(
        storage.get_study_id_from_name(study.study_name), trial.number)
    try:
      if storage.set_trial_state_values(trial_id, state=TrialState.FAIL):
        failed.append(trial.number)
        requeue(study, storage.get_trial(trial_id))
    except optuna.exceptions.UpdateFinishedTrialError:
      pass  # another process got there first
  return failed


class Interrupted(Exception):
  """Ctrl-C during a trial: the trial fails (optuna records it), `run_study` queues its
  parameters again (as for a killed trial's) and then raises KeyboardInterrupt."""


@contextlib.contextmanager
def quiet_interruptions(stopped: list):
  """Drops optuna's "Trial N failed ..." warnings (one with its traceback) for the
  trials in `stopped` (interrupted): the command says `interrupted` itself, in one line."""
  import logging

  def keep(record):
    message = record.getMessage()
    return not any(message.startswith(f"Trial {n} failed ") for n in stopped)

  logger = logging.getLogger("optuna.study._optimize")
  logger.addFilter(keep)
  try:
    yield
  finally:
    logger.removeFilter(keep)
