/* gridwatch: verification marks on a supervisor's page, offline.
 *
 * Each task card (li[data-cell][data-item]) has a result (radio), a note and a photo
 * reference. A change is kept at once in localStorage (the page works without a
 * network; reopening it shows the marks again) with the time of the change. "Export"
 * writes the marks as a small JSON file (gridwatch verify import FILE) and shows the
 * same text to copy into a chat. Notes are only ever handled as text (value,
 * textContent), never as markup.
 */
(function () {
  'use strict';
  var configElement = document.getElementById('gw-marks-config');
  if (!configElement) { return; }
  var config = JSON.parse(configElement.textContent);
  var key = 'gridwatch-marks/' + config.day + '/' + config.supervisor;

  function load() {
    try { return JSON.parse(localStorage.getItem(key) || '{}') || {}; } catch (e) { return {}; }
  }
  function save(marks) {
    try { localStorage.setItem(key, JSON.stringify(marks)); } catch (e) { /* storage full or off: the export still works this session */ }
  }
  var marks = load();

  function taskKey(card) { return card.getAttribute('data-cell') + '\u0000' + card.getAttribute('data-item'); }
  function beijing(iso) {
    try { return new Date(iso).toLocaleString('zh-CN', { timeZone: 'Asia/Shanghai', hour12: false }); } catch (e) { return iso; }
  }
  function hexId() {
    var bytes = new Uint8Array(16);
    (window.crypto || window.msCrypto).getRandomValues(bytes);
    return Array.prototype.map.call(bytes, function (b) { return ('0' + b.toString(16)).slice(-2); }).join('');
  }

  var cards = document.querySelectorAll('ol.gw-cards li[data-item]');
  function show(card) {
    var mark = marks[taskKey(card)];
    var line = card.querySelector('.gw-marked');
    if (!line) { return; }
    if (mark && mark.result) {
      line.textContent = config.labels[mark.result] + ' · ' + beijing(mark.marked_utc) + (mark.note ? ' · ' + mark.note : '');
      card.classList.add('gw-done');
    } else {
      line.textContent = '';
    }
  }
  function count() {
    var n = Object.keys(marks).filter(function (k) { return marks[k] && marks[k].result; }).length;
    document.getElementById('gw-count').textContent = config.count_label.replace('{n}', n).replace('{total}', cards.length);
  }

  Array.prototype.forEach.call(cards, function (card) {
    var mark = marks[taskKey(card)] || {};
    var radios = card.querySelectorAll('input[type=radio]');
    var note = card.querySelector('input.gw-note');
    var photo = card.querySelector('input.gw-photo');
    Array.prototype.forEach.call(radios, function (r) { r.checked = r.value === mark.result; });
    if (note) { note.value = mark.note || ''; }
    if (photo) { photo.value = mark.photo || ''; }
    function changed() {
      var chosen = card.querySelector('input[type=radio]:checked');
      if (!chosen) { return; }  // a note without a result is kept in the field only
      marks[taskKey(card)] = {
        cell_id: card.getAttribute('data-cell'), item_id: card.getAttribute('data-item'), result: chosen.value,
        note: note ? note.value.slice(0, config.max_note) : '', photo: photo ? photo.value.slice(0, config.max_photo) : '',
        marked_utc: new Date().toISOString().replace(/\.\d{3}Z$/, 'Z')
      };
      save(marks);
      show(card);
      count();
    }
    Array.prototype.forEach.call(radios, function (r) { r.addEventListener('change', changed); });
    if (note) { note.addEventListener('change', changed); }
    if (photo) { photo.addEventListener('change', changed); }
    show(card);
  });
  count();

  document.getElementById('gw-export').addEventListener('click', function () {
    var list = Object.keys(marks).sort().map(function (k) { return marks[k]; }).filter(function (m) { return m && m.result; });
    var payload = {
      gridwatch_marks: 1, day: config.day, supervisor: config.supervisor, token: config.token, export_id: hexId(),
      exported_utc: new Date().toISOString().replace(/\.\d{3}Z$/, 'Z'), marks: list
    };
    var text = JSON.stringify(payload);
    var area = document.getElementById('gw-export-text');
    area.value = text;
    area.hidden = false;
    var link = document.createElement('a');
    link.href = URL.createObjectURL(new Blob([text], { type: 'application/json' }));
    link.download = config.file_name;
    document.body.appendChild(link);
    link.click();
    setTimeout(function () { URL.revokeObjectURL(link.href); link.remove(); }, 1000);
    // Served by `gridwatch serve` (an intranet): the same file goes straight into the store too.
    if (location.protocol === 'http:' || location.protocol === 'https:') {
      var status = document.getElementById('gw-count');
      fetch('/verify', { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: text })
        .then(function (r) { return r.json(); })
        .then(function (answer) { status.textContent = String(answer.message); })
        .catch(function () { status.textContent = config.offline_label; });
    }
  });
}());
