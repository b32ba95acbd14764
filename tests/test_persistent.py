"""Tests for pipelines.fires.persistent: persistent heat sources learnt from fire history.

Inputs are the project's real archive (``geodata/archive``: China-bbox subsets
of 10 NASA FIRMS files, 2018-2025) read with ``read_points``. Expected counts
come from a reference written here independently of the module: pixel centres
projected with pyproj to China Albers, cells by ``floor(x / 500 m)``, and
distinct dates gathered per neighbourhood with plain Python sets.
"""

from __future__ import annotations

import datetime as dt
import shutil
from collections import defaultdict
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
import shapely
from pyproj import Geod, Transformer

from pipelines.core.skips import Skip
from pipelines.fires.load import dedupe
from pipelines.fires.persistent import (
    FireHistory,
    PersistenceRule,
    PersistentError,
    build_history,
    cell_index,
)
from pipelines.fires.readers import read_points
from pipelines.grid.cells import CHINA_ALBERS

ROOT = Path(__file__).resolve().parent.parent
ARCHIVE = sorted((ROOT / "geodata/archive").glob("*"))
WEEK_FILE = ROOT / "geodata/archive/MODIS_C6_1_Global_7d_2022-05-28_2022-06-04_china-subset.csv"
GEM_STEEL = ROOT / "geodata/industrial/gem_steel_plants_china.csv"
CELL_M = 500.0
WEEK = (dt.date(2022, 5, 28), dt.date(2022, 6, 4))  # the 7-day file's Beijing dates
AFTER_WEEK = dt.date(2022, 6, 5)
TO_ALBERS = Transformer.from_crs("EPSG:4326", CHINA_ALBERS, always_xy=True)
FROM_ALBERS = Transformer.from_crs(CHINA_ALBERS, "EPSG:4326", always_xy=True)
GEOD = Geod(ellps="WGS84")


# -- reference and fixtures ---------------------------------------------------------


def _reference_cells(fires: pd.DataFrame, cell_m: float = CELL_M) -> tuple[np.ndarray, np.ndarray]:
    x, y = TO_ALBERS.transform(fires["lon"].to_numpy(), fires["lat"].to_numpy())
    return np.floor(np.asarray(x) / cell_m).astype(int), np.floor(np.asarray(y) / cell_m).astype(int)


def _reference_days(history: pd.DataFrame, fires: pd.DataFrame, first: dt.date, end: dt.date, n: int = 1) -> np.ndarray:
    """Per fire of ``fires``: distinct Beijing dates in [first, end) of ``history``
    pixels within ``n`` cells (both axes) of the fire's cell. Plain sets, no arrays."""
    dates: dict[tuple[int, int], set[dt.date]] = defaultdict(set)
    hx, hy = _reference_cells(history)
    for ix, iy, day in zip(hx, hy, history["time_bjt"].dt.date):
        if first <= day < end:
            dates[(int(ix), int(iy))].add(day)
    fx, fy = _reference_cells(fires)
    out = []
    for ix, iy in zip(fx, fy):
        seen: set[dt.date] = set()
        for dx in range(-n, n + 1):
            for dy in range(-n, n + 1):
                seen |= dates.get((int(ix) + dx, int(iy) + dy), set())
        out.append(len(seen))
    return np.array(out)


@pytest.fixture(scope="session")
def archive() -> pd.DataFrame:
    """Every fire of the real archive, once each (23,268 of 23,611 rows)."""
    frame = pd.concat([read_points(p)[0] for p in ARCHIVE], ignore_index=True)
    return dedupe(frame)[0]


@pytest.fixture(scope="session")
def built() -> tuple[FireHistory, list[Skip]]:
    return build_history(ARCHIVE)


@pytest.fixture(scope="session")
def history(built: tuple[FireHistory, list[Skip]]) -> FireHistory:
    return built[0]


@pytest.fixture(scope="session")
def week(archive: pd.DataFrame) -> pd.DataFrame:
    dates = archive["time_bjt"].dt.date
    return archive[(dates >= WEEK[0]) & (dates <= WEEK[1])]


def _steel_plants() -> pd.DataFrame:
    plants = pd.read_csv(GEM_STEEL)
    lat_lon = plants["Coordinates"].str.split(",", expand=True).astype(float)  # "lat, lon"
    return plants.assign(lat=lat_lon[0], lon=lat_lon[1])


def _nearest_plant_km(lon: float, lat: float, plants: pd.DataFrame) -> tuple[str, float]:
    _, _, metres = GEOD.inv(np.full(len(plants), lon), np.full(len(plants), lat), plants["lon"], plants["lat"])
    i = int(np.argmin(metres))
    return plants["Plant name (English)_x"].iat[i], float(metres[i]) / 1000.0


# -- the archive as a whole ---------------------------------------------------------


def test_archive_history_size(built: tuple[FireHistory, list[Skip]], archive: pd.DataFrame) -> None:
    history, skips = built
    assert skips == []
    ix, iy = _reference_cells(archive)
    assert len(history) == len(set(zip(ix, iy))) == 21905
    frame = history.to_frame()
    assert frame["fires"].sum() == len(archive)  # every pixel counted once
    assert frame["cell_id"].is_unique


def test_rule_is_validated() -> None:
    assert PersistenceRule(min_days=4.0, window_days=365.0, neighbourhood=1.0) == PersistenceRule()
    for bad in ({"min_days": 0}, {"window_days": 0}, {"neighbourhood": -1}, {"min_days": 2.5}):
        with pytest.raises(ValueError, match=next(iter(bad))):
            PersistenceRule(**bad)
    with pytest.raises(TypeError, match="window_days"):
        PersistenceRule(window_days="365")


# -- 1. a place that burns on many days is masked -------------------------------------


def test_recurring_place_is_persistent_only_after_its_days(history: FireHistory, week: pd.DataFrame) -> None:
    # Neighbourhood counts over the week for every fire of the week, module vs reference.
    in_week = PersistenceRule(min_days=1, window_days=8)  # [05-28, 06-05)
    flags = history.flag(week, AFTER_WEEK, in_week)
    expected = _reference_days(week, week, WEEK[0], AFTER_WEEK)
    np.testing.assert_array_equal(flags["persistent_days"].to_numpy(), expected)

    best = int(expected.max())
    assert best >= 4
    top = week[expected == best]
    # The place is one 500 m cell and its 3 x 3 block in Anshan, Liaoning: fire on
    # 6 of the 8 days (05-28..06-03), at the Angang (Anshan Iron and Steel) works,
    # 1.7 km from the GEM coordinate of "Angang Steel Co Ltd". Next come, with 5
    # days each, Novokuznetsk (Russia, inside the archive's bounding box: a steel
    # town, not in the GEM China list), the Pangang works at Panzhihua, Sichuan,
    # and Bokaro (India).
    cells = flags.loc[top.index, "persistent_cell"].unique()
    assert len(cells) == 1, cells
    name, km = _nearest_plant_km(top["lon"].mean(), top["lat"].mean(), _steel_plants())
    assert name == "Angang Steel Co Ltd" and km < 2.5, (name, km)
    assert best == 6

    # The default rule (4 days in the 365 before the run date): the place is
    # persistent on 06-05, after its week of fires, but not on 05-29, when only
    # 05-28 lies before the run date; the archive has nothing else within a year.
    after = history.flag(top, AFTER_WEEK)
    assert after["persistent"].all()
    assert (after["persistent_days"] == best).all()
    before = history.flag(top, dt.date(2022, 5, 29))
    assert not before["persistent"].any()
    assert (before["persistent_days"] <= 1).all()


# -- 2. a field that burns once is not -----------------------------------------------


def test_field_burning_once_is_not_persistent(history: FireHistory, archive: pd.DataFrame) -> None:
    # A MODIS Aqua pixel of 2022-06-01 13:10 Beijing time in Pingyu County
    # (Zhumadian, Henan), in the middle of the wheat harvest: no other fire fell
    # within its 3 x 3 cells on any date of the archive.
    field = archive[np.isclose(archive["lon"], 114.87576) & np.isclose(archive["lat"], 33.07083)]
    assert len(field) == 1
    assert field["time_bjt"].dt.date.iat[0] == dt.date(2022, 6, 1)
    assert _reference_days(archive, field, dt.date(2000, 1, 1), dt.date(2030, 1, 1)).tolist() == [1]

    later = history.flag(field, dt.date(2022, 6, 2))
    assert later["persistent"].tolist() == [False]
    assert later["persistent_days"].tolist() == [1]
    assert later["persistent_days"].dtype == np.int64
    # On its own date it is not even history yet (strictly before the run date).
    assert history.flag(field, dt.date(2022, 6, 1))["persistent_days"].tolist() == [0]
    # Not in the mask either, even with a whole-archive window.
    mask = history.mask(dt.date(2026, 1, 1), PersistenceRule(window_days=10_000))
    assert not shapely.intersects_xy(mask.geometry.values, field["lon"].iat[0], field["lat"].iat[0]).any()


# -- 3. write / read ---------------------------------------------------------------


def test_round_trip_gives_identical_flags(history: FireHistory, archive: pd.DataFrame, tmp_path: Path) -> None:
    path = tmp_path / "history.parquet"
    history.write(path)
    assert not (tmp_path / ".history.parquet.partial").exists()
    again = FireHistory.read(path, cell_m=CELL_M)
    assert again == history and len(again) == len(history)
    for day in (AFTER_WEEK, dt.date(2025, 11, 20), dt.date(2019, 4, 8)):
        pd.testing.assert_frame_equal(again.flag(archive, day), history.flag(archive, day))
        pd.testing.assert_frame_equal(again.mask(day), history.mask(day))
    # It is plain GeoParquet: squares in EPSG:4326, dates as dates.
    stored = gpd.read_parquet(path)
    assert stored.crs.to_epsg() == 4326
    assert list(stored.columns) == ["cell_id", "ix", "iy", "dates", "date_fires", "fires", "geometry"]
    assert stored["fires"].sum() == len(archive)
    assert str(pq.read_schema(path).field("dates").type) == "list<element: date32[day]>"
    row = stored.iloc[0]
    assert row["cell_id"] == f"P{row['ix']}_{row['iy']}"
    area = gpd.GeoSeries([row.geometry], crs=4326).to_crs(CHINA_ALBERS).area.iat[0]
    assert area == pytest.approx(CELL_M**2, rel=1e-6)


def test_failed_write_leaves_the_old_file(history: FireHistory, week: pd.DataFrame, tmp_path: Path,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "history.parquet"
    FireHistory.from_fires(week).write(path)
    before = path.read_bytes()

    def disk_full(*args: object, **kwargs: object) -> None:
        raise OSError("No space left on device")

    monkeypatch.setattr(pq, "write_table", disk_full)
    with pytest.raises(OSError, match="No space"):
        history.write(path)
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["history.parquet"]  # no .partial left


def test_read_refuses_what_is_not_a_history(history: FireHistory, week: pd.DataFrame, tmp_path: Path) -> None:
    with pytest.raises(PersistentError, match="missing.parquet.*not found"):
        FireHistory.read(tmp_path / "missing.parquet")

    fires = tmp_path / "fires.parquet"  # a nightly-style fire table, not a history
    gpd.GeoDataFrame(week, geometry=gpd.points_from_xy(week["lon"], week["lat"]), crs=4326).to_parquet(fires)
    with pytest.raises(PersistentError, match="fires.parquet: not a fire history"):
        FireHistory.read(fires)

    text = tmp_path / "notes.parquet"
    text.write_text("not parquet at all\n")
    with pytest.raises(PersistentError, match="notes.parquet: not a fire history"):
        FireHistory.read(text)

    path = tmp_path / "history.parquet"
    history.write(path)
    with pytest.raises(PersistentError, match=r"history.parquet: fire history has cells of 500 m, but 1000 m"):
        FireHistory.read(path, cell_m=1000)
    truncated = tmp_path / "truncated.parquet"
    truncated.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(PersistentError, match="truncated.parquet"):
        FireHistory.read(truncated)
    coarse = tmp_path / "coarse.parquet"
    FireHistory.from_fires(week, cell_m=1000).write(coarse)
    assert FireHistory.read(coarse).cell_m == 1000
    with pytest.raises(PersistentError, match="coarse.parquet.*1000 m.*500 m"):
        FireHistory.read(coarse, cell_m=CELL_M)


# -- 4. merge ------------------------------------------------------------------------


def test_merge_is_idempotent_and_adds_new_days(archive: pd.DataFrame, week: pd.DataFrame, tmp_path: Path) -> None:
    base = FireHistory.from_fires(week)
    twice = base.merge(week)
    assert twice == base
    base.write(tmp_path / "once.parquet")
    twice.merge(week).write(tmp_path / "thrice.parquet")
    assert (tmp_path / "once.parquet").read_bytes() == (tmp_path / "thrice.parquet").read_bytes()
    # Repeated rows (the 24 h file repeats the 7-day file's 06-03) count once.
    overlap = read_points(ROOT / "geodata/archive/MODIS_C6_1_Global_24h_2022-06-03_china-subset.csv")[0]
    assert FireHistory.from_fires(pd.concat([week, week])) == base
    with_overlap = base.merge(overlap[overlap["fire_id"].isin(week["fire_id"])])
    assert with_overlap == base

    # A new day: 2025-11-18 adds its cells and dates, and nothing else changes.
    november = archive[archive["time_bjt"].dt.date == dt.date(2025, 11, 18)]
    grown = base.merge(november)
    new_cells = set(zip(*_reference_cells(november))) - set(zip(*_reference_cells(week)))
    assert len(grown) == len(base) + len(new_cells)
    frame = grown.to_frame()
    assert frame["fires"].sum() == len(week) + len(november)
    has_day = frame["dates"].map(lambda ds: dt.date(2025, 11, 18) in list(ds))
    assert has_day.sum() == len(set(zip(*_reference_cells(november))))

    # Day by day equals all at once, and a rerun of a day after merging that day answers the same.
    by_day = FireHistory.from_fires(archive.iloc[:0])
    for _, fires in archive.groupby(archive["time_bjt"].dt.date):
        by_day = by_day.merge(fires)
    assert by_day == FireHistory.from_fires(archive)
    d = dt.date(2022, 6, 3)
    before = FireHistory.from_fires(archive[archive["time_bjt"].dt.date < d])
    todays = archive[archive["time_bjt"].dt.date == d]
    pd.testing.assert_frame_equal(before.flag(todays, d), before.merge(todays).flag(todays, d))


# -- 5. inputs -------------------------------------------------------------------------


def test_build_history_skips_a_corrupt_file_and_reads_parquet(history: FireHistory, week: pd.DataFrame, tmp_path: Path) -> None:
    for path in ARCHIVE:
        shutil.copy(path, tmp_path / path.name)
    (tmp_path / "VIIRS_corrupt_2025-11-19.csv").write_bytes(bytes(range(256)) * 40)
    files = sorted(tmp_path.iterdir())
    built, skips = build_history(files)
    assert [s.file for s in skips] == ["VIIRS_corrupt_2025-11-19.csv"]
    assert skips[0].row is None  # the whole file
    assert built == history

    # A nightly-style fires.parquet (GeoParquet points) of the week's fires (the
    # 7-day file and the 24 h file of 06-03) is read like the CSVs it came from.
    nightly = tmp_path / "fires.parquet"
    gpd.GeoDataFrame(week, geometry=gpd.points_from_xy(week["lon"], week["lat"]), crs=4326).to_parquet(nightly)
    expected = FireHistory.from_fires(week)
    from_parquet, none = build_history([nightly])
    assert none == [] and from_parquet == expected
    both, none = build_history([WEEK_FILE, nightly])  # the same fire_ids: counted once
    assert none == [] and both == expected
    assert both.to_frame()["fires"].sum() == len(week)

    # Only times in UTC: converted to Beijing dates (UTC 16:00-24:00 is the next Beijing day).
    utc_only = tmp_path / "utc.parquet"
    week.drop(columns=["time_bjt"]).to_parquet(utc_only)
    assert build_history([utc_only])[0] == expected

    events = tmp_path / "events.parquet"  # a table without positions: one skip naming the file and columns
    pd.DataFrame({"event_id": ["e1"], "n_fires": [3]}).to_parquet(events)
    history_events, skips = build_history([events, WEEK_FILE])
    assert history_events == build_history([WEEK_FILE])[0]
    assert len(skips) == 1 and skips[0].file == "events.parquet"
    assert "lon, lat, time_bjt or time_utc" in skips[0].reason


# -- 6. neighbourhood -----------------------------------------------------------------


def test_cluster_straddling_two_cells_counts_together_only_with_neighbourhood(history: FireHistory, archive: pd.DataFrame) -> None:
    # Two points 200 m apart across a cell edge at the Pangang works, Panzhihua:
    # the west one burns on 2 dates, the east one on 2 other dates.
    (ix,), (iy,) = cell_index(np.array([101.6649]), np.array([26.5736]))
    edge = (ix + 1) * CELL_M
    lon, lat = FROM_ALBERS.transform([edge - 100.0, edge + 100.0], [(iy + 0.5) * CELL_M] * 2)
    cx, cy = cell_index(np.array(lon), np.array(lat))
    assert cx.tolist() == [ix, ix + 1] and cy.tolist() == [iy, iy]  # neighbouring cells
    days = pd.to_datetime(["2030-01-01 12:00", "2030-01-02 12:00", "2030-01-03 12:00", "2030-01-04 12:00"]).tz_localize("Asia/Shanghai")
    cluster = pd.DataFrame({"fire_id": ["w1", "w2", "e1", "e2"], "lon": [lon[0], lon[0], lon[1], lon[1]],
                            "lat": [lat[0], lat[0], lat[1], lat[1]], "time_bjt": days})
    straddle = FireHistory.from_fires(cluster)
    probe = pd.DataFrame({"lon": lon, "lat": lat})
    alone = straddle.flag(probe, dt.date(2030, 1, 5), PersistenceRule(neighbourhood=0))
    together = straddle.flag(probe, dt.date(2030, 1, 5), PersistenceRule(neighbourhood=1))
    assert alone["persistent_days"].tolist() == [2, 2] and not alone["persistent"].any()
    assert together["persistent_days"].tolist() == [4, 4] and together["persistent"].all()
    assert together["persistent_cell"].tolist() == [f"P{ix}_{iy}", f"P{ix + 1}_{iy}"]

    # On the real archive (all 26 dates counted), the 3 x 3 neighbourhood finds
    # more persistent fires than single cells, and every single-cell one among them.
    day, window = dt.date(2026, 1, 1), 10_000
    n0 = history.flag(archive, day, PersistenceRule(window_days=window, neighbourhood=0))
    n1 = history.flag(archive, day, PersistenceRule(window_days=window, neighbourhood=1))
    assert (n0["persistent_days"] <= n1["persistent_days"]).all()
    assert n1["persistent"].sum() > n0["persistent"].sum() > 0
    assert not (n0["persistent"] & ~n1["persistent"]).any()
    first = day - dt.timedelta(days=window)
    np.testing.assert_array_equal(n0["persistent_days"].to_numpy(), _reference_days(archive, archive, first, day, n=0))
    np.testing.assert_array_equal(n1["persistent_days"].to_numpy(), _reference_days(archive, archive, first, day, n=1))


# -- 7. mask -----------------------------------------------------------------------------


@pytest.mark.parametrize("day", [AFTER_WEEK, dt.date(2025, 11, 20)])
def test_mask_covers_exactly_the_flagged_fires(history: FireHistory, archive: pd.DataFrame, day: dt.date) -> None:
    mask = history.mask(day)
    flags = history.flag(archive, day)
    assert mask.crs.to_epsg() == 4326
    assert list(mask.columns) == ["cell_id", "days", "first_date", "last_date", "fires", "geometry"]
    assert mask["cell_id"].is_unique and (mask["days"] >= 4).all()
    assert (mask["first_date"] <= mask["last_date"]).all() and (mask["last_date"] < day).all()

    flagged = archive[flags["persistent"]]
    assert len(flagged) > 0
    square = mask.set_index("cell_id").loc[flags.loc[flagged.index, "persistent_cell"]]
    assert shapely.intersects_xy(square.geometry.values, flagged["lon"].to_numpy(), flagged["lat"].to_numpy()).all()
    assert (square["days"].to_numpy() == flags.loc[flagged.index, "persistent_days"].to_numpy()).all()
    # ... and no other fire lies inside a mask square.
    others = archive[~flags["persistent"]]
    inside = shapely.STRtree(mask.geometry.values).query(shapely.points(others["lon"], others["lat"]), predicate="within")
    assert inside.size == 0

    # A fire anywhere is flagged exactly where the mask is: probe the centres of
    # every mask cell and of its 8 neighbours (which may hold no fire of their own).
    ixy = mask["cell_id"].str[1:].str.split("_", expand=True).astype(int).to_numpy()
    offsets = np.array([(dx, dy) for dx in (-1, 0, 1) for dy in (-1, 0, 1)])
    around = np.unique((ixy[:, None, :] + offsets[None, :, :]).reshape(-1, 2), axis=0)
    lon, lat = FROM_ALBERS.transform((around[:, 0] + 0.5) * CELL_M, (around[:, 1] + 0.5) * CELL_M)
    probes = history.flag(pd.DataFrame({"lon": lon, "lat": lat}), day)
    assert set(probes.loc[probes["persistent"], "persistent_cell"]) == set(mask["cell_id"])
    assert len(around) > len(mask)  # some neighbours are not persistent


def test_counts_on_the_archive(history: FireHistory) -> None:
    # With the default rule, 50 cells are persistent after the 2022 week (Anshan,
    # Novokuznetsk, Panzhihua, Bokaro...) and 2 after 2025-11-19 (the year before
    # holds only 5 archive dates).
    assert len(history.mask(AFTER_WEEK)) == 50
    assert len(history.mask(dt.date(2025, 11, 20))) == 2
    # Over the whole archive (26 Beijing dates), the most persistent place is the
    # Pangang (Panzhihua Iron and Steel) works in Sichuan: fire on 17 dates.
    everything = history.mask(dt.date(2026, 1, 1), PersistenceRule(window_days=10_000))
    top = everything.sort_values(["days", "fires"], ascending=False).iloc[0]
    assert top["days"] == 17
    centre = gpd.GeoSeries([top.geometry], crs=4326).to_crs(CHINA_ALBERS).centroid.to_crs(4326).iat[0]
    name, km = _nearest_plant_km(centre.x, centre.y, _steel_plants())
    assert name == "Pangang Group Panzhihua Steel Vanadium Co Ltd" and km < 1.5


def test_flag_keeps_the_index_and_handles_missing_positions(history: FireHistory, week: pd.DataFrame) -> None:
    fires = week.head(5).set_index(pd.Index([10, 3, 7, 99, 1])).copy()
    fires.loc[7, "lon"] = np.nan
    flags = history.flag(fires, AFTER_WEEK)
    assert flags.index.equals(fires.index)
    assert flags.loc[7, "persistent_days"] == 0 and flags.loc[7, "persistent_cell"] is pd.NA
    assert flags.dtypes.to_dict() == {"persistent": np.dtype(bool), "persistent_days": np.dtype(np.int64),
                                      "persistent_cell": pd.StringDtype()}
    empty = history.flag(week.iloc[:0], AFTER_WEEK)
    assert len(empty) == 0 and list(empty.columns) == ["persistent", "persistent_days", "persistent_cell"]


def test_flag_handles_a_day_of_100k_fires(history: FireHistory, archive: pd.DataFrame) -> None:
    """100,000 fires made by jittering real archive positions (a geostationary day's worth); no timing asserted."""
    rng = np.random.default_rng(0)
    pick = rng.integers(0, len(archive), 100_000)
    fires = pd.DataFrame({"lon": archive["lon"].to_numpy()[pick] + rng.normal(0, 0.003, 100_000),
                          "lat": archive["lat"].to_numpy()[pick] + rng.normal(0, 0.003, 100_000)})
    flags = history.flag(fires, AFTER_WEEK)
    assert len(flags) == 100_000 and flags["persistent"].any() and not flags["persistent"].all()
