// Live updates by server-sent events: the server sends each page's live part already rendered
// (and escaped); this only swaps it in. EventSource reconnects by itself after errors.
(function () {
  "use strict";
  function start() {
    var region = document.querySelector("[data-live][data-stream]");
    if (!region || !window.EventSource) return;
    var status = document.querySelector("[data-test-id=live-status]");
    function setState(s) { if (status) status.setAttribute("data-state", s); }
    var source = new EventSource(region.getAttribute("data-stream"));
    source.onopen = function () { setState("open"); };
    source.onerror = function () {
      setState("lost");
      // Refused outright (the store unavailable: a 503) EventSource gives up; try again later.
      if (source.readyState === EventSource.CLOSED) window.setTimeout(start, 15000);
    };
    source.addEventListener("unavailable", function () { setState("lost"); });
    source.addEventListener("update", function (e) {
      var msg = JSON.parse(e.data);
      if (msg.page !== region.getAttribute("data-live")) return;
      region.innerHTML = msg.html;
      region.setAttribute("data-marker", String(msg.marker));
      setState("open");
    });
    source.addEventListener("denied", function () { source.close(); window.location.reload(); });
  }
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
// A report's print button (inline handlers are refused by the page's Content-Security-Policy).
(function () {
  "use strict";
  document.addEventListener("click", function (e) {
    var el = e.target.closest ? e.target.closest("[data-print]") : null;
    if (el) window.print();
  });
})();
