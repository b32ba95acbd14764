"""gridwatch: satellite fire and electricity surveillance by supervision grid cell."""

__version__ = "0.1.0"
