// Wires the label page's print button (no inline script: the pages' CSP forbids it).
document.addEventListener("DOMContentLoaded", function () {
  var button = document.getElementById("print-label");
  if (button) {
    button.hidden = false;
    button.addEventListener("click", function () { window.print(); });
  }
});
