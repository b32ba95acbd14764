"""All-or-nothing output folders: ``<out>/<date>/`` appears only when complete.

A run writes into ``<out>/.<date>.tmp-<pid>/`` and, when everything is
written, swaps it into place. A run killed part-way leaves only its temporary
folder, which the next run of that date removes; the previous complete output
is never touched before the swap. A lock file keeps two runs of the same date
(a cron job and a manual rerun) from interleaving.

Single files are written the same way (``atomic_path``, ``write_atomic``):
beside their final name, then renamed into place. Files shared between
nights (the fire history, the electricity state, the verification store) are
also read and written under a cross-process lock (``shared_lock``), so two
nights running at once (a backfill beside cron) take turns instead of one
losing the other's update.
"""

from __future__ import annotations

import fcntl
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import filelock

from pipelines.core.exceptions import OutputLocked

# How long a night waits for another holding a shared file (s): long enough for a heavy night's update.
SHARED_LOCK_TIMEOUT_S = 1800.0


@contextmanager
def atomic_path(path: Path, *, fsync: bool = False) -> Iterator[Path]:
    """Yield a temporary path beside ``path`` to write to; when the block ends, it becomes ``path``.

    On any exception the temporary file is removed and ``path`` is untouched:
    a reader sees the old file or the new one, never half of one. ``fsync``
    flushes the file to disk before the rename (for state kept between nights;
    pages inside a staged folder need not pay for it).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.partial-{os.getpid()}")
    try:
        yield partial
        if fsync:
            with open(partial, "rb+") as handle:
                os.fsync(handle.fileno())
        os.replace(partial, path)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise


def write_atomic(path: Path, data: str | bytes, *, fsync: bool = False) -> Path:
    """Write ``data`` (text as UTF-8) to ``path`` through :func:`atomic_path`; returns ``path``."""
    with atomic_path(path, fsync=fsync) as partial:
        if isinstance(data, str):
            partial.write_text(data, encoding="utf-8")
        else:
            partial.write_bytes(data)
    return Path(path)


@contextmanager
def shared_lock(path: Path, *, timeout_s: float = SHARED_LOCK_TIMEOUT_S) -> Iterator[None]:
    """Hold the cross-process lock of a file shared between nights (``<path>.lock`` beside it).

    Not re-entrant: each call takes the lock anew. Waits up to ``timeout_s`` for another holder,
    then raises ``OutputLocked`` naming the file.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    lock = filelock.FileLock(str(path.with_name(path.name + ".lock")), timeout=timeout_s)
    try:
        lock.acquire()
    except filelock.Timeout:
        raise OutputLocked(f"{path}: another gridwatch run has held it for {timeout_s:.0f} s; try again when it has finished") from None
    try:
        yield
    finally:
        lock.release()


@contextmanager
def staged_folder(root: Path, name: str) -> Iterator[Path]:
    """Yield an empty temporary folder; on success it becomes ``root/name``.

    On any exception the temporary folder is removed and ``root/name`` is left
    as it was.
    """
    root.mkdir(parents=True, exist_ok=True)
    lock_path = root / f".{name}.lock"
    with open(lock_path, "w") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise OutputLocked(f"another run is writing {root / name} (lock {lock_path})") from None
        _recover(root, name)
        staging = root / f".{name}.tmp-{os.getpid()}"
        staging.mkdir()
        try:
            yield staging
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        _swap(staging, root / name)


def _recover(root: Path, name: str) -> None:
    """Clean up after a run killed before or during its swap (we hold the lock)."""
    for stale in root.glob(f".{name}.tmp-*"):
        shutil.rmtree(stale, ignore_errors=True)
    previous = root / f".{name}.prev"
    if previous.exists():
        if (root / name).exists():
            shutil.rmtree(previous)
        else:
            previous.rename(root / name)


def _swap(staging: Path, final: Path) -> None:
    previous = final.parent / f".{final.name}.prev"
    if final.exists():
        final.rename(previous)
    staging.rename(final)
    shutil.rmtree(previous, ignore_errors=True)
    _fsync_dir(final.parent)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
