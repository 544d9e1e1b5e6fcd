// Bulk upload: sends the chosen photos one request each (two at a time) with a progress bar per file and
// one for the whole selection. Photos the batch already has (listed in #received-names) are skipped, so
// choosing the same photos again after the page was closed sends only the missing ones. Without this
// script the form posts all files at once.
(function () {
  "use strict";
  var form = document.getElementById("photo-form");
  if (!form) return;
  var received = new Set(JSON.parse(document.getElementById("received-names").textContent));
  var token = form.querySelector("input[name=csrfmiddlewaretoken]").value;
  var list = document.getElementById("upload-files");
  var total = document.getElementById("upload-total");
  var summary = document.getElementById("upload-summary");
  var PARALLEL = 2;

  function clean(path) {
    return path.replace(/\\/g, "/").replace(/^\/+/, "");
  }

  function send(entry, done) {
    var data = new FormData();
    data.append("photos", entry.file);
    data.append("path", entry.path);
    var xhr = new XMLHttpRequest();
    xhr.open("POST", form.action);
    xhr.setRequestHeader("X-CSRFToken", token);
    xhr.setRequestHeader("Accept", "application/json");
    xhr.upload.onprogress = function (e) {
      if (e.lengthComputable) { entry.bar.max = e.total; entry.bar.value = e.loaded; }
    };
    xhr.onload = function () {
      var answer = {};
      try { answer = JSON.parse(xhr.responseText); } catch (err) { answer = { errors: ["HTTP " + xhr.status] }; }
      if (xhr.status === 200) {
        entry.item.classList.add("ok");
        entry.note.textContent = "received";
        entry.bar.value = entry.bar.max;
      } else {
        entry.item.classList.add("failed");
        entry.note.textContent = (answer.errors || ["failed"]).join(" ");
      }
      done(xhr.status === 200);
    };
    xhr.onerror = function () {
      entry.item.classList.add("failed");
      entry.note.textContent = "network error: choose the photos again to resume";
      done(false);
    };
    xhr.send(data);
  }

  function start(files) {
    var entries = [];
    var skipped = 0;
    Array.prototype.forEach.call(files, function (file) {
      var path = clean(file.webkitRelativePath || file.name);
      if (received.has(path)) { skipped += 1; return; }
      var item = document.createElement("li");
      var bar = document.createElement("progress");
      bar.max = 1; bar.value = 0;
      var note = document.createElement("span");
      item.append(path + " ", bar, " ", note);
      list.append(item);
      entries.push({ file: file, path: path, item: item, bar: bar, note: note });
    });
    document.getElementById("upload-progress").hidden = false;
    total.max = Math.max(entries.length, 1);
    var finished = 0, failed = 0, next = 0;
    function report() {
      summary.textContent = finished + " / " + entries.length + " sent" + (failed ? ", " + failed + " failed" : "") +
        (skipped ? " (" + skipped + " already received)" : "");
      total.value = finished;
    }
    function pump() {
      if (next >= entries.length) {
        if (finished === entries.length) {
          summary.textContent += " - done";
          if (!failed) window.location.reload();
        }
        return;
      }
      var entry = entries[next++];
      send(entry, function (ok) {
        finished += 1;
        if (ok) received.add(entry.path); else failed += 1;
        report();
        pump();
      });
    }
    report();
    if (!entries.length) { summary.textContent += " - nothing new to send"; return; }
    for (var i = 0; i < PARALLEL; i++) pump();
  }

  form.querySelectorAll("input[type=file]").forEach(function (input) {
    input.addEventListener("change", function () { start(input.files); input.value = ""; });
  });
  form.addEventListener("submit", function (e) { e.preventDefault(); });
})();
