// leukos UI behaviour without inline scripts (the page's CSP allows only 'self' scripts).
// The page works without it; with it: picking an example fills the form at once, the form's
// state is kept in the URL fragment (never sent to the server, so never in a log), the result
// or the first error gets the focus, and the print button prints.
(function () {
  var FRAG = "case=";
  function formState(form) {
    var p = new URLSearchParams();
    new FormData(form).forEach(function (v, k) { if (typeof v === "string" && v !== "" && k !== "paste") p.append(k, v); });
    return p.toString();
  }
  function restore(form, query) {
    var p = new URLSearchParams(query);
    form.querySelectorAll("input[type=checkbox]").forEach(function (c) { c.checked = p.getAll(c.name).indexOf(c.value) >= 0; });
    p.forEach(function (v, k) {
      var el = form.elements[k];
      if (!el || el.type === "checkbox" || (el.length && !el.tagName)) return;
      el.value = v;
      var d = el.closest("details"); if (d && v) d.open = true;
    });
  }
  document.addEventListener("DOMContentLoaded", function () {
    var form = document.getElementById("case-form");
    var ex = document.getElementById("example");
    if (ex) ex.addEventListener("change", function () { if (ex.value) ex.form.submit(); });
    if (form) {
      var h = location.hash.slice(1);
      if (h.indexOf(FRAG) === 0 && !document.getElementById("assessment") && !document.getElementById("input-errors")) {
        restore(form, decodeURIComponent(h.slice(FRAG.length)));
      }
      if (document.getElementById("assessment") || document.getElementById("input-errors")) {
        history.replaceState(null, "", "/" + (form.querySelector("[name=base_example]") ? "?example=" +
          encodeURIComponent(form.querySelector("[name=base_example]").value) : "") + "#" + FRAG + encodeURIComponent(formState(form)));
      }
    }
    var errs = document.getElementById("input-errors");
    var res = document.getElementById("result-title");
    if (errs) errs.focus(); else if (res) res.focus();
  });
  document.addEventListener("click", function (e) {
    if (e.target && e.target.matches("[data-print]")) {
      document.querySelectorAll("details").forEach(function (d) { d.open = true; });
      window.print();
    }
  });
})();
