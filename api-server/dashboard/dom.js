// Small DOM and formatting helpers. Everything the server sends (Task names, messages, logs,
// delivery reasons) may come from an attacker: it only ever becomes text (text nodes, textContent,
// attribute values), never markup, so nothing here takes HTML.

/** An element: `h('a', {href: '#/tasks', class: 'x'}, 'text', child)`. */
export function h(tag, props, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(props ?? {})) {
    if (v == null || v === false) continue;
    if (k === 'class') el.className = v;
    else if (k.startsWith('on') && typeof v === 'function') el.addEventListener(k.slice(2), v);
    else if (k === 'value' || k === 'checked') el[k] = v;
    else el.setAttribute(k, v === true ? '' : String(v));
  }
  append(el, children);
  return el;
}

/** Appends children (strings become text nodes; null, undefined and false are skipped). */
export function append(el, children) {
  for (const c of children.flat(Infinity)) {
    if (c == null || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

/** Replaces an element's children. */
export function replace(el, ...children) {
  el.replaceChildren();
  return append(el, children);
}

/** A fresh id for label/field pairs. */
let ids = 0;
export function uid(prefix = 'id') {
  ids += 1;
  return `${prefix}-${ids}`;
}

export const PHASES = ['Pending', 'Scheduled', 'Running', 'Succeeded', 'Failed', 'Cancelled', 'TimedOut'];
const TERMINAL = new Set(['Succeeded', 'Failed', 'Cancelled', 'TimedOut', 'Deleted']);
export const isTerminal = (phase) => TERMINAL.has(phase);

/** A phase as a labelled badge: the text says it, the colour and the mark only repeat it. */
export function phaseBadge(phase) {
  const p = phase || 'Pending';
  return h('span', { class: `phase phase-${p.toLowerCase()}`, 'data-phase': p }, p);
}

/** `2026-05-01T10:00:00Z` as the reader's local date and time. */
export function fmtTime(iso) {
  if (!iso) return '';
  const d = new Date(iso);
  return Number.isNaN(d.getTime()) ? String(iso) : d.toLocaleString();
}

/** How long ago, short: `12s`, `5m`, `3h`, `2d`. */
export function fmtAge(iso, now = Date.now()) {
  const t = Date.parse(iso);
  if (Number.isNaN(t)) return '';
  const s = Math.max(0, Math.round((now - t) / 1000));
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m`;
  if (s < 86400) return `${Math.floor(s / 3600)}h`;
  return `${Math.floor(s / 86400)}d`;
}

/** A `<time>` element showing the age, with the full time as its tooltip. */
export function ageElement(iso) {
  return h('time', { datetime: iso, title: fmtTime(iso), 'data-age': iso }, fmtAge(iso));
}

/** Refreshes every age shown under `root`. */
export function refreshAges(root) {
  const now = Date.now();
  for (const t of root.querySelectorAll('time[data-age]')) {
    const text = fmtAge(t.dataset.age, now);
    if (t.textContent !== text) t.textContent = text;
  }
}

/** A table in a box that scrolls sideways on narrow screens (the page itself never does). */
export function table(caption, columns, rows) {
  const head = h('tr', null, columns.map((c) => h('th', { scope: 'col' }, c)));
  const body = h('tbody', null, rows);
  const t = h('table', null, caption ? h('caption', null, caption) : null, h('thead', null, head), body);
  return { wrap: h('div', { class: 'table-wrap', tabindex: '0', role: 'region', 'aria-label': caption || 'table' }, t), body };
}

/**
 * A Kubernetes label selector (`app=web,tier!=db`, `env in (a,b)`, `!legacy`), so live updates are
 * filtered as the server filters the list. Returns a predicate over a labels object, or null when the
 * selector is not one this parser understands (the list then trusts the server's answers only).
 */
export function parseSelector(text) {
  const src = (text || '').trim();
  if (!src) return () => true;
  const reqs = [];
  // Split on commas outside parentheses.
  const parts = [];
  let depth = 0;
  let cur = '';
  for (const ch of src) {
    if (ch === '(') depth += 1;
    if (ch === ')') depth -= 1;
    if (ch === ',' && depth === 0) {
      parts.push(cur);
      cur = '';
    } else cur += ch;
  }
  parts.push(cur);
  const key = String.raw`[A-Za-z0-9]([-A-Za-z0-9_./]*[A-Za-z0-9])?`;
  const val = String.raw`([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)?`;
  const eq = new RegExp(`^\\s*(${key})\\s*(==|=|!=)\\s*(${val})\\s*$`);
  const set = new RegExp(`^\\s*(${key})\\s+(in|notin)\\s*\\(([^)]*)\\)\\s*$`);
  const exists = new RegExp(`^\\s*(!?)\\s*(${key})\\s*$`);
  for (const part of parts) {
    let m = part.match(eq);
    if (m) {
      const [k, op, v] = [m[1], m[3], m[4]];
      reqs.push(op === '!=' ? (l) => !Object.hasOwn(l, k) || l[k] !== v : (l) => Object.hasOwn(l, k) && l[k] === v);
      continue;
    }
    m = part.match(set);
    if (m) {
      const [k, op] = [m[1], m[3]];
      const values = m[4].split(',').map((s) => s.trim());
      const has = (l) => Object.hasOwn(l, k);
      reqs.push(op === 'in' ? (l) => has(l) && values.includes(l[k]) : (l) => !has(l) || !values.includes(l[k]));
      continue;
    }
    m = part.match(exists);
    if (m) {
      const [neg, k] = [m[1], m[2]];
      reqs.push(neg ? (l) => !Object.hasOwn(l, k) : (l) => Object.hasOwn(l, k));
      continue;
    }
    return null;
  }
  return (labels) => reqs.every((r) => r(labels || {}));
}
