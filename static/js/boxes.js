// Drawing and editing annotation boxes on the sighting page (vanilla JS, no library).
// - Drag on an empty part of a photo with a mouse (Shift+drag anywhere, e.g. inside a whole-photo box): draws a
//   new box and fills the "Add an annotation" form with the photo and the box in the photo's own pixels (the
//   typed form stays the no-JavaScript path).
// - "Draw a new box", a toggle button above each photo, for touch (and mice): the next drag on the photo draws,
//   even over an existing box. A finger on the photo otherwise scrolls the page, unless it lands on a box.
// - Drag an existing box to move it, its bottom-right handle to resize it (mouse, pen or finger): saved through
//   the REST API (PATCH /api/annotations/<id>/); a refused change springs back and says why.
(function () {
  "use strict";
  var MIN = 8; // pixels of the photo: smaller drags are clicks
  var token = (document.querySelector("input[name=csrfmiddlewaretoken]") || {}).value;

  function clamp(v, lo, hi) { return Math.max(lo, Math.min(hi, v)); }

  function setup(frame) {
    var W = +frame.dataset.width, H = +frame.dataset.height;
    var scale = function () { return W / frame.getBoundingClientRect().width; };
    function place(el, box) {
      el.style.left = (100 * box[0] / W) + "%";
      el.style.top = (100 * box[1] / H) + "%";
      el.style.width = (100 * box[2] / W) + "%";
      el.style.height = (100 * box[3] / H) + "%";
      el.dataset.box = box.map(Math.round).join(",");
    }
    function point(event) {
      var r = frame.getBoundingClientRect(), s = scale();
      return [clamp((event.clientX - r.left) * s, 0, W), clamp((event.clientY - r.top) * s, 0, H)];
    }
    function boxOf(el) { return el.dataset.box.split(",").map(Number); }

    function drag(event, el, mode, onDone) {
      event.preventDefault();
      event.stopPropagation();
      var start = point(event), original = boxOf(el);
      frame.setPointerCapture(event.pointerId);
      function move(e) {
        if (e.pointerId !== event.pointerId) return; // a second finger does not take over
        var p = point(e), dx = p[0] - start[0], dy = p[1] - start[1], b;
        if (mode === "move") {
          b = [clamp(original[0] + dx, 0, W - original[2]), clamp(original[1] + dy, 0, H - original[3]), original[2], original[3]];
        } else if (mode === "resize") {
          b = [original[0], original[1], clamp(original[2] + dx, 1, W - original[0]), clamp(original[3] + dy, 1, H - original[1])];
        } else {
          b = [Math.min(start[0], p[0]), Math.min(start[1], p[1]), Math.abs(dx), Math.abs(dy)];
        }
        place(el, b);
      }
      function end(e) {
        if (e.pointerId !== event.pointerId) return;
        frame.removeEventListener("pointermove", move);
        frame.removeEventListener("pointerup", end);
        frame.removeEventListener("pointercancel", end);
        if (e.type === "pointercancel") place(el, original); // the browser took the gesture: nothing changes
        onDone(original, boxOf(el));
      }
      frame.addEventListener("pointermove", move);
      frame.addEventListener("pointerup", end);
      frame.addEventListener("pointercancel", end);
    }

    // The toggle: armed, the next drag draws a new box wherever it starts; the frame then takes every touch
    // (touch-action: none through .drawing) instead of scrolling the page.
    var drawing = false;
    var toggle = document.createElement("button");
    toggle.type = "button";
    toggle.className = "button secondary small draw-toggle";
    toggle.textContent = "Draw a new box";
    toggle.title = "Then drag on the photo (also over another box); Shift+drag does the same with a mouse";
    toggle.setAttribute("aria-pressed", "false");
    function arm(on) {
      drawing = on;
      toggle.setAttribute("aria-pressed", on ? "true" : "false");
      frame.classList.toggle("drawing", on);
    }
    toggle.addEventListener("click", function () { arm(!drawing); });
    var tools = document.createElement("div");
    tools.className = "frame-tools";
    tools.append(toggle);
    frame.before(tools);
    function drawsHere(event) { return drawing || event.shiftKey; }

    function addHandle(el) {
      var handle = document.createElement("span");
      handle.className = "handle";
      handle.title = "drag to resize";
      el.append(handle);
      return handle;
    }

    function fillForm(box) {
      var form = document.querySelector("form[action$='/annotations/']");
      if (!form) return;
      form.querySelector("[name=media_asset]").value = frame.dataset.asset;
      ["x", "y", "width", "height"].forEach(function (name, i) {
        form.querySelector("[name=" + name + "]").value = Math.round(box[i]);
      });
      form.classList.add("filled");
      var species = form.querySelector("[name=species]");
      // Coming from New sighting with the species chosen: the drawn box is the last thing needed.
      if (form.dataset.submitOnDraw === "1" && species && species.value) { form.requestSubmit(); return; }
      if (species) species.focus({ preventScroll: true });
    }

    function save(el, before, after) {
      if (after[2] < MIN || after[3] < MIN || after.join() === before.join()) { place(el, before); return; }
      el.classList.add("saving");
      fetch("/api/annotations/" + el.dataset.annotation + "/", {
        method: "PATCH",
        credentials: "same-origin",
        headers: { "Content-Type": "application/json", "X-CSRFToken": token, "Accept": "application/json" },
        body: JSON.stringify({ x: after[0], y: after[1], width: after[2], height: after[3] })
      }).then(function (response) {
        el.classList.remove("saving");
        if (response.ok) { el.classList.add("saved"); return; }
        return response.json().then(function (body) {
          place(el, before);
          el.title = "Not saved: " + JSON.stringify(body);
          el.classList.add("refused");
        });
      }).catch(function () { place(el, before); el.classList.add("refused"); });
    }

    // The detector's proposals: a click takes one into the form, to be checked and saved as an annotation.
    frame.querySelectorAll(".box.proposal").forEach(function (el) {
      place(el, boxOf(el));
      el.addEventListener("pointerdown", function (e) {
        if (drawsHere(e)) return;
        e.stopPropagation();
        frame.querySelectorAll(".box.proposal.chosen").forEach(function (o) { o.classList.remove("chosen"); });
        el.classList.add("chosen");
        fillForm(boxOf(el));
      });
    });

    frame.querySelectorAll(".box[data-annotation]").forEach(function (el) {
      var handle = addHandle(el);
      el.addEventListener("pointerdown", function (e) {
        if (drawsHere(e)) return; // Shift or the toggle: draw another animal's box over this one
        drag(e, el, e.target === handle ? "resize" : "move", function (b, a) { save(el, b, a); });
      });
    });

    var draft = null;
    frame.addEventListener("pointerdown", function (event) {
      if (event.button !== 0) return;
      // Without the toggle or Shift, only a mouse draws, and only from outside the boxes (a finger scrolls).
      if (!drawsHere(event) && (event.target.closest(".box") || event.pointerType !== "mouse")) return;
      if (draft) draft.remove();
      draft = document.createElement("div");
      draft.className = "box draft";
      var p = point(event);
      place(draft, [p[0], p[1], 0, 0]);
      frame.append(draft);
      var current = draft;
      drag(event, current, "draw", function (before, after) {
        arm(false); // one drag per press of the toggle
        if (after[2] < MIN || after[3] < MIN) { current.remove(); draft = null; return; }
        var handle = addHandle(current);
        current.addEventListener("pointerdown", function (e) {
          if (drawsHere(e)) return;
          drag(e, current, e.target === handle ? "resize" : "move", function (b, a) { fillForm(a); });
        });
        fillForm(after);
      });
    });
  }

  function init(root) {
    root.querySelectorAll(".photo .frame[data-editable]").forEach(function (frame) {
      if (frame.dataset.ready) return;
      frame.dataset.ready = "1";
      setup(frame);
    });
  }
  init(document);
  // The photos are swapped in again while the detector works (htmx polling): set the new ones up too.
  if (window.htmx) window.htmx.onLoad(init);
})();
