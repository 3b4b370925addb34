// leukos UI behaviour without inline scripts (the page's CSP allows only 'self' scripts).
(function () {
  function drawCharts(root) {
    var data = (root || document).querySelector("#sim-data");
    var el = (root || document).querySelector("#sim-chart");
    if (!data || !el || !window.Plotly) return;
    var d = JSON.parse(data.textContent);
    var t = d.times_min || [];
    var traces = [
      { x: t, y: d.wbc_10e9_per_l, name: "WBC (×10⁹/L)", yaxis: "y" },
      { x: t, y: d.ionized_calcium_mmol_per_l, name: "Ionised Ca (mmol/L)", yaxis: "y2" },
      { x: t, y: d.platelets_10e9_per_l, name: "Platelets (×10⁹/L)", yaxis: "y" }
    ].filter(function (tr) { return tr.y && tr.y.length; });
    Plotly.newPlot(el, traces, {
      margin: { t: 30 }, xaxis: { title: { text: "minutes" } },
      yaxis: { title: { text: "×10⁹/L" } },
      yaxis2: { title: { text: "mmol/L" }, overlaying: "y", side: "right" },
      legend: { orientation: "h" }
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
