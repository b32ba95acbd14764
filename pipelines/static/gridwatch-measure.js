/*
 * gridwatch measure control: distance along clicked points and the area they enclose.
 * Part of gridwatch (MIT). Written for the offline supervisor maps instead of
 * leaflet-measure, whose 3.1.0 release breaks with Leaflet >= 1.8 and builds its
 * result panel from HTML templates. Everything here is set with textContent.
 *
 * Distances: great-circle (Leaflet's distanceTo, sphere of radius 6371 km).
 * Area: spherical polygon area on a sphere of radius 6378137 m (the formula of
 * Leaflet.draw's geodesicArea). On an Amap (GCJ-02) basemap the points are in
 * GCJ-02; its offset changes by a few metres per kilometre at most, so lengths
 * and areas differ from WGS84 by well under 1 %.
 *
 * Usage: L.control.gridwatchMeasure({labels: {...}}).addTo(map)
 */
(function (L) {
    "use strict";

    var EARTH_RADIUS_M = 6378137;
    var MU_M2 = 10000 / 15; // 1 亩 (mu) = 666.67 m²: how fields are sized in China

    function geodesicArea(latlngs) {
        var n = latlngs.length, area = 0, d2r = Math.PI / 180;
        if (n < 3) { return 0; }
        for (var i = 0; i < n; i++) {
            var p1 = latlngs[i], p2 = latlngs[(i + 1) % n];
            area += (p2.lng - p1.lng) * d2r * (2 + Math.sin(p1.lat * d2r) + Math.sin(p2.lat * d2r));
        }
        return Math.abs(area * EARTH_RADIUS_M * EARTH_RADIUS_M / 2);
    }

    function formatLength(m) {
        return m < 1000 ? Math.round(m) + " m" : (m / 1000).toFixed(m < 10000 ? 2 : 1) + " km";
    }

    function formatArea(m2) {
        var mu = Math.round(m2 / MU_M2).toLocaleString("en-US");
        if (m2 < 1e6) { return (m2 / 1e4).toFixed(2) + " ha · " + mu + " 亩"; }
        return (m2 / 1e6).toFixed(2) + " km² · " + mu + " 亩";
    }

    L.Control.GridwatchMeasure = L.Control.extend({
        options: {
            position: "topleft",
            colour: "#1565c0",
            labels: {
                button: "测量距离和面积 measure distance and area",
                hint: "点击地图添加点 tap the map to add points",
                length: "距离 distance",
                area: "面积 area",
                finish: "完成 finish",
                clear: "清除 clear"
            }
        },

        onAdd: function (map) {
            var labels = this.options.labels;
            var container = L.DomUtil.create("div", "leaflet-bar gw-measure");
            this._button = L.DomUtil.create("a", "gw-measure-button", container);
            this._button.href = "#";
            this._button.title = labels.button;
            this._button.setAttribute("role", "button");
            this._button.setAttribute("aria-label", labels.button);
            this._panel = L.DomUtil.create("div", "gw-measure-panel", container);
            this._panel.style.display = "none";
            this._text = L.DomUtil.create("div", "gw-measure-text", this._panel);
            var finish = this._panelButton(labels.finish, this._finish);
            var clear = this._panelButton(labels.clear, this._clear);
            this._panel.appendChild(finish);
            this._panel.appendChild(clear);
            L.DomEvent.disableClickPropagation(container);
            L.DomEvent.disableScrollPropagation(container);
            L.DomEvent.on(this._button, "click", L.DomEvent.preventDefault);
            L.DomEvent.on(this._button, "click", this._toggle, this);
            this._layer = L.layerGroup().addTo(map);
            this._points = [];
            this._active = false;
            return container;
        },

        onRemove: function (map) {
            this._stop();
            map.removeLayer(this._layer);
        },

        _panelButton: function (text, handler) {
            var b = document.createElement("button");
            b.type = "button";
            b.textContent = text;
            L.DomEvent.on(b, "click", handler, this);
            return b;
        },

        _toggle: function () {
            if (this._active) { this._stop(); this._clear(); this._panel.style.display = "none"; }
            else { this._start(); }
        },

        _start: function () {
            this._active = true;
            this._panel.style.display = "";
            L.DomUtil.addClass(this._map.getContainer(), "gw-measuring");
            L.DomUtil.addClass(this._button, "gw-active");
            this._map.on("click", this._addPoint, this);
            // A tap on a fire while measuring adds a point; it must not open the fire's popup.
            this._map.on("popupopen", this._suppressPopup, this);
            this._update();
        },

        _stop: function () {
            this._active = false;
            L.DomUtil.removeClass(this._map.getContainer(), "gw-measuring");
            L.DomUtil.removeClass(this._button, "gw-active");
            this._map.off("click", this._addPoint, this);
            this._map.off("popupopen", this._suppressPopup, this);
        },

        _finish: function () {
            this._stop();
            this._update();
        },

        _clear: function () {
            this._points = [];
            this._layer.clearLayers();
            this._update();
        },

        _suppressPopup: function (e) {
            this._map.closePopup(e.popup);
        },

        _addPoint: function (e) {
            this.addLatLng(e.latlng);
        },

        // Public so a test (or a probe) can measure without synthesising clicks.
        addLatLng: function (latlng) {
            this._points.push(L.latLng(latlng));
            this._draw();
            this._update();
        },

        length: function () {
            var total = 0;
            for (var i = 1; i < this._points.length; i++) {
                total += this._points[i - 1].distanceTo(this._points[i]);
            }
            return total;
        },

        area: function () {
            return geodesicArea(this._points);
        },

        _draw: function () {
            var style = {color: this.options.colour, weight: 3, interactive: false};
            this._layer.clearLayers();
            if (this._points.length >= 3) {
                L.polygon(this._points, L.extend({fillOpacity: 0.1, dashArray: "6 4"}, style)).addTo(this._layer);
            } else if (this._points.length === 2) {
                L.polyline(this._points, style).addTo(this._layer);
            }
            this._points.forEach(function (p) {
                L.circleMarker(p, L.extend({radius: 4, fillColor: "#fff", fillOpacity: 1}, style)).addTo(this._layer);
            }, this);
        },

        _update: function () {
            var labels = this.options.labels;
            var lines = [];
            if (this._points.length < 2) {
                lines.push(this._active ? labels.hint : "");
            } else {
                lines.push(labels.length + ": " + formatLength(this.length()));
            }
            if (this._points.length >= 3) {
                lines.push(labels.area + ": " + formatArea(this.area()));
            }
            this._text.textContent = lines.join("\n");
        }
    });

    L.control.gridwatchMeasure = function (options) {
        return new L.Control.GridwatchMeasure(options);
    };
})(window.L);
