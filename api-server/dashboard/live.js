// Live status over one WebSocket (docs/live-status.md). Views subscribe to a namespace or one Task;
// the connection is opened with a single-use ticket and reopened with a fresh one whenever it closes
// (4008 fell behind, 1001 server draining, 4001 credentials expired, a network drop, or no heartbeat).
// A Task subscription resumes with the last `seq` its view has seen, so nothing is lost or repeated.

import { request, Problem } from './api.js';

/** Nothing heard for this long (the server beats every 15 s): the connection is taken as dead. */
const SILENCE_MS = 45_000;

export class Live {
  /** `onState(state, detail)`: 'connecting', 'live', 'offline', 'unavailable' or 'stopped'. */
  constructor(onState) {
    this.onState = onState;
    this.subs = new Map();
    this.next = 1;
    this.ws = null;
    this.stopped = true;
    this.failures = 0;
    this.timer = null;
    this.watchdog = null;
    this.state = 'stopped';
  }

  setState(state, detail = '') {
    this.state = state;
    this.onState(state, detail);
  }

  start() {
    if (!this.stopped) return;
    this.stopped = false;
    this.failures = 0;
    this.connect();
  }

  /** Closes the connection for good (sign-out). */
  stop() {
    this.stopped = true;
    clearTimeout(this.timer);
    clearTimeout(this.watchdog);
    const ws = this.ws;
    this.ws = null;
    if (ws) ws.close(1000, 'signed out');
    this.subs.clear();
    this.setState('stopped');
  }

  /**
   * Follows `namespace` (every Task) or one `task` of it. `since()` returns the last `seq` seen (Task
   * subscriptions only; null before the first snapshot). `onMessage(m)` gets subscribed, snapshot,
   * event, resync, end and error messages. Returns the unsubscribe function.
   */
  subscribe({ namespace, task = null, since = () => null, onMessage }) {
    const id = this.next++;
    const sub = { namespace, task, since, onMessage };
    this.subs.set(id, sub);
    this.send(this.subscribeMessage(sub));
    return () => {
      if (!this.subs.delete(id)) return;
      const still = [...this.subs.values()].some((s) => s.namespace === namespace && s.task === task);
      if (!still) this.send({ type: 'unsubscribe', namespace, ...(task ? { task } : {}) });
    };
  }

  subscribeMessage(sub) {
    const m = { type: 'subscribe', namespace: sub.namespace };
    if (sub.task) {
      m.task = sub.task;
      const since = sub.since();
      if (Number.isInteger(since)) m.since = since;
    }
    return m;
  }

  send(m) {
    if (this.ws && this.ws.readyState === WebSocket.OPEN) this.ws.send(JSON.stringify(m));
  }

  async connect() {
    if (this.stopped || this.ws) return;
    this.setState('connecting');
    let ticket;
    try {
      ticket = (await request('POST', '/api/v1/stream/tickets')).ticket;
    } catch (e) {
      if (this.stopped) return;
      if (e instanceof Problem && e.status === 401) return; // signed out by the API client
      if (e instanceof Problem && e.status === 404) {
        this.setState('unavailable', e.detail);
        return;
      }
      this.retry(e instanceof Problem ? e.detail : String(e));
      return;
    }
    if (this.stopped || this.ws) return;
    const scheme = window.location.protocol === 'https:' ? 'wss:' : 'ws:';
    const ws = new WebSocket(`${scheme}//${window.location.host}/api/v1/stream?ticket=${encodeURIComponent(ticket)}`);
    this.ws = ws;
    ws.addEventListener('open', () => {
      if (this.ws !== ws) return;
      this.failures = 0;
      this.setState('live');
      this.heard();
      for (const sub of this.subs.values()) this.send(this.subscribeMessage(sub));
    });
    ws.addEventListener('message', (e) => {
      if (this.ws !== ws) return;
      this.heard();
      let m;
      try {
        m = JSON.parse(e.data);
      } catch {
        return;
      }
      this.dispatch(m);
    });
    ws.addEventListener('close', (e) => {
      if (this.ws !== ws) return;
      this.ws = null;
      clearTimeout(this.watchdog);
      if (this.stopped) return;
      const why = {
        4008: 'fell behind',
        4001: 'credentials expired',
        1001: 'server restarting',
      }[e.code];
      // A known cause resumes at once (with a new ticket); anything else backs off.
      if (why) {
        this.setState('offline', why);
        this.timer = setTimeout(() => this.connect(), 100 + Math.random() * 400);
      } else this.retry('connection lost');
    });
  }

  retry(detail) {
    this.failures += 1;
    this.setState('offline', detail);
    const delay = Math.min(30_000, 500 * 2 ** Math.min(this.failures, 6)) * (0.5 + Math.random() / 2);
    clearTimeout(this.timer);
    this.timer = setTimeout(() => this.connect(), delay);
  }

  heard() {
    clearTimeout(this.watchdog);
    const ws = this.ws;
    this.watchdog = setTimeout(() => {
      if (this.ws === ws && ws) ws.close(4000, 'no heartbeat');
    }, SILENCE_MS);
  }

  dispatch(m) {
    if (m.type === 'heartbeat') return;
    for (const sub of [...this.subs.values()]) {
      if (m.type === 'error') sub.onMessage(m);
      else if (m.namespace === sub.namespace && (!sub.task || sub.task === m.task)) {
        if (m.type === 'subscribed' && (m.task ?? null) !== sub.task) continue;
        sub.onMessage(m);
      }
    }
  }
}
