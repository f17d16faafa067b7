"""One error hierarchy for analogebl.

Every error raised on bad user input derives from :class:`AnalogeblError`. Its message
names the file (when there is one) and the offending key, so that the command-line
interface can print it on one line and exit with status 2.
"""

from __future__ import annotations

from pathlib import Path

__all__ = [
    "AnalogeblError",
    "ConfigError",
    "DataError",
    "DivergenceError",
]


class AnalogeblError(Exception):
    """Base class of every user-facing analogebl error (CLI exit status 2)."""

    exit_code = 2


class ConfigError(AnalogeblError, ValueError):
    """A circuit, study, rule or command-line value is invalid.

    Parameters
    ----------
    message : str
        What is wrong and what would be accepted.
    path : str or Path, optional
        The file the value came from.
    key : str, optional
        The dotted key of the value inside that file, or a command-line flag (``--tier``).

    Notes
    -----
    The message reads ``PATH, key 'KEY': MESSAGE`` for a key of a file and
    ``PATH: --FLAG: MESSAGE`` for a flag (each part left out when not given).
    """

    def __init__(self, message: str, path: str | Path | None = None, key: str | None = None):
        self.message = message  # without the file / key prefix (to re-raise with a path)
        self.path = None if path is None else str(path)
        self.key = key
        where = [] if self.path is None else [self.path]
        if key is not None and key.startswith("--"):  # a flag is named as it is typed
            where = [": ".join([*where, key])]
        elif key is not None:
            where.append(f"key '{key}'")
        prefix = ", ".join(where) + ": " if where else ""
        super().__init__(prefix + message)


class DataError(AnalogeblError, OSError):
    """A dataset file is missing, truncated or corrupted.

    The message names the file and says what to do (where to get it, which checksum to expect).
    """


class DivergenceError(AnalogeblError, FloatingPointError):
    """NaN or Inf appeared in states or parameters (the message names layer and step)."""
