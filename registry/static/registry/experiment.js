// Experiment page: the primary metric per arm with its 95 % interval as error bars, from
// <script id="chart-data" type="application/json"> (points) and "chart-metric" (axis title).
(function () {
  var source = document.getElementById("chart-data");
  var target = document.getElementById("metric-chart");
  if (!source || !target || !window.Plotly) return;
  var points = JSON.parse(source.textContent);
  var metric = JSON.parse(document.getElementById("chart-metric").textContent);
  Plotly.newPlot(target, [{
    type: "scatter", mode: "markers",
    x: points.map(function (p) { return p.label; }),
    y: points.map(function (p) { return p.value; }),
    error_y: {
      type: "data", symmetric: false,
      array: points.map(function (p) { return p.high - p.value; }),
      arrayminus: points.map(function (p) { return p.value - p.low; })
    },
    marker: { size: 10 }
  }], { yaxis: { title: { text: metric }, range: [0, 1] }, margin: { t: 20 } },
  { displaylogo: false, responsive: true });
})();
