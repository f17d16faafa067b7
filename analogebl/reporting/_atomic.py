"""Atomic file writing: temp file in the target folder, flush + fsync, ``os.replace``."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

__all__ = ["TMP_SUFFIX", "atomic_write_bytes", "atomic_write_text"]

TMP_SUFFIX = ".tmp"


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` so that readers see the old file or the new one, never a
    partial one.

    Parameters
    ----------
    path : str or Path
        Target file; its folder must exist.
    data : bytes
        The complete new contents.

    Returns
    -------
    Path
        ``path``.

    Notes
    -----
    The data goes to a uniquely named hidden temp file (``.NAME.XXXX.tmp``) in the same
    folder, is flushed and fsync-ed, then renamed over ``path`` with :func:`os.replace`.
    On any error the temp file is removed and the target is left untouched.
    """
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=TMP_SUFFIX)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    try:  # make the rename itself durable where the platform allows it
        dfd = os.open(path.parent, os.O_RDONLY)
    except OSError:
        return path
    try:
        os.fsync(dfd)
    except OSError:
        pass
    finally:
        os.close(dfd)
    return path


def atomic_write_text(path: str | Path, text: str) -> Path:
    """:func:`atomic_write_bytes` for UTF-8 text (newlines written as ``\\n``)."""
    return atomic_write_bytes(path, text.encode("utf-8"))
