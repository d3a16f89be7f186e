// The dashboard's page script: draw the charts from their JSON, and refresh <main> every
// data-refresh seconds without a reload (a failed or late refresh marks the page stale).
(function () {
  "use strict";
  var body = document.body;
  var interval = parseFloat(body.getAttribute("data-refresh") || "5") * 1000;
  var lastOk = Date.now();
  var inFlight = false;

  function pointsOf(data) {
    var n = 0;
    data.forEach(function (trace) {
      if (trace.type === "heatmap") {
        (trace.z || []).forEach(function (row) {
          row.forEach(function (v) { if (v !== null && v !== undefined) n += 1; });
        });
      } else if (trace.y) {
        trace.y.forEach(function (v) { if (v !== null && v !== undefined) n += 1; });
      }
    });
    return n;
  }

  function drawCharts(root) {
    if (!window.Plotly) return;
    root.querySelectorAll("div.chart").forEach(function (el) {
      var source = document.getElementById(el.id + "-data");
      if (!source) return;
      var figure = JSON.parse(source.textContent);
      var config = { displaylogo: false, responsive: true };
      window.Plotly.react(el, figure.data, figure.layout, config).then(function () {
        el.setAttribute("data-drawn", "1");
        el.setAttribute("data-points", String(pointsOf(figure.data)));
      });
    });
  }

  function openDetails(root) {
    var open = [];
    root.querySelectorAll("details[open]").forEach(function (d) {
      var key = d.closest("[id]");
      open.push((key ? key.id : "") + "|" + d.querySelector("summary").textContent);
    });
    return open;
  }

  function reopen(root, open) {
    root.querySelectorAll("details").forEach(function (d) {
      var key = d.closest("[id]");
      var summary = d.querySelector("summary");
      if (summary && open.indexOf((key ? key.id : "") + "|" + summary.textContent) >= 0) {
        d.open = true;
      }
    });
  }

  function markStale(why) {
    var stale = document.getElementById("stale");
    if (!stale) return;
    stale.textContent = why;
    stale.hidden = false;
  }

  function refresh() {
    var main = document.getElementById("main");
    var focused = document.activeElement;
    if (inFlight || !main || (focused && main.contains(focused) && focused.matches("input, select, textarea"))) {
      return;
    }
    inFlight = true;
    fetch(window.location.href, {
      headers: { "X-Dashboard-Fragment": "1" },
      credentials: "same-origin",
      redirect: "manual",
      cache: "no-store"
    }).then(function (response) {
      if (response.type === "opaqueredirect" || response.status === 401 || response.status === 303) {
        throw new Error("signed out: reload to sign in again");
      }
      if (!response.ok) throw new Error("the server answered " + response.status);
      return response.text();
    }).then(function (html) {
      var open = openDetails(main);
      var x = window.scrollX, y = window.scrollY;
      main.innerHTML = html;
      reopen(main, open);
      drawCharts(main);
      window.scrollTo(x, y);
      lastOk = Date.now();
      var stale = document.getElementById("stale");
      if (stale) stale.hidden = true;
      var updated = document.getElementById("updated");
      if (updated) updated.textContent = "updated " + new Date().toLocaleTimeString();
    }).catch(function (err) {
      var since = new Date(lastOk).toLocaleTimeString();
      markStale("stale since " + since + ": " + (err && err.message ? err.message : "no answer"));
    }).finally(function () {
      inFlight = false;
    });
  }

  function watch() {
    if (Date.now() - lastOk > 3 * interval) {
      markStale("stale since " + new Date(lastOk).toLocaleTimeString() + ": no fresh data");
    }
  }

  document.addEventListener("DOMContentLoaded", function () {
    drawCharts(document);
    if (interval > 0 && document.getElementById("main") && document.getElementById("updated")) {
      window.setInterval(refresh, interval);
      window.setInterval(watch, Math.min(interval, 1000));
    }
  });
})();
