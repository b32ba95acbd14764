"""What every HTML page gridwatch writes shares: templates, web assets, and the check that it opens offline.

A night writes hundreds to thousands of pages into one folder. Leaflet, its
plugins and our own scripts and styles (``pipelines/static``) are written once
into that folder's ``static/`` and each page refers to them by relative path
(``static/leaflet.js`` from ``index.html``, ``../static/leaflet.js`` from
``maps/<cell>.html``), so the folder opens offline as it is, copied to a USB
stick or a phone. A page that must travel alone (one cell map sent in a chat)
is written *inline*: the same assets inside the page, images as data URIs.

Pages and the page-specific JavaScript of map layers come from Jinja2
templates in ``pipelines/templates``.
"""

from __future__ import annotations

import base64
import functools
import re
from collections.abc import Iterable
from dataclasses import dataclass
from importlib import resources
from pathlib import Path, PurePosixPath
from typing import Any

import jinja2
from branca.element import Element

from pipelines.core.outputs import write_atomic

__all__ = [
    "ASSET_BUNDLES",
    "STATIC_DIR",
    "AssetTags",
    "RawHtml",
    "check_self_contained",
    "html_template",
    "js_template",
    "require_assets",
    "static_text",
    "write_static",
]

STATIC_DIR = "static"  # the shared assets' folder inside a run's output folder

# What would make a browser fetch something: a page must open from a USB stick or a phone with no signal.
_EXTERNAL_REFERENCE = re.compile(
    r"<(?:script|img|iframe|embed|source|audio|video)\b[^>]*\bsrc\s*=\s*([\"']?)([^\"'\s>]*)\1"
    r"|<link\b[^>]*\bhref\s*=\s*([\"']?)([^\"'\s>]*)\3|(@import\b)",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class Asset:
    """One vendored or own file of ``pipelines/static`` that pages load: a script or a stylesheet."""

    name: str
    kind: str  # "js" or "css"


# Loaded in this order, each bundle once per page, by the first element that needs it.
ASSET_BUNDLES: dict[str, tuple[Asset, ...]] = {
    "leaflet": (Asset("leaflet.css", "css"), Asset("leaflet.js", "js"), Asset("gridwatch-map.css", "css"), Asset("gridwatch-map.js", "js")),
    "markercluster": (Asset("MarkerCluster.css", "css"), Asset("MarkerCluster.Default.css", "css"), Asset("leaflet.markercluster.js", "js")),
    "heat": (Asset("leaflet-heat.js", "js"),),
    "fullscreen": (Asset("Control.FullScreen.css", "css"), Asset("Control.FullScreen.js", "js")),
    "measure": (Asset("gridwatch-measure.js", "js"),),
    "tasks": (Asset("gridwatch-tasks.css", "css"),),
    "index": (Asset("gridwatch-index.css", "css"), Asset("gridwatch-index.js", "js")),
}
# Stylesheet images, and the licences that go with the vendored files.
_IMAGES = ("layers.png", "layers-2x.png", "icon-fullscreen.svg")
_LICENCES = ("LEAFLET_LICENSE", "MARKERCLUSTER_LICENSE", "LEAFLET_HEAT_LICENSE", "FULLSCREEN_LICENSE")
_MIME = {".png": "image/png", ".svg": "image/svg+xml"}


class RawHtml(Element):
    """Markup put into a branca page verbatim.

    branca compiles an ``Element``'s text as a Jinja template, which would mangle
    minified JavaScript containing ``{{``; this one is never templated.
    """

    def __init__(self, text: str) -> None:
        super().__init__()
        self._text = text

    def render(self, **kwargs: Any) -> str:
        return self._text


# ------------------------------------------------------------------ templates


@functools.cache
def _environment(autoescape: bool) -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.PackageLoader("pipelines", "templates"),
        autoescape=autoescape,
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
    )


def js_template(name: str) -> jinja2.Template:
    """A template of JavaScript (folium macro templates: ``{% macro script(this, kwargs) %}``); not escaped."""
    return _environment(False).get_template(name)


def html_template(name: str) -> jinja2.Template:
    """An HTML template; every ``{{ value }}`` is HTML-escaped unless marked safe."""
    return _environment(True).get_template(name)


# ------------------------------------------------------------------ assets


def _static_bytes(name: str) -> bytes:
    return (resources.files("pipelines") / "static" / name).read_bytes()


@functools.cache
def static_text(name: str, inline: bool = False) -> str:
    """A script or stylesheet of ``pipelines/static`` as pages get it.

    Source-map comments are dropped (the maps are not shipped; developer tools
    would try to fetch them). Leaflet's ``url(images/...)`` point next to the
    stylesheet, marker icons (not vendored: fires are circle markers) to
    ``none``. ``inline``: images become data URIs, and a file that could end its
    ``<script>``/``<style>`` element is refused.
    """
    text = _static_bytes(name).decode("utf-8")
    if name.endswith(".js"):
        text = re.sub(r"^//# sourceMappingURL=.*$", "", text, flags=re.MULTILINE)
    else:
        text = re.sub(r"url\(images/([\w.-]+)\)", lambda m: f"url({m.group(1)})" if m.group(1) in _IMAGES else "none", text)
        if inline:
            text = re.sub(r"""url\(['"]?([\w.-]+\.(?:png|svg))['"]?\)""", lambda m: f"url({_data_uri(m.group(1))})", text)
    closing = "</script" if name.endswith(".js") else "</style"
    if inline and closing in text.lower():
        raise ValueError(f"{name} contains {closing!r} and cannot be inlined")
    return text


def _data_uri(name: str) -> str:
    return f"data:{_MIME[Path(name).suffix]};base64,{base64.b64encode(_static_bytes(name)).decode('ascii')}"


def _shared_files() -> dict[str, bytes]:
    """Every file of a run's ``static/`` folder, as written."""
    files = {a.name: static_text(a.name).encode("utf-8") for bundle in ASSET_BUNDLES.values() for a in bundle}
    files |= {name: _static_bytes(name) for name in (*_IMAGES, *_LICENCES)}
    return files


def write_static(folder: Path) -> Path:
    """Write the shared assets into ``folder`` (created); files already there with the same size are kept.

    Returns ``folder``. Called for every page written with shared assets, so it
    only looks at the sizes of what is there (the staging folder of a run
    starts empty; a file of the same name and size is ours).
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for name, data in _shared_files_cached().items():
        target = folder / name
        try:
            if target.stat().st_size == len(data):
                continue
        except FileNotFoundError:
            pass
        write_atomic(target, data)
    return folder


@functools.cache
def _shared_files_cached() -> dict[str, bytes]:
    return _shared_files()


class AssetTags(Element):
    """The ``<script>``/``<link>`` tags (shared) or inline ``<script>``/``<style>`` (inline) of one bundle.

    Which of the two is decided when the page is rendered, from the page's root
    (``gridwatch_static``: the relative path of the shared folder, or None to
    inline); see :func:`pipelines.publish.mappage.save_map`.
    """

    def __init__(self, bundle: str) -> None:
        super().__init__()
        self.bundle = bundle

    def render(self, **kwargs: Any) -> str:
        return asset_markup(ASSET_BUNDLES[self.bundle], getattr(self.get_root(), "gridwatch_static", None))


def asset_markup(assets: Iterable[Asset], static: str | None) -> str:
    """Tags loading ``assets`` from the relative folder ``static``, or inlining them when ``static`` is None."""
    parts = []
    for asset in assets:
        if static is None:
            tag = "script" if asset.kind == "js" else "style"
            parts.append(f"<{tag}>{static_text(asset.name, inline=True)}</{tag}>")
        elif asset.kind == "js":
            parts.append(f'<script src="{static}/{asset.name}"></script>')
        else:
            parts.append(f'<link rel="stylesheet" href="{static}/{asset.name}">')
    return "\n".join(parts) + "\n"


def require_assets(element: Element, bundle: str) -> None:
    """Load ``bundle`` (an :data:`ASSET_BUNDLES` key) in the page of ``element``, once per page."""
    header = element.get_root().header
    name = f"gridwatch_assets_{bundle}"
    if name not in header._children:
        header.add_child(AssetTags(bundle), name=name)


def check_self_contained(page: str, what: str = "page", *, static: str | None = None, folder: Path | None = None) -> None:
    """Raise ``ValueError`` if ``page`` would fetch scripts, styles or media from elsewhere (it would break offline).

    ``static``: the page may load files from this relative folder (e.g.
    ``"../static"``), and only those: no scheme, no absolute path, no ``..``
    below it; with ``folder`` (where the page is) each such file must exist.
    Without ``static`` the page must not reference any file.
    """
    bad = []
    for match in _EXTERNAL_REFERENCE.finditer(page):
        target = match.group(2) if match.group(2) is not None else match.group(4)
        if match.group(5) or static is None or target is None:
            bad.append(match.group(0)[:80])
            continue
        name = target[len(static) + 1:] if target.startswith(f"{static}/") else ""
        if not name or "/" in name or "\\" in name or ":" in name or name.startswith("."):
            bad.append(match.group(0)[:80])
        elif folder is not None and not (Path(folder) / PurePosixPath(static) / name).is_file():
            bad.append(f"{target} (missing)")
    if bad:
        raise ValueError(f"{what} references external resources: {sorted(set(bad))}")
