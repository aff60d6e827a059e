// SHAP waterfall charts: every <script type="application/json" id="...-data"> whose id
// starts with "waterfall" is drawn into the element named by the id without "-data".
(function () {
  function fmt(x) { return (x >= 0 ? "+" : "") + x.toFixed(4); }
  function hover(bar) {
    if (bar.measure === "absolute") {
      return "base value " + bar.value.toFixed(4) + " log-odds<br>p = " + bar.probability.toFixed(4);
    }
    if (bar.measure === "total") {
      return "model output " + bar.value.toFixed(4) + " log-odds<br>p = " + bar.probability.toFixed(4);
    }
    var value = bar.feature_value === null || bar.feature_value === undefined
      ? "" : "value " + bar.feature_value + "<br>";
    return bar.label + "<br>" + value + "contribution " + fmt(bar.value) + " log-odds<br>" +
      "running total " + bar.running.toFixed(4) + " (p = " + bar.probability.toFixed(4) + ")";
  }
  function draw(target, data) {
    var bars = data.bars;
    var trace = {
      type: "waterfall",
      orientation: "h",
      measure: bars.map(function (b) { return b.measure; }),
      y: bars.map(function (b) { return b.label; }),
      x: bars.map(function (b) { return b.value; }),
      base: 0,
      text: bars.map(function (b) { return b.measure === "relative" ? fmt(b.value) : b.value.toFixed(3); }),
      textposition: "outside",
      hovertext: bars.map(hover),
      hoverinfo: "text",
      increasing: { marker: { color: "#c0392b" } },
      decreasing: { marker: { color: "#1f5fbf" } },
      totals: { marker: { color: "#5b6675" } },
      connector: { line: { color: "#9aa5b1", width: 1 } },
    };
    // Base and total bars start at zero; zoom the axis onto the path from base to output
    // so that the contributions stay readable.
    var running = bars.map(function (b) { return b.running; }).concat([bars[0].value]);
    var lo = Math.min.apply(null, running), hi = Math.max.apply(null, running);
    var pad = Math.max(0.25 * (hi - lo), 0.1);
    var layout = {
      margin: { l: 190, r: 40, t: 30, b: 50 },
      height: Math.max(320, 34 * bars.length + 80),
      xaxis: { title: { text: "log-odds (model output f(x) = " + data.margin.toFixed(3) +
        ", p = " + data.probability.toFixed(3) + ")" }, zeroline: true,
        range: [lo - pad, hi + pad] },
      yaxis: { automargin: true, type: "category" },
      showlegend: false,
    };
    Plotly.newPlot(target, [trace], layout, { displaylogo: false, responsive: true });
  }
  document.querySelectorAll("script[type='application/json'][id^='waterfall']").forEach(
    function (node) {
      var target = document.getElementById(node.id.replace(/-data$/, ""));
      if (target) { draw(target, JSON.parse(node.textContent)); }
    }
  );
})();
