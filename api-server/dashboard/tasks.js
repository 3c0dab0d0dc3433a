// The Task list (live) and a Task's page (phases and progress as they happen, logs following, the
// result, cancel and delete).

import { request, nsPath, Problem } from './api.js';
import { h, replace, phaseBadge, ageElement, refreshAges, fmtTime, isTerminal, table, PHASES, parseSelector, uid } from './dom.js';

const PAGE = 50;

/** A problem as a paragraph, announced at once. */
export function problemNote(p) {
  const text = p instanceof Problem ? p.detail : String(p && p.message ? p.message : p);
  return h('p', { class: 'error', role: 'alert' }, text);
}

function compareNewest(a, b) {
  const d = Date.parse(b.createdAt) - Date.parse(a.createdAt);
  if (d) return d;
  return a.name < b.name ? 1 : a.name > b.name ? -1 : 0;
}

const taskHref = (ns, name) => `#/tasks/${encodeURIComponent(ns)}/${encodeURIComponent(name)}`;

/** `#/tasks?phase=&queue=&labels=`: the namespace's Tasks, newest first, kept current live. */
export async function taskList(ctx) {
  const { main, ns, params, live } = ctx;
  const filter = { phase: params.get('phase') || '', queue: params.get('queue') || '', labels: params.get('labels') || '' };
  ctx.setTitle('Tasks');

  const phaseId = uid('f-phase');
  const queueId = uid('f-queue');
  const labelsId = uid('f-labels');
  const phaseSelect = h('select', { id: phaseId, name: 'phase' }, h('option', { value: '' }, 'Any'),
    PHASES.map((p) => h('option', { value: p, selected: p === filter.phase }, p)));
  const queueInput = h('input', { id: queueId, name: 'queue', value: filter.queue, autocomplete: 'off', spellcheck: 'false', placeholder: 'any' });
  const labelsInput = h('input', { id: labelsId, name: 'labels', value: filter.labels, autocomplete: 'off', spellcheck: 'false', placeholder: 'app=web,tier!=db', 'aria-describedby': `${labelsId}-help` });
  const form = h('form', { class: 'filters', 'aria-label': 'Filter Tasks', novalidate: true },
    h('div', { class: 'field' }, h('label', { for: phaseId }, 'Phase'), phaseSelect),
    h('div', { class: 'field' }, h('label', { for: queueId }, 'Queue'), queueInput),
    h('div', { class: 'field' }, h('label', { for: labelsId }, 'Label selector'), labelsInput,
      h('p', { id: `${labelsId}-help`, class: 'help' }, 'Kubernetes syntax: key=value, key!=value, key in (a,b), !key')),
    h('div', { class: 'buttons' }, h('button', { type: 'submit' }, 'Apply'),
      h('button', { type: 'button', class: 'secondary', onclick: () => ctx.navigate('#/tasks') }, 'Reset')));
  form.addEventListener('submit', (e) => {
    e.preventDefault();
    const q = new URLSearchParams();
    if (phaseSelect.value) q.set('phase', phaseSelect.value);
    if (queueInput.value.trim()) q.set('queue', queueInput.value.trim());
    if (labelsInput.value.trim()) q.set('labels', labelsInput.value.trim());
    const s = q.toString();
    ctx.navigate(s ? `#/tasks?${s}` : '#/tasks');
  });

  const { wrap, body } = table(`Tasks in namespace ${ns}`, ['Name', 'Phase', 'Queue', 'Priority', 'Attempt', 'Age', 'Requested by'], []);
  const empty = h('p', { class: 'muted', hidden: true }, 'No Tasks match.');
  const note = h('div');
  const more = h('button', { type: 'button', class: 'secondary', hidden: true }, 'Load more');
  replace(main, h('h1', { tabindex: '-1' }, 'Tasks'), form, note, wrap, empty, more);

  // Every Task of the namespace the stream or the list told us of, by name; `shown` those in the
  // pages loaded so far (older ones belong to pages not loaded yet).
  const tasks = new Map();
  const rows = new Map();
  const fromList = new Set();
  let oldest = null; // createdAt of the last loaded Task when more pages follow
  let cursor = null;
  const selector = parseSelector(filter.labels);

  const matches = (t) =>
    (!filter.phase || t.phase === filter.phase) &&
    (!filter.queue || t.queue === filter.queue) &&
    (selector ? selector(t.labels) : fromList.has(t.name));
  const inPages = (t) => oldest === null || compareNewest(t, oldest) <= 0;

  function row(t) {
    let r = rows.get(t.name);
    if (!r) {
      const link = h('a', { href: taskHref(ns, t.name) }, t.name);
      r = h('tr', { 'data-task': t.name }, h('th', { scope: 'row' }, link),
        h('td', { class: 'phase-cell' }), h('td'), h('td', { class: 'num' }), h('td', { class: 'num' }), h('td'), h('td', { class: 'requester' }));
      rows.set(t.name, r);
    }
    const c = r.children;
    if (c[1].dataset.phase !== t.phase) {
      c[1].dataset.phase = t.phase;
      replace(c[1], phaseBadge(t.phase));
    }
    const set = (cell, text) => {
      if (cell.textContent !== text) cell.textContent = text;
    };
    set(c[2], t.queue || '');
    set(c[3], String(t.priority ?? ''));
    set(c[4], String(t.attempt ?? 0));
    if (c[5].dataset.created !== t.createdAt) {
      c[5].dataset.created = t.createdAt;
      replace(c[5], ageElement(t.createdAt));
    }
    set(c[6], t.requestedBy || '');
    return r;
  }

  // Puts the rows in order, moving only those out of place (a focused link keeps its focus).
  function render() {
    const want = [...tasks.values()].filter((t) => matches(t) && inPages(t)).sort(compareNewest);
    let at = body.firstElementChild;
    const keep = new Set();
    for (const t of want) {
      const r = row(t);
      keep.add(r);
      if (r === at) at = at.nextElementSibling;
      else body.insertBefore(r, at);
    }
    for (const r of [...body.children]) if (!keep.has(r)) r.remove();
    empty.hidden = want.length > 0;
  }

  function upsert(view) {
    tasks.set(view.name, { ...tasks.get(view.name), ...view });
  }

  const unsubscribe = live.subscribe({
    namespace: ns,
    onMessage(m) {
      if (m.type === 'snapshot') upsert(m.state);
      else if (m.type === 'event') {
        const t = tasks.get(m.task);
        if (!t || m.event.kind !== 'Phase' || !m.event.phase) return;
        t.phase = m.event.phase;
        if (Number.isInteger(m.event.attempt)) t.attempt = Math.max(t.attempt ?? 0, m.event.attempt);
      } else if (m.type === 'end') {
        if (m.phase === 'Deleted') {
          tasks.delete(m.task);
          rows.delete(m.task);
        } else if (tasks.has(m.task)) tasks.get(m.task).phase = m.phase;
      } else if (m.type === 'error') {
        replace(note, problemNote(m.message));
        return;
      } else return;
      render();
    },
  });
  ctx.onCleanup(unsubscribe);
  const ages = setInterval(() => refreshAges(body), 5000);
  ctx.onCleanup(() => clearInterval(ages));

  async function load() {
    more.disabled = true;
    try {
      const page = await request('GET', nsPath(ns, 'tasks'), {
        query: { phase: filter.phase, queue: filter.queue, labelSelector: filter.labels, limit: PAGE, cursor },
        signal: ctx.signal,
      });
      for (const t of page.items) {
        fromList.add(t.name);
        // The stream's copy is never older than the list's: keep it when there is one.
        if (!tasks.has(t.name)) tasks.set(t.name, t);
      }
      cursor = page.nextCursor || null;
      oldest = cursor && page.items.length ? page.items[page.items.length - 1] : null;
      more.hidden = !cursor;
      replace(note);
      render();
    } catch (e) {
      if (e.name === 'AbortError') return;
      replace(note, problemNote(e));
    } finally {
      more.disabled = false;
    }
  }
  more.addEventListener('click', load);
  // Without live status the list is polled instead.
  const poll = setInterval(() => {
    if (live.state === 'unavailable' && !cursor) load();
  }, 5000);
  ctx.onCleanup(() => clearInterval(poll));
  await load();
}

/** `#/tasks/{ns}/{name}`: one Task as it runs. */
export async function taskPage(ctx, ns, name) {
  const { main, live } = ctx;
  ctx.setTitle(name);
  const base = nsPath(ns, 'tasks', name);
  let state = null;
  let lastSeq = null;
  const events = new Map(); // seq -> event
  let wake = null; // resolves a wait of the log follower when the state changes
  const changed = () => {
    const w = wake;
    wake = null;
    if (w) w();
  };

  const heading = h('h1', { tabindex: '-1' }, name);
  const back = h('p', null, h('a', { href: '#/tasks' }, `← Tasks in ${ns}`));
  const summary = h('dl', { class: 'summary' });
  const actionNote = h('div');
  const cancelButton = h('button', { type: 'button', class: 'danger' }, 'Cancel Task');
  const deleteButton = h('button', { type: 'button', class: 'secondary' }, 'Delete Task');
  const actions = h('div', { class: 'buttons' }, cancelButton, deleteButton);
  const progressId = uid('progress');
  const bar = h('progress', { id: progressId, max: '100' });
  const barText = h('span', { class: 'progress-text' }, 'No progress reported yet.');
  const progress = h('div', { class: 'progress' }, h('label', { for: progressId }, 'Progress'), bar, barText);
  const list = h('ol', { class: 'events', 'aria-label': 'Phases and progress' });
  const logPre = h('pre', { class: 'log', tabindex: '0', 'aria-label': 'Logs' });
  const logStatus = h('p', { class: 'muted log-status' }, 'Waiting for the first attempt…');
  const result = h('section', { hidden: true, 'aria-labelledby': 'result-h' }, h('h2', { id: 'result-h' }, 'Result'));
  replace(main, back, heading, summary, actions, actionNote,
    h('section', { 'aria-labelledby': 'events-h' }, h('h2', { id: 'events-h' }, 'Phases and progress'), progress, list),
    h('section', { 'aria-labelledby': 'logs-h' }, h('h2', { id: 'logs-h' }, 'Logs'), logStatus, logPre),
    result);

  function renderSummary() {
    const s = state;
    const rows = [
      ['Phase', h('span', { class: 'phase-now' }, phaseBadge(s.phase), s.cancelRequested && !isTerminal(s.phase) ? ' (cancel requested)' : '')],
      ['Reason', s.reason],
      ['Message', s.message],
      ['Attempt', String(s.attempt ?? 0)],
      ['Queue', s.queue],
      ['Priority', String(s.priority ?? '')],
      ['Template', s.template],
      ['Requested by', s.requestedBy],
      ['Created', s.createdAt && fmtTime(s.createdAt)],
      ['Started', s.startTime && fmtTime(s.startTime)],
      ['Finished', s.completionTime && fmtTime(s.completionTime)],
      ['Exit code', s.exitCode == null ? '' : String(s.exitCode)],
      ['Labels', Object.entries(s.labels || {}).map(([k, v]) => `${k}=${v}`).join(', ')],
    ].filter(([, v]) => v !== '' && v != null);
    replace(summary, rows.map(([k, v]) => [h('dt', null, k), h('dd', null, v)]));
    cancelButton.hidden = isTerminal(s.phase);
  }

  function renderEvents() {
    const all = [...events.values()].sort((a, b) => a.seq - b.seq);
    // Append what is new; rebuild only when something older arrived (a resync).
    const same = [...list.children].every((li, i) => all[i] && all[i].seq === Number(li.dataset.seq));
    if (!same) list.replaceChildren();
    for (const e of all.slice(list.children.length)) {
      const what = e.kind === 'Phase'
        ? [phaseBadge(e.phase), ` attempt ${e.attempt}`]
        : [e.percent == null ? '' : `${e.percent}% `, e.message || ''];
      list.append(h('li', { 'data-seq': String(e.seq), 'data-kind': e.kind },
        h('time', { datetime: e.time }, e.time ? new Date(e.time).toLocaleTimeString() : ''), ' ', h('span', { class: 'event-what' }, what)));
    }
    const withPercent = all.filter((e) => e.kind === 'Progress' && e.percent != null);
    const lastMsg = all.filter((e) => e.kind === 'Progress').at(-1);
    if (withPercent.length) {
      const p = withPercent.at(-1).percent;
      if (bar.getAttribute('value') !== String(p)) bar.setAttribute('value', String(p));
      barText.textContent = `${p}%${lastMsg && lastMsg.message ? `: ${lastMsg.message}` : ''}`;
    } else if (lastMsg) barText.textContent = lastMsg.message;
  }

  let resultShown = false;
  async function showResult() {
    if (resultShown) return;
    resultShown = true;
    try {
      const r = await request('GET', `${base}/result`, { signal: ctx.signal });
      replace(result, h('h2', { id: 'result-h' }, 'Result'),
        h('dl', { class: 'summary' }, h('dt', null, 'Phase'), h('dd', null, phaseBadge(r.phase)),
          h('dt', null, 'Reason'), h('dd', null, r.reason || ''),
          h('dt', null, 'Exit code'), h('dd', null, r.exitCode == null ? 'none' : String(r.exitCode))),
        r.result ? h('pre', { class: 'result', tabindex: '0', 'aria-label': 'Result' }, r.result) : h('p', { class: 'muted' }, 'The task wrote no result.'));
      result.hidden = false;
    } catch (e) {
      if (e.name === 'AbortError') return;
      resultShown = false;
      if (!(e instanceof Problem && e.kind === 'task-not-finished')) replace(actionNote, problemNote(e));
    }
  }

  let announced = null;
  function update() {
    renderSummary();
    renderEvents();
    if (announced !== state.phase) {
      if (announced !== null) ctx.announce(`Task ${name} is ${state.phase}.`);
      announced = state.phase;
    }
    if (isTerminal(state.phase)) {
      showResult();
      if (state.phase !== 'Deleted') refresh();
    }
    changed();
  }

  // A finished Task's final fields (exit code, reason, times) come from the API itself.
  let refreshed = false;
  async function refresh() {
    if (refreshed) return;
    refreshed = true;
    try {
      state = { ...state, ...(await request('GET', base, { signal: ctx.signal })) };
      renderSummary();
    } catch (e) {
      if (e.name !== 'AbortError') refreshed = false;
    }
  }

  try {
    state = await request('GET', base, { signal: ctx.signal });
  } catch (e) {
    if (e.name === 'AbortError') return;
    replace(main, back, heading, problemNote(e));
    return;
  }
  update();

  const unsubscribe = live.subscribe({
    namespace: ns,
    task: name,
    since: () => lastSeq,
    onMessage(m) {
      if (m.type === 'snapshot') {
        state = { ...state, ...m.state };
        for (const e of m.events) events.set(e.seq, e);
        lastSeq = Math.max(lastSeq ?? 0, m.lastSeq);
      } else if (m.type === 'event') {
        if (lastSeq !== null && m.event.seq <= lastSeq) return; // seen already
        events.set(m.event.seq, m.event);
        lastSeq = m.event.seq;
        if (m.event.kind === 'Phase' && m.event.phase) state.phase = m.event.phase;
        if (Number.isInteger(m.event.attempt)) state.attempt = Math.max(state.attempt ?? 0, m.event.attempt);
      } else if (m.type === 'end') {
        state.phase = m.phase;
        lastSeq = Math.max(lastSeq ?? 0, m.lastSeq);
        if (m.phase === 'Deleted') {
          ctx.announce(`Task ${name} was deleted.`);
          cancelButton.hidden = true;
          deleteButton.hidden = true;
        }
      } else if (m.type === 'error') {
        replace(actionNote, problemNote(m.message));
        return;
      } else return;
      update();
    },
  });
  ctx.onCleanup(unsubscribe);
  ctx.onCleanup(changed);

  cancelButton.addEventListener('click', async () => {
    const yes = await ctx.confirm(`Cancel Task ${name}?`, 'Its Pod is stopped and its credentials are revoked. This cannot be undone.', 'Cancel Task', 'Keep it running');
    if (!yes) return;
    replace(actionNote);
    cancelButton.disabled = true;
    try {
      const v = await request('POST', `${base}/cancel`, { signal: ctx.signal });
      state = { ...state, ...v, phase: isTerminal(state.phase) ? state.phase : v.phase };
      ctx.announce(`Cancellation of ${name} requested.`);
      update();
    } catch (e) {
      if (e.name !== 'AbortError') replace(actionNote, problemNote(e));
    } finally {
      cancelButton.disabled = false;
    }
  });
  deleteButton.addEventListener('click', async () => {
    const yes = await ctx.confirm(`Delete Task ${name}?`, 'Its Pods are removed and its credentials revoked first; its logs and result are gone with it.', 'Delete Task', 'Keep it');
    if (!yes) return;
    replace(actionNote);
    try {
      await request('DELETE', base, { signal: ctx.signal });
      ctx.announce(`Task ${name} is being deleted.`);
      ctx.navigate('#/tasks');
    } catch (e) {
      if (e.name !== 'AbortError') replace(actionNote, problemNote(e));
    }
  });

  followLogs(ctx, base, logPre, logStatus, () => state, (ms) => new Promise((resolve) => {
    wake = resolve;
    setTimeout(resolve, ms);
  }));
}

/** Most of a log kept on the page (characters); older output is dropped. */
const LOG_LIMIT = 2 * 1024 * 1024;

/**
 * Follows the current attempt's log until the Task ends. A follow that ends while the Task goes on
 * (a retry, or a server restart) is opened again; an attempt's log only grows, so what the new
 * follow repeats of the text already shown is skipped and nothing appears twice.
 */
async function followLogs(ctx, base, pre, status, getState, wait) {
  let attemptShown = null;
  let shownChars = 0; // of the attempt's log, shown so far
  let kept = 0; // characters on the page
  let cut = false;
  const add = (text) => {
    const stick = pre.scrollHeight - pre.scrollTop - pre.clientHeight < 8;
    pre.append(document.createTextNode(text));
    kept += text.length;
    while (kept > LOG_LIMIT && pre.firstChild) {
      kept -= pre.firstChild.textContent.length;
      pre.firstChild.remove();
      cut = true;
    }
    if (stick) pre.scrollTop = pre.scrollHeight;
  };
  const label = () => `${cut ? ' (earlier output dropped)' : ''}`;
  while (!ctx.signal.aborted) {
    const attempt = getState().attempt;
    try {
      const resp = await request('GET', `${base}/logs`, { query: { follow: 'true' }, raw: true, signal: ctx.signal });
      // The server names the attempt this log is of (a retry may have begun since `attempt` was read).
      const of = Number(resp.headers.get('Ephemera-Attempt')) || attempt;
      if (attemptShown !== of) {
        pre.replaceChildren();
        [attemptShown, shownChars, kept, cut] = [of, 0, 0, false];
      }
      status.textContent = isTerminal(getState().phase) ? 'Logs of the last attempt:' : `Following attempt ${of}…`;
      const reader = resp.body.pipeThrough(new TextDecoderStream()).getReader();
      const stop = () => reader.cancel().catch(() => {});
      ctx.onCleanup(stop);
      // A follow whose Pod went away abruptly (a cancel) may not be closed by the server at once:
      // once the Task is over, it ends after 5 s without output (never in the middle of output).
      let lastData = Date.now();
      const over = new Promise((resolve) => {
        const tick = () => {
          if (ctx.signal.aborted) return;
          if (isTerminal(getState().phase) && Date.now() - lastData > 5000) resolve({ over: true });
          else setTimeout(tick, 500);
        };
        tick();
      });
      let seen = 0;
      for (;;) {
        const next = await Promise.race([reader.read(), over]);
        if (next.over) {
          stop();
          break;
        }
        const { value, done } = next;
        if (done) break;
        lastData = Date.now();
        const from = Math.max(0, shownChars - seen);
        seen += value.length;
        if (from >= value.length) continue;
        const text = value.slice(from);
        shownChars += text.length;
        add(text);
      }
    } catch (e) {
      if (ctx.signal.aborted || e.name === 'AbortError') return;
      if (e instanceof Problem && e.status === 401) return;
      if (e instanceof Problem && e.kind === 'no-attempt-yet') {
        if (isTerminal(getState().phase)) {
          status.textContent = 'No logs: the Task never ran, or its Pod is gone.';
          return;
        }
        status.textContent = 'Waiting for the first attempt to start…';
        await wait(1000);
        continue;
      }
      status.textContent = `Logs unavailable: ${e instanceof Problem ? e.detail : e}`;
      await wait(3000);
      continue;
    }
    if (isTerminal(getState().phase)) {
      status.textContent = shownChars ? `Logs (complete)${label()}:` : 'The task printed nothing.';
      return;
    }
    status.textContent = 'The attempt ended; waiting for the Task…';
    await wait(2000);
  }
}
