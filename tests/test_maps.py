"""Tests of the supervisors' offline maps (pipelines.publish.maps).

The grid is four real Tianditu counties around Lankao (兰考, Henan); the fires are
placed inside them by coordinates and attributed here with real geometry, so a
"touching" fire really has a footprint crossing the county boundary.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import shapely

import pipelines
from pipelines.core.schema import (
    ATTRIBUTION_DTYPES,
    BEIJING_TZ,
    FIRE_DTYPES,
    GRID_COLUMNS,
    WGS84,
)
from pipelines.core.settings import basemap_key
from pipelines.grid import chinacrs
from pipelines.publish import mappage, maps
from pipelines.publish.pages import check_self_contained, static_text
from pipelines.testing import CHROMIUM

COUNTIES = Path(__file__).resolve().parents[1] / "geodata" / "china_counties.parquet"

EVIL_NAME = "<script>alert('x')</script>封丘网格"

# county adcode -> (cell_id, cell_name, supervisor)
GRID_SPEC = {
    "410225": ("410225/兰考/01", "兰考县城关网格", "张伟"),
    "410727": ("410727-07", EVIL_NAME, "李娜"),
    "410783": ("410783-03", "长垣市蒲西网格", "王芳"),
    "410221": ("410221-01", "杞县无火网格", "刘洋"),  # no fire: must not be drawn on the overview
}
LANKAO, FENGQIU, CHANGYUAN, QIXIAN = (spec[0] for spec in GRID_SPEC.values())

# VIIRS I-band pixel near 35°N: 375 m = ~0.0041° lon x 0.0034° lat.
HALF_W, HALF_H = 0.00206, 0.0017

FIRE_SPECS = [
    # lon, lat, UTC time, sensor, satellite, product, conf, level, raw, FRP, D/N, after work, first half night
    (
        114.95,
        34.88,
        "2022-06-03 11:30",
        "AHI",
        "Himawari-9",
        "L2WLF 010",
        80.0,
        "high",
        "3",
        15.4,
        "D",
        True,
        False,
    ),
    (
        114.90,
        34.85,
        "2022-06-03 14:30",
        "MODIS",
        "Terra",
        "MCD14DL C6.1 NRT",
        72.0,
        "nominal",
        "72",
        21.7,
        "N",
        False,
        True,
    ),
    (
        114.69,
        35.19,
        "2022-06-03 05:36",
        "VIIRS",
        "Suomi NPP",
        "VNP14IMGTDL 2.0NRT",
        100.0,
        "high",
        "h",
        np.nan,
        "D",
        False,
        False,
    ),
    # centre in Fengqiu, footprint crosses into Lankao
    (
        114.7741,
        34.9191,
        "2022-06-03 12:10",
        "AHI",
        "Himawari-9",
        "L2WLF 010",
        60.0,
        "nominal",
        "2",
        8.0,
        "N",
        False,
        True,
    ),
    # Dengfeng: in no cell of this grid
    (
        113.00,
        34.50,
        "2022-06-03 05:40",
        "VIIRS",
        "NOAA-20",
        "VJ114IMGTDL 2.0NRT",
        50.0,
        "nominal",
        "n",
        4.1,
        "D",
        False,
        False,
    ),
]
TOUCHING_INDEX, OUTSIDE_INDEX = 3, 4


def build_grid() -> gpd.GeoDataFrame:
    """Grid cells (GRID_COLUMNS) made of real county polygons."""
    counties = gpd.read_parquet(COUNTIES)
    counties = counties[counties["district_adcode"].isin(GRID_SPEC)].set_index("district_adcode")
    rows = []
    for adcode, (cell_id, name, supervisor) in GRID_SPEC.items():
        county = counties.loc[adcode]
        rows.append(
            {
                "cell_id": cell_id,
                "cell_name": name,
                "county_code": adcode,
                "county_name": county["district_name"],
                "province_code": county["province_adcode"],
                "province_name": county["province_name"],
                "supervisor": supervisor,
                "geometry": county["geometry"],
            }
        )
    grid = gpd.GeoDataFrame(rows, columns=GRID_COLUMNS, geometry="geometry", crs=WGS84)
    return grid.astype({c: "string" for c in GRID_COLUMNS if c != "geometry"})


def _attribute(point: shapely.Point, footprint: shapely.Polygon, grid: gpd.GeoDataFrame) -> dict:
    """Centre cell and touched cells with real geometry, as the attribution stage would."""
    centre = grid[grid.contains(point)]
    touched = sorted(grid.loc[grid.intersects(footprint), "cell_id"])
    if centre.empty:
        attrs = {c: pd.NA for c in ATTRIBUTION_DTYPES if c != "cells_touched"}
    else:
        attrs = {c: centre.iloc[0][c] for c in ATTRIBUTION_DTYPES if c != "cells_touched"}
    return attrs | {"cells_touched": touched}


def build_fires(grid: gpd.GeoDataFrame, specs: list[tuple] = FIRE_SPECS) -> gpd.GeoDataFrame:
    """Attributed fires with every schema column, windows and pixel footprints."""
    rows = []
    for i, (lon, lat, t, sensor, sat, product, conf, level, raw, frp, dn, after, night) in enumerate(specs):
        point = shapely.Point(lon, lat)
        footprint = shapely.box(lon - HALF_W, lat - HALF_H, lon + HALF_W, lat + HALF_H)
        time_utc = pd.Timestamp(t, tz="UTC")
        rows.append(
            {
                "fire_id": f"fire-{i}",
                "time_utc": time_utc,
                "time_bjt": time_utc.tz_convert(BEIJING_TZ),
                "lon": lon,
                "lat": lat,
                "sensor": sensor,
                "satellite": sat,
                "product": product,
                "confidence": conf,
                "confidence_level": level,
                "confidence_raw": raw,
                "frp_mw": frp,
                "daynight": dn,
                "cloud_fraction": float("nan"),
                "scan_km": 0.375,
                "track_km": 0.375,
                "source_file": "test.csv",
                "source_row": i + 2,
                "source_col": pd.NA,
                "agency_province": pd.NA,
                "agency_city": pd.NA,
                "agency_county": pd.NA,
                "agency_township": pd.NA,
                **_attribute(point, footprint, grid),
                "sunset_bjt": pd.Timestamp("2022-06-03 19:35", tz=BEIJING_TZ),
                "win_after_work": after,
                "win_first_half_night": night,
                "win_before_rain": pd.NA if i % 2 else True,
                "win_before_sowing": pd.NA,
                "footprint": footprint,
                "geometry": point,
            }
        )
    fires = gpd.GeoDataFrame(rows, geometry="geometry", crs=WGS84)
    dtypes = {
        **FIRE_DTYPES,
        **ATTRIBUTION_DTYPES,
        "win_after_work": bool,
        "win_first_half_night": bool,
        "win_before_rain": "boolean",
        "win_before_sowing": "boolean",
    }
    return fires.astype({c: t for c, t in dtypes.items() if c != "cells_touched"})


@pytest.fixture(scope="module")
def grid() -> gpd.GeoDataFrame:
    return build_grid()


@pytest.fixture(scope="module")
def fires(grid: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    return build_fires(grid)


def render(m, tmp_path: Path, name: str = "map.html", *, inline: bool = False) -> str:
    path = tmp_path / name
    maps.save_map(m, path, inline=inline)
    return path.read_text(encoding="utf-8")


def js_strings(page: str) -> str:
    """The page with JSON string escapes (\\uXXXX, \\") undone: roughly what the
    browser's JavaScript sees as strings, i.e. what ends up in innerHTML."""
    page = re.sub(r"\\u([0-9a-fA-F]{4})", lambda m: chr(int(m.group(1), 16)), page)
    return page.replace('\\"', '"')


def page_spec(page: str) -> dict | None:
    """The map description of a page written by ``maps.MapPage`` (a cell map), None for a folium page."""
    found = re.search(r'<script type="application/json" id="map_\w+-data">(.*?)</script>', page, re.DOTALL)
    return json.loads(found.group(1)) if found else None


def map_script(page: str) -> str:
    """The map-building code (not the inlined Leaflet): a MapPage's description and the call that draws
    it, or a folium page's last <script>."""
    if page_spec(page) is not None:
        return page[page.index('<script type="application/json"'):]
    return page.rsplit("<script>", 1)[1]


def fit_bounds(page: str) -> list:
    spec = page_spec(page)
    if spec is not None:
        return spec["fit"]["bounds"]
    return json.loads(re.search(r"\.fitBounds\(\s*(\[\[[^\n]*\]\]),", map_script(page)).group(1))


def layer_specs(page: str) -> list[dict]:
    """Every layer the page draws, as given to ``gridwatchFeatureLayer``/``gridwatchHeatLayer`` (gridwatch-map.js):
    from a MapPage's description, or from the calls of a folium page (one per layer)."""
    spec = page_spec(page)
    if spec is not None:
        return spec["layers"]
    return [json.loads(m.group(1)) for m in re.finditer(r"^var \w+ = gridwatch(?:Feature|Heat)Layer\((.*)\);$", page, re.MULTILINE)]


def column_value(column: list, j: int, data: dict | None = None):
    """Entry ``j`` of a layer data column, as ``gridwatchValue`` in the page reads it."""
    table = column[0]
    if len(column) == 1:
        return table[0 if len(table) == 1 else j]
    if isinstance(column[1], int):  # a slot of the layer's combined rows (mappage._combine)
        return table[data["c"][0][data["c"][1][j]][column[1]]]
    return table[column[1][j]]


def decode_layer(data: dict, styles: list, labels: list) -> list[dict]:
    """A layer's columns (``mappage._layer_data``) back into GeoJSON features, as the
    page's ``gridwatchFeatures`` and ``gridwatchRow`` build them (a derived
    position written with JavaScript's ``toFixed(5)``, which Python's ``.5f`` matches)."""
    features = []
    for j in range(data["n"]):
        if "g" in data:
            geometry = data["g"][j]
        else:
            geometry = {"type": "Point", "coordinates": [data["lon"][j], data["lat"][j]]}
        feature = {"type": "Feature", "geometry": geometry, "properties": {"k": column_value(data["k"], j, data), "j": j}}
        feature["style"] = styles[feature["properties"]["k"]]
        feature["tooltip"] = column_value(data["t"], j, data)
        feature["popup"] = {}
        if "v" in data:
            values = [
                f"{data['lat'][j]:.5f}°N {data['lon'][j]:.5f}°E" if column == 0 else column_value(column, j, data)
                for column in data["v"]
            ]
            feature["popup"] = dict(zip(labels, values, strict=True))
        features.append(feature)
    return features


def layer_data(page: str) -> list[tuple[dict, list, list]]:
    """Each vector layer's (data, styles, labels) as written in the page."""
    return [(s["data"], s["styles"], s["labels"]) for s in layer_specs(page) if s["kind"] != "heat"]


def geojson_features(page: str) -> list[dict]:
    """Every feature of every vector layer in the page, with its layer's style
    resolved into ``style``, its tooltip text in ``tooltip`` and its popup as
    ``{label: value}`` in ``popup``."""
    return [feature for data, styles, labels in layer_data(page) for feature in decode_layer(data, styles, labels)]


def point_features(page: str) -> list[dict]:
    return [f for f in geojson_features(page) if f["geometry"]["type"] == "Point"]


def polygon_features(page: str) -> list[dict]:
    return [f for f in geojson_features(page) if f["geometry"]["type"] != "Point"]


def popup_by_fire(page: str) -> dict[str, dict]:
    return {f["popup"]["编号 fire id"]: f for f in point_features(page)}


# ------------------------------------------------------------ the fixture itself


def test_fixture_attribution_is_real(fires: gpd.GeoDataFrame) -> None:
    assert list(fires["cell_id"].iloc[:3]) == [LANKAO, LANKAO, CHANGYUAN]
    touching = fires.iloc[TOUCHING_INDEX]
    assert touching["cell_id"] == FENGQIU and set(touching["cells_touched"]) == {FENGQIU, LANKAO}
    assert pd.isna(fires.iloc[OUTSIDE_INDEX]["cell_id"])


# ------------------------------------------------------------ offline, self-contained


def test_overview_loads_only_shared_files_beside_it(fires, grid, tmp_path) -> None:
    page = render(maps.overview_map(fires, grid, title="2022-06-03 火点", cluster_min_fires=0), tmp_path)
    lowered = page.lower()
    assert "cdn.jsdelivr" not in lowered and "cdnjs" not in lowered and "code.jquery" not in lowered
    assert "bootstrap" not in lowered and "awesome" not in lowered
    # Leaflet, the plugins and our scripts are files of static/, loaded by relative path, once each.
    sources = re.findall(r'<script src="([^"]+)"></script>', page)
    styles = re.findall(r'<link rel="stylesheet" href="([^"]+)">', page)
    assert sources[:2] == ["static/leaflet.js", "static/gridwatch-map.js"]
    assert {"static/leaflet.markercluster.js", "static/leaflet-heat.js", "static/Control.FullScreen.js",
            "static/gridwatch-measure.js"} <= set(sources)
    assert "static/leaflet.css" in styles and len(set(sources)) == len(sources) and len(set(styles)) == len(styles)
    for ref in sources + styles:
        assert (tmp_path / ref).is_file(), ref
    # The shared stylesheet finds its images beside it; the page itself holds no Leaflet code.
    css = (tmp_path / "static" / "leaflet.css").read_text(encoding="utf-8")
    assert "url(layers.png)" in css and "url(images/" not in css and (tmp_path / "static" / "layers.png").is_file()
    assert "Leaflet 1.9.4" not in page and "sourceMappingURL" not in (tmp_path / "static" / "leaflet.js").read_text(encoding="utf-8")
    check_self_contained(page, static="static", folder=tmp_path)


def test_pages_in_a_subfolder_share_one_static_folder(fires, grid, tmp_path) -> None:
    static = tmp_path / "static"
    maps.save_map(maps.overview_map(fires, grid, title="t"), tmp_path / "map.html", static=static)
    maps.save_map(maps.cell_map(LANKAO, fires, grid, title="t"), tmp_path / "maps" / "c.html", static=static)
    cell_page = (tmp_path / "maps" / "c.html").read_text(encoding="utf-8")
    assert '<script src="../static/leaflet.js"></script>' in cell_page
    assert '<link rel="stylesheet" href="../static/gridwatch-tasks.css">' in cell_page
    assert not (tmp_path / "maps" / "static").exists()
    # A reference outside the shared folder, a missing file or a scheme is refused.
    for bad in ('<script src="../static/../x.js"></script>', '<script src="../static/nothere.js"></script>',
                '<script src="https://cdn.example/l.js"></script>', '<link rel="stylesheet" href="//cdn.example/l.css">'):
        with pytest.raises(ValueError, match="external resources"):
            check_self_contained(cell_page + bad, static="../static", folder=tmp_path / "maps")


def test_inline_overview_is_self_contained(fires, grid, tmp_path) -> None:
    page = render(maps.overview_map(fires, grid, title="2022-06-03 火点"), tmp_path, inline=True)
    assert not (tmp_path / "static").exists()
    lowered = page.lower()
    assert "<script src=" not in lowered and '<script src="http' not in lowered
    assert '<link href="http' not in lowered and "<link rel" not in lowered
    assert "cdn.jsdelivr" not in lowered and "cdnjs" not in lowered and "code.jquery" not in lowered
    assert "bootstrap" not in lowered and "awesome" not in lowered
    # Leaflet itself is inline, CSS included, with its control icon as a data URI.
    assert "Leaflet 1.9.4" in page and "window.L=" in page.replace(" ", "")
    assert ".leaflet-container" in page and "url(data:image/png;base64," in page
    assert "url(images/" not in page
    # The basemap tile URL is the only network address and it is optional.
    assert "tile.openstreetmap.org" in page


def test_no_basemap_option(fires, grid, tmp_path) -> None:
    page = render(maps.overview_map(fires, grid, title="t", tiles=None), tmp_path)
    assert "openstreetmap" not in page.lower()
    assert "L.tileLayer" not in page


def test_save_map_inlines_even_a_plain_folium_map(tmp_path) -> None:
    import folium

    page = render(folium.Map(location=[34.9, 114.9]), tmp_path, inline=True)
    assert "<script src=" not in page and "Leaflet 1.9.4" in page
    shared = render(folium.Map(location=[34.9, 114.9]), tmp_path, "shared.html")
    assert '<script src="static/leaflet.js"></script>' in shared and "jsdelivr" not in shared
    # ...without changing folium's defaults for every other map in the process.
    assert any("jsdelivr" in url for _, url in folium.Map.default_js)


def test_save_map_refuses_external_scripts(tmp_path) -> None:
    from folium.plugins import MarkerCluster

    m = maps.overview_map(build_fires(build_grid())[:0], build_grid(), title="t")
    MarkerCluster().add_to(m)  # a plugin that needs its own CDN script
    with pytest.raises(ValueError, match="external resources"):
        maps.save_map(m, tmp_path / "bad.html")
    assert not (tmp_path / "bad.html").exists()


# ------------------------------------------------------------ overview content


def test_overview_one_marker_per_fire_coloured_by_window(fires, grid, tmp_path) -> None:
    page = render(maps.overview_map(fires, grid, title="t"), tmp_path)
    points = popup_by_fire(page)
    assert sorted(points) == sorted(fires["fire_id"])  # one marker per fire, no more
    by_key = {c.key: c.colour for c in maps.FIRE_CLASSES}
    colours = {fid: f["style"]["fillColor"] for fid, f in points.items()}
    assert colours == {
        "fire-0": by_key["after_work"],
        "fire-1": by_key["first_half_night"],
        "fire-2": by_key["other"],
        "fire-3": by_key["first_half_night"],
        "fire-4": by_key["other"],  # outside every cell, still drawn
    }
    # One layer per class present (after work, night, other) plus the cells,
    # not one block of JavaScript per marker.
    assert len(layer_data(page)) == 4 and page.count("gridwatchFeatureLayer(") == 4


def test_overview_popups_show_beijing_time_and_details(fires, grid, tmp_path) -> None:
    page = render(maps.overview_map(fires, grid, title="t"), tmp_path)
    assert "2022-06-03 19:30 北京时间" in page  # in the saved file as such, not \\u-escaped
    popup = popup_by_fire(page)["fire-0"]["popup"]
    # 11:30 UTC is 19:30 in Beijing
    assert popup["时间 time"] == "2022-06-03 19:30 北京时间"
    assert popup["收工时 after work"] == "是 yes" and popup["上半夜 first half of night"] == "否 no"
    assert popup["播种前 before sowing"] == "未知 unknown"
    assert popup["卫星 sensor"] == "AHI · Himawari-9 (L2WLF 010)"
    assert popup["置信度 confidence"] == "80 / 100 · high · raw 3"  # normalized and raw
    assert popup["辐射功率 FRP"] == "15.4 MW"
    assert popup["昼夜 day/night"] == "白天 day (D)"
    assert popup["网格 cell"] == f"兰考县城关网格 ({LANKAO})"
    assert popup["区县 county"] == "兰考县" and popup["网格员 supervisor"] == "张伟"
    assert popup["日落 sunset"] == "19:35 北京时间"
    assert popup["位置 position"] == "34.88000°N 114.95000°E"
    night = popup_by_fire(page)["fire-1"]["popup"]
    assert night["时间 time"] == "2022-06-03 22:30 北京时间" and night["昼夜 day/night"] == "夜间 night (N)"
    assert popup_by_fire(page)["fire-2"]["popup"]["辐射功率 FRP"] == "未知 unknown"  # NaN FRP
    outside = popup_by_fire(page)["fire-4"]["popup"]
    assert "outside any grid cell" in outside["网格 cell"]
    assert "outside any grid cell" in popup_by_fire(page)["fire-4"]["tooltip"]


def test_touching_fire_lists_the_other_cell(fires, grid, tmp_path) -> None:
    page = render(maps.overview_map(fires, grid, title="t"), tmp_path)
    popups = popup_by_fire(page)
    assert popups["fire-3"]["popup"]["涉及其他网格 other cells touched"] == f"兰考县城关网格 ({LANKAO})"
    assert popups["fire-0"]["popup"]["涉及其他网格 other cells touched"] == "无 none"


def test_overview_draws_only_cells_with_something(fires, grid, tmp_path) -> None:
    page = render(maps.overview_map(fires, grid, title="t"), tmp_path)
    tooltips = sorted(f["tooltip"] for f in polygon_features(page))
    assert len(tooltips) == 3  # Lankao, Changyuan, Fengqiu; Qixian has no fire
    assert "杞县无火网格" not in page
    assert "兰考县城关网格 · 2 火点 fires · 网格员 张伟" in tooltips


def test_overview_cell_colours_follow_counts() -> None:
    assert maps._count_colour(1) == maps.COUNT_COLOURS[0]
    assert maps._count_colour(2) == maps.COUNT_COLOURS[1]
    assert maps._count_colour(4) == maps.COUNT_COLOURS[2]
    assert maps._count_colour(9) == maps.COUNT_COLOURS[3]
    assert maps._count_colour(500) == maps.COUNT_COLOURS[4]
    assert maps._count_labels() == ["1", "2", "3–4", "5–9", "≥10"]


def test_overview_links_cells_to_their_maps(fires, grid, tmp_path) -> None:
    links = {LANKAO: "cells/" + maps.cell_map_filename(LANKAO)}
    page = render(maps.overview_map(fires, grid, title="t", cell_links=links), tmp_path)
    maps_rows = {f["tooltip"].split(" · ")[0]: f["popup"]["地图 map"] for f in polygon_features(page)}
    assert maps_rows["兰考县城关网格"] == {"href": links[LANKAO], "text": "打开网格地图 open cell map →"}
    assert maps_rows["长垣市蒲西网格"] is None  # no link given: no row
    with pytest.raises(ValueError, match="javascript"):
        maps.overview_map(fires, grid, title="t", cell_links={LANKAO: "javascript:alert(1)"})


def test_overview_title_bar_and_legend(fires, grid, tmp_path) -> None:
    page = render(maps.overview_map(fires, grid, title="2022-06-03 兰考周边"), tmp_path)
    assert '<header class="gw-title"><h1>2022-06-03 兰考周边</h1>' in page
    assert "5 火点 fires · 3 网格 cells with fires · 1 不在网格内 outside any grid cell" in page
    assert "观测 observed 2022-06-03 13:36 – 22:30 北京时间" in page
    assert "<title>2022-06-03 兰考周边</title>" in page
    assert "fires by time window" in page and "≥10" in page
    assert "L.control.layers" in page


def test_counts_per_window_in_cell_popup(fires, grid, tmp_path) -> None:
    page = render(maps.overview_map(fires, grid, title="t"), tmp_path)
    lankao = next(f for f in polygon_features(page) if f["tooltip"].startswith("兰考县城关网格"))
    popup = lankao["popup"]
    assert popup["火点 fires centred here"] == "2"
    assert popup["收工时 after work"] == "1"
    assert popup["上半夜 first half of night"] == "1"
    assert popup["下雨前 before rain"] == "1 (+1 未知 unknown)"
    assert popup["播种前 before sowing"] == "0 (+2 未知 unknown)"
    assert popup["邻格像元触及 neighbours' pixels touching"] == "1"  # Fengqiu's fire-3
    assert lankao["style"]["fillColor"] == maps.COUNT_COLOURS[1]


def test_fit_bounds_to_fires_or_grid(fires, grid, tmp_path) -> None:
    page = render(maps.overview_map(fires, grid, title="t"), tmp_path)
    assert fit_bounds(page) == [[34.5, 113.0], [35.19, 114.95]]
    empty = render(maps.overview_map(fires[:0], grid, title="t"), tmp_path, "empty.html")
    west, south, east, north = grid.total_bounds
    assert fit_bounds(empty) == [pytest.approx([south, west]), pytest.approx([north, east])]
    assert point_features(empty) == []


def test_both_windows_is_flagged_not_hidden(grid, tmp_path) -> None:
    spec = list(FIRE_SPECS[0])
    spec[-2:] = [True, True]
    page = render(maps.overview_map(build_fires(grid, [tuple(spec)]), grid, title="t"), tmp_path)
    (point,) = point_features(page)
    assert point["style"]["fillColor"] == "#c51b8a"
    assert "both (check data)" in js_strings(page)


# ------------------------------------------------------------ escaping


def test_cell_names_are_escaped_everywhere(fires, grid, tmp_path) -> None:
    overview = render(maps.overview_map(fires, grid, title="<b>t</b>"), tmp_path, "o.html")
    cell = render(maps.cell_map(FENGQIU, fires, grid, title="t"), tmp_path, "c.html")
    for page in (overview, cell):
        # No raw tag from the data anywhere in the file, not even inside the
        # script's JSON (where "<script" and "</" are \\u003c-escaped).
        assert "<script>alert" not in page and "</script>封丘" not in page
        # Popups and tooltips carry the name as plain text...
        fengqiu = next(f for f in point_features(page) if f["popup"]["网格 cell"].startswith("<script>"))
        assert fengqiu["popup"]["网格 cell"] == f"{EVIL_NAME} ({FENGQIU})"
    # ...which the page only ever sets with textContent, never as HTML.
    script = static_text("gridwatch-map.js")
    assert "textContent = value" in script and "innerHTML" not in script
    assert "document.createTextNode(gridwatchValue(data.t, " in script
    # HTML written by Python is escaped: title bar, <title>, the cell's own title bar.
    assert "<h1>&lt;b&gt;t&lt;/b&gt;" in overview and "<title>&lt;b&gt;t&lt;/b&gt;</title>" in overview
    assert "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;封丘网格" in cell


def test_cell_map_fire_list_escapes_neighbour_names(fires, grid, tmp_path) -> None:
    page = render(maps.cell_map(LANKAO, fires, grid, title="t"), tmp_path)
    assert "邻格 &lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;封丘网格" in page


def test_template_literal_injection_is_inert(grid, tmp_path) -> None:
    # folium.Popup/Tooltip put text in a JS `template literal`; ours must not.
    tricky = grid.copy()
    tricky.loc[tricky["cell_id"] == LANKAO, "cell_name"] = "${alert(1)}`);alert(2);//"
    fires = build_fires(tricky)
    page = render(maps.cell_map(LANKAO, fires, tricky, title="t"), tmp_path)
    # User text lives only inside double-quoted JSON strings: strip those and no
    # template literal (or anything else from the name) is left in the code.
    code = re.sub(r'"(?:[^"\\]|\\.)*"', '""', map_script(page))
    assert "`" not in code and "${" not in code and "alert" not in code
    for feature in point_features(page):
        if feature["popup"]["编号 fire id"] in ("fire-0", "fire-1"):
            assert feature["popup"]["网格 cell"].startswith("${alert(1)}`);alert(2);//")


# ------------------------------------------------------------ per-cell map


def test_cell_map_includes_touching_fire_from_neighbour(fires, grid, tmp_path) -> None:
    page = render(maps.cell_map(LANKAO, fires, grid, title="2022-06-03"), tmp_path)
    points = popup_by_fire(page)
    assert sorted(points) == ["fire-0", "fire-1", "fire-3"]  # fire-3 is centred in Fengqiu
    assert points["fire-3"]["style"].get("dashArray")  # drawn differently
    assert all(not points[f]["style"].get("dashArray") for f in ("fire-0", "fire-1"))
    assert points["fire-3"]["tooltip"].startswith("#2 · 20:10 · ")  # numbered as in the list
    seen = js_strings(page)
    assert "邻格火点 touching" in seen  # its own layer in the layer control
    assert "1 邻格像元触及 touching from neighbours" in page


def test_cell_map_footprints_outlines_and_list(fires, grid, tmp_path) -> None:
    page = render(maps.cell_map(LANKAO, fires, grid, title="2022-06-03"), tmp_path)
    polygons = polygon_features(page)
    outlines = [f for f in polygons if "网格员" in f["tooltip"]]
    footprints = [f for f in polygons if "pixel footprint" in f["tooltip"]]
    assert len(footprints) == 3
    assert sum("dashArray" in f["style"] for f in footprints) == 1
    assert (
        footprints[0]["geometry"]["type"] == "Polygon"
        and len(footprints[0]["geometry"]["coordinates"][0]) == 5
    )
    # this cell thick; its neighbours (Fengqiu, Changyuan, Qixian share its boundary) thin
    this = [f for f in outlines if f["style"]["weight"] == 4]
    assert len(this) == 1 and "兰考县城关网格" in this[0]["tooltip"]
    assert len(outlines) == 4 and all(f["style"]["weight"] == 1 for f in outlines if f not in this)
    assert "网格员 supervisor 张伟" in page  # supervisor in the title bar
    assert "火点列表 fire list (3)" in page
    assert '<tr data-lat="34.88000" data-lon="114.95000">' in page
    assert "06-03 19:30" in page and "15.4" in page


def test_cell_map_without_footprint_column(fires, grid, tmp_path) -> None:
    page = render(maps.cell_map(CHANGYUAN, fires.drop(columns="footprint"), grid, title="t"), tmp_path)
    assert len(point_features(page)) == 1
    assert "pixel footprints" not in page


def test_cell_map_for_a_cell_with_no_fire_and_unknown_cell(fires, grid, tmp_path) -> None:
    page = render(maps.cell_map(QIXIAN, fires, grid, title="t"), tmp_path)
    assert "无火点 no fires" in page and point_features(page) == []
    with pytest.raises(KeyError):
        maps.cell_map("no-such-cell", fires, grid, title="t")


def test_parquet_round_trip_of_cells_touched(fires, grid, tmp_path) -> None:
    # cells_touched comes back from parquet as numpy arrays, not lists
    path = tmp_path / "fires.parquet"
    fires.drop(columns="footprint").to_parquet(path)
    again = gpd.read_parquet(path)
    assert isinstance(again["cells_touched"].iloc[0], np.ndarray)
    page = render(maps.cell_map(LANKAO, again, grid, title="t"), tmp_path)
    assert len(point_features(page)) == 3


# ------------------------------------------------------------ file names


def test_cell_map_filename_plain_ids_kept() -> None:
    assert maps.cell_map_filename("410225-12-34") == "410225-12-34.html"


@pytest.mark.parametrize(
    "cell_id",
    [
        "410225/12/34",
        "410225\\12",
        "兰考/城关/01",
        "../../etc/passwd",
        "CON",
        "con",
        "a b",
        "",
        ".",
        "A1",
        "410225_1",
        "x" * 300,
        "４１０２２５",
    ],
)
def test_cell_map_filename_is_safe(cell_id: str) -> None:
    name = maps.cell_map_filename(cell_id)
    assert re.fullmatch(r"[a-z0-9-]+(_[0-9a-f]{12})?\.html", name), name
    assert len(name) <= 80
    assert name.split(".")[0] not in {"con", "nul", "prn", "aux"}


def test_cell_map_filename_distinct_and_stable() -> None:
    ids = [
        "410225/12/34",
        "410225-12-34",
        "410225 12 34",
        "410225_12_34",
        "A1",
        "a1",
        "兰考/1",
        "杞县/1",
        "",
        "cell",
        "４１０２２５",
        "410225",
    ]
    names = [maps.cell_map_filename(i) for i in ids]
    assert len(set(names)) == len(ids)
    assert len({n.lower() for n in names}) == len(ids)  # also on case-insensitive filesystems
    assert maps.cell_map_filename("兰考/1") == maps.cell_map_filename("兰考/1")
    # Stable across processes and versions: a digest, not Python's salted hash().
    assert (
        maps.cell_map_filename("410225/12/34")
        == "410225-12-34_" + hashlib.sha256(b"410225/12/34").hexdigest()[:12] + ".html"
    )
    assert maps.cell_map_filename("４１０２２５").startswith("410225_")


# ------------------------------------------------------------ small helpers


def test_window_flags_nullable() -> None:
    assert maps._flag(pd.NA) is None and maps._flag(np.bool_(True)) is True and maps._flag(False) is False
    assert maps._fire_class(pd.NA, pd.NA).key == "other"
    assert maps._fire_class(True, pd.NA).key == "after_work"


def test_time_span_in_title_bar(fires) -> None:
    assert maps._time_span(fires) == "观测 observed 2022-06-03 13:36 – 22:30 北京时间"
    assert maps._time_span(fires[:1]) == "观测 observed 2022-06-03 19:30 北京时间"
    assert maps._time_span(fires[:0]) == ""


def test_beijing_time_formatting() -> None:
    assert maps._bjt(pd.Timestamp("2022-06-03 11:30", tz="UTC")) == "2022-06-03 19:30 北京时间"
    assert maps._bjt(pd.Timestamp("2022-06-03 16:30", tz="UTC")) == "2022-06-04 00:30 北京时间"
    assert maps._bjt(pd.NaT) == "时间未知 unknown time"


def test_grid_with_duplicate_ids_is_refused(fires, grid) -> None:
    doubled = pd.concat([grid, grid.iloc[:1]])
    with pytest.raises(ValueError, match="not unique"):
        maps.overview_map(fires, doubled, title="t")


# ------------------------------------------------------------ field tools (plugins, basemaps, language)


def registry(page: str) -> list[dict]:
    """The page's ``window.gridwatchLayers`` entries (``gridwatchRegister`` in gridwatch-map.js): name, feature count and kind."""
    return [{"name": s["name"], "features": len(s["points"]) if s["kind"] == "heat" else s["data"]["n"], "kind": s["kind"]}
            for s in layer_specs(page)]


def heat_layers(page: str) -> list[dict]:
    return [s for s in layer_specs(page) if s["kind"] == "heat"]


def test_plugins_are_inlined_and_nothing_is_fetched(fires, grid, tmp_path) -> None:
    page = render(maps.overview_map(fires, grid, title="t", cluster_min_fires=0), tmp_path, inline=True)
    check_self_contained(page)  # save_map ran it too; explicit for the reader
    assert "<script src" not in page.lower() and "<link" not in page.lower()
    # markercluster, heat, full screen and the measure tool are in the page itself...
    assert "MarkerClusterGroup" in page and "L.markerClusterGroup(" in page
    assert "simpleheat" in page and "L.heatLayer(" in page
    assert "leaflet.fullscreen" in page and "L.control.fullscreen(" in page
    assert "L.Control.GridwatchMeasure" in page and "L.control.gridwatchMeasure(" in page
    # ...with their images as data URIs and no source-map or stylesheet URLs left.
    assert "url(data:image/svg+xml;base64," in page and "icon-fullscreen.svg" not in page
    assert "sourceMappingURL" not in page and "url(images/" not in page
    # Each plugin once, however many layers use it.
    for script in ("leaflet.markercluster.js", "leaflet-heat.js", "Control.FullScreen.js", "gridwatch-measure.js"):
        assert page.count(static_text(script, inline=True)[:300]) == 1, script
    assert page.count("function gridwatchCluster(") == 1


def test_small_maps_do_not_inline_the_cluster_plugin(fires, grid, tmp_path) -> None:
    page = render(maps.overview_map(fires, grid, title="t"), tmp_path)  # 5 fires < CLUSTER_MIN_FIRES
    assert "leaflet.markercluster.js" not in page and not any(s.get("cluster") for s in layer_specs(page))
    # The controls are on every map (gridwatchTools: full screen and measure).
    assert "gridwatchTools(" in page and '"fullscreen":' in page and '"measure":' in page
    assert "L.control.scale(" in page and "L.control.layers(" in page


def test_static_readme_lists_every_vendored_file_with_its_hash() -> None:
    static = Path(pipelines.__file__).with_name("static")
    readme = (static / "README.md").read_text(encoding="utf-8")
    for path in sorted(static.iterdir()):
        if path.name == "README.md":
            continue
        assert f"`{path.name}`" in readme, path.name
        if not path.name.isupper():  # code and images, not licence texts
            assert hashlib.sha256(path.read_bytes()).hexdigest() in readme, path.name


def test_registry_lists_every_layer(fires, grid, tmp_path) -> None:
    page = render(maps.overview_map(fires, grid, title="t"), tmp_path)
    entries = registry(page)
    kinds = {e["name"]: (e["kind"], e["features"]) for e in entries}
    assert kinds["火点 fires: 上半夜 first half of night (2)"] == ("vector", 2)
    assert kinds["网格 cells with fires (3)"] == ("vector", 3)
    assert kinds["火点热力图 fire heat map (5)"] == ("heat", 5)
    assert len(entries) == page.count("gridwatchFeatureLayer(") + page.count("gridwatchHeatLayer(")
    clustered = registry(render(maps.overview_map(fires, grid, title="t", cluster_min_fires=0), tmp_path, "c.html"))
    fire_layers = [e for e in clustered if e["name"].startswith("火点 fires:")]
    assert fire_layers and all(e["kind"] == "cluster" for e in fire_layers)
    assert sum(e["features"] for e in fire_layers) == len(fires)


def test_clusters_keep_popups_and_colours(fires, grid, tmp_path) -> None:
    page = render(maps.overview_map(fires, grid, title="t", cluster_min_fires=0), tmp_path)
    # Markers are still the popup-carrying circle markers, now handed to a cluster group.
    assert sorted(popup_by_fire(page)) == sorted(fires["fire_id"])
    by_key = {c.key: c.colour for c in maps.FIRE_CLASSES}
    options = [s["cluster"] for s in layer_specs(page) if s.get("cluster")]
    assert {o["colour"] for o in options} == {by_key["after_work"], by_key["first_half_night"], by_key["other"]}
    assert all(o["disableAt"] == maps.CLUSTER_OFF_ZOOM for o in options)
    assert "chunkedLoading: true" in static_text("gridwatch-map.js")
    assert "图例" in page and "zoom 13+ shows each fire" in page


def test_cell_map_clusters_only_on_request(fires, grid, tmp_path) -> None:
    plain = render(maps.cell_map(LANKAO, fires, grid, title="t"), tmp_path)
    assert not any(s["cluster"] for s in layer_specs(plain)) and "leaflet.markercluster.js" not in plain
    page = render(maps.cell_map(LANKAO, fires, grid, title="t", cluster_min_fires=1), tmp_path, "c.html")
    assert sum(s["kind"] == "cluster" for s in layer_specs(page)) == 3  # this cell's two windows, and the touching fire
    assert "leaflet.markercluster.js" in page


def test_age_fading_rule() -> None:
    newest = pd.Timestamp("2022-06-03 14:30", tz="UTC")
    assert maps._age_fade(newest, newest) == 1.0
    assert maps._age_fade(newest - pd.Timedelta(hours=3), newest) == 1.0  # 3 h is still "recent"
    assert maps._age_fade(newest - pd.Timedelta(hours=3, minutes=1), newest) == 0.7
    assert maps._age_fade(newest - pd.Timedelta(hours=9), newest) == 0.45
    assert maps._age_fade(newest - pd.Timedelta(hours=30), newest) == 0.25
    assert maps._age_fade(pd.NaT, newest) == 1.0 and maps._age_fade(newest, None) == 1.0


def test_older_fires_are_fainter(fires, grid, tmp_path) -> None:
    points = popup_by_fire(render(maps.overview_map(fires, grid, title="t"), tmp_path))
    opacity = {fid: f["style"]["fillOpacity"] for fid, f in points.items()}
    # newest is fire-1 (14:30 UTC): fire-0 (11:30) and fire-3 (12:10) within 3 h;
    # fire-2 (05:36) and fire-4 (05:40) ~9 h older.
    assert opacity["fire-1"] == opacity["fire-0"] == opacity["fire-3"] == 0.9
    assert opacity["fire-2"] == opacity["fire-4"] == pytest.approx(0.9 * 0.45)
    assert all(f["style"]["fillColor"] for f in points.values())  # colour by window kept


def test_cells_shaded_by_suspected_straw_burning(fires, grid, tmp_path) -> None:
    classified = fires.copy()
    classified["category"] = ["straw_suspect", "other", "straw_suspect", "industrial", "other"]
    page = render(maps.overview_map(classified, grid, title="t"), tmp_path)
    cells = {f["tooltip"].split(" · ")[0]: f for f in polygon_features(page)}
    lankao, changyuan = cells["兰考县城关网格"], cells["长垣市蒲西网格"]
    assert lankao["style"]["fillColor"] == maps.COUNT_COLOURS[0]  # 2 fires, 1 suspected straw burning
    assert changyuan["style"]["fillColor"] == maps.COUNT_COLOURS[0]
    fengqiu = next(f for f in cells.values() if f["popup"]["网格 cell"].startswith("<script>"))
    assert fengqiu["style"]["fillOpacity"] == 0  # a fire, but an industrial one: outline only
    assert lankao["popup"]["疑似秸秆焚烧 suspected straw burning"] == "1"
    assert "suspected straw-burning fires per cell" in page and "fires centred per cell" not in page
    # Without a category column: every fire counts, and the legend says so.
    plain = render(maps.overview_map(fires, grid, title="t"), tmp_path, "plain.html")
    assert "fires centred per cell" in plain and "suspected straw-burning fires per cell" not in plain


def test_heat_map_layer_is_off_and_leaves_heat_sources_out(fires, grid, tmp_path) -> None:
    classified = fires.copy()
    classified["category"] = ["straw_suspect", "other", "straw_suspect", "industrial", "persistent"]
    page = render(maps.overview_map(classified, grid, title="t"), tmp_path)
    (heat,) = heat_layers(page)
    assert len(heat["points"]) == 3
    name = re.search(r"var (heat_layer_\w+) = gridwatchHeatLayer", page).group(1)
    assert f"{name}.addTo(" not in page and heat["show"] is False  # off by default


def amap_shift(lon: float, lat: float) -> list[float]:
    glon, glat = chinacrs.wgs84_to_gcj02(lon, lat)
    return [round(float(glon), maps.COORD_DECIMALS), round(float(glat), maps.COORD_DECIMALS)]


def test_amap_shifts_every_overlay_to_gcj02(fires, grid, tmp_path) -> None:
    osm = render(maps.overview_map(fires, grid, title="t", tiles="openstreetmap"), tmp_path, "osm.html")
    amap = render(maps.overview_map(fires, grid, title="t", tiles="amap"), tmp_path, "amap.html")
    assert "webrd0{s}.is.autonavi.com" in amap and "tile.openstreetmap.org" not in amap
    for fid, lon, lat in zip(fires["fire_id"], fires["lon"], fires["lat"], strict=True):
        assert popup_by_fire(osm)[fid]["geometry"]["coordinates"] == [lon, lat]  # OSM: untouched WGS84
        shifted = popup_by_fire(amap)[fid]
        assert shifted["geometry"]["coordinates"] == pytest.approx(amap_shift(lon, lat), abs=1e-9)
        # ...a few hundred metres away, while the popup still says where the fire really is.
        assert 0.002 < abs(shifted["geometry"]["coordinates"][0] - lon) < 0.01
        assert shifted["popup"]["位置 position"] == f"{lat:.5f}°N {lon:.5f}°E"
    # Cells too, vertex by vertex.
    cell_osm, cell_amap = polygon_features(osm)[0], polygon_features(amap)[0]
    ring_osm = np.array(cell_osm["geometry"]["coordinates"][0] if cell_osm["geometry"]["type"] == "Polygon"
                        else cell_osm["geometry"]["coordinates"][0][0])
    ring_amap = np.array(cell_amap["geometry"]["coordinates"][0] if cell_amap["geometry"]["type"] == "Polygon"
                         else cell_amap["geometry"]["coordinates"][0][0])
    expected = np.column_stack(chinacrs.wgs84_to_gcj02(ring_osm[:, 0], ring_osm[:, 1]))
    assert np.abs(ring_amap - expected).max() < 1.1e-5  # rounding to 1e-5 degree
    # The fit and the heat map move with them.
    (south, west), (_north, east) = fit_bounds(amap)
    lon0, lat0 = amap_shift(113.0, 34.5)
    assert south < lat0 + 1e-4 and west == pytest.approx(lon0, abs=1e-4) and east > 114.95
    heat = heat_layers(amap)[0]["points"]
    assert [lat0, lon0] in [[round(a, 5), round(o, 5)] for a, o in heat]


def test_amap_cell_map_list_jumps_to_the_shifted_marker(fires, grid, tmp_path) -> None:
    page = render(maps.cell_map(LANKAO, fires, grid, title="t", tiles="amap"), tmp_path)
    glon, glat = amap_shift(114.95, 34.88)
    assert f'<tr data-lat="{glat:.5f}" data-lon="{glon:.5f}">' in page
    assert 'data-lat="34.88000"' not in page
    footprint = next(f for f in polygon_features(page) if "pixel footprint" in f["tooltip"])
    x0, _y0 = footprint["geometry"]["coordinates"][0][0]
    assert abs(x0 - 114.95) > 0.002  # footprints shifted too


def test_tianditu_needs_a_key_and_uses_it(fires, grid, tmp_path) -> None:
    with pytest.raises(ValueError, match="tianditu_key"):
        maps.overview_map(fires, grid, title="t", tiles="tianditu")
    with pytest.raises(ValueError, match="letters and digits"):
        maps.overview_map(fires, grid, title="t", tiles="tianditu", tianditu_key='abc"def;alert(1)')
    page = render(maps.overview_map(fires, grid, title="t", tiles="tianditu", tianditu_key="0123abcd4567ef89"), tmp_path)
    assert "t{s}.tianditu.gov.cn/vec_w/wmts" in page and "LAYER=cva" in page and "tk=0123abcd4567ef89" in page
    assert "天地图 Tianditu" in js_strings(page)
    # Tianditu is CGCS2000 ~ WGS84: no shift.
    assert popup_by_fire(page)["fire-0"]["geometry"]["coordinates"] == [114.95, 34.88]
    english = render(maps.overview_map(fires, grid, title="t", tiles="tianditu", tianditu_key="0123abcd4567ef89",
                                       language="en"), tmp_path, "en.html")
    assert "LAYER=eva" in english and "LAYER=cva" not in english


def test_tiles_names(fires, grid, tmp_path) -> None:
    for name in ("OpenStreetMap", "openstreetmap", " OPENSTREETMAP "):
        assert basemap_key(name) == "openstreetmap"
    assert basemap_key("") is None and basemap_key(None) is None
    with pytest.raises(ValueError, match="unknown basemap"):
        maps.overview_map(fires, grid, title="t", tiles="google")
    page = render(maps.overview_map(fires, grid, title="t", tiles="amap"), tmp_path)
    assert "高德地图 AutoNavi" in js_strings(page)  # attribution


@pytest.mark.parametrize(
    ("language", "present", "absent"),
    [
        ("zh", ["火点（按时段）", "图例", "有火点网格 (3)", "个网格有火点", "北京时间"],
         ["fires by time window", "cells with fires", "legend</summary>"]),
        ("en", ["fires by time window", "legend", "cells with fires (3)", "observed 2022-06-03", "Beijing time"],
         ["火点（按时段）", "图例", "有火点网格"]),
        ("both", ["火点 fires by time window", "图例 legend", "网格 cells with fires (3)"], ["火点（按时段）"]),
    ],
)
def test_language_switch(fires, grid, tmp_path, language, present, absent) -> None:
    page = render(maps.overview_map(fires, grid, title="t", language=language), tmp_path)
    seen = js_strings(page)  # legend markup and layer names live in JSON strings
    for text in present:
        assert text in seen, text
    for text in absent:
        assert text not in seen, text
    # Popups stay bilingual whatever the language.
    assert popup_by_fire(page)["fire-0"]["popup"]["区县 county"] == "兰考县"


def test_language_switch_on_cell_and_plan_maps(fires, grid, tmp_path) -> None:
    cell = js_strings(render(maps.cell_map(LANKAO, fires, grid, title="t", language="en"), tmp_path))
    assert "supervisor 张伟" in cell and "网格员" not in cell.split("<header", 1)[1].split("</header>")[0]
    assert "fires here: after work (1)" in cell and "fire list (3)" in cell
    with pytest.raises(ValueError, match="language"):
        maps.cell_map(LANKAO, fires, grid, title="t", language="fr")


def test_map_options_from_config() -> None:
    from pipelines.core.settings import MapsConfig

    options = maps.map_options(MapsConfig(tiles="", language="zh", cluster_min_fires=0))
    assert options == {"tiles": None, "tianditu_key": "", "language": "zh", "cluster_min_fires": 0}
    assert maps.map_options(MapsConfig())["tiles"] == "OpenStreetMap"


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"tiles": "google"}, "tiles"),
        ({"tiles": "tianditu"}, "tianditu_key"),
        ({"tiles": "tianditu", "tianditu_key": "bad key!"}, "letters and digits"),
        ({"language": "fr"}, "language"),
        ({"cluster_min_fires": -1}, "cluster_min_fires"),
    ],
)
def test_maps_config_checks(fields, message) -> None:
    from pipelines.core.settings import ConfigError, MapsConfig

    with pytest.raises(ConfigError, match=message):
        MapsConfig(**fields).check(Path("config.toml"))
    MapsConfig(tiles="Tianditu", tianditu_key="0123abcd4567ef89").check(Path("config.toml"))
    MapsConfig(tiles="amap", language="en").check(Path("config.toml"))


# ------------------------------------------------------------ compact layer data


def test_column_interns_repeated_values() -> None:
    link = {"href": "maps/a.html", "text": "open"}
    assert mappage._column(["a", "b", "a", "a"]) == [["a", "b"], [0, 1, 0, 0]]
    assert mappage._column(["same"] * 3) == [["same"]]  # one value for every feature: no indices
    assert mappage._column(["x-1", "x-2", "x-3"]) == [["x-1", "x-2", "x-3"]]  # all distinct: the values themselves
    assert mappage._column([]) == [[]]
    # None, the string "null" and equal objects (by value, not identity) kept apart correctly.
    assert mappage._column([None, "null", None, dict(link), dict(link), None]) == [[None, "null", link], [0, 1, 0, 2, 2, 0]]
    for values in (["a", "b", "a"], ["q"] * 4, ["1", "2"], [None, {"kwh": [1.0, None]}, None]):
        column = mappage._column(values)
        assert [column_value(column, j) for j in range(len(values))] == values


def test_layer_data_refuses_mixed_popups() -> None:
    point = {"type": "Point", "coordinates": [114.95, 34.88]}
    features = [maps._feature(point, 0, "a", ["x"]), maps._feature(point, 0, "b")]
    with pytest.raises(ValueError, match="popup values"):
        mappage._layer_data(features)


def test_fire_popups_are_interned_and_positions_derived(fires, grid, tmp_path) -> None:
    page = render(maps.overview_map(fires, grid, title="t", cluster_min_fires=0), tmp_path)
    # Per-fire position text is not in the page: the page writes it from the coordinates...
    for lon, lat in zip(fires["lon"], fires["lat"], strict=True):
        assert f"{lat:.5f}°N" not in page
    point_layers = [data for data, _, labels in layer_data(page) if "lat" in data]
    position = list(maps.FIRE_POPUP_LABELS).index("位置 position")
    assert point_layers and all(data["v"][position] == 0 for data in point_layers)
    # ...and a text shared by fires is written once per column of a layer, not once per fire.
    for data in point_layers:
        for column in [data["t"], *(c for c in data["v"] if c != 0)]:
            assert len({json.dumps(v) for v in column[0]}) == len(column[0])
    windows = len(maps.WINDOW_COLUMNS)
    assert page.count('"否 no"') <= windows * len(point_layers)
    # No GeoJSON features are written: the page builds them from the columns.
    assert '"type":"Feature"' not in page


def test_layer_data_keeps_a_position_it_cannot_derive() -> None:
    point = {"type": "Point", "coordinates": [114.95, 34.88]}
    right = maps._feature(point, 0, "t", ["34.88000°N 114.95000°E"])
    wrong = maps._feature(point, 0, "t", ["34.88001°N 114.95000°E"])  # e.g. a rounding edge case
    assert mappage._layer_data([right])["v"] == [0]
    assert mappage._layer_data([right, wrong])["v"] == [[["34.88000°N 114.95000°E", "34.88001°N 114.95000°E"]]]
    # Shifted (GCJ-02) coordinates are not the position: the text stays.
    assert mappage._layer_data([right], derive_position=False)["v"] == [[["34.88000°N 114.95000°E"]]]
    # JavaScript's toFixed writes -0 as "0.00000"; Python's ".5f" would not.
    assert mappage._js_fixed5(-0.0) == "0.00000" and mappage._js_fixed5(-0.000001) == "-0.00000"




@pytest.mark.browser
@pytest.mark.skipif(not CHROMIUM.exists(), reason="needs headless Chromium at /usr/bin/chromium")
def test_clustered_markers_open_tooltip_and_popup_from_the_group(fires, grid, tmp_path) -> None:
    """Clustered layers bind one tooltip and popup on the cluster group: hovering
    and tapping a marker still show its own text (the position derived in the
    page), and both close when zooming out merges the marker into a cluster."""
    import html
    import subprocess

    page_path = tmp_path / "clustered.html"
    maps.save_map(maps.overview_map(fires, grid, title="t", cluster_min_fires=0), page_path)
    text = page_path.read_text(encoding="utf-8")
    map_name = re.search(r"var (map_[0-9a-f]+) = L\.map\(", text).group(1)
    probe = """<script>
    setTimeout(function () {
      var res = {};
      var entry = window.gridwatchLayers.filter(function (e) { return e.kind === "cluster"; })[0];
      var marker = entry.layer.getLayers()[0];
      MAP.setView(marker.getLatLng(), 15, {animate: false});
      setTimeout(function () {
        // What Leaflet does for a real pointer: fire on the marker, propagating to its groups.
        marker.fire("mouseover", {latlng: marker.getLatLng()}, true);
        var tip = entry.layer.getTooltip();
        res.tooltip = tip && tip.isOpen() ? tip.getElement().textContent : null;
        marker.fire("click", {latlng: marker.getLatLng()}, true);
        var popup = entry.layer.getPopup();
        res.popup = popup && popup.isOpen() ? popup.getElement().querySelector(".gw-popup").innerHTML : null;
        MAP.setView(marker.getLatLng(), 3, {animate: false});
        setTimeout(function () {
          res.after = [!!marker._map, popup.isOpen(), tip.isOpen()];
          res.lat = marker.getLatLng().lat;
          document.body.setAttribute("data-res", JSON.stringify(res));
        }, 300);
      }, 300);
    }, 300);
    </script>""".replace("MAP", map_name)
    probed = page_path.with_name("clustered.probe.html")
    probed.write_text(text[: text.rindex("</html>")] + probe + "</html>", encoding="utf-8")
    command = [str(CHROMIUM), "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
               "--host-resolver-rules=MAP * ~NOTFOUND", f"--user-data-dir={tmp_path / 'profile'}",
               "--virtual-time-budget=5000", "--dump-dom", probed.resolve().as_uri()]
    dom = subprocess.run(command, capture_output=True, text=True, timeout=180, check=True).stdout
    res = json.loads(html.unescape(re.search(r'data-res="([^"]*)"', dom).group(1)))
    fire = next(f for f in point_features(text) if f["geometry"]["coordinates"][1] == res["lat"])
    assert res["tooltip"] == fire["tooltip"]
    expected = "".join(f"<tr><th>{html.escape(label, quote=False)}</th><td>{html.escape(value, quote=False)}</td></tr>"
                       for label, value in fire["popup"].items() if value is not None)
    assert res["popup"] == f"<table><tbody>{expected}</tbody></table>"
    assert "<th>位置 position</th><td>" + fire["popup"]["位置 position"] + "</td>" in res["popup"]
    assert res["after"] == [False, False, False]  # marker clustered away: its popup and tooltip closed


# ------------------------------------------------------------ heavy nights


def test_combined_columns_read_back_the_same_values() -> None:
    # 200 features whose style, flags and sensor repeat: combined into one row index, values unchanged.
    rng = np.random.default_rng(3)
    features = [
        maps._feature({"type": "Point", "coordinates": [114.0 + j / 1000, 34.0]}, int(rng.integers(0, 3)), f"tip {j % 7}",
                      [["是 yes", "否 no"][int(rng.integers(0, 2))], ["MODIS", "VIIRS", "AHI"][int(rng.integers(0, 3))], f"id-{j}"])
        for j in range(200)
    ]
    plain = mappage._layer_data(features[:50])  # below COMBINE_MIN_FEATURES: as before
    assert "c" not in plain
    data = mappage._layer_data(features)
    assert "c" in data and len(data["c"][0]) <= 50
    for j, feature in enumerate(features):
        assert column_value(data["k"], j, data) == feature["properties"]["k"]
        assert column_value(data["t"], j, data) == feature["properties"]["t"]
        assert [column_value(c, j, data) for c in data["v"]] == feature["properties"]["v"]


def test_map_day_selects_each_cells_fires_like_a_scan_of_all(fires, grid) -> None:
    day = maps.MapDay(fires, grid)
    for cell in day.cell_ids():
        expected = {f for f, own, touched in zip(fires["fire_id"], fires["cell_id"], fires["cells_touched"], strict=True)
                    if (isinstance(own, str) and own == cell) or cell in list(touched)}
        assert {p["popup"]["编号 fire id"] for p in point_features(render_page(day.cell_map(cell, title="t")))} == expected


def render_page(m) -> str:
    import tempfile

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "m.html"
        maps.save_map(m, path, inline=True)
        return path.read_text(encoding="utf-8")


def test_light_overview_on_a_heavy_night(fires, grid, tmp_path, monkeypatch) -> None:
    from pipelines.fires.events import events_table

    events = events_table(fires.assign(event_id=["E" + f for f in fires["fire_id"]]))
    monkeypatch.setattr(maps, "LIGHT_OVERVIEW_FIRES", len(fires))
    page = render(maps.overview_map(fires, grid, title="t", events=events), tmp_path)
    assert '"preferCanvas": true' in page
    points = point_features(page)
    assert sorted(len(p["popup"]) for p in points) == [len(maps.FIRE_LIGHT_LABELS)] * len(fires)
    assert "fire events" not in page and "events and details are on the cell maps" in page
    monkeypatch.setattr(maps, "LIGHT_OVERVIEW_FIRES", len(fires) + 1)
    full = render(maps.overview_map(fires, grid, title="t"), tmp_path, "full.html")
    assert '"preferCanvas": false' in full and all(len(p["popup"]) > len(maps.FIRE_LIGHT_LABELS) for p in point_features(full))


def test_cell_map_is_a_light_page_for_notebooks_and_folium(fires, grid, tmp_path) -> None:
    """A cell map is a MapPage: one template and its JSON, no folium element tree. It shows in a notebook,
    saves itself, and as a folium map draws the very same layers through the same script functions."""
    page = maps.cell_map(LANKAO, fires, grid, title="t")
    assert isinstance(page, maps.MapPage)
    light = render(page, tmp_path, "light.html")
    assert "folium" not in light.lower() and 'id="map_' in light and "gridwatchPage(" in light
    shown = page._repr_html_()  # what a notebook displays: a sandboxed frame holding the page inline
    assert shown.startswith("<iframe srcdoc=") and "&lt;script src=" not in shown and "Leaflet 1.9.4" in shown
    page.save(tmp_path / "alone.html", inline=True)
    check_self_contained((tmp_path / "alone.html").read_text(encoding="utf-8"))
    through_folium = render(page.to_folium(), tmp_path, "folium.html")
    assert "L.map(" in through_folium and layer_specs(through_folium) == layer_specs(light)
    assert np.allclose(fit_bounds(through_folium), fit_bounds(light))
    # The legend, fire list and title bar are the same markup on both.
    for fragment in ('<tr data-lat="34.88000" data-lon="114.95000">', "火点列表 fire list (3)", '<header class="gw-title"><h1>t — 网格员'):
        assert fragment in light and fragment in through_folium


def test_one_esc_and_one_text_helper() -> None:
    from pipelines.publish import htmltext

    assert htmltext.text(None) == htmltext.text(pd.NA) == htmltext.text(float("nan")) == "" and htmltext.text(pd.NaT, "—") == "—"
    assert htmltext.text(np.array(["a"])) == "['a']"  # a list is never "missing"
    assert htmltext.esc("<a href='x'>") == "&lt;a href=&#x27;x&#x27;&gt;" and htmltext.esc(maps.Markup("<b>")) == "<b>"
    package = Path(pipelines.__file__).parent
    copies = [p.name for p in package.rglob("*.py") for line in p.read_text(encoding="utf-8").splitlines()
              if re.match(r"def _?(esc|text)\(", line)]
    assert copies == ["htmltext.py", "htmltext.py"]


def test_the_basemaps_drawn_are_the_ones_the_settings_accept() -> None:
    from pipelines.core.settings import BASEMAP_KEYS

    assert tuple(mappage.BASEMAPS) == BASEMAP_KEYS
