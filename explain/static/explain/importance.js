// Global importance: mean |SHAP| bars and a beeswarm-style strip plot per feature.
(function () {
  var node = document.getElementById("importance-data");
  if (!node) { return; }
  var data = JSON.parse(node.textContent);
  var names = data.names.slice().reverse();
  Plotly.newPlot("importance-bars", [{
    type: "bar", orientation: "h", x: data.mean_abs.slice().reverse(), y: names,
    marker: { color: "#1f5fbf" },
    hovertemplate: "%{y}: mean |SHAP| %{x:.4f}<extra></extra>",
  }], {
    margin: { l: 190, r: 30, t: 20, b: 50 }, height: Math.max(300, 22 * names.length + 80),
    xaxis: { title: { text: "mean |SHAP| (log-odds)" } }, yaxis: { automargin: true },
  }, { displaylogo: false, responsive: true });

  // Deterministic jitter so the plot does not move between reloads.
  function jitter(i) { var x = Math.sin(i * 12.9898) * 43758.5453; return (x - Math.floor(x) - 0.5) * 0.6; }
  var strips = data.strips.slice().reverse();
  var traces = strips.map(function (s, k) {
    return {
      type: "scatter", mode: "markers", name: s.feature,
      x: s.shap, y: s.shap.map(function (_, i) { return k + jitter(i); }),
      text: s.value.map(function (v) { return v === null ? "missing" : v; }),
      hovertemplate: s.feature + " = %{text}<br>SHAP %{x:.4f}<extra></extra>",
      marker: { size: 5, color: s.rank, colorscale: [[0, "#1f5fbf"], [1, "#c0392b"]], cmin: 0, cmax: 1,
        showscale: k === 0, colorbar: { title: { text: "value rank" }, tickvals: [0, 1], ticktext: ["low", "high"] } },
    };
  });
  Plotly.newPlot("importance-strips", traces, {
    margin: { l: 190, r: 30, t: 20, b: 50 }, height: Math.max(320, 36 * strips.length + 80),
    showlegend: false, xaxis: { title: { text: "SHAP value (log-odds)" }, zeroline: true },
    yaxis: { tickvals: strips.map(function (_, k) { return k; }),
      ticktext: strips.map(function (s) { return s.feature; }), automargin: true },
  }, { displaylogo: false, responsive: true });
})();
