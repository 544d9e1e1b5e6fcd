// The New sighting form: the project's time zone as the zone of the sighting (until the user types one),
// and only the viewpoints and body parts the chosen species uses. Without this script every choice stays
// offered and the server checks them (catalog.services.check_annotation_vocabulary).
(function () {
  "use strict";
  var source = document.getElementById("sighting-choices");
  var form = document.getElementById("sighting-form");
  if (!source || !form) return;
  var data = JSON.parse(source.textContent);
  var project = form.querySelector("[name=project]");
  var zone = form.querySelector("[name=time_zone]");
  var species = form.querySelector("[name=species]");
  var viewpoint = form.querySelector("[name=viewpoint]");
  var bodyPart = form.querySelector("[name=body_part]");
  var zoneTyped = false;

  if (zone) zone.addEventListener("input", function () { zoneTyped = true; });
  if (project && zone) {
    project.addEventListener("change", function () {
      var z = data.zones[project.value];
      if (z && !zoneTyped) zone.value = z;
    });
  }

  var list = document.createElement("datalist");
  list.id = "body-part-choices";
  form.appendChild(list);
  if (bodyPart) bodyPart.setAttribute("list", list.id);

  function limit() {
    var rules = data.species[species && species.value] || { viewpoints: [], body_parts: [] };
    if (viewpoint) {
      Array.prototype.forEach.call(viewpoint.options, function (option) {
        var allowed = !rules.viewpoints.length || option.value === "" || option.value === "unknown" ||
          rules.viewpoints.indexOf(option.value) >= 0;
        option.hidden = !allowed;
        option.disabled = !allowed;
        if (!allowed && option.selected) viewpoint.value = "unknown";
      });
    }
    list.innerHTML = "";
    rules.body_parts.forEach(function (part) {
      var option = document.createElement("option");
      option.value = part;
      list.appendChild(option);
    });
  }
  if (species) species.addEventListener("change", limit);
  limit();
})();
