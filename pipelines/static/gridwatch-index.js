// index.html of a run (pipelines/publish/index.py): sort and filter the table; reads data as text, never writes markup.
(function () {
  var table = document.getElementById("cells");
  if (!table) { return; }
  var body = table.tBodies[0];
  var rows = Array.prototype.slice.call(body.rows);
  var county = document.getElementById("f-county");
  var supervisor = document.getElementById("f-supervisor");
  var search = document.getElementById("f-text");
  var shown = document.getElementById("f-shown");
  function fill(select, key) {
    var seen = {};
    rows.forEach(function (r) { seen[r.dataset[key]] = true; });
    Object.keys(seen).sort().forEach(function (v) { select.add(new Option(v || "—", v)); });
  }
  fill(county, "county");
  fill(supervisor, "supervisor");
  function apply() {
    var c = county.value, s = supervisor.value, q = search.value.trim().toLowerCase(), n = 0;
    rows.forEach(function (r) {
      var ok = (c === "*" || r.dataset.county === c) && (s === "*" || r.dataset.supervisor === s)
        && (!q || r.textContent.toLowerCase().indexOf(q) >= 0);
      r.hidden = !ok;
      if (ok) { n += 1; }
    });
    shown.textContent = n + " / " + rows.length;
  }
  [county, supervisor].forEach(function (el) { el.addEventListener("change", apply); });
  search.addEventListener("input", apply);
  var heads = table.tHead.rows[0].cells;
  Array.prototype.forEach.call(heads, function (th, i) {
    var button = th.querySelector("button");
    if (!button) { return; }
    button.addEventListener("click", function () {
      var descending = th.getAttribute("aria-sort") !== "descending";
      var numeric = th.dataset.type === "n";
      Array.prototype.forEach.call(heads, function (h) { h.removeAttribute("aria-sort"); });
      th.setAttribute("aria-sort", descending ? "descending" : "ascending");
      rows.sort(function (a, b) {
        var x = a.cells[i], y = b.cells[i], d;
        if (numeric) { d = (+x.dataset.v) - (+y.dataset.v); }
        else { d = x.textContent.localeCompare(y.textContent, "zh-CN"); }
        return descending ? -d : d;
      });
      rows.forEach(function (r) { body.appendChild(r); });
    });
  });
  apply();
})();
