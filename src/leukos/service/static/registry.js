// Registry pages: the procedure form's time zone (times typed in the browser's local time).
(function () {
  function zone() {
    var field = document.querySelector("#utc-offset");
    var label = document.querySelector("#time-zone");
    if (!field || !label) return;
    var minutes = -new Date().getTimezoneOffset();
    field.value = String(minutes);
    var sign = minutes < 0 ? "−" : "+", abs = Math.abs(minutes);
    var text = "local time (UTC" + sign + Math.floor(abs / 60) + (abs % 60 ? ":" + ("0" + abs % 60).slice(-2) : "") + ")";
    label.textContent = minutes === 0 ? "UTC" : text;
  }
  document.addEventListener("DOMContentLoaded", zone);
})();
