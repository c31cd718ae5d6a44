"""The one exception type for bad input data."""


class DataError(ValueError):
  """Bad input: the message names the file, line or key and what was expected."""
