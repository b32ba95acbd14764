"""Tests for pipelines.fires.events: fusing fire observations into fire events.

The inputs are the project's real FIRMS and Himawari samples (read with
``read_points`` and ``dedupe``). Distances in the checks come from pyproj's
WGS84 geodesic, independently of the module's own distance; a brute-force
all-pairs version of the greedy rule is the reference for the assignment.
"""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import shapely
from pyproj import Geod

from pipelines.fires.events import (
    EVENT_COLUMNS,
    FusionTolerance,
    assign_events,
    events_table,
    pair_tolerance_km,
)
from pipelines.fires.load import dedupe
from pipelines.fires.readers import read_points

ROOT = Path(__file__).resolve().parent.parent
NCP_7D = ROOT / "geodata/fires/MODIS_C6_1_Global_7d_2022-05-28_2022-06-04_ncp-subset.csv"
NCP_24H = ROOT / "geodata/fires/MODIS_C6_1_Global_24h_2022-06-03_ncp-subset.csv"
SAMPLES = sorted((ROOT / "tests/data/fires").glob("*_sample.*")) + [
    ROOT / "tests/data/fires/H09_20251209_1900_L2WLF010_FLDK.06001_06001.csv"
]
REAL_FILES = [NCP_7D, NCP_24H, *SAMPLES]

GEOD = Geod(ellps="WGS84")
# The module measures straight lines between centres on the ellipsoid; over a
# few km they are shorter than the geodesic by d^3 / 24R^2, far below this.
SLACK_KM = 1e-5


def _read(path: Path) -> pd.DataFrame:
    frame, _ = read_points(path)
    frame, _ = dedupe(frame)
    return frame


def _utc(times: pd.Series) -> np.ndarray:
    """tz-aware instants as naive UTC datetime64[ns] (fast numpy comparisons)."""
    return times.dt.tz_convert("UTC").dt.tz_localize(None).dt.as_unit("ns").to_numpy()


def _km(lon1, lat1, lon2, lat2) -> np.ndarray:
    """WGS84 geodesic distance, km (arrays broadcast)."""
    arrays = (np.asarray(a, dtype=float) for a in (lon1, lat1, lon2, lat2))
    lon1, lat1, lon2, lat2 = np.broadcast_arrays(*arrays)
    _, _, metres = GEOD.inv(lon1, lat1, lon2, lat2)
    return np.asarray(metres) / 1000.0


def _hours(a: pd.Timestamp, b: pd.Timestamp) -> float:
    return (b - a) / pd.Timedelta(hours=1)


@pytest.fixture(scope="module")
def ncp7() -> pd.DataFrame:
    frame = _read(NCP_7D)
    frame["event_id"] = assign_events(frame)
    return frame


def _check_events(fires: pd.DataFrame, event_id: pd.Series, tolerance: FusionTolerance) -> int:
    """Assert property 1 (complete linkage in space, chained in time); number of pairs checked."""
    pairs = 0
    for _, members in fires.groupby(event_id, sort=False):
        if len(members) == 1:
            continue
        i, j = np.triu_indices(len(members), k=1)
        lon, lat = members["lon"].to_numpy(), members["lat"].to_numpy()
        scan, track = members["scan_km"].to_numpy(), members["track_km"].to_numpy()
        dist = _km(lon[i], lat[i], lon[j], lat[j])
        limit = pair_tolerance_km(scan[i], track[i], scan[j], track[j], tolerance)
        assert (dist <= limit + SLACK_KM).all(), members[["fire_id", "lon", "lat"]]
        times = members["time_utc"].sort_values()
        assert (times.diff().dropna() <= pd.Timedelta(hours=tolerance.max_gap_h)).all()
        pairs += len(i)
    return pairs


def _reference(fires: pd.DataFrame, tolerance: FusionTolerance) -> pd.Series:
    """The greedy rule of the module docstring, literally, over all pairs (small inputs only)."""
    fid = fires["fire_id"].to_numpy(dtype=str)
    t = _utc(fires["time_utc"])
    lon, lat = fires["lon"].to_numpy(), fires["lat"].to_numpy()
    scan, track = fires["scan_km"].to_numpy(), fires["track_km"].to_numpy()
    gap = np.timedelta64(int(tolerance.max_gap_h * 3600e9), "ns")
    order = sorted(range(len(fires)), key=lambda k: (t[k], fid[k]))
    events: list[list[int]] = []
    ids: list[str] = []
    result = np.empty(len(fires), dtype=object)
    for p in order:
        dist = _km(lon[p], lat[p], lon, lat)
        limit = pair_tolerance_km(scan[p], track[p], scan, track, tolerance)
        best, best_key = None, None
        for e, members in enumerate(events):
            if t[members[-1]] < t[p] - gap:
                continue
            if (dist[members] <= limit[members]).all():
                key = (dist[members].min(), ids[e])
                if best_key is None or key < best_key:
                    best, best_key = e, key
        if best is None:
            events.append([p])
            ids.append("E" + fid[p])
            best = len(events) - 1
        else:
            events[best].append(p)
        result[p] = ids[best]
    return pd.Series(result, index=fires.index, dtype=pd.StringDtype())


def _terra_aqua_pairs(fires: pd.DataFrame) -> list[tuple[object, object]]:
    """Real same-field pairs (index labels): Terra then Aqua on the same Beijing date, within
    the default tolerance, at most 5 h apart.

    Only pairs with no other observation within 10 km of either from 5 h
    before the Terra one to 5 h after the Aqua one, so that nothing else can
    compete for them and the greedy rule must put them together.
    """
    t = _utc(fires["time_utc"])
    day = fires["time_bjt"].dt.date.to_numpy()
    sat = fires["satellite"].to_numpy(dtype=object)
    lon, lat = fires["lon"].to_numpy(), fires["lat"].to_numpy()
    scan, track = fires["scan_km"].to_numpy(), fires["track_km"].to_numpy()
    five_h = np.timedelta64(5, "h")
    pairs = []
    for i in np.flatnonzero(sat == "Terra"):
        gap = t - t[i]
        aqua = (sat == "Aqua") & (day == day[i]) & (gap > np.timedelta64(0)) & (gap <= five_h)
        for j in np.flatnonzero(aqua):
            if _km(lon[i], lat[i], lon[j], lat[j]) > pair_tolerance_km(scan[i], track[i], scan[j], track[j]):
                continue
            others = (t >= t[i] - five_h) & (t <= t[j] + five_h)
            others[[i, j]] = False
            near = (_km(lon[i], lat[i], lon[others], lat[others]) < 10) | (
                _km(lon[j], lat[j], lon[others], lat[others]) < 10
            )
            if not near.any():
                pairs.append((fires.index[i], fires.index[j]))
    return pairs


@pytest.fixture(scope="module")
def terra_aqua(ncp7) -> list[tuple[object, object]]:
    return _terra_aqua_pairs(ncp7)


def _has_terra_and_aqua(fires: pd.DataFrame, event_id: pd.Series) -> int:
    terra = fires["satellite"].eq("Terra").groupby(event_id).any()
    aqua = fires["satellite"].eq("Aqua").groupby(event_id).any()
    return int((terra & aqua).sum())


# --- tolerance -------------------------------------------------------------


def test_pair_tolerance_is_sum_of_half_diagonals_or_fixed():
    got = pair_tolerance_km([1.0, 3.0], [1.0, 4.0], [1.0, np.nan], [1.0, 2.0])
    # 3 x 4 km has a 5 km diagonal; an unknown size counts as 1 km x 1 km.
    np.testing.assert_allclose(got, [np.sqrt(2), 2.5 + 0.5 * np.hypot(1.0, 2.0)])
    np.testing.assert_allclose(pair_tolerance_km(1.0, 1.0, 4.8, 2.0, FusionTolerance(distance_km=3.0)), 3.0)
    with pytest.raises(ValueError):
        FusionTolerance(distance_km=-1.0)
    with pytest.raises(ValueError):
        FusionTolerance(max_gap_h=float("nan"))


# --- 1. complete linkage in space, chained in time ---------------------------


@pytest.mark.parametrize("path", REAL_FILES, ids=lambda p: p.name)
def test_events_obey_tolerances_on_real_data(path):
    fires = _read(path)
    event_id = assign_events(fires)
    assert event_id.dtype == pd.StringDtype() and event_id.index.equals(fires.index)
    assert event_id.notna().all()
    _check_events(fires, event_id, FusionTolerance())


@pytest.mark.parametrize("path", [NCP_7D, NCP_24H, SAMPLES[-1]], ids=lambda p: p.name)
@pytest.mark.parametrize("tolerance", [FusionTolerance(), FusionTolerance(distance_km=3.0, max_gap_h=1.0)])
def test_assignment_matches_brute_force_reference(path, tolerance):
    # The grid hashing must find every candidate the all-pairs rule would.
    fires = _read(path)
    got = assign_events(fires, tolerance)
    pd.testing.assert_series_equal(got, _reference(fires, tolerance), check_names=False)
    assert got.nunique() < len(fires)  # something did fuse


def test_event_counts_on_ncp(ncp7):
    # 757 MODIS detections in 7 days: mostly single wheat-stubble pixels,
    # a sixth of them fused with a neighbour of the same overpass or another.
    assert _check_events(ncp7, ncp7["event_id"], FusionTolerance()) > 100
    assert 500 < ncp7["event_id"].nunique() < 700
    assert 50 < (ncp7["event_id"].value_counts() > 1).sum()


# --- 2. Terra and Aqua of one field join ------------------------------------------


def test_terra_and_aqua_of_one_field_join(ncp7, terra_aqua):
    assert len(terra_aqua) >= 2
    for i, j in terra_aqua:
        assert ncp7.at[i, "event_id"] == ncp7.at[j, "event_id"]
        # Real overpasses: Terra in the morning, Aqua early in the afternoon (Beijing time).
        assert ncp7.at[i, "time_bjt"].hour < 12 <= ncp7.at[j, "time_bjt"].hour < 15
    # Day pairs and night pairs (Terra ~22:00, Aqua ~02:00 Beijing time).
    assert _has_terra_and_aqua(ncp7, ncp7["event_id"]) >= 8


# --- 3. stable ids ---------------------------------------------------------------------


def test_ids_are_stable_across_runs_and_row_orders(ncp7):
    fires = ncp7.drop(columns="event_id")
    first = assign_events(fires)
    pd.testing.assert_series_equal(first, assign_events(fires))
    pd.testing.assert_series_equal(first, ncp7["event_id"])
    shuffled = fires.sample(frac=1.0, random_state=7)
    again = assign_events(shuffled)
    assert again.index.equals(shuffled.index)
    by_fire = dict(zip(fires["fire_id"], first))
    assert [by_fire[f] for f in shuffled["fire_id"]] == again.tolist()
    # Reindexed with new labels, too.
    relabelled = shuffled.reset_index(drop=True)
    assert assign_events(relabelled).tolist() == again.tolist()


def test_event_id_is_first_observation_fire_id(ncp7):
    for event, members in ncp7.groupby("event_id"):
        first = members.sort_values(["time_utc", "fire_id"]).iloc[0]
        assert event == "E" + first["fire_id"]


# --- 4. configured tolerances ---------------------------------------------------------------


def test_small_max_gap_splits_terra_aqua_pairs(ncp7, terra_aqua):
    fires = ncp7.drop(columns="event_id")
    tolerance = FusionTolerance(max_gap_h=1.0)
    event_id = assign_events(fires, tolerance)
    _check_events(fires, event_id, tolerance)
    assert terra_aqua
    for i, j in terra_aqua:
        assert event_id[i] != event_id[j]
    # Terra and Aqua pass over North China at least 1.6 h apart.
    assert _has_terra_and_aqua(fires, event_id) == 0
    assert event_id.nunique() > ncp7["event_id"].nunique()


def test_fixed_distance_changes_grouping(ncp7, terra_aqua):
    fires = ncp7.drop(columns="event_id")
    tight = assign_events(fires, FusionTolerance(distance_km=0.5))
    wide = assign_events(fires, FusionTolerance(distance_km=10.0))
    default = ncp7["event_id"]
    assert tight.nunique() > default.nunique() > wide.nunique()
    _check_events(fires, tight, FusionTolerance(distance_km=0.5))
    _check_events(fires, wide, FusionTolerance(distance_km=10.0))
    # The real Terra/Aqua pairs are 0.8-1.4 km apart: 0.5 km splits them.
    assert terra_aqua
    for i, j in terra_aqua:
        assert tight[i] != tight[j] and wide[i] == wide[j]
    # 10 km fuses some pair beyond its pixel-derived tolerance.
    beyond = False
    for _, members in fires.groupby(wide):
        for a, b in itertools.combinations(members.itertuples(), 2):
            limit = pair_tolerance_km(a.scan_km, a.track_km, b.scan_km, b.track_km)
            beyond |= bool(_km(a.lon, a.lat, b.lon, b.lat) > limit)
    assert beyond


def test_bad_input_is_rejected(ncp7):
    fires = ncp7.drop(columns="event_id")
    with pytest.raises(ValueError, match="dedupe"):
        assign_events(pd.concat([fires.iloc[:3], fires.iloc[:1]]))
    naive = fires.iloc[:3].assign(time_utc=fires["time_utc"].iloc[:3].dt.tz_localize(None))
    with pytest.raises(ValueError, match="tz-aware"):
        assign_events(naive)


def test_unknown_pixel_size_counts_as_one_km(ncp7):
    # Two real centres 1.0-1.4 km apart fuse as 1 km pixels (tolerance
    # sqrt(2) km) and not as 0.1 km ones.
    fires = ncp7.drop(columns="event_id").iloc[:2].copy()
    fires["lon"] = [116.0, 116.0]
    fires["lat"] = [39.0, 39.0 + 1.2 / 111.0]
    fires["fire_id"] = ["a" * 16, "b" * 16]
    fires["scan_km"] = np.nan
    fires["track_km"] = np.nan
    assert assign_events(fires).nunique() == 1
    assert assign_events(fires.assign(scan_km=0.1, track_km=0.1)).nunique() == 2
    table = events_table(fires.assign(event_id=assign_events(fires)))
    # Two 1 km x 1 km footprints (the union, in degrees, spans 2.2 km north-south).
    minx, miny, maxx, maxy = table.geometry.iloc[0].bounds
    assert (maxy - miny) * 110.574 == pytest.approx(2.2, abs=0.01)


# --- 5. events_table ---------------------------------------------------------------------------


def test_events_table_on_real_data(ncp7):
    table = events_table(ncp7)
    assert list(table.columns) == EVENT_COLUMNS + ["geometry"]
    assert table.crs.to_epsg() == 4326
    assert table["event_id"].is_unique and set(table["event_id"]) == set(ncp7["event_id"])
    assert len(table) == ncp7["event_id"].nunique()
    assert table["observations"].sum() == len(ncp7)
    assert (table["first_seen_utc"] <= table["last_seen_utc"]).all()
    assert str(table["first_seen_utc"].dt.tz) == "UTC"
    assert str(table["first_seen_bjt"].dt.tz) == "Asia/Shanghai"
    assert (table["first_seen_bjt"] == table["first_seen_utc"]).all()
    sorted_table = table.sort_values(["first_seen_utc", "event_id"], ignore_index=True)
    assert table["event_id"].tolist() == sorted_table["event_id"].tolist()

    by_event = table.set_index("event_id")
    groups = ncp7.groupby("event_id")
    np.testing.assert_allclose(by_event["max_frp_mw"], groups["frp_mw"].max().reindex(by_event.index))
    np.testing.assert_allclose(by_event["lon"], groups["lon"].mean().reindex(by_event.index))
    np.testing.assert_allclose(by_event["lat"], groups["lat"].mean().reindex(by_event.index))
    span = (groups["time_utc"].max() - groups["time_utc"].min()) / pd.Timedelta(hours=1)
    np.testing.assert_allclose(by_event["duration_h"], span.reindex(by_event.index))
    np.testing.assert_array_equal(by_event["observations"], groups.size().reindex(by_event.index))
    assert table["observations"].dtype == np.int64
    assert set(table["sensors"]) == {"MODIS"}
    assert set(table["satellites"]) == {"Aqua", "Terra", "Aqua, Terra"}
    assert table["cell_id"].isna().all()  # no cell_id column in the input

    geoms = table.geometry.to_numpy()
    assert set(shapely.get_type_id(geoms)) <= {3, 6} and shapely.is_valid(geoms).all()
    centres = shapely.points(ncp7["lon"], ncp7["lat"])
    owner = by_event.geometry.reindex(ncp7["event_id"]).to_numpy()
    assert shapely.covers(owner, centres).all()
    # Members of one event overlap or touch: the union is one polygon for most.
    assert (shapely.get_type_id(geoms[table["observations"].to_numpy() > 1]) == 3).mean() > 0.9


def test_events_table_window_union_and_cell(ncp7):
    # Six real observations at distinct times, grouped by hand into three events.
    rows = ncp7.drop_duplicates("time_utc").iloc[:6].drop(columns="event_id").reset_index(drop=True)
    rows["event_id"] = ["E1", "E1", "E1", "E2", "E2", "E3"]
    rows["win_after_work"] = [False, True, False, False, False, False]
    rows["win_first_half_night"] = [False, False, False, False, False, True]
    rows["win_before_rain"] = pd.array([True, False, None, False, None, None], dtype="boolean")
    rows["win_before_sowing"] = pd.array([None, None, None, None, None, None], dtype="boolean")
    rows["cell_id"] = pd.array([None, "c2", "c1", None, None, "c9"], dtype=pd.StringDtype())
    rows.loc[5, "frp_mw"] = np.nan
    shuffled = rows.sample(frac=1.0, random_state=3)  # order must not matter

    table = events_table(shuffled).set_index("event_id").loc[["E1", "E2", "E3"]]
    assert list(table.columns[-5:]) == [
        "win_after_work",
        "win_first_half_night",
        "win_before_rain",
        "win_before_sowing",
        "geometry",
    ]
    for c in ["win_after_work", "win_first_half_night", "win_before_rain", "win_before_sowing"]:
        assert table[c].dtype == "boolean"
    assert table["win_after_work"].tolist() == [True, False, False]
    assert table["win_first_half_night"].tolist() == [False, False, True]
    assert table["win_before_rain"].tolist() == [True, False, pd.NA]
    assert table["win_before_sowing"].isna().all()
    # First cell in time order, skipping members outside the grid.
    assert table.loc["E1", "cell_id"] == "c2"
    assert pd.isna(table.loc["E2", "cell_id"])
    assert table.loc["E3", "cell_id"] == "c9"
    assert np.isnan(table.loc["E3", "max_frp_mw"])
    assert table.loc["E1", "max_frp_mw"] == rows["frp_mw"].iloc[:3].max()
    assert table.loc["E1", "observations"] == 3
    assert table.loc["E1", "first_seen_utc"] == rows["time_utc"].iloc[:3].min()
    assert table.loc["E1", "last_seen_utc"] == rows["time_utc"].iloc[:3].max()


def test_empty_input(ncp7):
    empty = ncp7.iloc[:0]
    ids = assign_events(empty.drop(columns="event_id"))
    assert len(ids) == 0 and ids.dtype == pd.StringDtype()
    table = events_table(empty.assign(win_after_work=pd.Series(dtype=bool)))
    assert len(table) == 0
    assert list(table.columns) == EVENT_COLUMNS + ["win_after_work", "geometry"]
    assert table.crs.to_epsg() == 4326
    assert str(table["first_seen_utc"].dt.tz) == "UTC"


# --- 6. scale ----------------------------------------------------------------------------------


def test_fifty_thousand_observations(ncp7):
    # Synthetic: 50,000 observations made by jittering the real 7-day NCP
    # detections (about 3 km in position, up to 3 h in time), so that many
    # fall within each other's tolerance.
    rng = np.random.default_rng(20220603)
    n = 50_000
    base = ncp7.drop(columns="event_id")
    fires = base.iloc[rng.integers(0, len(base), n)].reset_index(drop=True)
    fires["lon"] += rng.normal(0.0, 0.03, n)
    fires["lat"] += rng.normal(0.0, 0.03, n)
    fires["time_utc"] += pd.to_timedelta(rng.integers(0, 3 * 3600, n), unit="s")
    fires["fire_id"] = [f"{i:016x}" for i in rng.permutation(n)]
    tolerance = FusionTolerance()

    event_id = assign_events(fires, tolerance)
    assert event_id.notna().all() and 1_000 < event_id.nunique() < n

    sizes = event_id.value_counts()
    sample = rng.choice(sizes.index[sizes > 1].to_numpy(), 300, replace=False)
    in_sample = event_id.isin(sample)
    assert _check_events(fires[in_sample], event_id[in_sample], tolerance) > 300

    # No missed join: when an observation started an event, no event alive
    # then had all its earlier members within tolerance of it.
    t = _utc(fires["time_utc"])
    fid = fires["fire_id"].to_numpy(dtype=str)
    lon, lat = fires["lon"].to_numpy(), fires["lat"].to_numpy()
    scan, track = fires["scan_km"].to_numpy(), fires["track_km"].to_numpy()
    ids = event_id.to_numpy(dtype=str)
    positions = event_id.groupby(event_id).indices  # RangeIndex: labels are positions
    starters = np.flatnonzero(ids == np.char.add("E", fid))
    gap = np.timedelta64(5, "h")
    checked = 0
    for q in rng.choice(starters, 300, replace=False):
        box = np.flatnonzero((np.abs(lon - lon[q]) < 0.1) & (np.abs(lat - lat[q]) < 0.1))
        box = box[(t[box] < t[q]) | ((t[box] == t[q]) & (fid[box] < fid[q]))]
        near = box[_km(lon[q], lat[q], lon[box], lat[box]) <= 2 * 0.5 * np.hypot(3.2, 1.7)]
        for event in set(ids[near]):
            members = positions[event]
            members = members[(t[members] < t[q]) | ((t[members] == t[q]) & (fid[members] < fid[q]))]
            if t[members].max() < t[q] - gap:
                continue
            limit = pair_tolerance_km(scan[members], track[members], scan[q], track[q])
            assert (_km(lon[q], lat[q], lon[members], lat[members]) > limit - SLACK_KM).any()
            checked += 1
    assert checked > 50


def test_terra_and_aqua_join_over_a_real_burn(tmp_path):
    """New Mexico, 2022-05-28..06-04 (a real 7-day FIRMS export, subset in tests/data):
    a large fire seen by both satellites every day gives many Terra+Aqua events."""
    fires = _read(ROOT / "tests/data/fires/MODIS_C6_1_Global_7d_2022-05-28_2022-06-04_new-mexico-subset.csv")
    event_id = assign_events(fires)
    _check_events(fires, event_id, FusionTolerance())
    both = _has_terra_and_aqua(fires, event_id)
    assert both >= 30
    # With a one-hour gap the morning and afternoon overpasses can no longer join.
    assert _has_terra_and_aqua(fires, assign_events(fires, FusionTolerance(max_gap_h=1.0))) < both / 3
