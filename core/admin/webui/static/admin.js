// koi's admin page. Everything it shows comes from the admin API, called
// with the token the user typed: kept in sessionStorage (gone with the
// tab) and sent only as the Authorization header. Text from the server is
// set with textContent, never parsed as HTML.
'use strict';

const TOKEN_KEY = 'koi-admin-token';
const API = '../api/v1/'; // relative: the page also works behind a path prefix
const COUNTER_EVERY = 1000; // ms between counter polls
const STATUS_EVERY = 2000; // ms between status polls
const WINDOW = 120; // samples on the graphs: two minutes

const $ = (id) => document.getElementById(id);

class APIError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

async function api(method, path) {
  let resp;
  try {
    resp = await fetch(API + path, {
      method,
      headers: { Authorization: 'Bearer ' + sessionStorage.getItem(TOKEN_KEY) },
      cache: 'no-store',
      credentials: 'omit',
    });
  } catch (e) {
    throw new APIError(0, 'network', 'koi does not answer: ' + e.message);
  }
  let body = null;
  try {
    body = await resp.json();
  } catch (e) {
    // not JSON: an answer from something in between, not from koi
  }
  if (!resp.ok) {
    const code = (body && body.code) || 'http';
    const text = (body && body.error) || resp.statusText || 'no explanation';
    throw new APIError(resp.status, code, `${resp.status} ${code}: ${text}`);
  }
  return body;
}

// ---- login ----

let polling = null; // the timers while logged in

function showLogin(error) {
  stopPolling();
  $('dashboard').hidden = true;
  $('logout').hidden = true;
  $('version').textContent = '';
  $('login').hidden = false;
  $('login-error').hidden = !error;
  $('login-error').textContent = error || '';
  $('token').focus();
}

async function logIn(ev) {
  ev.preventDefault(); // the token never goes into a URL or a form post
  const token = $('token').value.trim();
  if (!token) return;
  sessionStorage.setItem(TOKEN_KEY, token);
  $('login-button').disabled = true;
  try {
    const stats = await api('GET', 'stats');
    $('token').value = '';
    showDashboard(stats);
  } catch (e) {
    sessionStorage.removeItem(TOKEN_KEY);
    showLogin(e.message);
  } finally {
    $('login-button').disabled = false;
  }
}

function logOut() {
  sessionStorage.removeItem(TOKEN_KEY);
  showLogin('');
}

// An API error while logged in: a refused token ends the session (the
// token was changed and koi restarted), anything else is shown and the
// polls go on.
function trouble(e) {
  if (e.status === 401) {
    sessionStorage.removeItem(TOKEN_KEY);
    showLogin(e.message);
    return;
  }
  $('problem').textContent = e.message;
  $('problem').hidden = false;
}

// ---- dashboard ----

function showDashboard(stats) {
  $('login').hidden = true;
  $('login-error').hidden = true;
  $('dashboard').hidden = false;
  $('logout').hidden = false;
  samples.length = 0;
  last = null;
  renderStats(stats);
  startPolling();
}

function startPolling() {
  stopPolling();
  polling = { counters: 0, status: 0, live: true };
  const loop = (key, every, fn) => {
    const run = async () => {
      const p = polling;
      try {
        await fn();
        if (p.live && key === 'counters') {
          $('problem').hidden = true;
        }
      } catch (e) {
        if (p.live) trouble(e);
      }
      if (p.live) p[key] = setTimeout(run, every);
    };
    run();
  };
  loop('counters', COUNTER_EVERY, pollCounters);
  loop('status', STATUS_EVERY, pollStatus);
}

function stopPolling() {
  if (!polling) return;
  polling.live = false;
  clearTimeout(polling.counters);
  clearTimeout(polling.status);
  polling = null;
}

async function pollStatus() {
  const [stats, plugins] = await Promise.all([api('GET', 'stats'), api('GET', 'plugins')]);
  renderStats(stats);
  renderPlugins(plugins.plugins);
}

function duration(s) {
  const d = Math.floor(s / 86400), h = Math.floor(s / 3600) % 24, m = Math.floor(s / 60) % 60;
  const parts = [];
  if (d) parts.push(d + 'd');
  if (d || h) parts.push(h + 'h');
  if (d || h || m) parts.push(m + 'm');
  parts.push((s % 60) + 's');
  return parts.join(' ');
}

function cell(tr, text, cls) {
  const td = document.createElement('td');
  td.textContent = text;
  if (cls) td.className = cls;
  tr.appendChild(td);
  return td;
}

function renderStats(st) {
  $('version').textContent = 'version ' + st.version;
  $('uptime').textContent = duration(st.uptime_seconds);
  $('started').textContent = new Date(st.started).toLocaleString();
  $('online-users').textContent = st.online_users;
  $('sessions').textContent = st.sessions;
  const rows = st.hosts.map((h) => {
    const tr = document.createElement('tr');
    tr.dataset.host = h.host;
    cell(tr, h.host);
    cell(tr, h.online_users, 'num online');
    cell(tr, h.sessions, 'num sessions');
    return tr;
  });
  $('hosts').tBodies[0].replaceChildren(...rows);
}

function renderPlugins(plugins) {
  const rows = plugins.map((p) => {
    const tr = document.createElement('tr');
    tr.dataset.plugin = p.name;
    cell(tr, p.name);
    cell(tr, p.healthy ? 'healthy' : 'down', p.healthy ? 'health healthy' : 'health down');
    cell(tr, p.pid || '–', 'num pid');
    const b = document.createElement('button');
    b.type = 'button';
    b.textContent = 'Restart';
    b.className = 'restart';
    b.addEventListener('click', () => restart(p.name, b));
    tr.appendChild(document.createElement('td')).appendChild(b);
    return tr;
  });
  $('plugins').tBodies[0].replaceChildren(...rows);
  const ok = plugins.filter((p) => p.healthy).length;
  $('plugins-healthy').textContent = plugins.length ? `${ok} of ${plugins.length}` : 'no plugins';
}

async function restart(name, button) {
  button.disabled = true;
  button.textContent = 'Restarting…';
  try {
    await api('POST', 'plugins/' + encodeURIComponent(name) + '/restart');
  } catch (e) {
    trouble(e);
    button.disabled = false;
    button.textContent = 'Restart';
  }
  // the next status poll redraws the row with the new process
}

// ---- counters and graphs ----

// samples holds {t, stanzasIn, stanzasOut, success, failure, refused}:
// the rates between two polls, t the server's uptime in ms.
const samples = [];
let last = null; // the previous poll's counters

const sum = (m) => Object.values(m).reduce((a, b) => a + b, 0);

function totals(c) {
  return {
    t: c.uptime_ms,
    stanzasIn: sum(c.stanzas_in),
    stanzasOut: sum(c.stanzas_out),
    success: c.logins.success || 0,
    failure: c.logins.failure || 0,
    refused: c.logins.refused || 0,
  };
}

// The graphs: each line is [key in samples, id of its legend entry, label].
const GRAPHS = [
  { canvas: 'stanza-graph', legend: 'legend-stanzas',
    lines: [['stanzasIn', 'stanzas-in', 'in'], ['stanzasOut', 'stanzas-out', 'out']] },
  { canvas: 'login-graph', legend: 'legend-logins',
    lines: [['success', 'logins-success', 'success'], ['failure', 'logins-failure', 'failure'],
      ['refused', 'logins-refused', 'refused']] },
];

function el(tag, props, ...children) {
  const e = Object.assign(document.createElement(tag), props);
  e.append(...children);
  return e;
}

// buildLegends writes each line's entry: its colour (which the graph
// reads back, so the style sheet is the one place for colours), the
// current rate, the peak and the total.
function buildLegends() {
  for (const graph of GRAPHS) {
    $(graph.legend).replaceChildren(...graph.lines.map(([, id, label]) => el('li', {},
      el('span', { className: 'swatch c-' + id, id: 'color-' + id }),
      label + ' ', el('output', { id: 'rate-' + id }, '0'), '/s, peak ',
      el('output', { id: 'peak-' + id }, '0'), ', total ', el('output', { id: 'total-' + id }, '0'))));
  }
}

async function pollCounters() {
  const c = await api('GET', 'counters');
  $('connections-open').textContent = c.connections_open;
  const now = totals(c);
  const dt = last ? (now.t - last.t) / 1000 : 0;
  // A smaller uptime or counter means koi restarted: start the graph over.
  const restarted = last && (dt <= 0 || Object.keys(now).some((k) => now[k] < last[k]));
  if (restarted) samples.length = 0;
  if (last && !restarted) {
    const s = { t: now.t };
    for (const k of Object.keys(now)) if (k !== 't') s[k] = (now[k] - last[k]) / dt;
    samples.push(s);
    if (samples.length > WINDOW) samples.shift();
  }
  last = now;
  for (const graph of GRAPHS) {
    for (const [key, id] of graph.lines) {
      const latest = samples.length ? samples[samples.length - 1][key] : 0;
      $('rate-' + id).textContent = fmt(latest);
      $('peak-' + id).textContent = fmt(Math.max(0, ...samples.map((s) => s[key])));
      $('total-' + id).textContent = now[key];
    }
    draw($(graph.canvas), graph.lines);
  }
  $('updated').textContent = 'Updated ' + new Date().toLocaleTimeString() + '.';
}

const fmt = (x) => (x >= 10 ? x.toFixed(0) : x.toFixed(1));

// niceCeil rounds up to 1, 2 or 5 times a power of ten, for the axis.
function niceCeil(x) {
  const p = Math.pow(10, Math.floor(Math.log10(x)));
  for (const m of [1, 2, 5, 10]) if (m * p >= x) return m * p;
  return 10 * p;
}

function draw(canvas, series) {
  const dpr = window.devicePixelRatio || 1;
  const w = canvas.clientWidth, h = canvas.clientHeight;
  if (canvas.width !== Math.round(w * dpr) || canvas.height !== Math.round(h * dpr)) {
    canvas.width = Math.round(w * dpr);
    canvas.height = Math.round(h * dpr);
  }
  const g = canvas.getContext('2d');
  g.setTransform(dpr, 0, 0, dpr, 0, 0);
  g.clearRect(0, 0, w, h);
  const left = 44, right = 8, top = 8, bottom = 18;
  const pw = w - left - right, ph = h - top - bottom;
  let max = 0;
  for (const s of samples) for (const [key] of series) max = Math.max(max, s[key]);
  const ceil = max > 0 ? niceCeil(max) : 1;
  const style = getComputedStyle(document.documentElement);
  g.font = '11px system-ui, sans-serif';
  g.lineWidth = 1;
  g.strokeStyle = style.getPropertyValue('--line');
  g.fillStyle = style.getPropertyValue('--muted');
  g.textAlign = 'right';
  g.textBaseline = 'middle';
  for (let i = 0; i <= 4; i++) {
    const y = Math.round(top + (ph * i) / 4) + 0.5;
    g.beginPath();
    g.moveTo(left, y);
    g.lineTo(left + pw, y);
    g.stroke();
    g.fillText(fmt((ceil * (4 - i)) / 4), left - 6, y);
  }
  g.textAlign = 'left';
  g.textBaseline = 'alphabetic';
  g.fillText('2 min ago', left, h - 4);
  g.textAlign = 'right';
  g.fillText('now', left + pw, h - 4);
  g.lineJoin = 'round';
  series.forEach(([key, id], n) => {
    // Wider lines first, so that one running level with another still
    // shows at its edges.
    g.lineWidth = n === 0 ? 3 : 1.5;
    g.strokeStyle = getComputedStyle($('color-' + id)).backgroundColor;
    g.beginPath();
    samples.forEach((s, i) => {
      const x = left + (pw * (WINDOW - samples.length + i)) / (WINDOW - 1);
      const y = top + ph - (ph * s[key]) / ceil;
      if (i === 0) g.moveTo(x, y);
      else g.lineTo(x, y);
    });
    g.stroke();
  });
}

// ---- start ----

document.addEventListener('DOMContentLoaded', () => {
  buildLegends();
  $('login-form').addEventListener('submit', logIn);
  $('logout').addEventListener('click', logOut);
  if (!sessionStorage.getItem(TOKEN_KEY)) {
    showLogin('');
    return;
  }
  // A reload of the tab: the token is still there; check it.
  api('GET', 'stats').then(showDashboard, (e) => {
    sessionStorage.removeItem(TOKEN_KEY);
    showLogin(e.message);
  });
});
