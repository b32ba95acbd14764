"""``gridwatch replay``: a season's nights in order give what separate nightly runs give.

On the sample (real Yangzhong daily use moved onto 2022, see geodata/power/README.md), with no fire files so that
the separate nightly runs stay short: three nights as three ``gridwatch nightly`` runs, and the same nights as one
``gridwatch replay --only electricity``.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import geopandas as gpd
import pandas as pd
import pytest
from test_nightly import DAY, write_config

from pipelines.power.state import PowerState
from pipelines.run.cli import main

NIGHTS = [dt.date.fromisoformat(DAY) - dt.timedelta(days=k) for k in (2, 1, 0)]


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, list[int]]:
    tmp = tmp_path_factory.mktemp("replay")
    config = write_config(tmp, points=[], rasters=[])
    separate, replayed = tmp / "separate", tmp / "replayed"
    codes = [main(["nightly", "--date", d.isoformat(), "--config", str(config), "--out", str(separate), "--quiet"]) for d in NIGHTS]
    codes.append(main(["replay", "--from", NIGHTS[0].isoformat(), "--to", NIGHTS[-1].isoformat(), "--only", "electricity",
                       "--config", str(config), "--out", str(replayed), "--quiet"]))
    return separate, replayed, codes


def test_replay_gives_the_sites_and_states_of_separate_nightly_runs(runs: tuple[Path, Path, list[int]]) -> None:
    separate, replayed, _ = runs
    for night in NIGHTS:
        a = gpd.read_parquet(separate / night.isoformat() / "sites.parquet")
        b = gpd.read_parquet(replayed / night.isoformat() / "sites.parquet")
        assert len(a) > 0
        pd.testing.assert_frame_equal(pd.DataFrame(a.drop(columns="geometry")), pd.DataFrame(b.drop(columns="geometry")))
        assert a.geometry.equals(b.geometry)
        name = f"{night.isoformat()}.parquet"
        assert PowerState.read(separate / "state" / "electricity" / name).equals(PowerState.read(replayed / "state" / "electricity" / name))


def test_replay_writes_only_what_electricity_needs(runs: tuple[Path, Path, list[int]]) -> None:
    _, replayed, codes = runs
    for night in NIGHTS:
        folder = replayed / night.isoformat()
        assert sorted(p.name for p in folder.iterdir()) == ["run.json", "sites.parquet"]
        manifest = json.loads((folder / "run.json").read_text(encoding="utf-8"))
        assert manifest["date"] == night.isoformat() and manifest["counts"]["electricity"]["sites"] > 0
    first = json.loads((replayed / NIGHTS[0].isoformat() / "run.json").read_text(encoding="utf-8"))["counts"]["electricity"]
    later = json.loads((replayed / NIGHTS[1].isoformat() / "run.json").read_text(encoding="utf-8"))["counts"]["electricity"]
    # Only the first night rebuilds its state from readings; the next ones carry it.
    assert first["state_days_replayed"] > 90 and later["state_days_replayed"] == 0
    assert codes == [0, 0, 0, 0]
