// gridwatch maps: popups, charts and layer data (see _layer_data in pipelines/publish/mappage.py), clusters.
function gridwatchPopup(labels, values) {
    var box = document.createElement("div");
    box.className = "gw-popup";
    var table = box.appendChild(document.createElement("table"));
    labels.forEach(function (label, i) {
        var value = values[i];
        if (value === null || value === undefined) { return; }
        var row = table.insertRow();
        row.appendChild(document.createElement("th")).textContent = label;
        var cell = row.insertCell();
        if (typeof value === "object" && value.kwh) {
            cell.appendChild(gridwatchChart(value));
        } else if (typeof value === "object") {
            var link = cell.appendChild(document.createElement("a"));
            link.href = value.href;
            link.textContent = value.text;
        } else {
            cell.textContent = value;
        }
    });
    return box;
}

// A daily-use chart built as SVG nodes from numbers (never parsed from markup):
// kwh (null = unknown), the reference line (floor or baseline) and the flagged run.
function gridwatchChart(spec) {
    var ns = "http://www.w3.org/2000/svg", w = 260, h = 90, top = 12, bottom = 16;
    var svg = document.createElementNS(ns, "svg");
    svg.setAttribute("width", w); svg.setAttribute("height", h);
    svg.setAttribute("viewBox", "0 0 " + w + " " + h);
    var known = spec.kwh.filter(function (v) { return v !== null; });
    var max = Math.max.apply(null, known.concat([spec.ref || 0, 1]));
    var n = spec.kwh.length, step = w / Math.max(n, 1);
    function y(v) { return top + (h - top - bottom) * (1 - v / max); }
    function add(tag, attrs, text) {
        var el = svg.appendChild(document.createElementNS(ns, tag));
        Object.keys(attrs).forEach(function (k) { el.setAttribute(k, attrs[k]); });
        if (text !== undefined) { el.textContent = text; }
        return el;
    }
    add("rect", {x: 0, y: 0, width: w, height: h, fill: "#fafafa"});
    if (spec.since !== null && spec.since < n) {
        add("rect", {x: spec.since * step, y: top, width: (n - spec.since) * step, height: h - top - bottom, fill: "#ffcdd2"});
    }
    spec.kwh.forEach(function (v, i) {
        if (v === null) { return; }
        add("rect", {x: i * step + 0.5, y: y(v), width: Math.max(step - 1, 1), height: Math.max(h - bottom - y(v), 0.5),
                     fill: spec.rest && spec.rest[i] ? "#90a4ae" : "#37474f"});
    });
    if (spec.ref !== null) {
        add("line", {x1: 0, x2: w, y1: y(spec.ref), y2: y(spec.ref), stroke: "#d50000", "stroke-dasharray": "4 3"});
        add("text", {x: 2, y: y(spec.ref) - 2, "font-size": 9, fill: "#d50000"}, spec.ref_label);
    }
    add("text", {x: w - 2, y: 9, "font-size": 9, "text-anchor": "end", fill: "#555"}, "max " + Math.round(max) + " kWh/d");
    add("text", {x: 0, y: h - 4, "font-size": 9, fill: "#555"}, spec.start);
    add("text", {x: w, y: h - 4, "font-size": 9, "text-anchor": "end", fill: "#555"}, spec.end);
    return svg;
}

// Entry j of a column written by _column() in pipelines/publish/mappage.py: [table, indices]
// (interned), or [table] alone: one value for every feature, or one per feature;
// or [table, p]: the column is slot p of the layer's combined rows (data.c, see
// _combine): data.c[0] holds the distinct rows of indices, data.c[1] feature j's row.
function gridwatchValue(column, j, data) {
    var table = column[0];
    if (column.length === 1) { return table[table.length === 1 ? 0 : j]; }
    var at = column[1];
    return typeof at === "number" ? table[data.c[0][data.c[1][j]][at]] : table[at[j]];
}

// The features of a layer written by _layer_data(): GeoJSON for L.geoJson, each
// with its style index (k) and its row (j) in the layer's columns. Points come
// from the lat/lon arrays, other shapes as GeoJSON geometries (g).
function gridwatchFeatures(data) {
    var features = new Array(data.n);
    for (var j = 0; j < data.n; j++) {
        features[j] = {
            type: "Feature",
            properties: {k: gridwatchValue(data.k, j, data), j: j},
            geometry: data.g ? data.g[j] : {type: "Point", coordinates: [data.lon[j], data.lat[j]]}
        };
    }
    return features;
}

// The popup values of feature j, in label order. A column written as 0 is the
// WGS84 position, derived from the point's coordinates (they are WGS84 then).
function gridwatchRow(data, j) {
    return data.v.map(function (column) {
        return column === 0 ? data.lat[j].toFixed(5) + "°N " + data.lon[j].toFixed(5) + "°E"
                            : gridwatchValue(column, j, data);
    });
}

function gridwatchCluster(points, opts) {
    var group = L.markerClusterGroup({
        chunkedLoading: true,
        disableClusteringAtZoom: opts.disableAt,
        maxClusterRadius: opts.radius,
        showCoverageOnHover: false,
        spiderfyOnMaxZoom: false,
        iconCreateFunction: function (cluster) {
            var n = cluster.getChildCount();
            var size = n < 10 ? 28 : n < 100 ? 34 : n < 1000 ? 40 : 46;
            var div = document.createElement("div");
            div.className = "gw-cluster";
            div.style.backgroundColor = opts.colour;
            div.textContent = n < 10000 ? String(n) : Math.round(n / 1000) + "k";
            return L.divIcon({html: div, className: "gw-cluster-icon", iconSize: L.point(size, size)});
        }
    });
    group.addLayers(points.getLayers());
    return group;
}

// The popup and tooltip of a cluster group are bound on the group, not on each
// marker; a marker's own would close when the marker leaves the map (zooming
// out merges it into a cluster), and so do these.
function gridwatchFollowMarkers(group) {
    [["popupopen", "popupclose", "closePopup"], ["tooltipopen", "tooltipclose", "closeTooltip"]].forEach(function (kind) {
        var shown = null;
        function hide() { group[kind[2]](); }
        group.on(kind[0], function (e) {
            if (shown) { shown.off("remove", hide); }
            shown = e.propagatedFrom || null;
            if (shown) { shown.on("remove", hide); }
        });
        group.on(kind[1], function () {
            if (shown) { shown.off("remove", hide); }
            shown = null;
        });
    });
}

// ------------------------------------------------------------------ drawing
// Every map page draws its layers and controls with the functions below, from
// the JSON that pipelines/publish/maps.py writes: a cell map as one page description
// (gridwatchPage), the overview and the plan (folium pages) one call per layer.

// Layers drawn on the page, for tests and benchmarks: {name, features, layer, kind}.
function gridwatchRegister(name, count, layer, kind) {
    window.gridwatchLayers = window.gridwatchLayers || [];
    window.gridwatchLayers.push({name: name, features: count, layer: layer, kind: kind});
}

// A vector layer (_FeatureLayer.spec): points become circle markers, clustered
// in spec.cluster's colour when given. Tooltips and popups are made from the
// layer's columns when opened, one content function per layer.
function gridwatchFeatureLayer(spec) {
    var data = spec.data, styles = spec.styles, labels = spec.labels;
    function tooltip(layer) {
        return document.createTextNode(gridwatchValue(data.t, layer.feature.properties.j, data));
    }
    function popup(layer) {
        return gridwatchPopup(labels, gridwatchRow(data, layer.feature.properties.j));
    }
    function bind(target) {
        target.bindTooltip(tooltip, spec.tooltip);
        if (data.v) { target.bindPopup(popup, {maxWidth: 300}); }
    }
    var options = {
        style: function (feature) { return styles[feature.properties.k]; },
        pointToLayer: function (feature, latlng) {
            return L.circleMarker(latlng, Object.assign({radius: spec.radius}, styles[feature.properties.k]));
        }
    };
    if (!spec.cluster) { options.onEachFeature = function (feature, layer) { bind(layer); }; }
    var layer = L.geoJson(gridwatchFeatures(data), options);
    if (spec.cluster) {
        layer = gridwatchCluster(layer, spec.cluster);
        // Bound once on the cluster group rather than on each of up to 20,000
        // markers (a third of the page's load time): Leaflet opens them for
        // the marker under the pointer, which the content gets.
        bind(layer);
        gridwatchFollowMarkers(layer);
    }
    gridwatchRegister(spec.name, data.n, layer, spec.cluster ? "cluster" : "vector");
    return layer;
}

// A Leaflet.heat layer of [lat, lon] points, each of weight 1.
function gridwatchHeatLayer(spec) {
    var layer = L.heatLayer(spec.points, spec.options);
    gridwatchRegister(spec.name, spec.points.length, layer, "heat");
    return layer;
}

// A control holding an element of the page (legend, fire list), so Leaflet
// stacks it with the zoom and layer controls instead of overlapping them on a
// phone screen. Rows with data-lat/data-lon zoom the map there when tapped.
function gridwatchControl(map, element, position) {
    var control = L.control({position: position});
    control.onAdd = function () {
        element.hidden = false;
        L.DomEvent.disableClickPropagation(element);
        L.DomEvent.disableScrollPropagation(element);
        // On a phone, start folded so the map is visible; a tap opens it.
        if (window.innerWidth < 700) {
            element.querySelectorAll("details").forEach(function (d) { d.open = false; });
        }
        element.addEventListener("click", function (e) {
            var row = e.target.closest("[data-lat]");
            if (row) {
                // A plain jump: cheap on old phones, and deterministic.
                map.setView([+row.dataset.lat, +row.dataset.lon], Math.max(map.getZoom(), 14), {animate: false});
            }
        });
        return element;
    };
    control.addTo(map);
    return control;
}

// The full-screen button and the measure tool (top left, under the zoom buttons).
function gridwatchTools(map, spec) {
    L.control.fullscreen(spec.fullscreen).addTo(map);
    L.control.gridwatchMeasure(spec.measure).addTo(map);
}

// A whole map page from its description (MapPage in pipelines/publish/mappage.py), the
// JSON in <script id="ID-data">: view, tile layers, tools, layers, layer
// control, and the page's controls (elements with data-gw-control="position").
function gridwatchPage(id) {
    var spec = JSON.parse(document.getElementById(id + "-data").textContent);
    var map = L.map(id, Object.assign({zoomControl: true}, spec.options));
    if (spec.fit.bounds) {
        map.fitBounds(spec.fit.bounds, {maxZoom: spec.fit.maxZoom, padding: spec.fit.padding});
    } else {
        map.setView(spec.fit.center, spec.fit.zoom);
    }
    L.control.scale().addTo(map);
    var bases = {}, overlays = {};
    spec.tiles.forEach(function (tiles) {
        var layer = L.tileLayer(tiles.url, tiles.options).addTo(map);
        if (tiles.control) { (tiles.overlay ? overlays : bases)[tiles.name] = layer; }
    });
    gridwatchTools(map, spec.tools);
    spec.layers.forEach(function (layerSpec) {
        var layer = layerSpec.kind === "heat" ? gridwatchHeatLayer(layerSpec) : gridwatchFeatureLayer(layerSpec);
        if (layerSpec.show) { layer.addTo(map); }
        overlays[layerSpec.name] = layer;
    });
    L.control.layers(bases, overlays, {position: "topright", collapsed: true, autoZIndex: true}).addTo(map);
    document.querySelectorAll("[data-gw-control]").forEach(function (element) {
        gridwatchControl(map, element, element.dataset.gwControl);
    });
    return map;
}
