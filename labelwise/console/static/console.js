// The console's only script of its own. htmx does the requests; this file only
// - moves focus to the first field a server-side error names, after a swap or a page load,
// - records when the live preview last rendered (bench/preview_latency.py reads it).
(function () {
  "use strict";
  function focusFirstError(root) {
    var bad = (root || document).querySelector("[aria-invalid='true']");
    if (bad && !bad.contains(document.activeElement)) { bad.focus(); }
  }
  document.addEventListener("DOMContentLoaded", function () { focusFirstError(document); });
  document.addEventListener("htmx:afterSettle", function (event) {
    var target = event.detail && event.detail.target;
    if (target && target.id === "preview-result") {
      document.body.setAttribute("data-preview-rendered", String(performance.now()));
    }
  });
})();
