"""Records of input that a run could not use, for ``run.json`` and the log."""

from __future__ import annotations

from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class Skip:
    """One piece of input left out of a run, and why.

    ``row`` is the 1-based line number in ``file`` (the header is line 1), or
    ``None`` when the whole file was skipped; ``field`` names the offending
    column or setting, or ``None`` when no single field is to blame.
    """

    file: str
    reason: str
    row: int | None = None
    field: str | None = None

    def to_dict(self) -> dict[str, object]:
        return asdict(self)

    def __str__(self) -> str:
        where = self.file if self.row is None else f"{self.file}:{self.row}"
        what = f" [{self.field}]" if self.field else ""
        return f"{where}{what}: {self.reason}"
