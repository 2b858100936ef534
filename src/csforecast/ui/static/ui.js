// csforecast dashboard: draws every chart of the page from its JSON spec (Plotly, served locally) and
// submits the filter form when a filter changes. No network request of its own.
(function () {
  "use strict";
  function draw() {
    if (!window.Plotly) { return; }
    document.querySelectorAll("div.chart[data-spec]").forEach(function (el) {
      var src = document.getElementById(el.getAttribute("data-spec"));
      if (!src) { return; }
      var spec = JSON.parse(src.textContent);
      window.Plotly.newPlot(el, spec.data, spec.layout, {
        displaylogo: false, responsive: true, showLink: false, showSendToCloud: false,
        modeBarButtonsToRemove: ["select2d", "lasso2d"]
      });
    });
  }
  function filters() {
    document.querySelectorAll("form.filters select").forEach(function (sel) {
      sel.addEventListener("change", function () { sel.form.submit(); });
    });
  }
  document.addEventListener("DOMContentLoaded", function () { filters(); draw(); });
})();
