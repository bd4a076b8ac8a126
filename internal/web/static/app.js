// mailgate console: progressive enhancement only; every page works without it.
"use strict";
document.addEventListener("submit", function (e) {
  var f = e.target;
  var msg = f.getAttribute("data-confirm");
  if (msg && !window.confirm(msg)) { e.preventDefault(); }
});
document.addEventListener("change", function (e) {
  if (e.target.hasAttribute && e.target.hasAttribute("data-autosubmit")) { e.target.form.submit(); }
});
document.addEventListener("click", function (e) {
  if (e.target.hasAttribute && e.target.hasAttribute("data-back")) { e.preventDefault(); history.back(); }
});

// Webmail: keyboard shortcuts and address completion. Elements with
// data-key="k" are clicked by key k; the list moves with j/k.
(function () {
  var cursor = -1;
  function rows() { return Array.prototype.slice.call(document.querySelectorAll(".mail-row")); }
  function mark(i) {
    var rs = rows();
    if (!rs.length) { return; }
    cursor = Math.max(0, Math.min(rs.length - 1, i));
    rs.forEach(function (r, j) { r.classList.toggle("cursor", j === cursor); });
    var a = rs[cursor].querySelector("a.mail-link");
    if (a) { a.focus(); }
  }
  function typing(t) {
    return t && t.closest && t.closest("input, textarea, select, [contenteditable]");
  }
  document.addEventListener("keydown", function (e) {
    if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) {
      var send = document.querySelector("[data-send]");
      if (send && typing(e.target)) { e.preventDefault(); send.click(); }
      return;
    }
    if (e.ctrlKey || e.metaKey || e.altKey || typing(e.target)) { return; }
    var k = e.key;
    if (k === "j" || k === "k") { e.preventDefault(); mark(cursor + (k === "j" ? 1 : -1)); return; }
    if ((k === "o" || k === "Enter") && cursor >= 0) {
      var a = rows()[cursor] && rows()[cursor].querySelector("a.mail-link");
      if (a) { e.preventDefault(); a.click(); }
      return;
    }
    if (k === "x" && cursor >= 0) {
      var box = rows()[cursor].querySelector("input[type=checkbox]");
      if (box) { e.preventDefault(); box.checked = !box.checked; }
      return;
    }
    if (k === "/") {
      var q = document.getElementById("mail-q");
      if (q) { e.preventDefault(); q.focus(); }
      return;
    }
    if (k === "?") {
      var help = document.getElementById("mail-keys");
      if (help) { e.preventDefault(); help.open = !help.open; }
      return;
    }
    // In the list, the toolbar acts on the message under the cursor
    // when none is ticked.
    var el = document.querySelector('[data-key="' + k.replace(/["\\]/g, "") + '"]');
    if (!el) { return; }
    e.preventDefault();
    var form = el.form;
    if (form && form.id === "mail-list-form" && !form.querySelector("input[name=uid]:checked")) {
      var row = rows()[cursor], b = row && row.querySelector("input[type=checkbox]");
      if (!b) { return; }
      b.checked = true;
    }
    el.click();
  });
  // Address completion from the organisation's users.
  var list = document.getElementById("mail-contacts");
  if (!list) { return; }
  var timer = null;
  document.addEventListener("input", function (e) {
    var f = e.target;
    if (!f.hasAttribute || !f.hasAttribute("data-complete")) { return; }
    clearTimeout(timer);
    timer = setTimeout(function () {
      var v = f.value, i = Math.max(v.lastIndexOf(","), v.lastIndexOf(";"), v.lastIndexOf("、"));
      var head = i >= 0 ? v.slice(0, i + 1) + " " : "", term = v.slice(i + 1).trim();
      if (term.length < 1) { return; }
      fetch("/mail/contacts?q=" + encodeURIComponent(term), { credentials: "same-origin" })
        .then(function (r) { return r.ok ? r.json() : []; })
        .then(function (cs) {
          while (list.firstChild) { list.removeChild(list.firstChild); }
          cs.forEach(function (c) {
            var o = document.createElement("option");
            o.value = head + c.value;
            list.appendChild(o);
          });
        })
        .catch(function () {});
    }, 150);
  });
})();
