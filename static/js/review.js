// Keyboard shortcuts of the review page: a key clicks the button that carries it in data-key
// (1-9 confirm that candidate, n new individual, s skip, u unidentifiable, z undo). Plain buttons
// underneath, so everything also works without this script.
(function () {
  "use strict";
  document.addEventListener("keydown", function (event) {
    if (event.ctrlKey || event.metaKey || event.altKey) return;
    var target = event.target;
    if (target && (target.tagName === "INPUT" || target.tagName === "TEXTAREA" || target.isContentEditable)) return;
    var key = event.key.toLowerCase();
    var button = document.querySelector('button[data-key="' + key + '"]');
    if (!button) return;
    event.preventDefault();
    button.classList.add("pressed");
    button.click();
  });
})();
