"""Every error gridwatch raises on purpose, under one base class.

A ``GridwatchError`` means the input or the environment cannot be used as it
is, and its message says so in one line, naming the file, section or key: the
command line prints that line (the traceback goes to ``run.log`` only) and
exits 2. Anything else escaping a run is a bug. Each class also derives from
the built-in it always was (``ValueError``, ``RuntimeError``), so callers that
catch those keep working.
"""

from __future__ import annotations

from pipelines.core.skips import Skip


class GridwatchError(Exception):
    """The base of gridwatch's own errors: the message is one line a user can act on."""


class ConfigError(GridwatchError, ValueError):
    """The configuration cannot be used; the message names the key."""


class SetupError(GridwatchError, ValueError):
    """The site cannot be set up; nothing was written. The message says why."""


class RunError(GridwatchError, RuntimeError):
    """The run cannot go on; nothing was written. The message says why."""


class OutputLocked(GridwatchError, RuntimeError):
    """Another run holds the lock of the same output (a day's folder or a file shared between nights)."""


class GridError(GridwatchError, ValueError):
    """A grid or county layer cannot be used; the message names the file and field."""


class PatternError(GridwatchError, ValueError):
    """A file-name pattern that cannot be compiled (a programming error in a product declaration)."""


class RasterError(GridwatchError, ValueError):
    """A raster cannot be used; the message names the file and says why."""


class UnreadableFile(GridwatchError):
    """A whole input file cannot be used (binary, empty, wrong encoding); the message says why. Readers turn it into a skip."""


class LandCoverError(GridwatchError, ValueError):
    """The land-cover raster cannot be used; the message names the file."""


class PersistentError(GridwatchError, ValueError):
    """A fire history cannot be read or used; the message names the file and what is wrong."""


class PowerInputError(GridwatchError, ValueError):
    """A registry, transformer or warning file cannot be used at all; the message names it, ``skip`` says where."""

    def __init__(self, message: str, skip: Skip | None = None) -> None:
        super().__init__(message)
        self.skip = skip


class ElectricityError(GridwatchError, RuntimeError):
    """The electricity inputs cannot be used at all; the message names the file, ``skips`` say where (file, row, field)."""

    def __init__(self, message: str, skips: list[Skip] | None = None) -> None:
        super().__init__(message)
        self.skips = skips or []


class StateError(GridwatchError, ValueError):
    """A state file (electricity state, grid cache) cannot be used; the message names it."""


class OfflineTilesError(GridwatchError, ValueError):
    """The MBTiles file cannot be used; the message names it and says why."""


class MarksError(GridwatchError, ValueError):
    """A verification file or post that is refused; the message names the file and the field."""


class Replayed(MarksError):
    """A verification file or post that was stored before: refused, nothing changed."""


class StoreError(GridwatchError, RuntimeError):
    """The verification store cannot be opened or written; nothing was changed."""


class AlertError(GridwatchError, RuntimeError):
    """The alerts of a night cannot be prepared (no such run, a contacts table that cannot be used)."""
