"""Public helpers for testing code built on gridwatch: assertions, and a browser that has no network.

- :func:`assert_fire_frame`: a frame keeps the fire-point contract (``schema.FIRE_DTYPES``);
- :func:`raise_if_dask_computes`: a block stays lazy;
- :data:`CHROMIUM`, :data:`OFFLINE_CHROMIUM_FLAGS`: headless Chromium as a phone with no signal.

The writers of synthetic product files (fire-mask rasters, swaths, FY-4 FHS) built
from real detections are in :mod:`pipelines.testing.products`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import dask
import numpy as np
import pandas as pd

from pipelines.core.schema import FIRE_DTYPES


def assert_fire_frame(frame: pd.DataFrame) -> None:
    """Fail unless ``frame`` is a fire-point frame as every reader returns it.

    Its columns are ``FIRE_COLUMNS`` in order with their dtypes; times are
    UTC and Beijing time of the same instants; positions are WGS84 degrees
    inside their ranges; confidence is 0-100 or NaN; FRP is >= 0 or NaN;
    pixel sizes are in (0, 10] km.
    """
    assert list(frame.columns) == list(FIRE_DTYPES), f"columns {list(frame.columns)} != FIRE_COLUMNS {list(FIRE_DTYPES)}"
    wrong = {c: str(frame[c].dtype) for c, t in FIRE_DTYPES.items() if frame[c].dtype != t}
    assert not wrong, f"dtypes differ from FIRE_DTYPES: {wrong}"
    assert (frame["time_utc"] == frame["time_bjt"]).all(), "time_utc and time_bjt are not the same instants"
    assert frame["lon"].between(-180, 180).all() and frame["lat"].between(-90, 90).all(), "lon/lat outside WGS84 degree ranges"
    confidence = frame["confidence"].dropna()
    assert confidence.between(0, 100).all(), "confidence outside 0-100"
    assert (frame["frp_mw"].dropna() >= 0).all(), "negative FRP"
    for column in ("scan_km", "track_km"):
        size = frame[column].to_numpy()
        assert np.all((size > 0) & (size <= 10)), f"{column} outside (0, 10] km"
    assert frame["fire_id"].notna().all(), "fire_id missing"


class DaskComputeError(RuntimeError):
    """Raised by ``raise_if_dask_computes`` when something computes."""


@contextlib.contextmanager
def raise_if_dask_computes(max_computes: int = 0) -> Iterator[None]:
    """Fail if dask computes more than ``max_computes`` times inside the block (laziness tests)."""
    calls = 0

    def scheduler(dsk: object, keys: object, **kwargs: object) -> object:
        nonlocal calls
        calls += 1
        if calls > max_computes:
            raise DaskComputeError(f"dask computed {calls} time(s); at most {max_computes} allowed")
        return dask.get(dsk, keys, **kwargs)

    with dask.config.set(scheduler=scheduler):
        yield


CHROMIUM = Path("/usr/bin/chromium")  # Debian's package, as `.ci/run` installs it

# Headless Chromium with every host name resolving to nothing: a page has only what is inlined in it,
# as on a phone with no signal (the browser tests and benchmarks/maps.py).
OFFLINE_CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--host-resolver-rules=MAP * ~NOTFOUND",
)
