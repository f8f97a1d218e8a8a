// A campaign's countdown on the product page: the server renders the time left (in the page's
// language, data-countdown seconds at render time) and this ticks it down by the same rule as
// campaigns.service.countdown, measured from page load (not the phone's clock, which may be
// wrong). A page the fast path kept (storefront/fast.py) counts from when it was rendered, so
// it runs at most TTL_SECONDS late, never early: the reload at zero comes at or just after the
// start or the end, and gets the page of what comes next (kept pages never outlive that time).
(function () {
  "use strict";
  var started = Date.now();
  var timers = Array.prototype.slice.call(document.querySelectorAll("[data-countdown]"));
  if (!timers.length) return;

  function words(el, n, unit) {
    return (el.getAttribute("data-" + unit) || "{n}").replace("{n}", String(n));
  }

  function parts(left) {
    var d = Math.floor(left / 86400), h = Math.floor((left % 86400) / 3600);
    var m = Math.floor((left % 3600) / 60), s = left % 60;
    if (d) return [[d, "d"], [h, "h"]];
    if (h) return [[h, "h"], [m, "m"]];
    if (m) return [[m, "m"], [s, "s"]];
    return [[s, "s"]];
  }

  var reloading = false;
  function tick() {
    var elapsed = Math.floor((Date.now() - started) / 1000);
    timers.forEach(function (el) {
      var total = parseInt(el.getAttribute("data-countdown"), 10);
      if (!(total >= 0)) return;
      var left = Math.max(total - elapsed, 0);
      el.textContent = parts(left).map(function (p) { return words(el, p[0], p[1]); }).join(" ");
      if (left === 0 && total > 0 && !reloading) {
        reloading = true;
        setTimeout(function () { location.reload(); }, 1000);
      }
    });
  }
  tick();
  setInterval(tick, 1000);
})();
