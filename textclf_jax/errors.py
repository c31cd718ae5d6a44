"""The project's exception types, and nothing else: every layer raises them, the CLI
(cli/failure.py) turns them into one `textclf: error:` line and an exit status."""


class ConfigError(ValueError):
  """A config key or value that is not what was expected."""


class DataError(ValueError):
  """Bad input: the message names the file, line or key and what was expected."""


class UsageError(Exception):
  """A command line that cannot work (exit status 2)."""


class TrainingDiverged(RuntimeError):
  """The loss became NaN or Inf (exit status 3)."""


class Pruned(Exception):
  """Raised by an `on_dev` hook (a hyper-parameter search's pruner): the run stops
  there as early stopping stops it, and finishes normally; results.json records
  `pruned` (the message) and `stopped_early`."""
