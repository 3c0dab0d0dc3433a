// The dashboard in a real browser: Debian's Chromium driven by playwright-core. Run by the e2e
// suite's `dashboard::` test (e2e/suite/tests/e2e/dashboard.rs), which starts the stack and passes:
//
//   DASHBOARD_URL           the API server (it serves the dashboard at /)
//   DASHBOARD_TOKEN         an API token for DASHBOARD_NAMESPACE: create, read, cancel, delete
//   DASHBOARD_READER_TOKEN  one that may only read there
//   DASHBOARD_NAMESPACE     where the Tasks go
//   DASHBOARD_ARTIFACTS     where each step's screenshot goes (PNG)
//   DASHBOARD_CHROMIUM      the browser (default /usr/bin/chromium)
//
// The stack has the `greet` ClusterTaskTemplate, the `release-note` TaskTemplate, the queue `batch`
// and the trigger `gh-push` with one delivery. Every wait is for a condition, bounded by WAIT.

import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { chromium } from 'playwright-core';

function env(name, fallback) {
  const v = process.env[name] ?? fallback;
  if (v === undefined) {
    console.error(`${name} is not set (the e2e suite's dashboard test sets it)`);
    process.exit(2);
  }
  return v;
}

const API = env('DASHBOARD_URL').replace(/\/$/, '');
const TOKEN = env('DASHBOARD_TOKEN');
const READER = env('DASHBOARD_READER_TOKEN');
const NS = env('DASHBOARD_NAMESPACE', 'default');
const ARTIFACTS = env('DASHBOARD_ARTIFACTS');
const BROWSER = env('DASHBOARD_CHROMIUM', '/usr/bin/chromium');
// Where the page is loaded from (the API itself; a development proxy may stand in front of it).
const PAGE = (process.env.DASHBOARD_PAGE_URL || API).replace(/\/$/, '');
const WAIT = 90_000;
const RUN = Date.now().toString(36).slice(-4);
const DESKTOP = { width: 1280, height: 800 };

fs.mkdirSync(ARTIFACTS, { recursive: true });

/** A REST call from outside the browser: [status, body]. */
async function api(method, p, body, token = TOKEN) {
  const resp = await fetch(`${API}${p}`, {
    method,
    headers: { Authorization: `Bearer ${token}`, ...(body ? { 'Content-Type': 'application/json' } : {}) },
    body: body ? JSON.stringify(body) : undefined,
  });
  const text = await resp.text();
  let json = null;
  try {
    json = JSON.parse(text);
  } catch {
    json = text;
  }
  return [resp.status, json];
}

async function createTask(spec) {
  const [status, body] = await api('POST', `/api/v1/namespaces/${NS}/tasks`, spec);
  assert.equal(status, 201, `create ${JSON.stringify(spec)}: ${JSON.stringify(body)}`);
  return body.name;
}

const dirs = [];
let shot = 0;
async function screenshot(page, name, fullPage = false) {
  shot += 1;
  const file = path.join(ARTIFACTS, `${String(shot).padStart(2, '0')}-${name}.png`);
  await page.screenshot({ path: file, fullPage });
  return file;
}

/** Waits until `fn(arg)` is truthy in the page; says what it waited for when it times out. */
async function until(page, what, fn, arg) {
  try {
    return await page.waitForFunction(fn, arg, { timeout: WAIT, polling: 100 });
  } catch (e) {
    const text = await page.locator('main').innerText().catch(() => '(no main)');
    throw new Error(`timed out waiting for ${what}\n--- the page's main says:\n${text}\n---\n${e.message}`);
  }
}

const text = (page, selector) => page.locator(selector).first().innerText();

async function go(page, hash) {
  await page.evaluate((h) => {
    window.location.hash = h;
  }, hash);
  await until(page, `the view of ${hash} (no longer busy)`, (h) => window.location.hash === h && !document.getElementById('app').hasAttribute('aria-busy') && document.querySelector('main h1'), hash);
}

async function signIn(page, token) {
  await page.locator('#token').waitFor();
  await page.locator('#token').fill(token);
  await page.locator('#sign-in').click();
  await until(page, 'signed in (the navigation shown)', () => !document.getElementById('nav').hidden);
}

async function signOut(page) {
  await page.getByRole('button', { name: 'Sign out' }).click();
  await page.locator('#token').waitFor();
}

// Everything the page ever shows of phases and progress, recorded as it happens (installed before
// any Task exists, so nothing is missed): each badge added to a list row or the Task page's summary,
// and each value the progress bar held.
function recorder() {
  window.__seen = { list: {}, page: [], progress: [] };
  new MutationObserver((records) => {
    for (const r of records) {
      if (r.type === 'attributes' && r.target.tagName === 'PROGRESS') {
        window.__seen.progress.push(r.oldValue);
        continue;
      }
      for (const n of r.addedNodes) {
        if (n.nodeType !== 1) continue;
        const badges = n.matches('.phase') ? [n] : [...n.querySelectorAll('.phase')];
        for (const b of badges) {
          const host = b === n ? r.target : b.parentElement;
          const row = host.closest('tr[data-task]');
          if (row && host.closest('.phase-cell')) (window.__seen.list[row.dataset.task] ??= []).push(b.dataset.phase);
          else if (host.closest('.phase-now')) window.__seen.page.push(b.dataset.phase);
        }
      }
    }
  }).observe(document.body, { subtree: true, childList: true, attributes: true, attributeFilter: ['value'], attributeOldValue: true });
}

const squash = (xs) => xs.filter((x, i) => i === 0 || x !== xs[i - 1]);

const steps = [];
function step(name, fn) {
  steps.push({ name, fn });
}

// --- the steps -------------------------------------------------------------------------------

step('the keyboard reaches the sign-in field and button', async (page) => {
  await page.goto(`${PAGE}/#/tasks`);
  await page.locator('#token').waitFor();
  const order = [];
  for (let i = 0; i < 6 && !order.includes('sign-in'); i += 1) {
    await page.keyboard.press('Tab');
    order.push(await page.evaluate(() => document.activeElement.id || document.activeElement.className || document.activeElement.tagName));
  }
  const [field, button] = [order.indexOf('token'), order.indexOf('sign-in')];
  assert.ok(field >= 0 && button === field + 1, `Tab order: ${order.join(' → ')}`);
  const ring = await page.evaluate(() => getComputedStyle(document.activeElement).outlineStyle);
  assert.notEqual(ring, 'none', 'the focused button shows a focus ring');
  await screenshot(page, 'signin-keyboard');
});

step('a wrong token is refused with the problem shown', async (page) => {
  const wrong = 'eph_0000000000_wrong';
  const [status, problem] = await api('GET', '/api/v1/queues', null, wrong);
  assert.equal(status, 401);
  await page.locator('#token').focus();
  await page.keyboard.type(wrong);
  await page.keyboard.press('Enter');
  await until(page, 'the 401 problem shown', (d) => document.getElementById('signin-error').textContent === d, problem.detail);
  assert.equal(await page.locator('#nav').isHidden(), true);
  await screenshot(page, 'signin-refused');
});

step('signing in shows the Task list, live', async (page) => {
  await page.locator('#token').fill('');
  await page.locator('#token').focus();
  await page.keyboard.type(TOKEN);
  await page.keyboard.press('Enter');
  await until(page, 'the Task list', () => document.querySelector('main h1')?.textContent === 'Tasks');
  await until(page, 'live status connected', () => document.getElementById('live-state').dataset.state === 'live');
  // The page is never reloaded from here on: this marker would be gone.
  await page.evaluate(() => {
    window.__marker = 'still the same page';
  });
  const stored = await page.evaluate(() => [localStorage.length, sessionStorage.length, document.cookie]);
  assert.deepEqual(stored, [0, 0, ''], 'the token is in memory only');
  assert.ok(!page.url().includes(TOKEN.slice(-8)));
});

step('a new Task appears and moves to Succeeded without a reload', async (page) => {
  const name = await createTask({ name: `hello-${RUN}`, image: 'busybox', command: ['sh', '-c', 'echo hello; sleep 2; echo bye'], labels: { suite: 'dashboard' } });
  await until(page, `${name} Succeeded in the list`, (n) => document.querySelector(`tr[data-task="${n}"] .phase`)?.dataset.phase === 'Succeeded', name);
  const seen = squash(await page.evaluate((n) => window.__seen.list[n] || [], name));
  assert.ok(['Pending', 'Scheduled'].includes(seen[0]), `first seen before it ran: ${seen}`);
  assert.ok(seen.indexOf('Running') > 0 && seen.at(-1) === 'Succeeded', `the list showed ${seen.join(' → ')}`);
  assert.equal(await page.evaluate(() => window.__marker), 'still the same page', 'no reload');
  const row = await text(page, `tr[data-task="${name}"]`);
  for (const want of [name, 'Succeeded', 'default', 'token:']) assert.ok(row.includes(want), `${want} in the row: ${row}`);
  await screenshot(page, 'list-live');
});

step('filters apply to the list and to live updates; back and forward restore them', async (page) => {
  await page.getByLabel('Phase').selectOption('Succeeded');
  await page.getByLabel('Label selector').fill(`batch=b${RUN}`);
  await page.getByRole('button', { name: 'Apply' }).click();
  await until(page, 'the filtered list', (b) => window.location.hash.includes(`labels=batch%3D${b}`) && !document.querySelector('tbody tr'), `b${RUN}`);
  const other = await createTask({ name: `other-${RUN}`, image: 'busybox', command: ['true'] });
  const match = await createTask({ name: `match-${RUN}`, image: 'busybox', command: ['sh', '-c', 'sleep 1'], labels: { batch: `b${RUN}` } });
  await until(page, `${match} shown once Succeeded`, (n) => document.querySelector(`tr[data-task="${n}"] .phase`)?.dataset.phase === 'Succeeded', match);
  const seen = squash(await page.evaluate((n) => window.__seen.list[n] || [], match));
  assert.deepEqual(seen, ['Succeeded'], 'the phase filter held while it ran');
  const rows = await page.locator('tbody tr').evaluateAll((trs) => trs.map((t) => t.dataset.task));
  assert.deepEqual(rows, [match], `only the matching Task (not ${other})`);
  await screenshot(page, 'list-filtered');
  await page.goBack();
  await until(page, 'the unfiltered list again', (n) => window.location.hash === '#/tasks' && document.querySelector(`tr[data-task="${n}"]`), other);
  assert.equal(await page.getByLabel('Label selector').inputValue(), '');
  await page.goForward();
  await until(page, 'the filtered list again', (n) => window.location.hash.includes('labels=') && document.querySelector(`tr[data-task="${n}"]`) && document.querySelectorAll('tbody tr').length === 1, match);
  assert.equal(await page.getByLabel('Label selector').inputValue(), `batch=b${RUN}`);
  assert.equal(await page.evaluate(() => window.__marker), 'still the same page', 'no reload');
  await page.getByRole('button', { name: 'Reset' }).click();
  await until(page, 'the filters reset', () => window.location.hash === '#/tasks');
});

const STEPS = [
  'sleep 1',
  'for i in 1 2 3 4 5; do echo "::progress pct=$((i*20)) msg=step $i"; echo "log line $i"; sleep 0.4; done',
  'echo "::progress msg=<img src=x onerror=window.__xss=1>"',
  "echo '<b>not bold</b>'",
  'printf "all %s steps" 5 > "$EPHEMERA_RESULT_FILE"',
].join('; ');

step('a Task page shows phases, progress, logs and the result as they happen', async (page) => {
  const name = await createTask({ name: `steps-${RUN}`, image: 'busybox', command: ['sh', '-c', STEPS] });
  await page.locator(`tr[data-task="${name}"] a`).click();
  await until(page, `the page of ${name}`, (n) => window.location.hash.endsWith(`/${n}`) && document.querySelector('main h1')?.textContent === n && document.querySelector('.phase-now'), name);
  await screenshot(page, 'task-page-early');
  await until(page, 'the result', () => document.querySelector('pre.result')?.textContent === 'all 5 steps');
  await until(page, 'the logs complete', () => document.querySelector('.log-status')?.textContent.startsWith('Logs (complete)'));
  const messages = await page.locator('ol.events li[data-kind="Progress"] .event-what').allTextContents();
  assert.deepEqual(messages.slice(0, 5), [1, 2, 3, 4, 5].map((i) => `${i * 20}% step ${i}`), `progress events in order: ${messages}`);
  const phases = await page.locator('ol.events li[data-kind="Phase"] .phase').evaluateAll((bs) => bs.map((b) => b.dataset.phase));
  assert.ok(phases.indexOf('Running') >= 0 && phases.at(-1) === 'Succeeded', `phase events: ${phases}`);
  // Shown as they came: the bar went through the steps, the summary through the phases.
  const bar = await page.evaluate(() => [...window.__seen.progress, document.querySelector('progress').getAttribute('value')]);
  const values = squash(bar.filter((v) => v !== null).map(Number));
  assert.ok(values.length >= 3 && values.at(-1) === 100 && values.every((v, i) => i === 0 || v > values[i - 1]), `the bar showed ${values}`);
  const pagePhases = squash(await page.evaluate(() => window.__seen.page));
  assert.ok(pagePhases.indexOf('Running') > 0 && pagePhases.at(-1) === 'Succeeded', `the summary showed ${pagePhases}`);
  // Logs: each line once, server text as text.
  const log = await page.locator('pre.log').textContent();
  for (let i = 1; i <= 5; i += 1) assert.equal(log.split(`log line ${i}\n`).length, 2, `"log line ${i}" once in:\n${log}`);
  assert.ok(log.includes('<b>not bold</b>'), log);
  assert.equal(await page.locator('pre.log b, ol.events img').count(), 0, 'no markup from the server');
  assert.ok((await text(page, 'ol.events')).includes('<img src=x onerror=window.__xss=1>'));
  assert.equal(await page.evaluate(() => window.__xss), undefined);
  assert.ok((await text(page, '.summary')).includes('Exit code'));
  await screenshot(page, 'task-page-done', true);
});

step('cancel: refused for a reader with the problem shown, then the Task is Cancelled', async (page) => {
  const name = await createTask({ name: `sleeper-${RUN}`, image: 'busybox', command: ['sleep', '300'] });
  const [status, refused] = await api('POST', `/api/v1/namespaces/${NS}/tasks/${name}/cancel`, null, READER);
  assert.equal(status, 403, JSON.stringify(refused));
  await signOut(page);
  await signIn(page, READER);
  await go(page, `#/tasks/${NS}/${name}`);
  await until(page, `${name} Running`, () => document.querySelector('.phase-now .phase')?.dataset.phase === 'Running');
  await page.getByRole('button', { name: 'Cancel Task' }).click();
  await page.getByRole('dialog').getByRole('button', { name: 'Cancel Task' }).click();
  await until(page, 'the refusal shown', (d) => [...document.querySelectorAll('main [role=alert]')].some((e) => e.textContent === d), refused.detail);
  await screenshot(page, 'cancel-refused');
  await signOut(page);
  await signIn(page, TOKEN);
  await go(page, `#/tasks/${NS}/${name}`);
  await until(page, `${name} Running`, () => document.querySelector('.phase-now .phase')?.dataset.phase === 'Running');
  await until(page, 'the log follow open', () => document.querySelector('.log-status')?.textContent.startsWith('Following attempt'));
  await page.getByRole('button', { name: 'Cancel Task' }).click();
  const dialog = page.getByRole('dialog');
  await dialog.waitFor();
  await screenshot(page, 'cancel-confirm');
  // Escape keeps it running; the dialog's confirm button cancels.
  await page.keyboard.press('Escape');
  await dialog.waitFor({ state: 'detached' });
  assert.equal(await page.locator('.phase-now .phase').getAttribute('data-phase'), 'Running');
  await page.getByRole('button', { name: 'Cancel Task' }).click();
  await page.getByRole('dialog').getByRole('button', { name: 'Cancel Task' }).click();
  await until(page, `${name} Cancelled`, () => document.querySelector('.phase-now .phase')?.dataset.phase === 'Cancelled');
  await until(page, 'the Cancel button gone', () => [...document.querySelectorAll('main button')].every((b) => b.textContent !== 'Cancel Task' || b.hidden));
  await until(page, 'the log follow ended', () => !document.querySelector('.log-status')?.textContent.startsWith('Following'));
  assert.equal(await page.evaluate(() => window.__marker), 'still the same page', 'no reload');
  await screenshot(page, 'cancelled');
});

/** Fills a template's form; `values` by label, a boolean checks or unchecks. */
async function fillTemplate(page, template, values) {
  const form = page.locator(`section[data-template="${template}"]`);
  for (const [label, value] of Object.entries(values)) {
    const field = form.getByLabel(label);
    if (typeof value === 'boolean') await field.setChecked(value);
    else if ((await field.evaluate((e) => e.tagName)) === 'SELECT') await field.selectOption(value);
    else await field.fill(value);
  }
  await form.getByRole('button', { name: 'Start Task' }).click();
  return form;
}

async function startFromTemplate(page, template, values, result) {
  await fillTemplate(page, template, values);
  await until(page, 'the new Task page', () => /^#\/tasks\/[^/]+\/[^/]+$/.test(window.location.hash) && document.querySelector('.phase-now'));
  await until(page, `the Task from ${template} Succeeded with ${result}`, (r) => document.querySelector('pre.result')?.textContent === r, result);
}

/** The server's own message for a bad param (a create it refuses changes nothing). */
async function refusal(template, kind, params, param) {
  const [status, problem] = await api('POST', `/api/v1/namespaces/${NS}/tasks`, { template: { kind, name: template }, params });
  assert.equal(status, 422, JSON.stringify(problem));
  return problem.errors.find((e) => e.field === `params.${param}`).message;
}

step('a template form names a bad param at its field, and a good one starts a Task', async (page) => {
  await go(page, '#/templates');
  const greet = page.locator('section[data-template="greet"]');
  await greet.waitFor();
  const want = await refusal('greet', 'ClusterTaskTemplate', { who: 'dashboard', times: 9 }, 'times');
  assert.ok(want.includes('at most 5'), want);
  await fillTemplate(page, 'greet', { who: 'dashboard', times: '9' });
  const times = greet.getByLabel('times');
  await until(page, 'the error at the times field', ([t, w]) => {
    const input = document.querySelector(`section[data-template="${t}"] input[name="times"]`);
    const err = document.getElementById(`${input.id}-error`);
    return input.getAttribute('aria-invalid') === 'true' && err.textContent === w && input.getAttribute('aria-describedby').includes(err.id) && document.activeElement === input;
  }, ['greet', want]);
  assert.equal(await times.getAttribute('max'), '5');
  await screenshot(page, 'template-bad-param');
  await startFromTemplate(page, 'greet', { who: 'dashboard', times: '3' }, 'dashboard|--times=3|plain|');
  await screenshot(page, 'template-task');

  // The team's template: a pattern, a boolean and an optional enum.
  await go(page, '#/templates');
  const note = page.locator('section[data-template="release-note"]');
  await note.waitFor();
  assert.equal(await note.getByLabel('draft').isChecked(), true, 'the boolean default');
  assert.equal(await note.getByLabel('title').getAttribute('pattern'), '[A-Za-z ]+');
  const bad = await refusal('release-note', 'TaskTemplate', { title: 'Release 1' }, 'title');
  await fillTemplate(page, 'release-note', { title: 'Release 1' });
  await until(page, 'the error at the title field', ([w]) => {
    const input = document.querySelector('section[data-template="release-note"] input[name="title"]');
    return document.getElementById(`${input.id}-error`).textContent === w;
  }, [bad]);
  await startFromTemplate(page, 'release-note', { title: 'Spring release', draft: false, channel: 'chat' }, 'Spring release/false');
});

step('queues, triggers and schedules', async (page) => {
  await go(page, '#/queues');
  await until(page, 'the batch queue', () => document.querySelector('tr[data-queue="batch"]')?.children[1].textContent === '1');
  await screenshot(page, 'queues');

  await go(page, '#/triggers');
  const trig = page.locator('section[data-trigger="gh-push"]');
  await trig.waitFor();
  const t = await trig.innerText();
  for (const want of ['github', 'Ready', 'branch-push', 'push', 'Created', '/webhooks/default/gh-push']) assert.ok(t.includes(want), `${want} in:\n${t}`);
  await screenshot(page, 'triggers');
  await trig.locator('tbody a').first().click();
  await until(page, "the delivery's Task", () => /^#\/tasks\/default\/.+/.test(window.location.hash) && document.querySelector('.phase-now'));

  const [status, body] = await api('POST', `/api/v1/namespaces/${NS}/schedules`, {
    name: `nightly-${RUN}`, schedule: '0 3 * * *', timeZone: 'Europe/Berlin', suspend: true,
    task: { template: 'greet', params: { who: 'night' } },
  });
  assert.equal(status, 201, JSON.stringify(body));
  await go(page, '#/schedules');
  const row = page.locator(`tr[data-schedule="nightly-${RUN}"]`);
  await row.waitFor();
  assert.ok((await row.innerText()).includes('Suspended'));
  await row.getByRole('button', { name: 'Resume' }).click();
  await until(page, 'the schedule active', (n) => document.querySelector(`tr[data-schedule="${n}"] .state`)?.textContent.startsWith('Active'), `nightly-${RUN}`);
  assert.equal(await page.evaluate(() => document.activeElement.textContent), 'Suspend', 'the focus stays on the button');
  await screenshot(page, 'schedules');
  await page.locator(`tr[data-schedule="nightly-${RUN}"]`).getByRole('button', { name: 'Suspend' }).click();
  await until(page, 'the schedule suspended', (n) => document.querySelector(`tr[data-schedule="${n}"] .state`)?.textContent.startsWith('Suspended'), `nightly-${RUN}`);
});

step('every view fits a 360 px wide screen', async (page) => {
  await page.setViewportSize({ width: 360, height: 740 });
  for (const hash of ['#/tasks', `#/tasks/${NS}/steps-${RUN}`, '#/templates', '#/triggers', '#/queues', '#/schedules']) {
    await go(page, hash);
    await page.locator('main h1').waitFor();
    const [scroll, width] = await page.evaluate(() => [document.documentElement.scrollWidth, document.documentElement.clientWidth]);
    assert.ok(scroll <= width, `${hash}: the page scrolls sideways (${scroll} > ${width})`);
    await screenshot(page, `narrow-${hash.split('/')[1]}${hash.split('/').length > 2 ? '-task' : ''}`, true);
  }
  await page.setViewportSize(DESKTOP);
});

step('the Task list with several Tasks (for the README)', async (page) => {
  const deploy = await createTask({ name: `deploy-web-${RUN}`, image: 'busybox', command: ['sh', '-c', 'echo "::progress pct=40 msg=rolling out"; sleep 300'], priority: 50, labels: { app: 'web' } });
  const failing = await createTask({ name: `lint-${RUN}`, image: 'busybox', command: ['sh', '-c', 'echo "2 problems"; exit 3'], queue: 'batch' });
  await go(page, '#/tasks');
  await until(page, 'a Running and a Failed Task', ([d, f]) =>
    document.querySelector(`tr[data-task="${d}"] .phase`)?.dataset.phase === 'Running' && document.querySelector(`tr[data-task="${f}"] .phase`)?.dataset.phase === 'Failed', [deploy, failing]);
  const rows = await page.locator('tbody tr').evaluateAll((trs) => trs.map((t) => t.dataset.task));
  assert.ok(rows.length >= 8 && rows[0] === failing && rows[1] === deploy, `newest first: ${rows}`);
  await page.mouse.move(0, 0);
  await screenshot(page, 'tasks-desktop');
  await api('POST', `/api/v1/namespaces/${NS}/tasks/${deploy}/cancel`);
});

// --- the run ---------------------------------------------------------------------------------

const userData = fs.mkdtempSync(path.join(os.tmpdir(), 'ephemera-dashboard-chromium-'));
dirs.push(userData);
const context = await chromium.launchPersistentContext(userData, {
  executablePath: BROWSER,
  headless: true,
  viewport: DESKTOP,
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--disable-quic'],
});
const page = context.pages()[0] ?? (await context.newPage());
const problems = [];
page.on('pageerror', (e) => problems.push(`uncaught: ${e.message}`));
page.on('console', (m) => {
  // Chrome logs each refused request (the 401s and 4xx the steps provoke) as an error: those are
  // expected; anything else (a policy violation, a script error) is not.
  if (m.type() === 'error' && !m.text().startsWith('Failed to load resource')) problems.push(`console: ${m.text()}`);
});
await page.addInitScript(`document.addEventListener('DOMContentLoaded', ${recorder.toString()});`);

let failed = null;
let n = 0;
for (const s of steps) {
  n += 1;
  const started = Date.now();
  try {
    await s.fn(page);
    console.log(`ok ${n} - ${s.name} (${((Date.now() - started) / 1000).toFixed(1)} s)`);
  } catch (e) {
    console.log(`not ok ${n} - ${s.name}`);
    console.log(e.stack || String(e));
    await screenshot(page, `FAILED-${n}`, true).catch(() => {});
    failed = e;
    break;
  }
}
if (!failed && problems.length) {
  failed = new Error(`the page reported problems:\n${problems.join('\n')}`);
  console.log(failed.message);
}
await context.close();
for (const d of dirs) fs.rmSync(d, { recursive: true, force: true });
console.log(failed ? `1..${n} failed; screenshots in ${ARTIFACTS}` : `1..${n} all passed; screenshots in ${ARTIFACTS}`);
process.exit(failed ? 1 : 0);
