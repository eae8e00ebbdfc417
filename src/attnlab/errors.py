"""User-facing errors: the CLI prints their message and exits with status 2, no traceback."""


class UserError(Exception):
    """A problem with the user's input (config, data, paths) rather than a bug."""


class ConfigError(UserError):
    """A config file or override that does not validate."""


class DataError(UserError):
    """Data that cannot be read or is unusable (missing, empty, too short, not UTF-8)."""


class LeakageError(UserError):
    """A causal model's output at some position moved when only later tokens changed."""


class TrainingDiverged(UserError):
    """The training loss became NaN or infinite."""
