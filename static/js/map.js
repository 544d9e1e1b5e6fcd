// Map of sightings (Leaflet, vendored). Reads {tiles, attribution, points} from the #map-data JSON.
// With no tile URL configured (instances may run offline) it draws a plain latitude/longitude grid instead
// of map tiles, so positions and distances still read correctly.
(function () {
  "use strict";
  var STEPS = [30, 10, 5, 2, 1, 0.5, 0.2, 0.1, 0.05, 0.02, 0.01, 0.005, 0.002, 0.001];

  function gridLayer() {
    var Grid = L.GridLayer.extend({
      createTile: function (coords) {
        var tile = document.createElement("canvas");
        var size = this.getTileSize();
        tile.width = size.x;
        tile.height = size.y;
        var map = this._map;
        var origin = coords.scaleBy(size);
        var nw = map.unproject(origin, coords.z);
        var se = map.unproject(origin.add(size), coords.z);
        var span = Math.abs(se.lng - nw.lng);
        var step = STEPS.find(function (s) { return span / s >= 1.5; }) || STEPS[STEPS.length - 1];
        var ctx = tile.getContext("2d");
        ctx.fillStyle = "#f4f1ea";
        ctx.fillRect(0, 0, size.x, size.y);
        ctx.strokeStyle = "#c9c2b3";
        ctx.fillStyle = "#8a826f";
        ctx.font = "10px sans-serif";
        var digits = step < 1 ? Math.ceil(-Math.log10(step)) : 0;
        for (var lon = Math.ceil(nw.lng / step) * step; lon <= se.lng; lon += step) {
          var x = map.project([0, lon], coords.z).x - origin.x;
          ctx.beginPath(); ctx.moveTo(x, 0); ctx.lineTo(x, size.y); ctx.stroke();
          if (coords.y % 2 === 0) ctx.fillText(lon.toFixed(digits) + "°", x + 2, size.y - 3);
        }
        for (var lat = Math.ceil(se.lat / step) * step; lat <= nw.lat; lat += step) {
          var y = map.project([lat, 0], coords.z).y - origin.y;
          ctx.beginPath(); ctx.moveTo(0, y); ctx.lineTo(size.x, y); ctx.stroke();
          if (coords.x % 3 === 0) ctx.fillText(lat.toFixed(digits) + "°", 2, y - 2);
        }
        return tile;
      }
    });
    return new Grid({ attribution: "Grid: no map tiles configured" });
  }

  function baseLayer(data) {
    return data.tiles ? L.tileLayer(data.tiles, { maxZoom: 18, attribution: data.attribution }) : gridLayer();
  }

  // A form's place picker: a click on the map fills its latitude and longitude fields, and typing in them
  // moves the marker (data.pick names the map element and the two fields).
  function pick(data) {
    var element = document.getElementById(data.pick.element);
    var lat = document.getElementById(data.pick.lat);
    var lon = document.getElementById(data.pick.lon);
    if (!element || !lat || !lon) return;
    var map = L.map(element, { scrollWheelZoom: false }).setView([0, 20], 2);
    baseLayer(data).addTo(map);
    var marker = null;
    function show() {
      var a = parseFloat(lat.value), b = parseFloat(lon.value);
      if (!isFinite(a) || !isFinite(b)) return;
      if (marker) { marker.setLatLng([a, b]); } else {
        marker = L.circleMarker([a, b], { radius: 7, color: "#1d4633", fillColor: "#2f6f4e", fillOpacity: 0.9 }).addTo(map);
      }
      map.setView([a, b], Math.max(map.getZoom(), 9));
    }
    map.on("click", function (e) {
      lat.value = e.latlng.lat.toFixed(5);
      lon.value = L.Util.wrapNum(e.latlng.lng, [-180, 180], true).toFixed(5);
      show();
    });
    lat.addEventListener("change", show);
    lon.addEventListener("change", show);
    show();
    element.dataset.ready = "1";
  }

  function draw() {
    var source = document.getElementById("map-data");
    if (!source || typeof L === "undefined") return;
    var data = JSON.parse(source.textContent);
    if (data.pick) { pick(data); return; }
    var element = document.getElementById("map");
    if (!element) return;
    if (!data.points.length) { element.hidden = true; return; }
    var map = L.map(element, { scrollWheelZoom: false });
    baseLayer(data).addTo(map);
    var bounds = [];
    data.points.forEach(function (p) {
      if (p.radius_m) {
        L.circle([p.lat, p.lon], { radius: p.radius_m, weight: 1, color: "#2f6f4e", fillOpacity: 0.08 }).addTo(map);
      }
      var marker = L.circleMarker([p.lat, p.lon], { radius: 6, color: "#1d4633", fillColor: "#2f6f4e", fillOpacity: 0.9 });
      var link = document.createElement("a");
      link.href = p.url;
      link.textContent = p.label;
      marker.bindPopup(link).addTo(map);
      bounds.push([p.lat, p.lon]);
    });
    map.fitBounds(bounds, { padding: [30, 30], maxZoom: 13 });
    element.dataset.points = String(bounds.length);
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", draw);
  } else {
    draw();
  }
})();
