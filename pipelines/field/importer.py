"""``gridwatch verify import FILE...``: supervisors' verification files into the store.

Each file is checked whole (``marks.parse_marks``) and stored in one transaction
(``store.VerificationStore.add``): a file is imported entirely or not at all, and
a refused file (malformed, too large, wrong token, a task that is not the
supervisor's, replayed) is one line saying why, while the other files go in.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

from pipelines.field.marks import MarksError, load_secret, parse_marks
from pipelines.field.store import ImportResult, StoreError, VerificationStore


@dataclass(frozen=True)
class FileOutcome:
    path: Path
    result: ImportResult | None  # None: refused
    message: str  # what happened, one line


def import_files(paths: list[Path], *, out_root: Path, store: VerificationStore, secret_env: str, max_bytes: int,
                 now: dt.datetime | None = None) -> list[FileOutcome]:
    """Check and store each file; one outcome per file, in order. The secret is read once (``marks.load_secret``)."""
    secret = load_secret(secret_env, Path(out_root) / "state")
    outcomes = []
    for path in paths:
        path = Path(path)
        try:
            with open(path, "rb") as handle:
                data = handle.read(max_bytes + 1)  # never more than the limit into memory
            batch = parse_marks(data, source=path.name, out_root=out_root, secret=secret, max_bytes=max_bytes, now=now)
            result = store.add(batch, now=now)
        except OSError as exc:
            outcomes.append(FileOutcome(path, None, f"{path}: cannot read: {exc.strerror or exc}; nothing imported"))
            continue
        except (MarksError, StoreError) as exc:
            outcomes.append(FileOutcome(path, None, f"refused {exc}" if "nothing changed" in str(exc) else f"refused {exc}; nothing imported"))
            continue
        outcomes.append(FileOutcome(path, result, f"{path.name}: {result.supervisor} {result.day.isoformat()}: "
                                    f"{result.marks} mark(s), {result.stored} new or newer stored"))
    return outcomes
