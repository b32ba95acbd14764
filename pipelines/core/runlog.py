"""The records of one run: what goes into its ``run.log`` and the warnings of its ``run.json``.

Stages report through their module loggers (``logging.getLogger(__name__)``),
as a library should. A run owns one :class:`RunLog` and makes it current for
the code it calls (a context variable, so it follows the run's own thread and
nothing else): two runs in one process, in two threads of a notebook or a
server, each get only their own records.
"""

from __future__ import annotations

import contextvars
import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

_CURRENT: contextvars.ContextVar[RunLog | None] = contextvars.ContextVar("gridwatch_run_log", default=None)
_FORMAT = logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
_INSTALL = threading.Lock()


@dataclass
class RunLog:
    """Log records of one run, INFO and above, in order: ``level``, ``logger``, ``message`` and the formatted ``line``."""

    records: list[dict[str, str]] = field(default_factory=list)

    @contextmanager
    def collecting(self) -> Iterator[RunLog]:
        """Collect the ``pipelines`` loggers' records of the code run inside this block (in this context only)."""
        _install()
        token = _CURRENT.set(self)
        try:
            yield self
        finally:
            _CURRENT.reset(token)

    def add(self, record: logging.LogRecord) -> None:
        self.records.append({"level": record.levelname, "logger": record.name, "message": record.getMessage(),
                             "line": _FORMAT.format(record) + "\n"})

    @property
    def warnings(self) -> list[str]:
        """``logger: message`` of every warning and error, for run.json."""
        return [f"{r['logger']}: {r['message']}" for r in self.records if r["level"] in ("WARNING", "ERROR")]

    @property
    def text(self) -> str:
        """The records as the lines of ``run.log``."""
        return "".join(r["line"] for r in self.records)


class _ToCurrentRun(logging.Handler):
    """Hands each record to the run current in the emitting context; records outside any run are left alone."""

    def emit(self, record: logging.LogRecord) -> None:
        run = _CURRENT.get()
        if run is not None:
            run.add(record)

    def filter(self, record: logging.LogRecord) -> bool:
        # INFO and above reach run.log even when the package logger is left at WARNING for the terminal.
        return record.levelno >= logging.INFO


def _install() -> None:
    """Attach the one routing handler to the ``pipelines`` logger (once per process)."""
    package = logging.getLogger("pipelines")
    with _INSTALL:
        if not any(isinstance(h, _ToCurrentRun) for h in package.handlers):
            package.addHandler(_ToCurrentRun())
        if package.getEffectiveLevel() > logging.INFO:
            package.setLevel(logging.INFO)
