"""The output folder's exclusive lock: one study writes into ``--out`` at a time.

:func:`lock_out` holds an ``flock`` on ``OUT/.analogebl.lock`` (the operating system's lock:
it goes with the process, so a killed run leaves none) and records the holder's pid and host
in ``OUT/.analogebl.lock.owner`` while held. A second process (or thread) is refused at
once with a :class:`~analogebl.errors.ConfigError` naming the lock file and the holder.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from filelock import FileLock, Timeout

from analogebl.errors import ConfigError
from analogebl.recording import atomic_write_text

__all__ = ["LOCK_FILE", "OWNER_FILE", "lock_out"]

LOCK_FILE = ".analogebl.lock"  # OUT's exclusive lock (empty; held with flock)
OWNER_FILE = ".analogebl.lock.owner"  # pid and host of the lock's holder (while held)

_HELD: dict[Path, tuple[FileLock, int, int]] = {}  # lock file -> (lock, thread, depth)
_HELD_GUARD = threading.Lock()


def _owner(out: Path) -> str:
    """The holder's ``pid ... on HOST`` (``""`` when its owner file is not written yet or
    already removed)."""
    try:
        return (out / OWNER_FILE).read_text(encoding="utf-8", errors="replace").strip()
    except OSError:
        return ""


def _acquire(lock: FileLock, out: Path, lock_path: Path, grace_s: float = 1.0) -> None:
    """Take ``lock`` or refuse at once naming its holder. A holder that has just taken the
    lock and not yet written its owner file, or has removed it and not yet released the
    lock, is waited for up to ``grace_s``: the refusal then names it, or the lock is free."""
    deadline = time.monotonic() + grace_s
    while True:
        try:
            lock.acquire()
            return
        except Timeout:
            if _owner(out) or time.monotonic() > deadline:
                raise _in_use(out, lock_path) from None
            time.sleep(0.02)


def _in_use(out: Path, lock: Path) -> ConfigError:
    owner = _owner(out)  # "" after the grace: the lock file is named anyway
    who = f" ({owner})" if owner else ""
    return ConfigError(
        f"the output folder is in use by another run{who}: {lock} is locked; wait for "
        "that run to finish or choose another --out",
        path=out,
        key="--out",
    )


@contextmanager
def lock_out(out: str | Path) -> Iterator[Path]:
    """Hold the exclusive lock of the output folder ``out`` (``OUT/.analogebl.lock``).

    Only the holder writes ``study.toml``, clears stale temp files and starts runs (the
    workers of a ``local:N`` pool or a Dask cluster write their own run files while the
    process that owns the study holds the lock). Another process (or thread) asking for it
    is refused at once with a :class:`ConfigError` naming the lock file and the holder's pid
    and host (``OUT/.analogebl.lock.owner``; a holder caught between taking the lock and
    writing that file is waited for up to a second, :func:`_acquire`). The lock is the operating
    system's (``flock``): it goes with the process, so a killed run leaves no stale lock.
    Nested use in one thread is allowed (the CLI may hold it across the run and its report).

    Yields
    ------
    Path
        The output folder (created if missing).
    """
    out = Path(out)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"cannot write to the output folder: {exc.strerror}", path=out) from None
    lock_path = (out / LOCK_FILE).resolve()
    me = threading.get_ident()
    with _HELD_GUARD:
        held = _HELD.get(lock_path)
        if held is not None and held[1] != me:
            raise _in_use(out, lock_path)
        if held is not None:
            _HELD[lock_path] = (held[0], me, held[2] + 1)
    if held is None:
        lock = FileLock(str(lock_path), timeout=0)
        try:
            _acquire(lock, out, lock_path)
        except OSError as exc:
            raise ConfigError(
                f"cannot write to the output folder (lock file {LOCK_FILE}): {exc.strerror}",
                path=out,
            ) from None
        with _HELD_GUARD:
            _HELD[lock_path] = (lock, me, 1)
        try:
            atomic_write_text(out / OWNER_FILE, f"pid {os.getpid()} on {socket.gethostname()}\n")
        except OSError as exc:
            _release(lock_path)
            raise ConfigError(
                f"cannot write to the output folder: {exc.strerror}", path=out
            ) from None
        except BaseException:
            _release(lock_path)
            raise
    try:
        yield out
    finally:
        _release(lock_path)


def _release(lock_path: Path) -> None:
    with _HELD_GUARD:
        lock, me, depth = _HELD[lock_path]
        if depth > 1:
            _HELD[lock_path] = (lock, me, depth - 1)
            return
        del _HELD[lock_path]
    try:
        (lock_path.parent / OWNER_FILE).unlink(missing_ok=True)
    finally:
        lock.release()
