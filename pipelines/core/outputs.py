"""All-or-nothing output folders: ``<out>/<date>/`` appears only when complete.

A run writes into ``<out>/.<date>.tmp-<pid>/`` and, when everything is
written, swaps it into place. A run killed part-way leaves only its temporary
folder, which the next run of that date removes; the previous complete output
is never touched before the swap. A lock file keeps two runs of the same date
(a cron job and a manual rerun) from interleaving.
"""

from __future__ import annotations

import fcntl
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


class OutputLocked(RuntimeError):
    """Another run of the same date holds the lock."""


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
