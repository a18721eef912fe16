"""Exceptions raised by group-appeal-spark.

Every error the package raises on purpose derives from :class:`GroupAppealSparkError`, so a job
can turn it into one clear line and a non-zero exit code instead of a traceback.
"""


class GroupAppealSparkError(Exception):
    """Base class of all errors raised on purpose by group-appeal-spark."""


class ConfigError(GroupAppealSparkError, ValueError):
    """A configuration key or value is invalid; the message names the key and the value."""


class ModelLoadError(GroupAppealSparkError):
    """A model could not be resolved or loaded; the message says where it looked and what to do."""


class InputError(GroupAppealSparkError, ValueError):
    """Input data cannot be used as a whole (missing path, missing column, bad format)."""


class OutputMismatchError(GroupAppealSparkError, RuntimeError):
    """A stage returned a different number of results than it was given inputs."""
