// Side-by-side comparison on the review page: the query photo and a candidate's, each first fitted to its
// animal's box, then zoomed (wheel, +/-, two-finger pinch) and panned (mouse drag, one finger) together; the
// verified keypoint matches of the local matcher drawn as lines between them (K toggles them, F or the Fit
// button fits again). The candidate's gallery, grouped by body part, loads below. Re-initialised whenever htmx
// swaps the job in (polling ends).
(function () {
  "use strict";
  var COLORS = ["#ffd400", "#00e0ff", "#ff5ca8", "#7cff6b", "#ff9f1c"];

  function init(root) {
    var section = root.querySelector ? root.querySelector("#compare") : null;
    if (!section || section.dataset.ready) return;
    section.dataset.ready = "1";
    var data = JSON.parse(section.querySelector("#compare-data").textContent);
    var views = [section.querySelector("#view-query"), section.querySelector("#view-candidate")];
    var svg = section.querySelector("svg.pairs");
    var toggle = section.querySelector("#show-keypoints");
    var select = section.querySelector("#compare-candidate");
    var state = { zoom: 1, panX: 0, panY: 0 };
    var MIN_ZOOM = 0.2, MAX_ZOOM = 40;
    var photos = [data.query, data.candidates[0]];

    function base(view, photo) {
      var vw = view.clientWidth, vh = view.clientHeight, b = photo.box;
      var s = 0.9 * Math.min(vw / b[2], vh / b[3]);
      return { s: s, tx: vw / 2 - s * (b[0] + b[2] / 2), ty: vh / 2 - s * (b[1] + b[3] / 2) };
    }
    function transformOf(i) {
      var view = views[i], b = base(view, photos[i]);
      var cx = view.clientWidth / 2, cy = view.clientHeight / 2;
      return {
        s: b.s * state.zoom,
        tx: cx + state.zoom * (b.tx - cx) + state.panX,
        ty: cy + state.zoom * (b.ty - cy) + state.panY
      };
    }
    function render() {
      views.forEach(function (view, i) {
        var t = transformOf(i), stage = view.querySelector(".stage");
        stage.style.width = photos[i].width + "px";
        stage.style.height = photos[i].height + "px";
        stage.style.transform = "translate(" + t.tx + "px," + t.ty + "px) scale(" + t.s + ")";
      });
      drawPairs();
    }
    function drawPairs() {
      while (svg.firstChild) svg.removeChild(svg.firstChild);
      var pairs = photos[1].pairs || [];
      section.querySelector("#pair-count").textContent = pairs.length + " verified keypoint match" + (pairs.length === 1 ? "" : "es");
      if (!toggle.checked) return;
      var box = svg.getBoundingClientRect();
      var r0 = views[0].getBoundingClientRect(), r1 = views[1].getBoundingClientRect();
      var t0 = transformOf(0), t1 = transformOf(1);
      pairs.forEach(function (p, n) {
        var x1 = t0.tx + t0.s * p[0], y1 = t0.ty + t0.s * p[1];
        var x2 = t1.tx + t1.s * p[2], y2 = t1.ty + t1.s * p[3];
        if (x1 < 0 || y1 < 0 || x1 > r0.width || y1 > r0.height) return;
        if (x2 < 0 || y2 < 0 || x2 > r1.width || y2 > r1.height) return;
        var line = document.createElementNS("http://www.w3.org/2000/svg", "line");
        line.setAttribute("x1", r0.left - box.left + x1);
        line.setAttribute("y1", r0.top - box.top + y1);
        line.setAttribute("x2", r1.left - box.left + x2);
        line.setAttribute("y2", r1.top - box.top + y2);
        line.setAttribute("stroke", COLORS[n % COLORS.length]);
        svg.appendChild(line);
      });
    }
    function zoomAt(view, factor, clientX, clientY) {
      factor = Math.min(Math.max(factor, MIN_ZOOM / state.zoom), MAX_ZOOM / state.zoom);
      var r = view.getBoundingClientRect();
      var mx = clientX - r.left - view.clientWidth / 2, my = clientY - r.top - view.clientHeight / 2;
      state.panX = mx - factor * (mx - state.panX);
      state.panY = my - factor * (my - state.panY);
      state.zoom *= factor;
      render();
    }
    function fit() { state = { zoom: 1, panX: 0, panY: 0 }; render(); }
    function show(index) {
      photos[1] = data.candidates[index];
      var img = views[1].querySelector("img");
      img.src = photos[1].src;
      section.querySelector("#candidate-tag").textContent = "#" + photos[1].rank + " " + photos[1].code;
      fit();
      if (window.htmx) window.htmx.ajax("GET", photos[1].gallery, { target: "#candidate-gallery" });
    }

    views.forEach(function (view) {
      view.addEventListener("wheel", function (e) {
        e.preventDefault();
        zoomAt(view, e.deltaY < 0 ? 1.2 : 1 / 1.2, e.clientX, e.clientY);
      }, { passive: false });
      // Pointers down on this view, by id: one pans, two pinch (zoom about their midpoint, and pan as it moves).
      var pointers = new Map();
      function spread() {
        var p = Array.from(pointers.values());
        return { d: Math.hypot(p[0].x - p[1].x, p[0].y - p[1].y), x: (p[0].x + p[1].x) / 2, y: (p[0].y + p[1].y) / 2 };
      }
      view.addEventListener("pointerdown", function (e) {
        if (e.pointerType === "mouse" && e.button !== 0) return;
        if (pointers.size >= 2) return;
        e.preventDefault();
        view.setPointerCapture(e.pointerId);
        pointers.set(e.pointerId, { x: e.clientX, y: e.clientY });
      });
      view.addEventListener("pointermove", function (e) {
        var p = pointers.get(e.pointerId);
        if (!p) return;
        if (pointers.size === 1) {
          state.panX += e.clientX - p.x;
          state.panY += e.clientY - p.y;
          p.x = e.clientX; p.y = e.clientY;
          render();
          return;
        }
        var before = spread();
        p.x = e.clientX; p.y = e.clientY;
        var after = spread();
        state.panX += after.x - before.x;
        state.panY += after.y - before.y;
        if (before.d > 0 && after.d > 0) zoomAt(view, after.d / before.d, after.x, after.y);
        else render();
      });
      function release(e) { pointers.delete(e.pointerId); }
      view.addEventListener("pointerup", release);
      view.addEventListener("pointercancel", release);
      view.addEventListener("lostpointercapture", release);
    });
    var fitButton = section.querySelector("#compare-fit");
    if (fitButton) fitButton.addEventListener("click", fit);
    document.addEventListener("keydown", function (e) {
      var t = e.target;
      if (e.ctrlKey || e.metaKey || e.altKey || (t && (t.tagName === "INPUT" || t.tagName === "TEXTAREA" || t.tagName === "SELECT"))) return;
      var key = e.key.toLowerCase();
      if (key === "k") { toggle.checked = !toggle.checked; drawPairs(); }
      else if (key === "f") fit();
      else if (key === "+" || key === "=") { var r = views[0].getBoundingClientRect(); zoomAt(views[0], 1.2, r.left + r.width / 2, r.top + r.height / 2); }
      else if (key === "-") { var q = views[0].getBoundingClientRect(); zoomAt(views[0], 1 / 1.2, q.left + q.width / 2, q.top + q.height / 2); }
    });
    toggle.addEventListener("change", drawPairs);
    select.addEventListener("change", function () { show(+select.value); });
    window.addEventListener("resize", render);
    views[0].querySelector("img").src = photos[0].src;
    show(0);
  }

  if (window.htmx) window.htmx.onLoad(init);
  document.addEventListener("DOMContentLoaded", function () { init(document); });
})();
