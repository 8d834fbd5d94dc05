// The reports page (ADMIN): the last 30 days from GET /api/v1/reports, drawn in the page as SVG
// (no chart library, no CDN): tickets opened and closed per day, the median first-response and
// resolution times per day, and how customers rated. Every number comes from the API as is.

import * as api from './api.js';
import { h, clear } from './dom.js';

const SVG = 'http://www.w3.org/2000/svg';
const W = 640;
const H = 220;
const PAD = { left: 44, right: 12, top: 14, bottom: 28 };

let session = 0;

/** An SVG element with attributes (presentation attributes only: the page's CSP forbids inline styles). */
function s(tag, attrs = {}, ...children) {
  const el = document.createElementNS(SVG, tag);
  for (const [key, value] of Object.entries(attrs)) el.setAttribute(key, String(value));
  for (const child of children) {
    if (child instanceof Node) el.appendChild(child);
    else if (child !== null && child !== undefined) el.appendChild(document.createTextNode(String(child)));
  }
  return el;
}

/** A round upper bound for an axis. */
function niceMax(value) {
  if (!(value > 0)) return 1;
  const step = 10 ** Math.floor(Math.log10(value));
  for (const m of [1, 2, 5, 10]) if (value <= m * step) return m * step;
  return 10 * step;
}

/** An axis maximum of four round steps (whole steps for counts). */
function axisMax(value, whole) {
  const step = niceMax(value / 4);
  return 4 * (whole ? Math.max(1, Math.ceil(step)) : step);
}

/** The unit durations of this size read best in. */
function unitFor(seconds) {
  if (seconds < 120) return [1, 's', 'seconds'];
  if (seconds < 7200) return [60, 'min', 'minutes'];
  return [3600, 'h', 'hours'];
}

function frame(label, max, format) {
  const svg = s('svg', { viewBox: `0 0 ${W} ${H}`, role: 'img', 'aria-label': label, class: 'chart' });
  const inner = H - PAD.top - PAD.bottom;
  for (let i = 0; i <= 4; i += 1) {
    const y = PAD.top + inner - (inner * i) / 4;
    svg.append(
      s('line', { x1: PAD.left, x2: W - PAD.right, y1: y, y2: y, class: 'grid' }),
      s('text', { x: PAD.left - 6, y: y + 4, 'text-anchor': 'end', class: 'axis' }, format((max * i) / 4)),
    );
  }
  return svg;
}

function yOf(value, max) {
  const inner = H - PAD.top - PAD.bottom;
  return PAD.top + inner - (inner * value) / max;
}

/** Day labels under every seventh day (the last one always). */
function dayLabels(svg, groups, xOf) {
  groups.forEach((g, i) => {
    if ((groups.length - 1 - i) % 7 !== 0) return;
    svg.append(s('text', { x: xOf(i), y: H - 8, 'text-anchor': 'middle', class: 'axis' }, (g.key || '').slice(5)));
  });
}

function legend(items) {
  return h('ul', { class: 'legend' }, items.map(([cls, text]) => h('li', {}, h('span', { class: `swatch ${cls}` }), text)));
}

function openedClosed(groups) {
  const max = axisMax(Math.max(...groups.map((g) => Math.max(g.opened, g.closed))), true);
  const svg = frame('Tickets opened and closed per day', max, (v) => String(Math.round(v)));
  const slot = (W - PAD.left - PAD.right) / groups.length;
  const bar = Math.max(1, slot / 2 - 1);
  groups.forEach((g, i) => {
    const x = PAD.left + i * slot;
    for (const [value, cls, dx] of [[g.opened, 'opened', 0], [g.closed, 'closed', bar]]) {
      const y = yOf(value, max);
      svg.append(s('rect', { x: x + dx, y, width: bar, height: yOf(0, max) - y, class: `bar ${cls}` },
        s('title', {}, `${g.key}: ${value} ${cls}`)));
    }
  });
  dayLabels(svg, groups, (i) => PAD.left + (i + 0.5) * slot);
  return [svg, legend([['opened', 'Opened'], ['closed', 'Closed']])];
}

function medians(groups) {
  const values = groups.flatMap((g) => [g.first_response.median_s, g.resolution.median_s]).filter((v) => v !== null);
  const [per, unit, unitWords] = unitFor(Math.max(0, ...values));
  const max = axisMax(Math.max(0, ...values) / per, false);
  const svg = frame(`Median first-response and resolution time per day, in ${unitWords}`, max, (v) => `${+v.toFixed(2)} ${unit}`);
  const slot = (W - PAD.left - PAD.right) / groups.length;
  const xOf = (i) => PAD.left + (i + 0.5) * slot;
  for (const [field, cls] of [['first_response', 'first'], ['resolution', 'resolved']]) {
    const points = groups
      .map((g, i) => [i, g[field].median_s])
      .filter(([, v]) => v !== null)
      .map(([i, v]) => [xOf(i), yOf(v / per, max), groups[i].key, v]);
    if (points.length > 1) svg.append(s('polyline', { points: points.map(([x, y]) => `${x},${y}`).join(' '), class: `line ${cls}` }));
    for (const [x, y, key, v] of points) {
      svg.append(s('circle', { cx: x, cy: y, r: 3, class: `dot ${cls}` }, s('title', {}, `${key}: median ${field.replace('_', ' ')} ${Math.round(v)} s`)));
    }
  }
  dayLabels(svg, groups, xOf);
  return [svg, legend([['first', 'First response (median)'], ['resolved', 'Resolution (median)']])];
}

function ratings(groups) {
  const counts = [0, 0, 0, 0, 0];
  for (const g of groups) g.feedback.distribution.forEach((n, i) => { counts[i] += n; });
  const max = axisMax(Math.max(...counts), true);
  const svg = frame('How customers rated their tickets, 1 to 5 stars', max, (v) => String(Math.round(v)));
  const slot = (W - PAD.left - PAD.right) / 5;
  counts.forEach((n, i) => {
    const y = yOf(n, max);
    const x = PAD.left + i * slot + slot * 0.2;
    svg.append(
      s('rect', { x, y, width: slot * 0.6, height: yOf(0, max) - y, class: 'bar rating' }, s('title', {}, `${i + 1} star(s): ${n}`)),
      s('text', { x: x + slot * 0.3, y: H - 8, 'text-anchor': 'middle', class: 'axis' }, `${i + 1} ★`),
    );
  });
  const total = counts.reduce((a, b) => a + b, 0);
  const mean = total ? counts.reduce((a, n, i) => a + n * (i + 1), 0) / total : null;
  return [svg, h('p', { class: 'hint' }, total ? `${total} ratings, ${mean.toFixed(2)} on average.` : 'No ratings in these 30 days.')];
}

function figure(id, title, parts) {
  return h('figure', { class: 'report-figure', id }, h('figcaption', {}, title), ...parts);
}

export function hideReports() {
  session += 1;
  const view = document.getElementById('reports-view');
  view.hidden = true;
  clear(view);
}

export async function showReports({ onError, onClose }) {
  const mine = ++session;
  const view = document.getElementById('reports-view');
  clear(view);
  view.hidden = false;
  const title = h('h2', { id: 'reports-title', tabindex: -1 }, 'Reports: the last 30 days');
  const back = h('button', { type: 'button', class: 'back-history' }, 'Back to the inbox');
  back.addEventListener('click', () => {
    hideReports();
    onClose();
  });
  const intro = h('p', { class: 'hint' }, 'Loading the figures…');
  view.append(h('div', { class: 'history-head' }, back, title), intro);
  title.focus();
  let report;
  try {
    ({ data: report } = await api.get('/reports?group_by=day'));
  } catch (error) {
    if (mine === session) {
      intro.textContent = 'The report could not be loaded.';
      onError(error);
    }
    return;
  }
  if (mine !== session) return;
  const groups = report.groups;
  const sum = (f) => groups.reduce((a, g) => a + f(g), 0);
  intro.textContent = `${sum((g) => g.opened)} opened, ${sum((g) => g.closed)} closed, ${sum((g) => g.reopened)} reopened, `
    + `${sum((g) => g.messages.customer)} customer and ${sum((g) => g.messages.staff)} staff messages, `
    + `${sum((g) => g.sla_breaches)} missed service-level targets. Days are UTC.`;
  view.append(
    h('div', { class: 'report-grid' },
      figure('chart-opened-closed', 'Opened and closed per day', openedClosed(groups)),
      figure('chart-medians', 'Median first response and resolution per day', medians(groups)),
      figure('chart-ratings', 'Ratings', ratings(groups))),
  );
}
