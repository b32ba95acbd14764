"""``import pipelines``: the functions the nightly run uses, documented, loaded lazily."""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import subprocess
import sys
import types
from pathlib import Path

import pytest

import pipelines

REPO = Path(__file__).resolve().parent.parent
NAMES = [n for n in pipelines.__all__ if not n.startswith("__")]


def _run(code: str) -> str:
    """Run ``code`` in a fresh interpreter (nothing imported yet) from the repository; its stdout."""
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_all_lists_each_name_once() -> None:
    assert len(pipelines.__all__) == len(set(pipelines.__all__))
    assert set(NAMES) == set(pipelines._EXPORTS)
    assert set(NAMES) <= set(dir(pipelines))


def test_import_is_cheap() -> None:
    """``import pipelines`` loads none of the heavy libraries: a CLI or worker pays only for what it uses."""
    heavy = ["folium", "dask", "distributed", "pandas", "geopandas", "xarray", "rasterio"]
    out = _run(f"import sys, pipelines; print(' '.join(m for m in {heavy!r} if m in sys.modules))")
    assert out.strip() == ""


def test_folium_only_with_the_maps() -> None:
    out = _run("import sys, pipelines; pipelines.read_fires; pipelines.find_sites; print('folium' in sys.modules)")
    assert out.strip() == "False"
    out = _run("import sys, pipelines; pipelines.overview_map; print('folium' in sys.modules)")
    assert out.strip() == "True"


def test_every_name_imports_first() -> None:
    """Each defining module imported first, then the whole package: no import cycle hides behind import order.

    One fresh interpreter; between names every ``pipelines`` module is forgotten (cycles can only run
    through our own modules), while pandas, dask and the rest stay loaded, so this takes seconds.
    """
    first: dict[str, str] = {}
    for name in NAMES:
        first.setdefault(pipelines._EXPORTS[name], name)
    code = f"""
import importlib, sys, traceback
failed = []
for name in {sorted(first.values())!r}:
    for module in [m for m in sys.modules if m == "pipelines" or m.startswith("pipelines.")]:
        del sys.modules[module]
    try:
        package = importlib.import_module("pipelines")
        getattr(package, name)
        importlib.import_module("pipelines.run.nightly")
        importlib.import_module("pipelines.run.cli")
    except Exception:
        failed.append(name + ": " + traceback.format_exc().strip().splitlines()[-1])
print("\\n".join(failed))
"""
    assert _run(code).strip() == ""


@pytest.mark.parametrize("name", NAMES)
def test_name_is_the_modules_own(name: str) -> None:
    """The exported object is the one its module defines (no wrapper), and what the nightly run calls."""
    value = getattr(pipelines, name)
    module = importlib.import_module(f"pipelines.{pipelines._EXPORTS[name]}")
    assert value is getattr(module, name)
    assert callable(value)
    nightly = importlib.import_module("pipelines.run.nightly")
    if hasattr(nightly, name):
        assert getattr(nightly, name) is value


@pytest.mark.parametrize("name", NAMES)
def test_name_is_documented_with_an_example(name: str) -> None:
    doc = inspect.getdoc(getattr(pipelines, name)) or ""
    assert len(doc.split()) >= 10, f"{name}: too short a docstring"
    assert "Example::" in doc or ">>>" in doc, f"{name}: docstring shows no example"


def test_submodules_still_import_from_the_package() -> None:
    from pipelines import testing
    from pipelines.publish import maps

    assert isinstance(maps, types.ModuleType) and isinstance(testing, types.ModuleType)
    with pytest.raises(AttributeError):
        pipelines.no_such_name  # noqa: B018


