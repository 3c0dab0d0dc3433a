// Queues, triggers, schedules and templates (each template's form starts a Task).

import { request, nsPath, Problem } from './api.js';
import { h, replace, phaseBadge, fmtTime, table } from './dom.js';
import { problemNote } from './tasks.js';

const taskLink = (ns, name) => h('a', { href: `#/tasks/${encodeURIComponent(ns)}/${encodeURIComponent(name)}` }, name);

/** Loads with `load()` now and every `ms` while the view is shown; a Refresh button too. */
function refreshing(ctx, ms, load) {
  const updated = h('p', { class: 'muted updated' });
  const button = h('button', { type: 'button', class: 'secondary' }, 'Refresh');
  let busy = false;
  const run = async () => {
    if (busy) return;
    busy = true;
    button.disabled = true;
    try {
      await load();
      updated.textContent = `Updated ${new Date().toLocaleTimeString()}`;
    } catch (e) {
      if (e.name !== 'AbortError') throw e;
    } finally {
      busy = false;
      button.disabled = false;
    }
  };
  button.addEventListener('click', run);
  const timer = setInterval(run, ms);
  ctx.onCleanup(() => clearInterval(timer));
  return { bar: h('div', { class: 'toolbar' }, button, updated), run };
}

/** `#/queues`: every queue's limit, running and pending counts. */
export async function queuesPage(ctx) {
  ctx.setTitle('Queues');
  const content = h('div');
  const { bar, run } = refreshing(ctx, 5000, async () => {
    try {
      const queues = await request('GET', '/api/v1/queues', { signal: ctx.signal });
      if (!queues.length) {
        replace(content, h('p', { class: 'muted' }, 'No queues yet: Tasks go to the default queue.'));
        return;
      }
      const rows = queues.map((q) =>
        h('tr', { 'data-queue': q.name }, h('th', { scope: 'row' }, q.name),
          h('td', { class: 'num' }, q.concurrency === 0 ? 'unlimited' : String(q.concurrency)),
          h('td', { class: 'num' }, String(q.running)), h('td', { class: 'num' }, String(q.pending))));
      replace(content, table('Queues', ['Queue', 'Concurrency', 'Running', 'Pending'], rows).wrap);
    } catch (e) {
      if (e.name === 'AbortError') throw e;
      replace(content, problemNote(e));
    }
  });
  replace(ctx.main, h('h1', { tabindex: '-1' }, 'Queues'), bar, content);
  await run();
}

/** `#/triggers`: the namespace's webhooks, their state and recent deliveries. */
export async function triggersPage(ctx) {
  const { ns } = ctx;
  ctx.setTitle('Triggers');
  const content = h('div');
  const { bar, run } = refreshing(ctx, 10000, async () => {
    try {
      const triggers = await request('GET', nsPath(ns, 'triggers'), { signal: ctx.signal });
      if (!triggers.length) {
        replace(content, h('p', { class: 'muted' }, `No triggers in namespace ${ns}.`));
        return;
      }
      replace(content, triggers.map((t, i) => trigger(ns, t, i)));
    } catch (e) {
      if (e.name === 'AbortError') throw e;
      replace(content, problemNote(e));
    }
  });
  replace(ctx.main, h('h1', { tabindex: '-1' }, `Triggers in ${ns}`), bar, content);
  await run();
}

function delivery(ns, d) {
  return h('tr', null,
    h('td', null, h('time', { datetime: d.time }, fmtTime(d.time))),
    h('td', null, d.event),
    h('td', null, h('span', { class: `outcome outcome-${String(d.outcome).toLowerCase()}` }, d.outcome)),
    h('td', null, d.rule),
    h('td', null, d.task ? taskLink(ns, d.task) : ''),
    h('td', { class: 'reason' }, d.reason));
}

function trigger(ns, t, i) {
  const hid = `trigger-${i}`;
  const counters = Object.entries(t.counters || {}).map(([k, v]) => `${k} ${v}`).join(', ');
  const cols = ['Time', 'Event', 'Outcome', 'Rule', 'Task', 'Reason'];
  return h('section', { class: 'card', 'aria-labelledby': hid, 'data-trigger': t.name },
    h('h2', { id: hid }, t.name),
    h('dl', { class: 'summary' },
      h('dt', null, 'Source'), h('dd', null, t.source),
      h('dt', null, 'Path'), h('dd', null, h('code', null, t.path)),
      h('dt', null, 'State'), h('dd', null, h('span', { class: t.ready ? 'ok' : 'bad' }, t.ready ? 'Ready' : 'Not ready'), t.message ? `: ${t.message}` : ''),
      h('dt', null, 'Rules'), h('dd', null, t.rules.length ? t.rules.join(', ') : 'none'),
      counters ? [h('dt', null, 'Deliveries'), h('dd', null, counters)] : null),
    h('h3', null, 'Recent deliveries'),
    t.deliveries.length ? table(`Recent deliveries of ${t.name}`, cols, t.deliveries.map((d) => delivery(ns, d))).wrap : h('p', { class: 'muted' }, 'None yet.'),
    t.lastRefused ? [h('h3', null, 'Last refused'), table(`Last refused delivery of ${t.name}`, cols, [delivery(ns, t.lastRefused)]).wrap] : null);
}

/** `#/schedules`: the namespace's schedules, suspended and resumed from here. */
export async function schedulesPage(ctx) {
  const { ns } = ctx;
  ctx.setTitle('Schedules');
  const content = h('div');
  const note = h('div');
  const row = (s) => {
    const button = h('button', { type: 'button', class: 'secondary', 'aria-label': `${s.suspend ? 'Resume' : 'Suspend'} ${s.name}` }, s.suspend ? 'Resume' : 'Suspend');
    const tr = h('tr', { 'data-schedule': s.name },
      h('th', { scope: 'row' }, s.name),
      h('td', null, s.runAt ? `once at ${fmtTime(s.runAt)}` : [h('code', null, s.schedule || ''), s.timeZone ? ` (${s.timeZone})` : '']),
      h('td', null, s.template || ''),
      h('td', { class: 'state' }, s.suspend ? 'Suspended' : 'Active', s.ready ? '' : [', ', h('span', { class: 'bad' }, 'not ready'), s.message ? `: ${s.message}` : '']),
      h('td', null, fmtTime(s.lastScheduleTime)),
      h('td', null, s.suspend ? '' : fmtTime(s.nextScheduleTime)),
      h('td', null, s.lastTask ? [taskLink(ns, s.lastTask), ' ', s.lastPhase ? phaseBadge(s.lastPhase) : ''] : ''),
      h('td', null, s.active.length ? s.active.map((n, i) => [i ? ', ' : '', taskLink(ns, n)]) : 'none'),
      h('td', { class: 'num' }, String(s.skipped)),
      h('td', null, button));
    button.addEventListener('click', async () => {
      button.disabled = true;
      replace(note);
      try {
        const v = await request('POST', nsPath(ns, 'schedules', s.name, s.suspend ? 'resume' : 'suspend'), { signal: ctx.signal });
        ctx.announce(`Schedule ${v.name} is ${v.suspend ? 'suspended' : 'active'}.`);
        const fresh = row(v);
        tr.replaceWith(fresh);
        fresh.querySelector('button').focus();
      } catch (e) {
        if (e.name === 'AbortError') return;
        replace(note, problemNote(e));
        button.disabled = false;
      }
    });
    return tr;
  };
  const { bar, run } = refreshing(ctx, 15000, async () => {
    // Not while a suspend or resume button holds the focus (a redraw would take it away).
    if (content.contains(document.activeElement) && document.activeElement.tagName === 'BUTTON') return;
    try {
      const list = await request('GET', nsPath(ns, 'schedules'), { signal: ctx.signal });
      if (!list.length) {
        replace(content, h('p', { class: 'muted' }, `No schedules in namespace ${ns}.`));
        return;
      }
      const cols = ['Name', 'Schedule', 'Template', 'State', 'Last run', 'Next run', 'Last Task', 'Active', 'Skipped', 'Action'];
      replace(content, table(`Schedules in ${ns}`, cols, list.map(row)).wrap);
    } catch (e) {
      if (e.name === 'AbortError') throw e;
      replace(content, problemNote(e));
    }
  });
  replace(ctx.main, h('h1', { tabindex: '-1' }, `Schedules in ${ns}`), bar, note, content);
  await run();
}

/** `#/templates`: every template the caller may use here, each with a form that starts a Task. */
export async function templatesPage(ctx) {
  const { ns } = ctx;
  ctx.setTitle('Templates');
  const content = h('div');
  replace(ctx.main, h('h1', { tabindex: '-1' }, `Templates for ${ns}`), content);
  let list;
  try {
    list = await request('GET', '/api/v1/templates', { query: { namespace: ns }, signal: ctx.signal });
  } catch (e) {
    if (e.name === 'AbortError') return;
    replace(content, problemNote(e));
    return;
  }
  if (!list.length) {
    replace(content, h('p', { class: 'muted' }, 'No templates: an admin adds ClusterTaskTemplates, a team its TaskTemplates.'));
    return;
  }
  replace(content, list.map((t, i) => templateForm(ctx, t, i)));
}

function constraints(p) {
  const out = [];
  if (p.type === 'integer') {
    if (p.minimum != null && p.maximum != null) out.push(`a whole number from ${p.minimum} to ${p.maximum}`);
    else if (p.minimum != null) out.push(`a whole number, at least ${p.minimum}`);
    else if (p.maximum != null) out.push(`a whole number, at most ${p.maximum}`);
    else out.push('a whole number');
  }
  if (p.type === 'enum') out.push(`one of ${p.values.join(', ')}`);
  if (p.pattern) out.push(`matching ${p.pattern}`);
  if (p.default != null && p.type !== 'boolean') out.push(`default ${p.default === '' ? '(empty)' : p.default}`);
  return out.join('; ');
}

function templateForm(ctx, t, i) {
  const { ns } = ctx;
  const hid = `tpl-${i}`;
  const fields = new Map(); // param name -> {input, error, param}
  const formError = h('div');
  const controls = t.params.map((p, j) => {
    const id = `${hid}-p${j}`;
    const help = [p.description, constraints(p)].filter(Boolean).join(' — ');
    const helpEl = help ? h('p', { id: `${id}-help`, class: 'help' }, help) : null;
    const error = h('p', { id: `${id}-error`, class: 'field-error' });
    const describedBy = [helpEl ? `${id}-help` : null, `${id}-error`].filter(Boolean).join(' ');
    let input;
    if (p.type === 'boolean') {
      input = h('input', { id, type: 'checkbox', name: p.name, checked: p.default === 'true', 'aria-describedby': describedBy });
      fields.set(p.name, { input, error, param: p });
      return h('div', { class: 'field check' }, input, h('label', { for: id }, p.name), helpEl, error);
    }
    if (p.type === 'enum') {
      const blank = !p.required && p.default == null;
      input = h('select', { id, name: p.name, required: p.required, 'aria-describedby': describedBy },
        blank ? h('option', { value: '' }, '(none)') : null,
        p.values.map((v) => h('option', { value: v, selected: v === p.default }, v)));
    } else {
      const number = p.type === 'integer';
      input = h('input', {
        id, name: p.name, type: number ? 'number' : 'text', step: number ? '1' : null, inputmode: number ? 'numeric' : null,
        min: p.minimum, max: p.maximum, pattern: p.pattern, required: p.required,
        value: p.default ?? '', autocomplete: 'off', spellcheck: 'false', 'aria-describedby': describedBy,
      });
    }
    fields.set(p.name, { input, error, param: p });
    return h('div', { class: 'field' }, h('label', { for: id }, p.name, p.required ? h('span', { class: 'req' }, ' (required)') : ''), input, helpEl, error);
  });
  const submit = h('button', { type: 'submit', disabled: t.problems && t.problems.length > 0 }, 'Start Task');
  // The server checks every param (and says which bound a value misses): the browser's constraint
  // attributes above only mark fields and pick keyboards.
  const form = h('form', { novalidate: true, 'aria-labelledby': hid }, controls, formError, h('div', { class: 'buttons' }, submit));
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    replace(formError);
    for (const f of fields.values()) {
      f.error.textContent = '';
      f.input.removeAttribute('aria-invalid');
    }
    const params = {};
    for (const [name, { input, param }] of fields) {
      if (param.type === 'boolean') params[name] = input.checked;
      else if (input.value !== '') {
        params[name] = param.type === 'integer' && /^-?\d+$/.test(input.value) ? Number(input.value) : input.value;
      }
    }
    submit.disabled = true;
    try {
      const task = await request('POST', nsPath(ns, 'tasks'), { body: { template: { kind: t.kind, name: t.name }, params }, signal: ctx.signal });
      ctx.announce(`Task ${task.name} created from ${t.name}.`);
      ctx.navigate(`#/tasks/${encodeURIComponent(task.namespace || ns)}/${encodeURIComponent(task.name)}`);
    } catch (err) {
      if (err.name === 'AbortError') return;
      submit.disabled = false;
      const rest = [];
      let first = null;
      for (const fe of err instanceof Problem ? err.errors : []) {
        const f = fe.field.startsWith('params.') ? fields.get(fe.field.slice(7)) : null;
        if (f) {
          f.error.textContent = f.error.textContent ? `${f.error.textContent} ${fe.message}` : fe.message;
          f.input.setAttribute('aria-invalid', 'true');
          first ??= f.input;
        } else rest.push(`${fe.field}: ${fe.message}`);
      }
      replace(formError, problemNote(err), rest.length ? h('ul', { class: 'error' }, rest.map((r) => h('li', null, r))) : null);
      if (first) first.focus();
    }
  });
  return h('section', { class: 'card', 'aria-labelledby': hid, 'data-template': t.name },
    h('h2', { id: hid }, t.name, ' ', h('span', { class: 'kind' }, t.kind)),
    t.description ? h('p', null, t.description) : null,
    t.problems && t.problems.length
      ? h('div', { class: 'error', role: 'alert' }, h('p', null, 'This template is broken (its owner must fix it):'), h('ul', null, t.problems.map((p) => h('li', null, p))))
      : null,
    t.params.length ? null : h('p', { class: 'muted' }, 'No parameters.'),
    form);
}

