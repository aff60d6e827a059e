// Four bar panels (FPR, TPR, flag rate, precision) with asymmetric CI error bars.
(function () {
  var source = document.getElementById("fairness-chart-data");
  var target = document.getElementById("fairness-chart");
  if (!source || !target || !window.Plotly) return;
  var data = JSON.parse(source.textContent);
  var traces = [], layout = {
    grid: { rows: 2, columns: 2, pattern: "independent" },
    height: 620, margin: { t: 40, r: 20, b: 40, l: 60 }, showlegend: false, annotations: []
  };
  data.panels.forEach(function (panel, i) {
    var axis = i === 0 ? "" : String(i + 1);
    traces.push({
      type: "bar", x: panel.x, y: panel.y, name: panel.title,
      xaxis: "x" + axis, yaxis: "y" + axis,
      marker: { color: panel.colours },
      error_y: { type: "data", symmetric: false, array: panel.plus, arrayminus: panel.minus, visible: true },
      hovertemplate: "%{x}: %{y:.4f}<extra>" + panel.title + "</extra>"
    });
    layout["yaxis" + axis] = { rangemode: "tozero", tickformat: ".1%" };
    layout.annotations.push({
      text: "<b>" + panel.title + "</b>", showarrow: false,
      xref: "x" + axis + " domain", yref: "y" + axis + " domain", x: 0.5, y: 1.12
    });
  });
  Plotly.newPlot(target, traces, layout, { displaylogo: false, responsive: true });
})();
