"""The one atomic file writer: readers see the old file or the new one, never a partial one.

The new contents go to a uniquely named hidden temp file in the target's folder
(``.NAME.XXXXXXXX.tmp``, so two writers never share one), which is flushed and fsync-ed and
then renamed over the target with :func:`os.replace`; the folder is fsync-ed too, so the
rename itself survives a crash where the platform allows it. On any error the temp file is
removed and the target is left untouched. Run files (HDF5, :func:`analogebl.recording.write_run`),
``study.toml`` and every report file are written through :func:`atomic_path`.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

__all__ = [
    "TMP_SUFFIX",
    "atomic_path",
    "atomic_write_bytes",
    "atomic_write_text",
    "is_temp_file",
    "temp_target",
]

TMP_SUFFIX = ".tmp"
_TOKEN_HEX = 8  # hex digits of the random part of a temp name


def temp_target(path: str | Path) -> str | None:
    """The name of the file a temp file of :func:`atomic_path` was to replace
    (``.run.h5.1a2b3c4d.tmp`` -> ``run.h5``); ``None`` if ``path`` is not such a temp file.

    A temp file may belong to a write in progress in another process: remove one only while
    holding a lock that keeps every other writer of its target away (the study runner's
    output-folder lock)."""
    name = Path(path).name
    if not (name.startswith(".") and name.endswith(TMP_SUFFIX)):
        return None
    stem = name[1 : -len(TMP_SUFFIX)]
    target, dot, token = stem.rpartition(".")
    hexdigits = set("0123456789abcdef")
    if not (dot and target and len(token) == _TOKEN_HEX and set(token) <= hexdigits):
        return None
    return target


def is_temp_file(path: str | Path) -> bool:
    """Whether ``path`` is a temp file of :func:`atomic_path` (left behind by a crash, or
    being written by a live process: see :func:`temp_target`)."""
    return temp_target(path) is not None


def _new_temp(path: Path) -> Path:
    """Create an empty, uniquely named temp file next to ``path`` (mode 0666 & ~umask)."""
    while True:
        tmp = path.with_name(f".{path.name}.{secrets.token_hex(_TOKEN_HEX // 2)}{TMP_SUFFIX}")
        try:
            os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
        except FileExistsError:
            continue
        return tmp


def _fsync(path: Path, flags: int = os.O_RDWR) -> None:
    fd = os.open(path, flags)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_dir(folder: Path) -> None:
    try:
        _fsync(folder, os.O_RDONLY)
    except OSError:  # not every platform or file system can fsync a folder
        pass


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """A temp file to write ``path``'s new contents to; it replaces ``path`` on success.

    Parameters
    ----------
    path : str or Path
        Target file; missing parent folders are created.

    Yields
    ------
    Path
        An empty temp file in the target's folder. Write it completely (and close it)
        inside the ``with`` block.

    Notes
    -----
    On leaving the block normally the temp file is fsync-ed and renamed over ``path``, and
    the folder is fsync-ed. If the block (or the rename) raises, the temp file is removed,
    ``path`` keeps its old contents and the exception propagates.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _new_temp(path)
    try:
        yield tmp
        _fsync(tmp)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically (see :func:`atomic_path`); returns ``path``."""
    path = Path(path)
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            f.write(data)
    return path


def atomic_write_text(path: str | Path, text: str) -> Path:
    """:func:`atomic_write_bytes` for UTF-8 text (newlines written as ``\\n``)."""
    return atomic_write_bytes(path, text.encode("utf-8"))
