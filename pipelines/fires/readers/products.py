"""The one registry of fire products gridwatch reads: points and rasters alike.

Each product is one declaration: a file-name pattern with named fields
(``patterns.FilePattern``: ``{platform}`` and ``{start_time}`` at least where the
name carries them), the sensor, what each ``platform`` value means, the reader
(for points: ``sniff``/``read`` functions; for rasters: a ``layout`` the
raster reader knows), the variables it reads and the mask's class values. A
new product is one more entry in ``PRODUCTS`` and one test.

Products marked ``test_format`` are layouts gridwatch itself writes
(``pipelines.testing``) for its sample day and tests; no agency publishes
them. The others follow the agencies' published layouts; the README says which
were tested on real files and which only on files built to the layout.

Layouts of rasters:

- ``fire_list``: a level-2 granule that lists its fire pixels (``FP_*``
  arrays: MOD14/MYD14 HDF4, VNP14IMG NetCDF); fires come from the list, the
  mask says what the granule saw and is placed on the ground by the matching
  geolocation file (``geolocation``: MOD03, VNP03IMG) when one is given;
- ``fixed_grid``: a geostationary fixed grid (GOES ABI, FY-4 AGRI) whose
  pixels are placed by the projection formulas (``readers.geostationary``);
- ``affine`` / ``swath`` / ``geostationary``: gridwatch's own test layouts
  (GeoTIFF; NetCDF with 2-D latitude/longitude; NetCDF on a 1-D
  latitude/longitude grid).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd

from pipelines.core.skips import Skip
from pipelines.fires.readers import cspp, firms, himawari
from pipelines.fires.readers.patterns import FilePattern

TEST_FORMAT = "gridwatch test format"  # said wherever a test format is named


@dataclass(frozen=True)
class MaskClasses:
    """What the values of a fire mask mean, after reading (0-254; see ``RasterProduct``).

    Values not listed are not usable (not processed, unknown, off the disc,
    blocked by sun glint...): a pixel of such a value was not looked at.
    ``land`` and ``water`` are pixels seen clear without fire.
    """

    fire: tuple[tuple[int, str], ...]  # (value, confidence level: low / nominal / high)
    cloud: tuple[int, ...] = ()
    water: tuple[int, ...] = ()
    land: tuple[int, ...] = ()

    def is_fire(self, mask: np.ndarray) -> np.ndarray:
        """Boolean array: which pixels of ``mask`` are fire (of any confidence)."""
        values = sorted(v for v, _ in self.fire)
        if values == list(range(values[0], values[-1] + 1)):
            return (mask >= values[0]) & (mask <= values[-1])  # a few times faster than isin
        return np.isin(mask, values)

    def flags(self, unreadable: int = 255) -> dict[str, object]:
        """CF ``flag_values`` / ``flag_meanings`` attributes."""
        pairs = [(v, f"fire_{level}") for v, level in self.fire]
        pairs += [(v, "cloud") for v in self.cloud] + [(v, "water") for v in self.water] + [(v, "land") for v in self.land]
        pairs.append((unreadable, "unreadable"))
        return {"flag_values": np.array([v for v, _ in pairs], dtype=np.uint8), "flag_meanings": " ".join(m for _, m in pairs)}

    def states(self) -> np.ndarray:
        """Lookup over the 256 mask values: 0 not looked at, 1 seen clear (land, water, fire), 2 cloud."""
        state = np.zeros(256, dtype=np.uint8)
        for values in (self.land, self.water, [v for v, _ in self.fire]):
            state[list(values)] = 1
        state[list(self.cloud)] = 2
        return state


# MODIS MOD14/MYD14 and VIIRS VNP14IMG fire mask (C6 legend): 0 missing input,
# 1-2 not processed, 3 non-fire water, 4 cloud, 5 non-fire land, 6 unknown,
# 7/8/9 fire of low/nominal/high confidence.
MODIS_CLASSES = MaskClasses(fire=((7, "low"), (8, "nominal"), (9, "high")), cloud=(4,), water=(3,), land=(5,))

# GOES-R ABI FDC ``Mask`` (PUG vol. 5, table 5.19.6.1-1): 10 good, 11 saturated,
# 12 cloud-contaminated, 13 high-, 14 medium-, 15 low-probability fire; 30-35 the
# same classes temporally filtered. Processed fire-free land is 100; the
# 200-245 values are the cloud tests. 40 off-earth, 50/60 zenith and glint
# block-outs, 120-127 bad input, 150-153 excluded surfaces (desert, water,
# coast), 170-188 algorithm failures are not looked at for fire.
_GOES_LEVELS = ((0, "high"), (1, "high"), (2, "nominal"), (3, "nominal"), (4, "low"), (5, "low"))
GOES_CLASSES = MaskClasses(
    fire=tuple((base + i, level) for base in (10, 30) for i, level in _GOES_LEVELS),
    cloud=tuple(range(200, 246)),
    land=(100,),
)

# FY-4A/B AGRI FHS (NSMC's processing code): 10 fire point, 100 land, 153 water,
# 200/205/210/215/220 five kinds of cloud. 150 desert is excluded from fire
# detection, 40 fill, 50 satellite zenith > 80°, 60 glint < 30°, 126/127 cold
# input, 65535 space (read as 0, not looked at).
FY4_CLASSES = MaskClasses(fire=((10, "nominal"),), cloud=(200, 205, 210, 215, 220), water=(153,), land=(100,))

# gridwatch's own AHI test scans: the MODIS legend on a 0.02° grid.
AHI_TEST_CLASSES = MODIS_CLASSES


@dataclass(frozen=True, kw_only=True)
class Product:
    """What every declaration says: the name, the files it claims and what their names carry."""

    name: str
    pattern: FilePattern  # file names this product claims; fields "platform", "start_time" where present
    sensor: str = ""  # "" when the rows say (FIRMS)
    platforms: tuple[tuple[str, str], ...] = ()  # value of the {platform} field -> satellite
    test_format: bool = False  # gridwatch's own layout, not an agency's product
    description: str = ""

    def fields(self, path: str | Path) -> dict[str, object] | None:
        """The named fields of a file's name, or None when this product does not claim it."""
        return self.pattern.parse(Path(path).name)

    def satellite(self, fields: dict[str, object]) -> str | None:
        """The satellite a file's ``platform`` field names, or None."""
        return dict(self.platforms).get(str(fields.get("platform", "")))


@dataclass(frozen=True, kw_only=True)
class PointProduct(Product):
    """A table of fire points: ``sniff`` the file's start, ``read(path, text) -> (frame, skips)``."""

    sniff: Callable[[str], bool]
    read: Callable[[Path, str], tuple[pd.DataFrame, list[Skip]]]
    kind: Literal["points"] = "points"


@dataclass(frozen=True, kw_only=True)
class RasterProduct(Product):
    """A fire mask (and what goes with it); read by ``readers.rasters`` / ``readers.firelist``.

    Masks are read as ``uint8``: values outside 0-254 and the variable's
    ``_FillValue`` become 0 (not looked at); 255 is kept for blocks that
    could not be read.
    """

    layout: Literal["affine", "swath", "geostationary", "fixed_grid", "fire_list"]
    mask: str  # NetCDF/HDF variable, or GeoTIFF band number as text
    classes: MaskClasses = MODIS_CLASSES
    frp: str | None = None  # variable or band on the mask's grid, MW
    frp_list: tuple[str, str, str] | None = None  # (line, sample, power MW) listing the fire pixels
    latitude: str | None = None  # 1-D (geostationary), 2-D (swath), or the FP_ list (fire_list)
    longitude: str | None = None
    confidence: str | None = None  # fire_list: per-pixel confidence variable (0-100 or 7/8/9)
    x: str | None = None  # fixed_grid: scan-angle (GOES) or column-index (FY-4) coordinate
    y: str | None = None
    projection: str | None = None  # fixed_grid: the grid-mapping variable
    geolocation: str | None = None  # name of the product whose files place the mask's pixels
    orbit_km: float | None = None  # fire_list: satellite altitude, km (pixel sizes from the scan angle)
    nadir_km: float | None = None  # fire_list: pixel size at nadir, km
    samples: int | None = None  # fire_list: pixels per scan line
    time_attr: tuple[str, str] | None = None  # (global attribute, strptime format) when the name has no time
    file_format: Literal["netcdf", "hdf4", "geotiff"] = "netcdf"
    kind: Literal["raster"] = "raster"


@dataclass(frozen=True, kw_only=True)
class GeolocationProduct(Product):
    """Per-pixel latitude/longitude for another product's granules (MOD03, VNP03IMG)."""

    latitude: str  # variable path ("group/name" in NetCDF groups)
    longitude: str
    file_format: Literal["netcdf", "hdf4"] = "netcdf"
    kind: Literal["geolocation"] = "geolocation"


_NASA_NAME = "{platform:3s}%s.A{start_time:%%Y%%j.%%H%%M}.{collection:3d}.{created:13d}.%s"
_MODIS = {"sensor": "MODIS", "platforms": (("MOD", "Terra"), ("MYD", "Aqua"))}
_VIIRS = {"sensor": "VIIRS", "platforms": (("VNP", "Suomi NPP"), ("VJ1", "NOAA-20"), ("VJ2", "NOAA-21"))}
_FP = {"layout": "fire_list", "mask": "fire mask", "frp_list": ("FP_line", "FP_sample", "FP_power"),
       "latitude": "FP_latitude", "longitude": "FP_longitude", "confidence": "FP_confidence"}
# gridwatch's own layouts: a fire mask with FRP as a band (GeoTIFF), or beside 2-D latitude/longitude (NetCDF).
_TEST_NAME = "{platform:3s}%s.A{start_time:%%Y%%j.%%H%%M}.{collection:3d}.%s"
_TEST_SWATH = {"layout": "swath", "mask": "fire mask", "frp_list": ("FP_line", "FP_sample", "FP_power"),
               "latitude": "latitude", "longitude": "longitude", "test_format": True}
_TEST_TIFF = {"layout": "affine", "mask": "1", "frp": "2", "file_format": "geotiff", "test_format": True,
              "time_attr": ("TIFFTAG_DATETIME", "%Y:%m:%d %H:%M:%S")}

PRODUCTS: tuple[PointProduct | RasterProduct | GeolocationProduct, ...] = (
    # ---------------------------------------------------------------- points
    PointProduct(name="JAXA Himawari L2 WLF", pattern=FilePattern(himawari.FILENAME), sensor="AHI",
                 platforms=(("H08", "Himawari-8"), ("H09", "Himawari-9")), sniff=himawari.sniff, read=himawari.read,
                 description="hourly/10-minute wildfire CSV, one row per 0.02° fire cell"),
    PointProduct(name="NOAA CSPP VIIRS active fires (AFIMG text)", pattern=FilePattern(cspp.FILENAME), sensor="VIIRS",
                 platforms=cspp.PLATFORMS, sniff=cspp.sniff, read=cspp.read,
                 description="CSPP's text export of the I-band Active Fires EDR"),
    # ---------------------------------------------------------------- rasters, agencies' layouts
    RasterProduct(name="MODIS MOD14/MYD14", pattern=FilePattern(_NASA_NAME % ("14", "hdf")), **_MODIS, **_FP,
                  file_format="hdf4", geolocation="MODIS MOD03/MYD03", orbit_km=705.0, nadir_km=1.0, samples=1354,
                  description="C6/C6.1 level-2 swath thermal anomalies, HDF4"),
    GeolocationProduct(name="MODIS MOD03/MYD03", pattern=FilePattern(_NASA_NAME % ("03", "hdf")), **_MODIS,
                       latitude="Latitude", longitude="Longitude", file_format="hdf4",
                       description="1 km geolocation of a MODIS granule, HDF4"),
    RasterProduct(name="VIIRS VNP14IMG/VJ114IMG", pattern=FilePattern(_NASA_NAME % ("14IMG", "nc")), **_VIIRS, **_FP,
                  geolocation="VIIRS VNP03IMG/VJ103IMG", orbit_km=829.0, nadir_km=0.375, samples=6400,
                  description="375 m level-2 swath active fires, NetCDF4 (VIIRS active fire user guide)"),
    GeolocationProduct(name="VIIRS VNP03IMG/VJ103IMG", pattern=FilePattern(_NASA_NAME % ("03IMG", "nc")), **_VIIRS,
                       latitude="geolocation_data/latitude", longitude="geolocation_data/longitude",
                       description="375 m geolocation of a VIIRS granule, NetCDF4"),
    RasterProduct(name="GOES ABI L2 FDC",
                  pattern=FilePattern("OR_ABI-L2-FDC{sector:s}-M{mode:1d}_G{platform:2s}_s{start_time:%Y%j%H%M%S%f}"
                                      "_e{end_time:%Y%j%H%M%S%f}_c{created:%Y%j%H%M%S%f}.nc"),
                  sensor="ABI", platforms=(("16", "GOES-16"), ("17", "GOES-17"), ("18", "GOES-18"), ("19", "GOES-19")),
                  layout="fixed_grid", mask="Mask", frp="Power", x="x", y="y", projection="goes_imager_projection",
                  classes=GOES_CLASSES, description="NOAA fire detection and characterization, CONUS / full disk / mesoscale, 2 km"),
    RasterProduct(name="FY-4 AGRI FHS",
                  pattern=FilePattern("{platform:4s}-_AGRI--_N_{sector:4s}_{subpoint:4d}{hemisphere:1s}_L2-_FHS-_MULT_NOM_"
                                      "{start_time:%Y%m%d%H%M%S}_{end_time:%Y%m%d%H%M%S}_{resolution:5s}_V{version:4d}.NC"),
                  sensor="AGRI", platforms=(("FY4A", "FY-4A"), ("FY4B", "FY-4B")),
                  layout="fixed_grid", mask="FHS", x="x", y="y", classes=FY4_CLASSES,
                  description="NSMC fire/hot spot, nominal full disc at 2 or 4 km (no FRP on the grid)"),
    # ---------------------------------------------------------------- gridwatch test formats
    RasterProduct(name=f"AHI fire mask, 0.02° grid ({TEST_FORMAT})",
                  pattern=FilePattern("{platform:3s}_{start_time:%Y%m%d_%H%M}_FIRE_MASK*.nc"),
                  sensor="AHI", platforms=(("H08", "Himawari-8"), ("H09", "Himawari-9")),
                  layout="geostationary", mask="fire_mask", frp="frp", latitude="latitude", longitude="longitude",
                  classes=AHI_TEST_CLASSES, test_format=True,
                  description="gridwatch's sample-day scans built from real detections (pipelines.testing); JAXA publishes no such file"),
    RasterProduct(name=f"MODIS swath with latitude/longitude ({TEST_FORMAT})", pattern=FilePattern(_TEST_NAME % ("14", "nc")),
                  **_MODIS, **_TEST_SWATH, description="not NASA's MOD14, which is HDF4 without latitude/longitude"),
    RasterProduct(name=f"VIIRS swath with latitude/longitude ({TEST_FORMAT})", pattern=FilePattern(_TEST_NAME % ("14IMG", "nc")),
                  **_VIIRS, **_TEST_SWATH, description="not NASA's VNP14IMG, which has no latitude/longitude grid"),
    RasterProduct(name=f"MODIS fire-mask GeoTIFF ({TEST_FORMAT})", pattern=FilePattern(_TEST_NAME % ("14", "tif")),
                  **_MODIS, **_TEST_TIFF, description="band 1 the fire mask, band 2 FRP (MW)"),
    RasterProduct(name=f"VIIRS fire-mask GeoTIFF ({TEST_FORMAT})", pattern=FilePattern(_TEST_NAME % ("14IMG", "tif")),
                  **_VIIRS, **_TEST_TIFF, description="band 1 the fire mask, band 2 FRP (MW)"),
    # ---------------------------------------------------------------- last: claims any name
    PointProduct(name="NASA FIRMS", pattern=FilePattern("*"), sniff=firms.sniff, read=firms.read,
                 description="MODIS/VIIRS active-fire CSV (any file name; recognised by its header)"),
)

POINT_PRODUCTS = tuple(p for p in PRODUCTS if isinstance(p, PointProduct))
RASTER_PRODUCTS = tuple(p for p in PRODUCTS if isinstance(p, RasterProduct))
GEOLOCATION_PRODUCTS = tuple(p for p in PRODUCTS if isinstance(p, GeolocationProduct))


def claim(path: str | Path, products: tuple = PRODUCTS) -> tuple[Product, dict[str, object]] | None:
    """The first product (in declaration order) whose pattern fits the file's name, with the name's fields."""
    for product in products:
        fields = product.fields(path)
        if fields is not None:
            return product, fields
    return None


def product_named(name: str) -> Product:
    return next(p for p in PRODUCTS if p.name == name)


def start_time(fields: dict[str, object]) -> dt.datetime | None:
    """The ``start_time`` field of a name (naive UTC), if any."""
    value = fields.get("start_time")
    return value if isinstance(value, dt.datetime) else None
