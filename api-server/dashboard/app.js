// The Ephemera dashboard: sign-in, the namespace, hash routes (so back and forward work) and the
// views. No framework and no build step: ES modules served by the API server itself, under a policy
// that allows nothing but this origin.

import { request, setToken, onUnauthorized, signedIn, Problem } from './api.js';
import { h, replace } from './dom.js';
import { Live } from './live.js';
import { taskList, taskPage } from './tasks.js';
import { queuesPage, triggersPage, schedulesPage, templatesPage } from './pages.js';

const main = document.getElementById('app');
const nav = document.getElementById('nav');
const session = document.getElementById('session');
const nsForm = document.getElementById('ns-form');
const nsInput = document.getElementById('ns');
const liveState = document.getElementById('live-state');
const status = document.getElementById('status');

const NAME = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
let namespace = 'default';
let view = null; // {abort, cleanups} of the view on screen

/** Says `text` to screen readers (the polite live region). */
function announce(text) {
  status.textContent = '';
  // A fresh node each time, so the same words twice are still read.
  requestAnimationFrame(() => {
    status.textContent = text;
  });
}

const live = new Live((state, detail) => {
  liveState.dataset.state = state;
  liveState.textContent = {
    connecting: 'Connecting…',
    live: 'Live',
    offline: `Reconnecting${detail ? ` (${detail})` : ''}…`,
    unavailable: 'Live updates unavailable: refreshing every 5 s',
    stopped: 'Live updates off',
  }[state];
});

function teardown() {
  if (!view) return;
  view.abort.abort();
  for (const fn of view.cleanups.splice(0)) {
    try {
      fn();
    } catch {
      // a cleanup that fails must not keep the others from running
    }
  }
  view = null;
}

/** A modal confirmation; resolves true when confirmed. */
function confirmDialog(title, text, yes, no) {
  return new Promise((resolve) => {
    const yesButton = h('button', { type: 'button', class: 'danger', value: 'yes' }, yes);
    const noButton = h('button', { type: 'button', class: 'secondary', value: 'no' }, no);
    const dialog = h('dialog', { 'aria-labelledby': 'dialog-title', 'aria-describedby': 'dialog-text' },
      h('h2', { id: 'dialog-title' }, title), h('p', { id: 'dialog-text' }, text), h('div', { class: 'buttons' }, yesButton, noButton));
    const opener = document.activeElement;
    yesButton.addEventListener('click', () => dialog.close('yes'));
    noButton.addEventListener('click', () => dialog.close('no'));
    dialog.addEventListener('close', () => {
      dialog.remove();
      if (opener && opener.isConnected) opener.focus();
      resolve(dialog.returnValue === 'yes');
    });
    document.body.append(dialog);
    dialog.showModal();
    noButton.focus(); // the safe choice first
  });
}

function parseRoute() {
  const raw = window.location.hash.replace(/^#/, '') || '/tasks';
  const [path, query = ''] = raw.split('?');
  const parts = path.split('/').filter(Boolean).map((p) => {
    try {
      return decodeURIComponent(p);
    } catch {
      return p;
    }
  });
  return { parts, params: new URLSearchParams(query) };
}

async function route() {
  teardown();
  if (!signedIn()) {
    signInView();
    return;
  }
  const { parts, params } = parseRoute();
  const section = parts[0] || 'tasks';
  for (const a of nav.querySelectorAll('a')) {
    if (a.dataset.section === section) a.setAttribute('aria-current', 'page');
    else a.removeAttribute('aria-current');
  }
  const abort = new AbortController();
  view = { abort, cleanups: [] };
  const mine = view;
  const ctx = {
    main,
    live,
    ns: namespace,
    params,
    signal: abort.signal,
    announce,
    confirm: confirmDialog,
    onCleanup: (fn) => mine.cleanups.push(fn),
    setTitle: (t) => {
      document.title = `${t} · Ephemera`;
    },
    navigate: (hash) => {
      if (window.location.hash === hash) route();
      else window.location.hash = hash;
    },
  };
  main.setAttribute('aria-busy', 'true');
  try {
    if (section === 'tasks' && parts.length === 3) {
      if (NAME.test(parts[1]) && parts[1] !== namespace) setNamespace(parts[1]);
      ctx.ns = namespace;
      await taskPage(ctx, parts[1], parts[2]);
    } else if (section === 'tasks' && parts.length === 1) await taskList(ctx);
    else if (section === 'queues') await queuesPage(ctx);
    else if (section === 'triggers') await triggersPage(ctx);
    else if (section === 'schedules') await schedulesPage(ctx);
    else if (section === 'templates') await templatesPage(ctx);
    else {
      ctx.setTitle('Not found');
      replace(main, h('h1', { tabindex: '-1' }, 'Not found'), h('p', null, 'No such page. ', h('a', { href: '#/tasks' }, 'Go to the Tasks.')));
    }
  } catch (e) {
    if (e.name !== 'AbortError') replace(main, h('h1', { tabindex: '-1' }, 'Something went wrong'), h('p', { class: 'error', role: 'alert' }, e instanceof Problem ? e.detail : String(e)));
  } finally {
    if (view === mine) {
      main.removeAttribute('aria-busy');
      const heading = main.querySelector('h1');
      if (heading && moveFocus) heading.focus({ preventScroll: false });
    }
  }
}

// Focus goes to the new page's heading when the user navigated, not on the first render.
let moveFocus = false;

function setNamespace(ns) {
  namespace = ns;
  nsInput.value = ns;
}

nsForm.addEventListener('submit', (e) => {
  e.preventDefault();
  const ns = nsInput.value.trim();
  if (!NAME.test(ns)) {
    nsInput.setAttribute('aria-invalid', 'true');
    announce('A namespace is lowercase letters, digits and dashes.');
    return;
  }
  nsInput.removeAttribute('aria-invalid');
  namespace = ns;
  announce(`Showing namespace ${ns}.`);
  const { parts } = parseRoute();
  moveFocus = true;
  // A Task page belongs to its namespace: another namespace goes back to the list.
  if (parts[0] === 'tasks' && parts.length === 3) window.location.hash = '#/tasks';
  else route();
});

function signInView(problem) {
  nav.hidden = true;
  session.hidden = true;
  document.title = 'Sign in · Ephemera';
  const error = h('p', { id: 'signin-error', class: 'error', role: 'alert' }, problem ? problem.detail : '');
  const input = h('input', {
    id: 'token', name: 'token', type: 'password', autocomplete: 'off', spellcheck: 'false', required: true,
    'aria-describedby': 'token-help signin-error',
  });
  const button = h('button', { id: 'sign-in', type: 'submit' }, 'Sign in');
  const form = h('form', { id: 'signin', class: 'signin', novalidate: true },
    h('label', { for: 'token' }, 'Token'), input,
    h('p', { id: 'token-help', class: 'help' }, 'An API token (eph_…) or an OIDC ID token. It is kept in this page only: reloading or closing the page signs you out.'),
    error, h('div', { class: 'buttons' }, button));
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    const t = input.value.trim();
    if (!t) {
      error.textContent = 'Paste a token first.';
      input.focus();
      return;
    }
    button.disabled = true;
    error.textContent = '';
    setToken(t);
    try {
      // Any signed-in caller may list the queues: the cheapest check that the token is good.
      await request('GET', '/api/v1/queues', { quiet: true });
    } catch (err) {
      setToken(null);
      button.disabled = false;
      error.textContent = err instanceof Problem ? err.detail : String(err);
      input.select();
      input.focus();
      return;
    }
    input.value = '';
    nav.hidden = false;
    session.hidden = false;
    live.start();
    announce('Signed in.');
    moveFocus = true;
    route();
  });
  replace(main, h('section', { class: 'signin-page', 'aria-labelledby': 'signin-h' },
    h('h1', { id: 'signin-h', tabindex: '-1' }, 'Sign in to Ephemera'), form));
  if (problem) input.focus();
}

function signOut(problem) {
  teardown();
  setToken(null);
  live.stop();
  signInView(problem);
  announce(problem ? `Signed out: ${problem.detail}` : 'Signed out.');
}

onUnauthorized((p) => signOut(p));
document.getElementById('sign-out').addEventListener('click', () => signOut());
document.querySelector('.skip').addEventListener('click', (e) => {
  e.preventDefault();
  main.focus();
});
window.addEventListener('hashchange', () => {
  moveFocus = true;
  route();
});
route();
