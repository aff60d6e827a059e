// Drift dashboard: draw each figure from <script id="figures" type="application/json">
// into #chart-<key>, and poll unfinished runs so the progress column moves without a reload.
(function () {
  var source = document.getElementById("figures");
  var figures = (source && JSON.parse(source.textContent || "null")) || {};
  Object.keys(figures).forEach(function (key) {
    var el = document.getElementById("chart-" + key);
    if (el && window.Plotly) {
      Plotly.newPlot(el, figures[key].data, figures[key].layout, { responsive: true, displaylogo: false });
    }
  });
  document.querySelectorAll("tr.run-row.queued, tr.run-row.running").forEach(function (row) {
    var timer = setInterval(function () {
      fetch(row.dataset.statusUrl, { credentials: "same-origin" }).then(function (r) { return r.json(); }).then(function (s) {
        row.querySelector(".run-status").textContent = s.status;
        row.querySelector(".run-progress").textContent = s.windows_done + "/" + s.windows_total;
        if (s.status === "succeeded" || s.status === "failed") { clearInterval(timer); }
      }).catch(function () { clearInterval(timer); });
    }, 2000);
  });
})();
