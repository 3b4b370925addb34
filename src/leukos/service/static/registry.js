// Registry pages: the patient's course chart and the procedure form's time zone (no inline scripts: the CSP allows only 'self').
(function () {
  function draw() {
    var data = document.querySelector("#course-data");
    var el = document.querySelector("#course-chart");
    if (!data || !el || !window.Plotly) return;
    var d = JSON.parse(data.textContent);
    var spec = [["wbc", "White cells (×10⁹/L)", "y", "#a4161a"], ["platelets", "Platelets (×10⁹/L)", "y", "#1d4f91"],
                ["ionized_calcium", "Ionised calcium (mmol/L)", "y2", "#8a5a00"]];
    var traces = [];
    spec.forEach(function (s) {
      var pts = d.series[s[0]] || [];
      if (!pts.length) return;
      traces.push({ x: pts.map(function (p) { return p[0]; }), y: pts.map(function (p) { return p[1]; }),
                    name: s[1], yaxis: s[2], mode: "lines+markers", line: { color: s[3] } });
    });
    var shapes = (d.procedures || []).map(function (p) {
      return { type: "rect", xref: "x", yref: "paper", x0: p.start, x1: p.end, y0: 0, y1: 1,
               fillcolor: "#6c757d", opacity: 0.2, line: { width: 0 } };
    });
    (d.treatments || []).forEach(function (x) {
      shapes.push({ type: "line", xref: "x", yref: "paper", x0: x.start, x1: x.start, y0: 0, y1: 1,
                    line: { dash: "dot", color: "#2b6a2b", width: 2 } });
    });
    var notes = (d.treatments || []).map(function (x) {
      return { x: x.start, y: 1, xref: "x", yref: "paper", text: x.label, showarrow: false, yanchor: "bottom",
               font: { size: 11, color: "#2b6a2b" } };
    });
    if (d.target) shapes.push({ type: "line", xref: "paper", x0: 0, x1: 1, y0: d.target, y1: d.target,
                                line: { dash: "dash", color: "#a4161a", width: 1 } });
    Plotly.newPlot(el, traces, { margin: { t: 30, b: 80 }, shapes: shapes, annotations: notes, yaxis: { title: { text: "×10⁹/L" } },
      yaxis2: { title: { text: "mmol/L" }, overlaying: "y", side: "right" }, legend: { orientation: "h", y: -0.2 } },
      { responsive: true, displaylogo: false });
    el.setAttribute("data-rendered", "true");
  }
  function zone() {
    // The procedure form: times typed in the browser's local time; the server is told the offset.
    var field = document.querySelector("#utc-offset");
    var label = document.querySelector("#time-zone");
    if (!field || !label) return;
    var minutes = -new Date().getTimezoneOffset();
    field.value = String(minutes);
    var sign = minutes < 0 ? "−" : "+", abs = Math.abs(minutes);
    var text = "local time (UTC" + sign + Math.floor(abs / 60) + (abs % 60 ? ":" + ("0" + abs % 60).slice(-2) : "") + ")";
    label.textContent = minutes === 0 ? "UTC" : text;
  }
  document.addEventListener("DOMContentLoaded", function () { draw(); zone(); });
})();
