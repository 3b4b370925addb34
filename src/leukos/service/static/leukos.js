// leukos UI behaviour without inline scripts (the page's CSP allows only 'self' scripts).
(function () {
  function drawCharts(root) {
    var data = (root || document).querySelector("#sim-data");
    var el = (root || document).querySelector("#sim-chart");
    if (!data || !el || !window.Plotly) return;
    var d = JSON.parse(data.textContent);
    var t = d.times_min || [];
    // Each series is {p05, median, p95} (draws of the model) or a plain array.
    var spec = [
      ["wbc_10e9_per_l", "WBC (×10⁹/L)", "y", "#a4161a"],
      ["platelets_10e9_per_l", "Platelets (×10⁹/L)", "y", "#1d4f91"],
      ["ionized_calcium_mmol_per_l", "Ionised Ca (mmol/L)", "y2", "#8a5a00"]
    ];
    var traces = [];
    spec.forEach(function (s) {
      var v = d[s[0]];
      if (!v) return;
      if (Array.isArray(v)) { traces.push({ x: t, y: v, name: s[1], yaxis: s[2], line: { color: s[3] } }); return; }
      traces.push({ x: t, y: v.p05, yaxis: s[2], line: { width: 0, color: s[3] }, showlegend: false, hoverinfo: "skip" });
      traces.push({ x: t, y: v.p95, yaxis: s[2], fill: "tonexty", line: { width: 0, color: s[3] }, opacity: 0.2,
                    name: s[1] + " p05–p95", hoverinfo: "skip" });
      traces.push({ x: t, y: v.median, name: s[1] + " median", yaxis: s[2], line: { color: s[3] } });
    });
    Plotly.newPlot(el, traces, {
      margin: { t: 30, b: 90 }, xaxis: { title: { text: "minutes" } },
      yaxis: { title: { text: "×10⁹/L" } },
      yaxis2: { title: { text: "mmol/L" }, overlaying: "y", side: "right" },
      legend: { orientation: "h", y: -0.25 }
    }, { responsive: true, displaylogo: false });
    el.setAttribute("data-rendered", "true");
  }
  document.addEventListener("DOMContentLoaded", function () { drawCharts(document); });
  document.addEventListener("htmx:afterSwap", function (e) { drawCharts(e.target); });
  document.addEventListener("click", function (e) {
    if (e.target && e.target.matches("[data-print]")) {
      document.querySelectorAll("details.why").forEach(function (d) { d.open = true; });
      window.print();
    }
  });
})();
