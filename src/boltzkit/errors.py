"""Exceptions raised at boltzkit's boundaries (config, data, checkpoints, CLI usage).

Each message is one line that names the key or file, the bad value and what is
accepted, so the CLI can print it as is and exit with status 2.
"""


class BoltzkitError(Exception):
    """Base class for user-facing errors: the CLI prints the message and exits 2."""


class ConfigError(BoltzkitError, ValueError):
    """A configuration key has an unknown name or an invalid value."""


class DataError(BoltzkitError, ValueError):
    """A data file is missing, unreadable or holds values the model cannot use."""


class CheckpointError(BoltzkitError, ValueError):
    """A checkpoint or run directory is missing, corrupt or incompatible."""


class RunFailed(BoltzkitError):
    """Work started and failed partway (the CLI exits 1, not 2: the input was fine)."""


class DivergenceError(BoltzkitError, RuntimeError):
    """Training produced a NaN or infinite loss."""


class ConfigWarning(UserWarning):
    """A config is valid but probably not what was meant (the CLI prints it as one line)."""
