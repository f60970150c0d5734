// shoal dashboard: live updates without reloading. Every few seconds the
// live region (<main id="live">) is fetched again as server-rendered HTML
// (escaped by the server, like the first page) and swapped in; focus stays
// on the same control. Without JavaScript the page works as plain HTML.
(function () {
  "use strict";
  var live = document.getElementById("live");
  document.documentElement.classList.add("js");
  if (!live || !window.fetch) return;
  var src = live.getAttribute("data-src");
  var every = 2000;
  var last = null;
  var stamp = document.getElementById("updated");
  function show(text) {
    if (stamp) stamp.textContent = text;
  }
  function tick() {
    fetch(src, { credentials: "same-origin", cache: "no-store", headers: { "Accept": "text/html" } })
      .then(function (r) {
        if (r.status === 401) throw new Error("signed out: reload the page to sign in");
        if (!r.ok) throw new Error("the agent answered " + r.status);
        return r.text();
      })
      .then(function (html) {
        if (html !== last) {
          var focused = document.activeElement && document.activeElement.id;
          live.innerHTML = html;
          last = html;
          if (focused) {
            var el = document.getElementById(focused);
            if (el) el.focus();
          }
        }
        live.setAttribute("data-updated", String(Date.now()));
        show("Live: updated at " + new Date().toLocaleTimeString() + ".");
      })
      .catch(function (e) {
        show("Not updating (" + e.message + "); retrying.");
      })
      .then(function () {
        setTimeout(tick, every);
      });
  }
  setTimeout(tick, every);
})();
