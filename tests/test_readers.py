"""Fire-point readers on the real FIRMS and Himawari files (and broken copies of them)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pandas as pd
import pytest

from pipelines.core.schema import FIRE_DTYPES
from pipelines.fires.load import dedupe, expand_patterns, read_fires
from pipelines.fires.readers import read_points
from pipelines.testing import assert_fire_frame

FIRES = Path(__file__).parent / "data" / "fires"


def utc(text: str) -> pd.Timestamp:
    return pd.Timestamp(text, tz="UTC")


@pytest.mark.parametrize("path", sorted(FIRES.glob("*")), ids=lambda p: p.name)
def test_every_real_variant_reads_into_the_schema(path: Path) -> None:
    frame, skips = read_points(path)
    assert skips == []
    assert len(frame) > 0
    assert_fire_frame(frame)  # the public helper for code built on gridwatch
    assert list(frame.columns) == list(FIRE_DTYPES)
    assert frame.dtypes.astype(str).to_dict() == {c: str(t) for c, t in FIRE_DTYPES.items()}
    assert frame["lat"].between(-90, 90).all() and frame["lon"].between(-180, 180).all()
    assert frame["confidence"].between(0, 100).all()
    assert set(frame["confidence_level"]) <= {"low", "nominal", "high"}
    assert (frame["time_bjt"] - frame["time_utc"]).eq(pd.Timedelta(0)).all()
    assert (frame["time_bjt"].dt.tz_localize(None) - frame["time_utc"].dt.tz_localize(None)).eq(pd.Timedelta(hours=8)).all()
    assert frame["source_row"].min() == (3 if path.name.startswith("H09") else 2)  # line numbers, after the header(s)


def test_unpadded_time_and_us_date() -> None:
    """``6/3/2022`` with ``18`` is 2022-06-03 00:18 UTC (the first row of the file)."""
    frame, _ = read_points(FIRES / "MODIS_C6_1_Global_24h_2022-06-03_sample.csv")
    first = frame.iloc[0]
    assert first["time_utc"] == utc("2022-06-03 00:18")
    assert first["satellite"] == "Terra" and first["sensor"] == "MODIS"
    assert first["confidence"] == 68 and first["confidence_raw"] == "68"
    assert first["scan_km"] == 1.42 and first["track_km"] == 1.18


def test_padded_hhmm() -> None:
    frame, _ = read_points(FIRES / "MODIS_C6_1_Global_7d_2022-05-28_2022-06-04_sample.csv")
    assert frame.iloc[0]["time_utc"] == utc("2022-05-28 00:43")


def test_colon_time_and_viirs_words() -> None:
    modis, _ = read_points(FIRES / "MODIS_C6_Global_MCD14DL_NRT_2019096_sample.txt")
    assert modis.iloc[0]["time_utc"] == utc("2019-04-06 00:15")
    viirs, _ = read_points(FIRES / "VIIRS_I_Global_VNP14IMGTDL_NRT_2019097_sample.txt")
    assert set(viirs["sensor"]) == {"VIIRS"} and set(viirs["satellite"]) == {"Suomi NPP"}
    row = viirs.iloc[0]
    assert row["confidence_raw"] == "nominal" and row["confidence_level"] == "nominal" and row["confidence"] == 55


def test_beijing_stamp_in_acq_date_is_converted_and_checked() -> None:
    """AgriFireInfo rewrote acq_date to Beijing time (``2023/4/5 10:38``) but kept acq_time in UTC (``2:38``)."""
    frame, skips = read_points(FIRES / "noaa_2023-04-05_with_township_address_sample.csv")
    assert skips == []
    first = frame.iloc[0]
    assert first["time_utc"] == utc("2023-04-05 02:38")
    assert first["time_bjt"].strftime("%Y-%m-%d %H:%M") == "2023-04-05 10:38"
    assert first["satellite"] == "NOAA-20" and first["sensor"] == "VIIRS" and first["confidence_level"] == "nominal"
    modis, _ = read_points(FIRES / "modis_2023-04-05_with_township_address_sample.csv")
    assert modis.iloc[0]["time_utc"] == utc("2023-04-05 02:38")
    assert modis["frp_mw"].notna().all()  # the column is spelt "frpm" there


def test_beijing_stamp_that_disagrees_with_acq_time_is_skipped(tmp_path: Path) -> None:
    lines = (FIRES / "viirs_2023-04-05_with_township_address_sample.csv").read_text().splitlines()
    lines[1] = lines[1].replace("2023/4/5 11:30,3:30", "2023/4/5 11:30,4:30")
    bad = tmp_path / "viirs.csv"
    bad.write_text("\n".join(lines) + "\n")
    frame, skips = read_points(bad)
    assert len(frame) == len(lines) - 2
    assert [(s.row, s.field) for s in skips] == [(2, "acq_date")]


def test_beijing_stamp_crossing_midnight() -> None:
    """01:30 Beijing on 4/6 is 17:30 UTC on 4/5: the UTC date differs from acq_date's."""
    text = (
        "latitude,longitude,brightness,scan,track,acq_date,acq_time,satellite,instrument,confidence,version,bright_t31,frp,daynight\n"
        "46.5,127.2,326.5,0.33,0.55,2023/4/6 1:30,17:30,N,VIIRS Suomi-NPP,h,2.0NRT,278.9,2.1,N\n"
    )
    path = Path(__file__).parent / "data" / "tmp_midnight.csv"
    try:
        path.write_text(text)
        frame, skips = read_points(path)
    finally:
        path.unlink()
    assert skips == []
    assert frame.iloc[0]["time_utc"] == utc("2023-04-05 17:30")


def test_himawari_wlf() -> None:
    frame, skips = read_points(FIRES / "H09_20251209_1900_L2WLF010_FLDK.06001_06001.csv")
    assert skips == [] and len(frame) == 212
    first = frame.iloc[0]
    assert first["time_utc"] == utc("2025-12-09 19:02")
    assert first["satellite"] == "Himawari-9" and first["sensor"] == "AHI"
    # FRP is given per m² of the 3.73 km² cell: 3.75 W/m² x 3.73 km² = 13.99 MW.
    assert first["frp_mw"] == pytest.approx(3.75 * 3.73)
    assert first["confidence_level"] == "low"  # Reliability 1
    assert first["scan_km"] * first["track_km"] == pytest.approx(3.73)


def _copy_with(tmp_path: Path, name: str, edit) -> Path:  # noqa: ANN001
    source = FIRES / "MODIS_C6_1_Global_7d_2022-05-28_2022-06-04_sample.csv"
    lines = source.read_text().splitlines()
    path = tmp_path / name
    path.write_text("\n".join(edit(lines)) + "\n")
    return path


def test_truncated_file_keeps_the_rows_before_the_cut(tmp_path: Path) -> None:
    source = FIRES / "MODIS_C6_1_Global_7d_2022-05-28_2022-06-04_sample.csv"
    text = source.read_text()
    cut = text[: text.index("\n", len(text) // 2) + 18]  # half-way into a line
    path = tmp_path / "truncated.csv"
    path.write_text(cut)
    frame, skips = read_points(path)
    complete = cut.count("\n") - 1
    assert len(frame) == complete
    assert len(skips) == 1 and skips[0].row == complete + 2


def test_missing_columns_skip_the_file(tmp_path: Path) -> None:
    path = _copy_with(tmp_path, "nocols.csv", lambda lines: [",".join(c for c in lines[0].split(",") if c != "acq_time")] + lines[1:])
    frame, skips = read_points(path)
    assert frame.empty
    assert len(skips) == 1 and skips[0].row is None and "acq_time" in skips[0].reason


def test_out_of_range_coordinates_are_skipped_by_row(tmp_path: Path) -> None:
    def edit(lines: list[str]) -> list[str]:
        lines[3] = "95.5" + lines[3][lines[3].index(","):]
        lines[5] = lines[5].split(",", 1)[0] + ",-200.1," + lines[5].split(",", 2)[2]
        return lines

    frame, skips = read_points(_copy_with(tmp_path, "range.csv", edit))
    assert [(s.row, s.field) for s in skips] == [(4, "latitude"), (6, "longitude")]
    assert len(frame) == 48


def test_unreadable_file_is_one_skip(tmp_path: Path) -> None:
    path = tmp_path / "broken.csv"
    path.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00binary")
    frame, skips = read_points(path)
    assert frame.empty and len(skips) == 1 and "binary" in skips[0].reason


def test_lazy_read_filters_region_and_beijing_day(root: Path) -> None:
    paths = expand_patterns(["geodata/fires/*.csv"], root)
    lazy = read_fires(paths, bbox=(110, 28, 123, 43), day=dt.date(2022, 6, 3))
    assert lazy.points.npartitions == len(paths)
    points, skips, counts = lazy.compute()
    assert skips == []
    assert (points["time_bjt"].dt.date == dt.date(2022, 6, 3)).all()
    assert points["lon"].between(110, 123).all()
    unique, repeats = dedupe(points)
    # The 24 h file of 2022-06-03 is contained in the 7-day export: every one of its points is a repeat.
    assert repeats == counts["MODIS_C6_1_Global_24h_2022-06-03_ncp-subset.csv"]["rows_kept"] > 0
    assert unique["fire_id"].is_unique and unique["time_utc"].is_monotonic_increasing


def test_date_pattern_in_glob(tmp_path: Path) -> None:
    (tmp_path / "fires_20220603.csv").write_text("x")
    (tmp_path / "fires_20220604.csv").write_text("x")
    found = expand_patterns(["fires_{date:%Y%m%d}.csv"], tmp_path, dt.date(2022, 6, 3))
    assert [p.name for p in found] == ["fires_20220603.csv"]


# ----------------------------------------------------------------------- damaged rows of a real FIRMS file


def _damaged(tmp_path: Path, index: int, change) -> tuple[Path, int]:  # noqa: ANN001
    """The real MODIS sample with data line ``index`` changed; returns the file and that line's number."""
    return _copy_with(tmp_path, "damaged.csv", lambda lines: lines[:index] + [change(lines[index])] + lines[index + 1:]), index + 1


@pytest.mark.parametrize("change, field", [
    (lambda line: line.replace(",", ",\x00", 1), "longitude"),                      # a stray NUL byte
    (lambda line: "\x00" * 700 + line, "latitude"),                                  # a run of them, all in the first 4 KiB
    (lambda line: line.replace(",", ',"' + "x," * 100_000 + '",', 1), "longitude"),   # a quoted field of 200 KiB: over the csv limit
    (lambda line: line.replace(",", "," + "9" * 200 * 1024, 1), "longitude"),        # an unquoted 200 KiB field
    (lambda line: line.replace(",", ',"', 1), "longitude"),                          # a stray quote
], ids=["nul", "nul_run", "huge_quoted_field", "huge_field", "stray_quote"])
def test_one_damaged_row_loses_only_that_row(tmp_path: Path, change, field: str) -> None:  # noqa: ANN001
    clean, _ = read_points(FIRES / "MODIS_C6_1_Global_7d_2022-05-28_2022-06-04_sample.csv")
    path, line = _damaged(tmp_path, 3, change)
    frame, skips = read_points(path)
    assert [(s.file, s.row, s.field) for s in skips] == [("damaged.csv", line, field)]
    assert len(frame) == len(clean) - 1
    expected = clean.drop(index=clean.index[2]).reset_index(drop=True).drop(columns="source_file")
    pd.testing.assert_frame_equal(frame.reset_index(drop=True).drop(columns="source_file"), expected)


def test_binary_files_are_still_rejected_whole(tmp_path: Path) -> None:
    source = FIRES / "MODIS_C6_1_Global_7d_2022-05-28_2022-06-04_sample.csv"
    archive = tmp_path / "archive.csv"
    import zipfile

    with zipfile.ZipFile(archive, "w") as z:
        z.write(source, source.name)
    frame, skips = read_points(archive)
    assert frame.empty and [(s.row, s.field) for s in skips] == [(None, None)] and "zip" in skips[0].reason
    noise = tmp_path / "noise.csv"
    noise.write_bytes(bytes(range(32)) * 200)
    frame, skips = read_points(noise)
    assert frame.empty and "binary" in skips[0].reason


def test_utf16_with_bom_is_read(tmp_path: Path) -> None:
    source = FIRES / "MODIS_C6_1_Global_7d_2022-05-28_2022-06-04_sample.csv"
    path = tmp_path / "utf16.csv"
    path.write_bytes(source.read_text().encode("utf-16"))
    frame, skips = read_points(path)
    assert skips == [] and len(frame) == len(read_points(source)[0])


@pytest.mark.parametrize(("column", "value", "message"), [("frp_mw", -1.0, "negative FRP"), ("lat", 95.0, "lon/lat outside"),
                                                          ("scan_km", 0.0, "scan_km outside"), ("confidence", 120.0, "confidence outside")])
def test_assert_fire_frame_names_what_breaks_the_contract(column: str, value: float, message: str) -> None:
    frame, _ = read_points(FIRES / "MODIS_C6_1_Global_24h_2022-06-03_sample.csv")
    frame.loc[frame.index[0], column] = value
    with pytest.raises(AssertionError, match=message):
        assert_fire_frame(frame)
    with pytest.raises(AssertionError, match="columns"):
        assert_fire_frame(frame.drop(columns="daynight"))
