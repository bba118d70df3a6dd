// labctl dashboard: live updates (Server-Sent Events) and keyboard moves in the grid.
// Progressive enhancement only: every page is complete without this script.
(function () {
  "use strict";
  var body = document.body;
  var statusLine = document.getElementById("live-status");

  function say(text) { if (statusLine) statusLine.textContent = text; }

  // --- refresh <main> in place (a learner or lab added, a learner's page, the charts) ---------
  var refreshing = false, again = false;
  function refresh() {
    if (refreshing) { again = true; return; }
    refreshing = true;
    fetch(location.href, { headers: { Accept: "text/html" }, credentials: "same-origin" })
      .then(function (r) { return r.ok ? r.text() : Promise.reject(r.status); })
      .then(function (html) {
        var doc = new DOMParser().parseFromString(html, "text/html");
        var fresh = doc.getElementById("main"), main = document.getElementById("main");
        if (fresh && main) {
          var active = document.activeElement && document.activeElement.id;
          var open = Array.prototype.map.call(main.querySelectorAll("details[open][id]"), function (d) { return d.id; });
          main.innerHTML = fresh.innerHTML;
          open.forEach(function (id) { var d = document.getElementById(id); if (d) d.open = true; });
          if (active && document.getElementById(active)) document.getElementById(active).focus();
          setUpGrid();
        }
      })
      .catch(function () { say("could not refresh: reload the page"); })
      .then(function () { refreshing = false; if (again) { again = false; refresh(); } });
  }

  // --- the grid: apply cell updates ------------------------------------------------------------
  function labColumns(table) {
    var columns = {};
    var heads = table.tHead ? table.tHead.rows[0].cells : [];
    for (var i = 0; i < heads.length; i++) {
      var lab = heads[i].getAttribute("data-lab");
      if (lab) columns[lab] = i;
    }
    return columns;
  }

  function applyUpdates(data) {
    var table = document.getElementById("grid");
    if (!table) { refresh(); return; }
    var columns = labColumns(table), missing = false;
    Object.keys(data.cells || {}).forEach(function (key) {
      var parts = key.split(":"), learner = parts[1], lab = parts.slice(2).join(":");
      var row = document.getElementById("r:" + learner), update = data.cells[key];
      if (!row) { missing = true; return; }
      if (!(lab in columns)) { missing = true; return; }
      var cell = row.cells[columns[lab]];
      cell.className = update.cls + " flash";
      cell.textContent = update.text;
      cell.title = update.title;
      var passed = row.querySelector("td.passed");
      if (passed) {
        var n = row.querySelectorAll("td.s-passed").length;
        passed.textContent = n + "/" + Object.keys(columns).length;
      }
      if (update.last) { var last = row.querySelector("td.last"); if (last) last.textContent = update.last; }
    });
    Object.keys(data.env || {}).forEach(function (key) {
      var row = document.getElementById("r:" + key.slice(4));
      var env = row && row.querySelector("td.env");
      if (env) env.textContent = data.env[key];
    });
    Object.keys(data.counts || {}).forEach(function (key) {
      var foot = document.getElementById(key);
      if (foot) foot.textContent = data.counts[key];
    });
    // A filtered grid may gain or lose rows with any change: ask the server again.
    if (missing || /[?&]state=[^&]/.test(location.search)) refresh();
  }

  // --- the grid: arrow keys move between cells; Enter opens the learner ------------------------
  function setUpGrid() {
    var table = document.getElementById("grid");
    if (!table || !table.tBodies.length || table.getAttribute("data-keys")) return;
    table.setAttribute("data-keys", "1");
    var first = table.tBodies[0].rows[0];
    if (first && first.cells.length > 4) first.cells[4].tabIndex = 0;
    table.tBodies[0].addEventListener("keydown", function (event) {
      var cell = event.target.closest("td, th");
      if (!cell || !table.tBodies[0].contains(cell)) return;
      var row = cell.parentElement, r = row.sectionRowIndex, c = cell.cellIndex, rows = table.tBodies[0].rows;
      var moves = { ArrowUp: [-1, 0], ArrowDown: [1, 0], ArrowLeft: [0, -1], ArrowRight: [0, 1],
                    Home: [0, -c], End: [0, row.cells.length - 1 - c] };
      if (event.key === "Enter" && cell.tagName === "TD") {
        var link = row.querySelector("th a");
        var heads = table.tHead.rows[0].cells, lab = heads[c] && heads[c].getAttribute("data-lab");
        if (link) location.href = link.href + (lab ? "#lab-" + lab.replace("/", "-") : "");
        return;
      }
      var move = moves[event.key];
      if (!move) return;
      var target = rows[r + move[0]] && rows[r + move[0]].cells[c + move[1]];
      if (!target) return;
      event.preventDefault();
      if (cell.tagName === "TD") cell.tabIndex = -1;
      var focusable = target.tagName === "TH" ? target.querySelector("a") : target;
      if (focusable === target) target.tabIndex = 0;
      focusable.focus();
    });
    var search = document.getElementById("q");
    if (search) {
      search.addEventListener("input", function () {
        var needle = search.value.trim().toLowerCase();
        Array.prototype.forEach.call(table.tBodies[0].rows, function (row) {
          row.hidden = needle !== "" && row.cells[0].textContent.toLowerCase().indexOf(needle) < 0;
        });
      });
    }
  }

  // --- the event stream ---------------------------------------------------------------------
  var url = body.getAttribute("data-events");
  if (url && window.EventSource) {
    var source = new EventSource(url);
    source.onopen = function () { say("live"); };
    source.onerror = function () { say("reconnecting…"); };
    source.onmessage = function (event) {
      var data = JSON.parse(event.data);
      if (data.reload || body.hasAttribute("data-reload-on-change")) refresh();
      else applyUpdates(data);
    };
  }
  setUpGrid();
})();
